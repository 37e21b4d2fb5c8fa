//! A bundle's manifest, snapshot and artifact metadata are bounded: oversized, too deep
//! or too numerous input is refused with an integrity error naming the bound, before it
//! is read whole or parsed into a tree, and what is accepted takes bounded memory.
//!
//! A counting allocator measures the peak heap of each step; the tests of this file take
//! one lock so that only one runs at a time.

#[path = "bundle_support.rs"]
mod support;

use std::path::{Path, PathBuf};

use backup_core::artifact::{MAX_METADATA_DEPTH, MAX_METADATA_VALUES};
use backup_core::bundle::{
    BundleReader, BundleWriter, MAX_MANIFEST_BYTES, MAX_MANIFEST_DEPTH, MAX_MANIFEST_ENTRIES,
    MAX_MANIFEST_VALUES,
};
use backup_core::progress::NoProgress;
use backup_core::snapshot::{MAX_SNAPSHOT_BYTES, MAX_SNAPSHOT_DEPTH};
use backup_core::{ArtifactData, ArtifactDescriptor, Error, ErrorKind, WorkspaceSnapshot};
use support::*;

// backup-core's tests cannot depend on backup-testkit (it depends on backup-core).
#[path = "../../backup-testkit/src/alloc.rs"]
#[allow(dead_code, unreachable_pub)]
mod alloc;
use alloc::CountingAllocator;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MIB: usize = 1024 * 1024;

/// Runs `step` and returns its result with the heap it needed at most beyond what was
/// allocated when it started.
async fn peak_heap<T>(step: impl std::future::Future<Output = T>) -> (T, usize) {
    let base = CountingAllocator::reset_peak();
    let out = step.await;
    (out, CountingAllocator::peak().saturating_sub(base))
}

/// A zip whose only entry is `manifest.json` holding `manifest`, written in pieces so
/// that crafting it does not count against the reader.
fn bundle_with_manifest(dir: &Path, manifest: &[u8]) -> PathBuf {
    use std::io::Write;
    let path = dir.join("crafted.zip");
    let file = std::fs::File::create(&path).expect("create zip");
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    zip.start_file("manifest.json", options).expect("start");
    for piece in manifest.chunks(MIB) {
        zip.write_all(piece).expect("write");
    }
    zip.finish().expect("finish");
    path
}

fn assert_refused(err: &Error, needles: &[&str]) {
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    for needle in needles {
        assert!(err.message().contains(needle), "{needle:?} not in: {err}");
    }
}

/// The sample bundle rewritten with its first entry's metadata set to `metadata` (raw
/// JSON text).
async fn sample_with_metadata(metadata: &str) -> (tempfile::TempDir, PathBuf) {
    let (dir, path, _) = sample_bundle().await;
    let mut entries = read_entries(&path);
    let manifest = String::from_utf8(
        entries
            .iter()
            .find(|(n, _)| n == "manifest.json")
            .expect("manifest")
            .1
            .clone(),
    )
    .expect("utf-8");
    // The writer prints `"artifact": {` once per entry; the first is entry 0.
    let with = manifest.replacen(
        "\"artifact\": {",
        &format!("\"artifact\": {{ \"metadata\": {metadata},"),
        1,
    );
    assert_ne!(with, manifest, "the crafting must change the manifest");
    for (name, bytes) in entries.iter_mut() {
        if name == "manifest.json" {
            *bytes = with.clone().into_bytes();
        }
    }
    let crafted = dir.path().join("crafted.zip");
    write_raw_zip(&crafted, &entries);
    (dir, crafted)
}

fn nested(depth: usize) -> String {
    format!(
        "{{\"a\":{}1{}}}",
        "[".repeat(depth - 1),
        "]".repeat(depth - 1)
    )
}

