//! Workspace export: empty workspaces, secrets stripped, configs validated.

mod workspace_fixtures;

use backup_core::memory_host::InMemoryHost;
use backup_core::snapshot::{SnapshotMetadata, WorkspaceSnapshot};
use backup_core::workspace::{export_workspace, ExportOptions};
use backup_core::ErrorKind;
use serde_json::json;
use workspace_fixtures::{new_deployment, planted, registry, source_host, workspace};

#[tokio::test]
async fn an_empty_workspace_exports_a_valid_empty_snapshot() {
    let host = InMemoryHost::new(workspace("empty"));
    let snapshot = export_workspace(&host, &registry(), &ExportOptions::default())
        .await
        .expect("export");
    assert_eq!(snapshot.version, 1);
    assert!(snapshot.services.is_empty());
    assert_eq!(snapshot.exported_by, "system");
    assert_eq!(snapshot.workspace.slug, "empty");
    time::OffsetDateTime::parse(
        &snapshot.exported_at,
        &time::format_description::well_known::Rfc3339,
    )
    .expect("exportedAt is RFC 3339");
    let parsed = WorkspaceSnapshot::from_json(&snapshot.to_json().expect("json")).expect("parse");
    assert_eq!(parsed, snapshot);
}

#[tokio::test]
async fn export_strips_secrets_from_the_snapshot_bytes() {
    let host = source_host();
    let options = ExportOptions {
        exported_by: "user_42".into(),
        metadata: Some(SnapshotMetadata {
            platform: "mathison".into(),
            engine_version: "0.23.0".into(),
        }),
    };
    let snapshot = export_workspace(&host, &registry(), &options)
        .await
        .expect("export");
    let bytes = snapshot.to_json().expect("json");
    let text = String::from_utf8(bytes).expect("utf-8");
    for service in ["db", "cache", "app"] {
        assert!(
            !text.contains(&planted(service)),
            "secret of {service} leaked"
        );
    }
    assert!(!text.contains("PLANTED-SECRET"));
    assert!(!text.contains("\"password\""));
    // Non-secret config, dependencies, options and names survive; services sorted by name.
    assert_eq!(snapshot.service_names(), ["app", "cache", "db", "files"]);
    assert_eq!(
        snapshot.services[0].config["url"],
        "https://n8n.example.com"
    );
    assert_eq!(snapshot.services[0].depends_on, ["db", "cache"]);
    assert_eq!(snapshot.services[2].config["database"], "app");
    assert_eq!(snapshot.services[3].config["path"], "/srv/files");
    assert_eq!(snapshot.exported_by, "user_42");
    assert_eq!(
        snapshot.metadata.as_ref().expect("metadata").platform,
        "mathison"
    );
    assert!(!format!("{snapshot:?}").contains("PLANTED-SECRET"));
}

#[tokio::test]
async fn an_invalid_config_at_export_names_the_deployment_not_the_secret() {
    // The password is too long for the schema (maxLength 40): invalid, and a secret.
    let long_secret = format!("{}-{}", planted("db"), "x".repeat(40));
    let host = source_host().with_deployment(new_deployment(
        "db",
        "postgres",
        json!({ "port": 5432, "database": "app", "password": long_secret }),
        &[],
    ));
    let err = export_workspace(&host, &registry(), &ExportOptions::default())
        .await
        .expect_err("invalid config");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.message().contains("`db`"), "{err}");
    let pointers: Vec<&str> = err
        .field_errors()
        .iter()
        .map(|e| e.pointer.as_str())
        .collect();
    // Sorted services: app, cache, db, files.
    assert_eq!(pointers, ["/services/2/config/password"]);
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains("PLANTED-SECRET"), "{text}");
    }
}

#[tokio::test]
async fn a_deployment_with_an_unknown_recipe_fails_export_listing_known_recipes() {
    let host = source_host().with_deployment(new_deployment(
        "legacy",
        "mysql",
        json!({ "password": planted("legacy") }),
        &[],
    ));
    let err = export_workspace(&host, &registry(), &ExportOptions::default())
        .await
        .expect_err("unknown recipe");
    assert_eq!(err.kind(), ErrorKind::UnknownRecipe);
    assert!(err.message().contains("`legacy` uses `mysql`"), "{err}");
    assert!(err.hint().unwrap_or("").contains("postgres"), "{err}");
    assert!(!format!("{err:?}").contains("PLANTED-SECRET"));
}
