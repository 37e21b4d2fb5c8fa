//! Consistent exports: exactly the running containers that use a volume are stopped while
//! it is exported and started again afterwards (also when the export is cancelled).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::Deployment;
use futures::StreamExt;

const WRITER: &str = "while true; do echo line >> /d/log; sleep 0.05; done";

fn setup() -> Deployment {
    let deployment = Deployment::with_volumes("app", Some(&["appdata"]));
    let env = &deployment.env;
    env.create_volume("appdata");
    env.create_volume("otherdata");
    common::write_random_file(&env.mountpoint("appdata").join("bulk.bin"), 32 << 20, 7);
    env.run_container("writer", &["appdata:/d"], &["sh", "-c", WRITER]);
    env.run_container("idle", &["appdata:/d"], &["sleep", "1000"]);
    env.podman(&["stop", "-t", "0", "idle"]);
    env.run_container("other", &["otherdata:/d"], &["sleep", "1000"]);
    deployment
}

#[tokio::test(flavor = "multi_thread")]
async fn a_writing_container_is_stopped_for_a_consistent_export_and_started_again() {
    let deployment = setup();
    let env = &deployment.env;
    let writer_started = env.started_at("writer");
    let other_started = env.started_at("other");
    let mut stream = common::volume_stream(&deployment, "appdata").await;
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    assert!(
        !env.is_running("writer"),
        "the writer runs during the export"
    );
    let log = env.mountpoint("appdata").join("log");
    let size_during = std::fs::metadata(&log).unwrap().len();
    let archived = common::archived_size(first, stream, "log").await;
    assert_eq!(
        archived, size_during,
        "the archive's log is not the log as it was while stopped"
    );
    assert!(env.is_running("writer"), "the writer was not started again");
    assert_ne!(
        env.started_at("writer"),
        writer_started,
        "the writer was never stopped"
    );
    assert!(
        !env.is_running("idle"),
        "a container that was stopped before was started"
    );
    assert!(env.is_running("other"));
    assert_eq!(
        env.started_at("other"),
        other_started,
        "a container of another volume was stopped"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_export_starts_the_stopped_containers_again() {
    let deployment = setup();
    let env = &deployment.env;
    let mut stream = common::volume_stream(&deployment, "appdata").await;
    stream.next().await.unwrap().unwrap();
    assert!(!env.is_running("writer"));
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !env.is_running("writer") {
        assert!(
            Instant::now() < deadline,
            "the writer stayed stopped after a cancelled export"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!env.is_running("idle"));
}

#[tokio::test(flavor = "multi_thread")]
async fn dependent_containers_are_started_again_dependencies_first() {
    let deployment = Deployment::with_volumes("app", Some(&["appdata"]));
    let env = &deployment.env;
    env.create_volume("appdata");
    std::fs::write(env.mountpoint("appdata").join("f"), b"data").unwrap();
    env.run_container("db", &["appdata:/d"], &["sleep", "1000"]);
    env.podman(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "none",
        "--requires",
        "db",
        "-v",
        "appdata:/d",
        backup_testkit::podman::IMAGE,
        "sleep",
        "1000",
    ]);
    let before = (env.started_at("db"), env.started_at("web"));
    let mut stream = common::volume_stream(&deployment, "appdata").await;
    while let Some(chunk) = stream.next().await {
        chunk.unwrap();
    }
    assert!(
        env.is_running("db") && env.is_running("web"),
        "not both running again"
    );
    let after = (env.started_at("db"), env.started_at("web"));
    assert!(
        after.0 != before.0 && after.1 != before.1,
        "not both were stopped"
    );
    let started = |name: &str| {
        env.podman(&["inspect", "--format", "{{.State.StartedAt.UnixNano}}", name])
            .parse::<i128>()
            .unwrap()
    };
    assert!(
        started("db") <= started("web"),
        "web was started before the db it requires"
    );
}