#[tokio::test]
async fn a_manifest_over_the_size_limit_is_refused_without_reading_it() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let size = usize::try_from(MAX_MANIFEST_BYTES).expect("usize") + 1;
    let mut manifest = vec![b' '; size];
    manifest[0] = b'{';
    manifest[size - 1] = b'}';
    let path = bundle_with_manifest(dir.path(), &manifest);
    drop(manifest);

    let (result, peak) = peak_heap(BundleReader::open(&path)).await;
    let err = result.expect_err("too large");
    assert_refused(&err, &["manifest.json", &MAX_MANIFEST_BYTES.to_string()]);
    assert!(peak < 8 * MIB, "refusing took {peak} bytes of heap");
}

#[tokio::test]
async fn a_manifest_nested_deeper_than_the_limit_is_refused() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let json = format!(
        "{{\"formatVersion\":1,\"x\":{}}}",
        nested(MAX_MANIFEST_DEPTH + 1)
    );
    let path = bundle_with_manifest(dir.path(), json.as_bytes());
    let err = open_checked(&path).await.expect_err("too deep");
    assert_refused(
        &err,
        &[
            "manifest.json",
            &format!("nested deeper than {MAX_MANIFEST_DEPTH}"),
        ],
    );
}

#[tokio::test]
async fn artifact_metadata_nested_deeper_than_its_limit_is_refused() {
    let _one = ONE_AT_A_TIME.lock().await;
    // Within the manifest's nesting limit, beyond the metadata's.
    let (_dir, path) = sample_with_metadata(&nested(MAX_METADATA_DEPTH + 1)).await;
    let err = open_checked(&path).await.expect_err("too deep");
    assert_refused(
        &err,
        &[
            "manifest.json",
            &format!("metadata is nested deeper than {MAX_METADATA_DEPTH}"),
        ],
    );
    // One level less is accepted.
    let (_dir, path) = sample_with_metadata(&nested(MAX_METADATA_DEPTH)).await;
    let reader = open_checked(&path).await.expect("within the limit");
    assert!(reader.manifest().entries[0]
        .artifact
        .metadata
        .contains_key("a"));
}

#[tokio::test]
async fn a_manifest_with_more_values_than_the_limit_is_refused_before_parsing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let values = vec!["[]"; MAX_MANIFEST_VALUES + 1].join(",");
    let json = format!("{{\"formatVersion\":1,\"x\":[{values}]}}");
    let path = bundle_with_manifest(dir.path(), json.as_bytes());
    drop((values, json));
    let (result, peak) = peak_heap(BundleReader::open(&path)).await;
    let err = result.expect_err("too many values");
    assert_refused(
        &err,
        &[
            "manifest.json",
            &format!("more than {MAX_MANIFEST_VALUES} JSON values"),
        ],
    );
    // The bytes are read (a few MiB), never built into a tree (hundreds of MiB).
    assert!(peak < 16 * MIB, "refusing took {peak} bytes of heap");
}

#[tokio::test]
async fn a_manifest_listing_more_entries_than_the_limit_is_refused() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let entry = r#"{"path":"data/s/a","service":"s","artifact":{"name":"a","format":"tar","contentType":"x"},"size":0,"sha256":"","uncompressedSize":0,"compression":"none","encryption":"none"}"#;
    let entries = vec![entry; MAX_MANIFEST_ENTRIES + 1].join(",");
    let json = format!(
        r#"{{"formatVersion":1,"id":"x","createdAt":"x","kind":"manual","tool":{{"name":"x","version":"1"}},"includes":{{"config":false,"services":[]}},"entries":[{entries}]}}"#
    );
    let path = bundle_with_manifest(dir.path(), json.as_bytes());
    let err = open_checked(&path).await.expect_err("too many entries");
    assert_refused(
        &err,
        &[
            "manifest.json",
            &format!("more than {MAX_MANIFEST_ENTRIES} entries"),
        ],
    );
}

