//! The WorkspaceSnapshot format of seed 000: parsing, round trip, versions, migrations.

use backup_core::snapshot::{SnapshotParser, WorkspaceSnapshot, SNAPSHOT_VERSION};
use backup_core::ErrorKind;

/// Shaped like what the TypeScript control plane of seed 000 exports.
const SEED_EXAMPLE: &str = r#"{
  "version": 1,
  "exportedAt": "2026-03-14T09:26:53.589Z",
  "exportedBy": "user_2f9a61c0",
  "workspace": { "slug": "acme-prod", "name": "Acme Production" },
  "services": [
    {
      "recipe": "postgres",
      "name": "postgres",
      "config": { "version": "16", "storageSize": "10Gi", "database": "app", "port": 5432 },
      "dependsOn": [],
      "status": "RUNNING"
    },
    {
      "recipe": "redis",
      "name": "redis",
      "config": { "maxMemory": "256mb", "persistence": true },
      "dependsOn": [],
      "status": "RUNNING"
    },
    {
      "recipe": "n8n",
      "name": "n8n",
      "config": { "url": "https://n8n.acme.example", "timezone": "Europe/Berlin", "workers": 2 },
      "dependsOn": ["postgres", "redis"],
      "status": "DEPLOYING"
    }
  ],
  "metadata": { "platform": "mathison", "engineVersion": "0.23.0" }
}"#;

#[test]
fn the_seed_example_snapshot_parses() {
    let snapshot = WorkspaceSnapshot::from_json(SEED_EXAMPLE.as_bytes()).expect("parse");
    assert_eq!(snapshot.version, SNAPSHOT_VERSION);
    assert_eq!(snapshot.exported_by, "user_2f9a61c0");
    assert_eq!(snapshot.workspace.slug, "acme-prod");
    assert_eq!(snapshot.service_names(), ["postgres", "redis", "n8n"]);
    assert_eq!(snapshot.services[2].depends_on, ["postgres", "redis"]);
    assert_eq!(snapshot.services[2].status, "DEPLOYING");
    assert_eq!(snapshot.services[0].config["port"], 5432);
    let metadata = snapshot.metadata.as_ref().expect("metadata");
    assert_eq!(metadata.platform, "mathison");
    assert_eq!(metadata.engine_version, "0.23.0");
}

#[test]
fn a_snapshot_round_trips_through_json() {
    let snapshot = WorkspaceSnapshot::from_json(SEED_EXAMPLE.as_bytes()).expect("parse");
    let bytes = snapshot.to_json().expect("serialise");
    let again = WorkspaceSnapshot::from_json(&bytes).expect("parse again");
    assert_eq!(again, snapshot);
    // The written JSON keeps the seed's camelCase field names.
    let value: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    let original: serde_json::Value = serde_json::from_str(SEED_EXAMPLE).expect("json");
    assert_eq!(value, original);
}

#[test]
fn an_unsupported_version_is_rejected_naming_the_version() {
    let future = SEED_EXAMPLE.replacen("\"version\": 1", "\"version\": 7", 1);
    let err = WorkspaceSnapshot::from_json(future.as_bytes()).expect_err("version 7");
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion);
    assert!(err.message().contains("version 7"), "{err}");
    assert!(err.hint().is_some());
}

/// Version 0 (hypothetical) called `dependsOn` `requires` and had no `exportedBy`.
fn migrate_v0(mut value: serde_json::Value) -> Result<serde_json::Value, String> {
    let object = value.as_object_mut().ok_or("snapshot is not an object")?;
    object.insert("version".into(), 1.into());
    object
        .entry("exportedBy")
        .or_insert_with(|| "system".into());
    let services = object
        .get_mut("services")
        .and_then(|s| s.as_array_mut())
        .ok_or("services missing")?;
    for service in services {
        let service = service.as_object_mut().ok_or("service is not an object")?;
        let requires = service
            .remove("requires")
            .unwrap_or_else(|| serde_json::json!([]));
        service.insert("dependsOn".into(), requires);
    }
    Ok(value)
}

#[test]
fn a_migration_hook_upgrades_an_old_version() {
    let old = r#"{
      "version": 0,
      "exportedAt": "2025-01-01T00:00:00Z",
      "workspace": { "slug": "w", "name": "W" },
      "services": [
        { "recipe": "postgres", "name": "db", "config": {}, "status": "RUNNING" },
        { "recipe": "n8n", "name": "app", "config": {}, "requires": ["db"], "status": "RUNNING" }
      ]
    }"#;
    let err = WorkspaceSnapshot::from_json(old.as_bytes()).expect_err("no migration");
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion);
    assert!(err.message().contains("version 0"), "{err}");

    let snapshot = SnapshotParser::new()
        .with_migration(0, migrate_v0)
        .parse(old.as_bytes())
        .expect("migrated");
    assert_eq!(snapshot.version, 1);
    assert_eq!(snapshot.exported_by, "system");
    assert_eq!(snapshot.services[1].depends_on, ["db"]);
}
