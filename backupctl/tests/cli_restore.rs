//! `restore` and `rollback --emergency` through the built binary, against real
//! PostgreSQL, Redis and a directory.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::process::Stdio;

use common::{stdout, Options, Workspace};

fn change_files(ws: &Workspace) {
    std::fs::write(ws.files.join("a.txt"), "changed\n").unwrap();
    std::fs::write(ws.files.join("new.txt"), "new\n").unwrap();
}

#[test]
fn init_create_verify_change_then_restore_yes_brings_every_service_back() {
    let ws = Workspace::new(Options {
        postgres: true,
        redis: true,
        ..Options::default()
    });
    let pg = ws.pg.as_ref().unwrap();
    let redis = ws.redis.as_ref().unwrap();
    ws.ok(&["init"]);
    let created = ws.ok(&["create", "--label", "before-change"]);
    assert_eq!(ws.ok(&["list"]).as_array().unwrap().len(), 1);
    assert_eq!(ws.ok(&["verify", "1"])[0]["ok"], true);
    let (tables, digest, files) = (
        pg.table_checksums("shop"),
        redis.digest(),
        ws.files_digest(),
    );

    pg.psql(
        "shop",
        "DELETE FROM items WHERE id < 100; INSERT INTO items VALUES (9999, 'x');",
    );
    redis.cli(&["SET", "greeting", "changed"]);
    redis.cli(&["SET", "extra", "1"]);
    change_files(&ws);
    assert_ne!(pg.table_checksums("shop"), tables);

    let plan = ws.ok(&["restore", "latest", "--dry-run"]);
    assert_eq!(plan["dryRun"], true);
    assert_eq!(plan["bundleId"], created["id"]);
    assert_eq!(plan["services"].as_array().unwrap().len(), 3, "{plan}");
    assert_ne!(redis.digest(), digest, "a dry run changes nothing");

    let restored = ws.ok(&["restore", "latest", "--yes"]);
    assert_eq!(restored["dryRun"], false);
    assert!(restored["safetyBundle"].is_string(), "{restored}");
    assert_eq!(pg.table_checksums("shop"), tables);
    assert_eq!(redis.digest(), digest);
    assert_eq!(ws.files_digest(), files);
    let safety = ws.ok(&["list", "--kind", "safety"]);
    assert_eq!(
        safety.as_array().unwrap().len(),
        1,
        "the replaced data was backed up first"
    );
}

/// Runs `restore latest` and types `answer` once the prompt is on stderr.
fn restore_typing(ws: &Workspace, answer: &str) -> (Option<i32>, String) {
    let mut child = ws
        .command(&["restore", "latest"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("to restore: ") {
        assert_eq!(
            err.read(&mut byte).unwrap(),
            1,
            "no prompt: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.push(byte[0]);
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (out.status.code(), stdout(&out))
}

#[test]
fn restore_shows_what_it_replaces_and_needs_the_typed_service_name() {
    let ws = Workspace::new(Options::default());
    ws.ok(&["init"]);
    ws.ok(&["create"]);
    let before = ws.files_digest();
    change_files(&ws);
    let changed = ws.files_digest();

    let (code, out) = restore_typing(&ws, "yes");
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("REPLACES (NOW)") && out.contains("files"),
        "what is replaced is shown: {out}"
    );
    assert_eq!(ws.files_digest(), changed, "a wrong answer changes nothing");

    let (code, out) = restore_typing(&ws, "files");
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(ws.files_digest(), before);
}

/// A workspace whose bundle holds two 8 MiB Redis values, and whose Redis then holds
/// `current` (name, size) values under a `maxmemory` they no longer fit in together with
/// the bundle's: the restore is refused mid-import (Redis answers OOM once over the
/// limit). Returns the workspace after `restore latest --yes --json` with its envelope.
fn restore_into_full_redis(
    current: &[(&str, usize)],
    maxmemory: &str,
    code: i32,
) -> (Workspace, serde_json::Value, String, String) {
    let ws = Workspace::new(Options {
        redis: true,
        ..Options::default()
    });
    let redis = ws.redis.as_ref().unwrap();
    let big = vec![b'x'; 8 << 20];
    redis.command(&[b"SET", b"big1", &big]);
    redis.command(&[b"SET", b"big2", &big]);
    ws.ok(&["init"]);
    ws.ok(&["create"]);
    redis.cli(&["DEL", "big1", "big2"]);
    for (key, size) in current {
        redis.command(&[b"SET", key.as_bytes(), &vec![b'y'; *size]]);
    }
    change_files(&ws);
    let (digest, files) = (redis.digest(), ws.files_digest());
    redis.cli(&["CONFIG", "SET", "maxmemory", maxmemory]);
    redis.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    let out = ws.json(&["restore", "latest", "--yes"], code);
    (ws, out, digest, files)
}

#[test]
fn a_restore_failing_midway_exits_4_and_leaves_the_data_as_before() {
    let (ws, out, digest, files) = restore_into_full_redis(&[("now", 10)], "4mb", 4);
    assert_eq!(out["error"]["kind"], "restore-rolled-back", "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rolled back"),
        "{out}"
    );
    assert_eq!(
        ws.redis.as_ref().unwrap().digest(),
        digest,
        "redis holds what it held before"
    );
    assert_eq!(
        ws.files_digest(),
        files,
        "the directory holds what it held before"
    );
}

#[test]
fn a_restore_whose_rollback_fails_too_exits_5_naming_the_service() {
    // The current data (two 3 MiB values) cannot be put back under 2 MiB either.
    let (_ws, out, _, _) =
        restore_into_full_redis(&[("cur1", 3 << 20), ("cur2", 3 << 20)], "2mb", 5);
    assert_eq!(out["error"]["kind"], "rollback-failed", "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`cache` not rolled back"),
        "{out}"
    );
}

#[test]
fn rollback_emergency_restores_the_newest_bundle_without_asking() {
    let ws = Workspace::new(Options::default());
    ws.ok(&["init"]);
    ws.ok(&["create"]);
    let before = ws.files_digest();
    change_files(&ws);
    let restored = ws.ok(&["rollback", "--emergency"]);
    assert_eq!(restored["dryRun"], false);
    assert_eq!(ws.files_digest(), before);
    assert_eq!(
        ws.run(&["rollback"]).status.code(),
        Some(2),
        "--emergency is required"
    );
}