#[tokio::test]
async fn the_largest_accepted_manifest_takes_bounded_memory() {
    let _one = ONE_AT_A_TIME.lock().await;
    // The densest metadata the bounds let through: empty arrays, three bytes each,
    // as many as one artifact may hold. Parsed untyped, a manifest of 62 MB took 2 GB.
    let metadata = format!(
        "{{\"x\":[{}]}}",
        vec!["[]"; MAX_METADATA_VALUES - 10].join(",")
    );
    let (_dir, path) = sample_with_metadata(&metadata).await;
    drop(metadata);
    let (result, peak) = peak_heap(async {
        let reader = open_checked(&path).await?;
        reader.verify(&NoProgress).await?;
        Ok::<_, Error>(reader)
    })
    .await;
    let reader = result.expect("within every limit");
    assert!(reader.manifest().entries[0]
        .artifact
        .metadata
        .contains_key("x"));
    assert!(
        peak < 128 * MIB,
        "open and verify took {peak} bytes of heap"
    );
}

#[test]
fn a_snapshot_over_its_limits_is_refused_before_parsing() {
    let _one = ONE_AT_A_TIME.blocking_lock();
    let deep = format!("{{\"version\":1,\"x\":{}}}", nested(MAX_SNAPSHOT_DEPTH + 1));
    let err = WorkspaceSnapshot::from_json(deep.as_bytes()).expect_err("too deep");
    assert_eq!(err.kind(), ErrorKind::InvalidSnapshot, "{err}");
    assert!(
        err.message()
            .contains(&format!("nested deeper than {MAX_SNAPSHOT_DEPTH}")),
        "{err}"
    );

    let size = usize::try_from(MAX_SNAPSHOT_BYTES).expect("usize") + 1;
    let mut big = vec![b' '; size];
    big[0] = b'{';
    big[size - 1] = b'}';
    let base = CountingAllocator::reset_peak();
    let err = WorkspaceSnapshot::from_json(&big).expect_err("too large");
    let peak = CountingAllocator::peak().saturating_sub(base);
    assert_eq!(err.kind(), ErrorKind::InvalidSnapshot, "{err}");
    assert!(
        err.message().contains(&MAX_SNAPSHOT_BYTES.to_string()),
        "{err}"
    );
    assert!(peak < MIB, "refusing took {peak} bytes of heap");
}

#[test]
fn artifact_descriptors_refuse_oversized_metadata_wherever_they_are_parsed() {
    let _one = ONE_AT_A_TIME.blocking_lock();
    let json = format!(
        r#"{{"name":"a","format":"tar","contentType":"x","metadata":{}}}"#,
        nested(MAX_METADATA_DEPTH + 1)
    );
    let err = serde_json::from_str::<ArtifactDescriptor>(&json).expect_err("too deep");
    assert!(
        err.to_string()
            .contains(&format!("nested deeper than {MAX_METADATA_DEPTH}")),
        "{err}"
    );
    let json = format!(
        r#"{{"name":"a","format":"tar","contentType":"x","metadata":{}}}"#,
        nested(3)
    );
    let parsed: ArtifactDescriptor = serde_json::from_str(&json).expect("shallow metadata");
    assert_eq!(parsed.metadata["a"], serde_json::json!([[1]]));
}

#[tokio::test]
async fn the_writer_refuses_metadata_readers_would_refuse() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("b.zip");
    let deep: serde_json::Value =
        serde_json::from_str(&format!("{}1{}", "[".repeat(40), "]".repeat(40))).expect("json");
    let artifact = descriptor("a.tar").with_metadata("deep", deep);
    let mut writer = BundleWriter::create(&path, Default::default())
        .await
        .expect("create");
    let err = writer
        .write_artifact(
            "db",
            &artifact,
            ArtifactData::from_stream(stream_of(b"bytes", 5)),
            &NoProgress,
        )
        .await
        .expect_err("metadata too deep");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("a.tar"), "{err}");
    assert!(writer.finish().await.is_err());
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}
