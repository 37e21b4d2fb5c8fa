//! Damaged or crafted bundles are rejected with a clear error naming the entry.

#[path = "bundle_support.rs"]
mod support;

use std::path::Path;

use backup_core::bundle::BundleReader;
use backup_core::progress::NoProgress;
use backup_core::{Error, ErrorKind};
use support::*;

async fn open_err(path: &Path) -> Error {
    open_checked(path)
        .await
        .expect_err("the bundle must be rejected")
}

fn assert_integrity(err: &Error, needles: &[&str]) {
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    for needle in needles {
        assert!(err.message().contains(needle), "{needle:?} not in: {err}");
    }
}

/// Rewrites the sample bundle through `change` into a crafted zip.
async fn crafted(
    change: impl FnOnce(&mut Vec<(String, Vec<u8>)>),
) -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, path, _) = sample_bundle().await;
    let mut entries = read_entries(&path);
    change(&mut entries);
    let crafted = dir.path().join("crafted.zip");
    write_raw_zip(&crafted, &entries);
    (dir, crafted)
}

#[tokio::test]
async fn the_unchanged_rewrite_is_accepted() {
    // Guards the crafting helper: without a change, the rewritten zip is a good bundle.
    let (_dir, path) = crafted(|_| {}).await;
    let reader = open_checked(&path).await.expect("open");
    reader.verify(&NoProgress).await.expect("verify");
}

#[tokio::test]
async fn flipped_byte_is_rejected_by_verify_naming_the_entry() {
    let (_dir, path, _) = sample_bundle().await;
    let payload = &sample_payloads()[0].2;
    let mut bytes = std::fs::read(&path).expect("read");
    let at = bytes
        .windows(64)
        .position(|w| w == &payload[500_000..500_064])
        .expect("payload in file");
    bytes[at] ^= 0x01;
    std::fs::write(&path, bytes).expect("write");

    let reader = open_checked(&path).await.expect("structure is intact");
    let err = reader.verify(&NoProgress).await.expect_err("flipped byte");
    assert_integrity(&err, &["data/db/app.dump", "sha256"]);
}

#[tokio::test]
async fn flipped_byte_in_the_snapshot_is_rejected() {
    let (_dir, path, _) = sample_bundle().await;
    assert_eq!(patch_bytes(&path, b"\"Demo\"", b"\"Dema\""), 1);
    let err = open_err(&path).await;
    assert_integrity(&err, &["snapshot.json"]);
}

#[tokio::test]
async fn truncated_file_is_rejected() {
    let (_dir, path, _) = sample_bundle().await;
    let len = std::fs::metadata(&path).expect("meta").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    file.set_len(len / 2).expect("truncate");
    let err = open_err(&path).await;
    // Half of the sample bundle ends inside its first, largest data entry.
    assert_integrity(&err, &["truncated", "data/db/app.dump"]);
}

#[tokio::test]
async fn truncated_entry_is_rejected_by_verify_naming_the_entry() {
    // The bundle shrinks after it was opened (a copy still in progress, a full disk).
    let (_dir, path, manifest) = sample_bundle().await;
    let reader = BundleReader::open(&path).await.expect("open");
    let entry = manifest.entry("data/db/app.dump").expect("entry");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    // Cut inside the first data entry.
    let snapshot_size = manifest.snapshot.as_ref().expect("snapshot").size;
    file.set_len(snapshot_size + entry.size / 2)
        .expect("truncate");
    let err = reader.verify(&NoProgress).await.expect_err("truncated");
    assert_integrity(&err, &["data/db/app.dump", "truncated"]);
}

#[tokio::test]
async fn missing_entry_is_rejected() {
    let (_dir, path) = crafted(|entries| entries.retain(|(n, _)| n != "data/files/tree.tar")).await;
    let err = open_err(&path).await;
    assert_integrity(&err, &["data/files/tree.tar", "missing"]);
}

#[tokio::test]
async fn missing_manifest_is_rejected() {
    let (_dir, path) = crafted(|entries| entries.retain(|(n, _)| n != "manifest.json")).await;
    let err = open_err(&path).await;
    assert_integrity(&err, &["manifest.json"]);
}

