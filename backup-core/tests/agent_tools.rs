//! The agent tools: every input schema accepts a valid call and rejects a bad one with a
//! JSON pointer; every output built from a real backup or restore matches its schema.

mod flow_support;

use std::sync::Arc;

use backup_core::agent_tools::{
    backup_workspace_output, export_app_data_output, import_app_data_output,
    restore_workspace_output, tool, tools, validate_input, validate_output, ExportedArtifact,
    BACKUP_WORKSPACE, EXPORT_APP_DATA, IMPORT_APP_DATA, RESTORE_WORKSPACE,
};
use backup_core::memory_host::InMemoryHost;
use backup_core::narrate::{RestoreNarrator, ServiceLabel};
use backup_core::progress::CollectedProgress;
use backup_core::restore::restore_backup;
use backup_core::{BundleReader, ErrorKind};
use flow_support::{backup, registry, restore_options, source_host, workspace};
use serde_json::{json, Value};

/// The pointers of the field errors `input` gets from tool `name`.
fn rejected_pointers(name: &str, input: Value) -> Vec<String> {
    let error = validate_input(name, &input).expect_err("invalid input is refused");
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    error
        .field_errors()
        .iter()
        .map(|e| e.pointer.clone())
        .collect()
}

#[test]
fn every_tool_is_listed_with_draft_2020_12_schemas() {
    let listed = tools();
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            BACKUP_WORKSPACE,
            RESTORE_WORKSPACE,
            EXPORT_APP_DATA,
            IMPORT_APP_DATA
        ]
    );
    for definition in &listed {
        let serialised = serde_json::to_value(definition).expect("json");
        for key in ["inputSchema", "outputSchema"] {
            assert_eq!(
                serialised[key]["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{} {key}",
                definition.name
            );
        }
        assert!(!definition.description.is_empty());
    }
    assert!(tool("deleteEverything").is_none());
}

#[test]
fn backup_workspace_input_accepts_a_label_and_rejects_a_wrong_type() {
    validate_input(BACKUP_WORKSPACE, &json!({})).expect("no arguments");
    validate_input(
        BACKUP_WORKSPACE,
        &json!({ "label": "before-upgrade", "services": ["db"] }),
    )
    .expect("label and services");
    assert_eq!(
        rejected_pointers(BACKUP_WORKSPACE, json!({ "services": ["db", 3] })),
        ["/services/1"]
    );
}

#[test]
fn restore_workspace_input_needs_a_backup_or_a_snapshot() {
    validate_input(
        RESTORE_WORKSPACE,
        &json!({ "backupId": "b1", "force": true }),
    )
    .expect("a backup");
    validate_input(RESTORE_WORKSPACE, &json!({ "snapshot": { "version": 1 } }))
        .expect("a snapshot");
    assert_eq!(
        rejected_pointers(
            RESTORE_WORKSPACE,
            json!({ "backupId": "b1", "dryRun": "no" })
        ),
        ["/dryRun"]
    );
    assert_eq!(
        rejected_pointers(RESTORE_WORKSPACE, json!({ "force": true })),
        [""]
    );
}

#[test]
fn export_app_data_input_needs_a_service() {
    validate_input(EXPORT_APP_DATA, &json!({ "service": "db" })).expect("a service");
    assert_eq!(
        rejected_pointers(EXPORT_APP_DATA, json!({ "service": "" })),
        ["/service"]
    );
    let error = validate_input(EXPORT_APP_DATA, &json!({})).expect_err("no service");
    assert!(
        error.field_errors()[0].message.contains("service"),
        "{error:?}"
    );
}

#[test]
fn import_app_data_input_rejects_unknown_fields_with_their_pointer() {
    validate_input(
        IMPORT_APP_DATA,
        &json!({ "service": "db", "uploadId": "u1" }),
    )
    .expect("an upload");
    validate_input(
        IMPORT_APP_DATA,
        &json!({ "service": "db", "backupId": "b1", "fromService": "old-db", "force": true }),
    )
    .expect("a backup");
    let error = validate_input(
        IMPORT_APP_DATA,
        &json!({ "service": "db", "uploadId": "u1", "password": "hunter2" }),
    )
    .expect_err("unknown field");
    assert_eq!(error.field_errors()[0].pointer, "");
    assert!(
        error.field_errors()[0].message.contains("password"),
        "{error:?}"
    );
    assert!(
        !format!("{error:?}").contains("hunter2"),
        "a value is never quoted"
    );
}

#[test]
fn an_unknown_tool_is_not_found() {
    let error = validate_input("dropDatabase", &json!({})).expect_err("unknown tool");
    assert_eq!(error.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn outputs_built_from_a_real_backup_match_their_schemas() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = source_host(&tmp.path().join("src"), json!({}));
    let bundle = backup(&source, tmp.path()).await;
    let reader = BundleReader::open(&bundle).await.expect("open");
    let manifest = reader.manifest();

    let backed_up = backup_workspace_output(manifest, reader.snapshot());
    validate_output(BACKUP_WORKSPACE, &backed_up).expect("backupWorkspace output");
    assert_eq!(backed_up["serviceCount"], 2);
    assert_eq!(
        backed_up["summary"],
        "I've backed up your workspace with 2 services: app and files."
    );

    let files = ServiceLabel::new("files", "directory");
    let artifacts: Vec<ExportedArtifact> = manifest
        .entries_of("files")
        .map(ExportedArtifact::from_entry)
        .collect();
    assert!(!artifacts.is_empty());
    let exported = export_app_data_output(&files, &artifacts);
    validate_output(EXPORT_APP_DATA, &exported).expect("exportAppData output");

    let imported = import_app_data_output(&files, artifacts[0].size_bytes);
    validate_output(IMPORT_APP_DATA, &imported).expect("importAppData output");

    let broken = json!({ "service": { "name": "files" }, "sizeBytes": -1 });
    let error = validate_output(IMPORT_APP_DATA, &broken).expect_err("a bad output");
    let pointers: Vec<&str> = error
        .field_errors()
        .iter()
        .map(|e| e.pointer.as_str())
        .collect();
    assert!(
        pointers.contains(&"/sizeBytes") && pointers.contains(&"/service"),
        "{pointers:?}"
    );
}

#[tokio::test]
async fn restore_outputs_match_their_schema_on_success_and_on_rollback() {
    for (app_config, status) in [
        (json!({}), "restored"),
        (json!({ "failImport": true }), "rolledBack"),
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let source = source_host(&tmp.path().join("src"), app_config.clone());
        let bundle = backup(&source, tmp.path()).await;
        let reader = BundleReader::open(&bundle).await.expect("open");
        let mut narrator = RestoreNarrator::from_snapshot(reader.snapshot().expect("snapshot"));
        let mut options = restore_options(&tmp.path().join("dst"));
        if let Some(fields) = options.import.config_overrides.get_mut("app") {
            fields.extend(app_config.as_object().cloned().unwrap_or_default());
        }
        let progress = CollectedProgress::new();
        let outcome = restore_backup(
            &bundle,
            &InMemoryHost::new(workspace("t")),
            &registry(),
            &options,
            Arc::new(progress.clone()),
        )
        .await;
        for event in progress.events() {
            narrator.observe(&event);
        }
        let output = restore_workspace_output(&outcome, &narrator);
        validate_output(RESTORE_WORKSPACE, &output).expect("restoreWorkspace output");
        assert_eq!(output["status"], status, "{output}");
        assert_eq!(output["summary"], narrator.status_line().as_str());
    }
}
