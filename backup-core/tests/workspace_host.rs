//! The in-memory host and the host types: call recording, failure hooks, redacted Debug.

mod workspace_fixtures;

use std::time::Duration;

use backup_core::host::WorkspaceHost;
use backup_core::memory_host::{HostCall, InMemoryHost};
use backup_core::ErrorKind;
use serde_json::json;
use workspace_fixtures::{new_deployment, planted, source_host, workspace};

#[tokio::test]
async fn the_in_memory_host_records_calls_in_order_with_new_ids() {
    let host = InMemoryHost::new(workspace("t"));
    let created = host
        .create_deployment(new_deployment("db", "postgres", json!({ "port": 1 }), &[]))
        .await
        .expect("create");
    assert_eq!(created.status, "created");
    assert!(uuid::Uuid::parse_str(&created.id).is_ok());
    host.deploy("db").await.expect("deploy");
    host.wait_until_ready("db", Duration::from_secs(1))
        .await
        .expect("ready");
    assert_eq!(host.get("db").expect("db").status, "running");
    host.remove_deployment("db").await.expect("remove");
    assert_eq!(
        host.calls(),
        [
            HostCall::Created("db".into()),
            HostCall::Deployed("db".into()),
            HostCall::Ready("db".into()),
            HostCall::Removed("db".into()),
        ]
    );
    assert!(host.list_deployments().await.expect("list").is_empty());
    assert_eq!(host.workspace().await.expect("workspace").slug, "t");
}

#[tokio::test]
async fn the_in_memory_host_rejects_duplicates_and_unknown_names() {
    let host = source_host();
    let err = host
        .create_deployment(new_deployment("db", "postgres", json!({}), &[]))
        .await
        .expect_err("duplicate");
    assert_eq!(err.kind(), ErrorKind::NameConflict);
    let err = host.remove_deployment("ghost").await.expect_err("unknown");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = host.deploy("ghost").await.expect_err("unknown");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn failure_hooks_fail_the_named_service_only() {
    let host = InMemoryHost::new(workspace("t"));
    host.fail_on_create("bad").fail_on_ready("slow");
    let err = host
        .create_deployment(new_deployment("bad", "directory", json!({}), &[]))
        .await
        .expect_err("injected");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(host.get("bad").is_none());
    host.create_deployment(new_deployment("slow", "directory", json!({}), &[]))
        .await
        .expect("create");
    host.deploy("slow").await.expect("deploy");
    let err = host
        .wait_until_ready("slow", Duration::from_secs(1))
        .await
        .expect_err("injected");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}

#[test]
fn deployment_debug_never_prints_config_values() {
    let host = source_host();
    let db = host.get("db").expect("db");
    let text = format!(
        "{db:?} {:?}",
        new_deployment("x", "postgres", json!({ "password": planted("x") }), &[])
    );
    assert!(!text.contains("PLANTED-SECRET"), "{text}");
    assert!(text.contains("password"), "keys are shown: {text}");
    assert!(format!("{:?}", host.deployments()).contains("<redacted>"));
}