#[tokio::test]
async fn extra_entry_is_rejected() {
    let (_dir, path) = crafted(|entries| {
        let at = entries.len() - 1;
        entries.insert(at, ("data/db/sneaky.sh".into(), b"rm -rf /".to_vec()));
    })
    .await;
    let err = open_err(&path).await;
    assert_integrity(&err, &["data/db/sneaky.sh", "does not list"]);
}

#[tokio::test]
async fn duplicate_entry_names_are_rejected() {
    // The zip crate refuses to write duplicates: write a same-length placeholder name,
    // then patch it into the duplicate in the local and central headers.
    let (_dir, path) = crafted(|entries| {
        let at = entries.len() - 1;
        entries.insert(at, ("data/db/app.dumX".into(), b"other bytes".to_vec()));
    })
    .await;
    assert_eq!(
        patch_bytes(&path, b"data/db/app.dumX", b"data/db/app.dump"),
        2
    );
    let err = open_err(&path).await;
    assert_integrity(&err, &["data/db/app.dump", "duplicate"]);
}

#[tokio::test]
async fn path_traversal_names_are_rejected() {
    for bad in ["../x", "/abs", "data/../../x", "data\\db\\x", "data//x"] {
        let (_dir, path) = crafted(|entries| {
            let at = entries.len() - 1;
            entries.insert(at, (bad.to_string(), b"payload".to_vec()));
        })
        .await;
        let err = open_err(&path).await;
        // Names are quoted (Debug form) so control characters cannot hide in messages.
        assert_integrity(&err, &[&format!("{bad:?}"), "unsafe name"]);
    }
}

#[tokio::test]
async fn traversal_names_listed_in_the_manifest_are_rejected() {
    let (_dir, path) = crafted(|entries| {
        let mut manifest = manifest_json(entries);
        manifest["entries"][0]["path"] = serde_json::json!("../../etc/passwd");
        set_manifest(entries, &manifest);
    })
    .await;
    let err = open_err(&path).await;
    assert_integrity(&err, &["../../etc/passwd", "unsafe name"]);
}

#[tokio::test]
async fn unknown_manifest_version_is_rejected() {
    let (_dir, path) = crafted(|entries| {
        let mut manifest = manifest_json(entries);
        manifest["formatVersion"] = serde_json::json!(99);
        set_manifest(entries, &manifest);
    })
    .await;
    let err = open_err(&path).await;
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion, "{err}");
    assert!(err.message().contains("99"), "{err}");
    assert!(err.hint().is_some());
}

#[tokio::test]
async fn manifest_entry_size_mismatch_is_rejected() {
    let (_dir, path) = crafted(|entries| {
        let mut manifest = manifest_json(entries);
        let size = manifest["entries"][2]["size"].as_u64().expect("size");
        manifest["entries"][2]["size"] = serde_json::json!(size + 1);
        set_manifest(entries, &manifest);
    })
    .await;
    let err = open_err(&path).await;
    assert_integrity(&err, &["data/files/tree.tar", "manifest says"]);
}

#[tokio::test]
async fn manifest_checksum_mismatch_is_rejected_by_verify() {
    let (_dir, path) = crafted(|entries| {
        let mut manifest = manifest_json(entries);
        manifest["entries"][0]["sha256"] = serde_json::json!("00".repeat(32));
        set_manifest(entries, &manifest);
    })
    .await;
    let reader = open_checked(&path).await.expect("structure is fine");
    let err = reader.verify(&NoProgress).await.expect_err("sha mismatch");
    assert_integrity(&err, &["data/db/app.dump", "sha256"]);
}

#[tokio::test]
async fn a_file_that_is_not_a_zip_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("not-a-bundle.zip");
    std::fs::write(&path, b"hello, I am a text file").expect("write");
    let err = open_err(&path).await;
    assert_integrity(&err, &["not-a-bundle.zip"]);
}

#[tokio::test]
async fn a_missing_file_is_not_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = open_err(&dir.path().join("nope.zip")).await;
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}
