//! The operator's session through the built binary, against real PostgreSQL, Redis and a
//! directory: every command's `--json` output parsed.
#![allow(clippy::unwrap_used)]

mod common;

use common::{stdout, Options, Workspace};
use sha2::{Digest, Sha256};

fn full_workspace() -> Workspace {
    Workspace::new(Options {
        postgres: true,
        redis: true,
        extra: "[retention.default]\nkeepLast = 1\n".into(),
        ..Options::default()
    })
}

#[test]
fn init_create_list_info_verify_label_lock_diff_prune_and_snapshots_print_json() {
    let ws = full_workspace();
    let checked = ws.ok(&["check-config"]);
    assert_eq!(
        checked["services"],
        serde_json::json!(["cache", "db", "files"])
    );
    let unreachable = ws.json(&["check-config", "--connect"], 1);
    assert!(
        unreachable["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no repository"),
        "{unreachable}"
    );

    let init = ws.ok(&["init"]);
    assert!(init["id"].as_str().is_some_and(|s| !s.is_empty()));
    let connected = ws.ok(&["check-config", "--connect"]);
    assert_eq!(
        connected["connected"].as_array().unwrap().len(),
        4,
        "{connected}"
    );

    let first = ws.ok(&[
        "create",
        "--label",
        "baseline",
        "--purpose",
        "Initial baseline",
        "--reason",
        "test",
    ]);
    assert_eq!(first["label"], "baseline");
    assert_eq!(
        first["services"],
        serde_json::json!(["cache", "db", "files"])
    );
    let name = first["name"].as_str().unwrap().to_string();
    let on_disk = std::fs::read(ws.repo.join(format!("bundles/{name}.backup.zip"))).unwrap();
    assert_eq!(
        first["sha256"],
        hex::encode(Sha256::digest(&on_disk)),
        "create prints the bundle's sha256"
    );

    ws.pg.as_ref().unwrap().psql(
        "shop",
        "INSERT INTO items VALUES (1000, 'new'); ALTER TABLE items ADD COLUMN price int;",
    );
    let second = ws.ok(&["create", "--service", "db"]);
    assert_eq!(second["services"], serde_json::json!(["db"]));

    let list = ws.ok(&["list"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["index"], 1);
    assert_eq!(list[0]["id"], second["id"], "newest first");
    assert_eq!(list[1]["purpose"], "Initial baseline");
    assert!(list.iter().all(|b| b["recent"] == true));
    assert_eq!(
        ws.ok(&["list", "--service", "cache"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        ws.ok(&["list", "--kind", "safety"])
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let info = ws.ok(&["info", "2"]);
    assert_eq!(info["name"], name.as_str());
    assert!(info["manifest"]["entries"].as_array().unwrap().len() >= 3);

    let verified = ws.ok(&["verify", "--all"]);
    assert!(
        verified.as_array().unwrap().iter().all(|v| v["ok"] == true),
        "{verified}"
    );
    assert_eq!(ws.ok(&["verify", "1"])[0]["ok"], true);

    assert_eq!(
        ws.ok(&["label", "1", "after-change"])["label"],
        "after-change"
    );
    assert_eq!(
        ws.ok(&["lock", "2"])["lock"]["until"],
        serde_json::Value::Null
    );
    let refused = ws.json(&["delete", "2"], 1);
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("locked"),
        "{refused}"
    );

    let diff = ws.ok(&["diff", "2", "1"]);
    assert_eq!(
        diff["servicesRemoved"],
        serde_json::json!(["cache", "files"])
    );
    let db = diff["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["service"] == "db")
        .unwrap()
        .clone();
    assert_eq!(db["changed"], true);
    assert!(
        db["postgres"].to_string().contains("price"),
        "the schema diff names the new column: {db}"
    );

    // keepLast = 1 per group: bundle 2 (db+cache+files) and 1 (db) are different groups;
    // the locked one is kept anyway. A dry run removes nothing.
    let pruned = ws.ok(&["prune", "--dry-run"]);
    assert_eq!(pruned["dryRun"], true);
    assert!(
        pruned["plan"]["decisions"].as_array().unwrap().len() == 2,
        "{pruned}"
    );
    assert_eq!(ws.ok(&["list"]).as_array().unwrap().len(), 2);

    assert_eq!(ws.ok(&["unlock", "2"])["lock"], serde_json::Value::Null);
    assert_eq!(ws.ok(&["delete", "1"])["manifest"]["id"], second["id"]);
    assert_eq!(ws.ok(&["list"]).as_array().unwrap().len(), 1);

    let snapshot = ws.ok(&["export-snapshot"]);
    assert_eq!(snapshot["version"], 1);
    let services = snapshot["services"].as_array().unwrap();
    assert_eq!(services.len(), 3);
    let text = snapshot.to_string();
    assert!(!text.contains(common::REDIS_PASSWORD));
    let file = ws.dir.path().join("snapshot.json");
    std::fs::write(&file, serde_json::to_vec(&snapshot).unwrap()).unwrap();
    // Against the configured services the names conflict; into an empty configuration
    // the snapshot's services come back as TOML with the secret as an env reference.
    let conflict = ws.json(&["import-snapshot", file.to_str().unwrap()], 1);
    assert_eq!(conflict["error"]["kind"], "name-conflict", "{conflict}");
    let empty = ws.dir.path().join("empty.toml");
    std::fs::write(
        &empty,
        format!("[repository]\npath = \"{}\"\n", ws.repo.display()),
    )
    .unwrap();
    let imported = ws.ok(&[
        "--config",
        empty.to_str().unwrap(),
        "import-snapshot",
        file.to_str().unwrap(),
    ]);
    let toml_text = imported["toml"].as_str().unwrap();
    assert!(toml_text.contains("CACHE_PASSWORD"), "{toml_text}");
    assert!(toml_text.contains("[services.db]"), "{toml_text}");
}

#[test]
fn list_prints_a_table_with_index_label_date_size_and_purpose_and_marks_recent_bundles() {
    let ws = Workspace::new(Options::default());
    assert!(ws.run(&["init"]).status.success());
    let created = ws.run(&[
        "create",
        "--label",
        "v1.0",
        "--purpose",
        "Release v1.0 production snapshot",
    ]);
    assert!(created.status.success());
    let text = stdout(&created);
    assert!(
        text.contains("Backup created") && text.contains("sha256:"),
        "{text}"
    );
    let out = stdout(&ws.run(&["list"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with('#') && lines[0].contains("PURPOSE"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("1*"),
        "a bundle of the last 24 hours is marked: {out}"
    );
    assert!(
        lines[1].contains("v1.0") && lines[1].contains("Release v1.0 production snapshot"),
        "{out}"
    );
    assert!(
        !out.chars().any(|c| c.is_control() && c != '\n'),
        "plain output has no control characters"
    );
}
