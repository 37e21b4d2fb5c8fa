//! `schedule run`: the configured schedules in the foreground until SIGINT.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{Options, Workspace};
use rustix::process::{kill_process, Pid, Signal};

#[test]
fn schedule_run_backs_up_on_schedule_until_sigint() {
    let ws = Workspace::new(Options {
        extra:
            "[[schedules]]\nname = \"every-minute\"\ncron = \"* * * * *\"\nlabel = \"scheduled\"\n"
                .into(),
        ..Options::default()
    });
    ws.ok(&["init"]);
    let mut child = ws
        .command(&["schedule", "run"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The next minute's run (within about a minute).
    let ran = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.contains("run of every-minute"))
        .unwrap();
    assert!(ran.ends_with("ok"), "{ran}");
    kill_process(
        Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap(),
        Signal::INT,
    )
    .unwrap();
    assert_eq!(
        child.wait().unwrap().code(),
        Some(0),
        "SIGINT is the normal way to stop it"
    );
    let bundles = ws.ok(&["list", "--kind", "automatic"]);
    assert_eq!(bundles[0]["label"], "scheduled", "{bundles}");
    assert!(ws.lock_files().is_empty());
}
