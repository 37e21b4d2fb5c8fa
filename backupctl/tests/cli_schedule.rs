//! `schedule run`: the configured schedules in the foreground until SIGINT.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Options, Workspace};
use rustix::process::{kill_process, Pid, Signal};

#[test]
fn schedule_run_backs_up_on_schedule_until_sigint_then_prints_its_runs() {
    let ws = Workspace::new(Options {
        extra:
            "[[schedules]]\nname = \"every-minute\"\ncron = \"* * * * *\"\nlabel = \"scheduled\"\n"
                .into(),
        ..Options::default()
    });
    ws.ok(&["init"]);
    let child = ws
        .command(&["--json", "schedule", "run"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The next minute's run (within about a minute).
    let start = Instant::now();
    while ws
        .ok(&["list", "--kind", "automatic"])
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no scheduled run"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    kill_process(
        Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap(),
        Signal::INT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "SIGINT is the normal way to stop it"
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = doc["result"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{doc}");
    assert_eq!(runs[0]["trigger"], "schedule:every-minute", "{doc}");
    let bundles = ws.ok(&["list", "--kind", "automatic"]);
    assert_eq!(bundles[0]["label"], "scheduled", "{bundles}");
    assert!(ws.lock_files().is_empty());
}
