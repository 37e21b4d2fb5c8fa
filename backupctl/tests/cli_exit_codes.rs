//! Every documented exit code, through the built binary.
#![allow(clippy::unwrap_used)]

mod common;

use backup_core::bundle::{BundleReader, ManifestEntry};
use common::{stderr, stdout, Options, Workspace};

fn initialised(options: Options) -> Workspace {
    let ws = Workspace::new(options);
    ws.ok(&["init"]);
    ws
}

#[test]
fn help_documents_every_exit_code_and_the_json_schema() {
    let ws = Workspace::new(Options::default());
    let out = ws.run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    for code in ["0 ", "1 ", "2 ", "3 ", "4 ", "5 ", "6 ", "7 ", "130"] {
        assert!(
            help.contains(&format!("\n  {code}")),
            "exit code {code} in --help: {help}"
        );
    }
    assert!(help.contains("\"ok\": true"), "{help}");
}

#[test]
fn a_usage_error_exits_2() {
    let ws = Workspace::new(Options::default());
    assert_eq!(ws.run(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(ws.run(&["verify"]).status.code(), Some(2));
    assert_eq!(ws.run(&["create", "--bogus"]).status.code(), Some(2));
}

#[test]
fn an_invalid_configuration_exits_2_with_every_field_error() {
    let ws = Workspace::new(Options {
        extra: "[services.db]\nrecipe = \"postgres\"\nconfig = { host = \"h\", port = \"x\", user = \"u\", database = \"d\", password = \"literal\" }\n\
                [services.other]\nrecipe = \"mysql\"\n"
            .into(),
        ..Options::default()
    });
    let out = ws.json(&["check-config"], 2);
    let fields: Vec<String> = out["error"]["fieldErrors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_string())
        .collect();
    for expected in [
        "services.db.config.port",
        "services.db.config.password",
        "services.other.recipe",
    ] {
        assert!(
            fields.iter().any(|f| f == expected),
            "{expected} in {fields:?}"
        );
    }
    assert!(
        !out.to_string().contains("literal"),
        "a secret value is never echoed"
    );
    let human = ws.run(&["check-config"]);
    assert_eq!(human.status.code(), Some(2));
    assert!(
        stderr(&human).contains("services.db.config.port"),
        "{}",
        stderr(&human)
    );
}

#[test]
fn an_unknown_bundle_exits_1_with_a_hint() {
    let ws = initialised(Options::default());
    let out = ws.json(&["info", "99"], 1);
    assert_eq!(out["error"]["kind"], "not-found", "{out}");
    assert!(out["error"]["hint"].is_string(), "{out}");
}

/// Flips a byte inside the first entry `pick` chooses of the bundle `create` printed.
fn flip_byte_in_entry(
    ws: &Workspace,
    created: &serde_json::Value,
    pick: impl Fn(&ManifestEntry) -> bool,
) {
    let path = ws.repo.join(format!(
        "bundles/{}.backup.zip",
        created["name"].as_str().unwrap()
    ));
    let manifest = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(BundleReader::open(&path))
        .unwrap()
        .manifest()
        .clone();
    let entry = manifest.entries.iter().find(|e| pick(e)).unwrap();
    backup_testkit::tamper::flip_byte_inside_entry(&path, entry);
}

#[test]
fn a_tampered_bundle_fails_verification_with_exit_code_3() {
    let ws = initialised(Options::default());
    let created = ws.ok(&["create"]);
    flip_byte_in_entry(&ws, &created, |_| true);
    let out = ws.json(&["verify", "1"], 3);
    assert_eq!(out["error"]["kind"], "integrity", "{out}");
    assert_eq!(ws.run(&["verify", "--all"]).status.code(), Some(3));
}

#[test]
fn restoring_a_tampered_bundle_exits_3_and_touches_nothing() {
    let ws = initialised(Options::default());
    let created = ws.ok(&["create"]);
    std::fs::write(ws.files.join("after-the-backup.txt"), "newer").unwrap();
    let before = ws.files_digest();
    flip_byte_in_entry(&ws, &created, |e| e.path.starts_with("data/"));

    // The plan before the restore reads no data; the restore's own check finds it.
    let out = ws.json(&["restore", "1", "--yes"], 3);
    assert_eq!(out["error"]["kind"], "integrity", "{out}");
    let out = ws.json(&["restore", "1", "--dry-run"], 3);
    assert_eq!(out["error"]["kind"], "integrity", "{out}");
    assert_eq!(ws.files_digest(), before, "nothing touched");
}

#[test]
fn a_repository_locked_by_a_live_process_exits_6() {
    let ws = initialised(Options::default());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let now = jiff::Timestamp::now();
    let record = serde_json::json!({
        "kind": "exclusive", "host": host.trim(), "pid": std::process::id(),
        "operation": "prune", "since": now.to_string(), "refreshed": now.to_string(),
    });
    std::fs::write(ws.repo.join("locks/held-by-test.json"), record.to_string()).unwrap();
    let out = ws.json(&["create"], 6);
    assert!(
        out["error"]["message"].as_str().unwrap().contains("locked"),
        "{out}"
    );
    assert!(ws.ok(&["list"]).as_array().unwrap().is_empty());
}

#[test]
fn a_wrong_passphrase_exits_7() {
    let mut ws = Workspace::new(Options {
        extra: "[encryption]\npassphrase = { env = \"BACKUPCTL_TEST_PASSPHRASE\" }\n".into(),
        ..Options::default()
    });
    ws.env.push((
        "BACKUPCTL_TEST_PASSPHRASE".into(),
        "right horse battery".into(),
    ));
    ws.ok(&["init"]);
    ws.ok(&["create"]);
    assert_eq!(ws.ok(&["verify", "1"])[0]["ok"], true);
    ws.env.retain(|(k, _)| k != "BACKUPCTL_TEST_PASSPHRASE");
    ws.env
        .push(("BACKUPCTL_TEST_PASSPHRASE".into(), "wrong horse".into()));
    let out = ws.json(&["verify", "1"], 7);
    assert!(
        !out.to_string().contains("wrong horse"),
        "the passphrase is never printed"
    );
}
