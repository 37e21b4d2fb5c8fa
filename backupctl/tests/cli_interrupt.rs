//! Ctrl-C (SIGINT) during `create` cancels cleanly.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{list_dir, Options, Workspace};
use rustix::process::{kill_process, Pid, Signal};

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigint_during_create_leaves_no_bundle_no_lock_and_starts_the_stopped_service() {
    let dir = tempfile::tempdir().unwrap();
    let stopped = dir.path().join("stopped");
    let started = dir.path().join("started");
    let ws = Workspace::new(Options {
        files_section: format!(
            "stop = [\"sh\", \"-c\", \"[ -e {0} ] || {{ touch {0}; exec sleep 30; }}\"]\nstart = [\"touch\", \"{1}\"]\n",
            stopped.display(),
            started.display()
        ),
        ..Options::default()
    });
    ws.ok(&["init"]);
    let child = ws
        .command(&["create", "--label", "interrupted"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The repository lock is taken, and the service is being stopped for its export.
    wait_for("the stop command", || stopped.exists());
    assert_eq!(ws.lock_files().len(), 1, "create holds a repository lock");
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    kill_process(pid, Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(
        common::stderr(&out).contains("interrupted"),
        "{}",
        common::stderr(&out)
    );
    assert!(
        ws.ok(&["list"]).as_array().unwrap().is_empty(),
        "no bundle is listed"
    );
    assert!(
        ws.lock_files().is_empty(),
        "no lock is left: {:?}",
        ws.lock_files()
    );
    assert!(
        list_dir(&ws.repo.join("bundles")).is_empty(),
        "no partial upload is left"
    );
    assert!(started.exists(), "the stopped service was started again");
    // The repository works afterwards (the stop command returns at once the second time).
    ws.ok(&["create"]);
}
