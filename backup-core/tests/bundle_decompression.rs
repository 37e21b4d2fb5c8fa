//! Decompression is bounded by the manifest: a bundle whose stored bytes match their
//! checksum but decompress to far more than `uncompressedSize` is refused by `verify`,
//! and read without verifying it cannot flood an importer.

#[path = "bundle_support.rs"]
mod support;

use std::io::Write;
use std::path::PathBuf;

use backup_core::artifact::CHUNK_SIZE;
use backup_core::bundle::{BundleOptions, BundleReader, BundleWriter, Compression};
use backup_core::progress::NoProgress;
use backup_core::{ArtifactData, Error, ErrorKind};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use support::*;

/// What the manifest promises the bomb decompresses to.
const DECLARED: usize = 1024 * 1024;
/// What the bomb really decompresses to.
const ACTUAL: usize = 256 * 1024 * 1024;
/// The bomb's entry.
const BOMB: &str = "data/db/bomb.sql.zst";

/// One zstd frame of `len` zero bytes, compressed with `window_log` when given.
fn zstd_zeros(len: usize, window_log: Option<u32>) -> Vec<u8> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
    if let Some(log) = window_log {
        encoder.window_log(log).expect("window log");
        encoder.long_distance_matching(true).expect("ldm");
    }
    let zeros = vec![0u8; CHUNK_SIZE];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len());
        encoder.write_all(&zeros[..n]).expect("compress");
        left -= n;
    }
    encoder.finish().expect("finish")
}

/// A bundle holding `BOMB` whose stored bytes are `stored`, with a manifest whose size
/// and sha256 match them (so it verifies) and whose uncompressedSize is `DECLARED`.
async fn bundle_with_entry(stored: Vec<u8>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let honest = dir.path().join("honest.zip");
    let mut writer = BundleWriter::create(
        &honest,
        BundleOptions::default().with_compression(Compression::Zstd),
    )
    .await
    .expect("create");
    writer.write_snapshot(&snapshot()).await.expect("snapshot");
    writer
        .write_artifact(
            "db",
            &descriptor("bomb.sql"),
            ArtifactData::from_stream(stream_of(&vec![0u8; DECLARED], 64 * 1024)),
            &NoProgress,
        )
        .await
        .expect("artifact");
    writer.finish().await.expect("finish");

    let mut entries = read_entries(&honest);
    let mut manifest = manifest_json(&entries);
    assert_eq!(manifest["entries"][0]["path"], BOMB);
    assert_eq!(manifest["entries"][0]["uncompressedSize"], DECLARED);
    manifest["entries"][0]["size"] = serde_json::json!(stored.len());
    manifest["entries"][0]["sha256"] = serde_json::json!(hex::encode(Sha256::digest(&stored)));
    for (name, bytes) in entries.iter_mut() {
        if name == BOMB {
            *bytes = stored.clone();
        }
    }
    set_manifest(&mut entries, &manifest);
    let crafted = dir.path().join("bomb.zip");
    write_raw_zip(&crafted, &entries);
    (dir, crafted)
}

/// Reads the entry: (bytes delivered before the first error, that error).
async fn drain_entry(reader: &BundleReader) -> (usize, Option<Error>) {
    let entry = reader.manifest().entry(BOMB).expect("bomb entry").clone();
    let mut stream = reader.open_entry(&entry).expect("open entry");
    let mut delivered = 0;
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => delivered += chunk.len(),
            Err(e) => return (delivered, Some(Error::io("reading the entry", e))),
        }
    }
    (delivered, None)
}

#[tokio::test]
async fn a_decompression_bomb_whose_stored_bytes_match_is_refused_by_verify() {
    let stored = zstd_zeros(ACTUAL, None);
    assert!(stored.len() < 64 * 1024, "a bomb: {} bytes", stored.len());
    let (_dir, path) = bundle_with_entry(stored).await;
    let reader = open_checked(&path).await.expect("structure is fine");
    let err = reader
        .verify(&NoProgress)
        .await
        .expect_err("size and sha256 match, but it decompresses to more than declared");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(
        err.message().contains(BOMB) && err.message().contains("uncompressedSize"),
        "{err}"
    );
}

#[tokio::test]
async fn a_decompression_bomb_read_without_verify_stops_at_the_declared_size() {
    let stored = zstd_zeros(ACTUAL, None);
    let (_dir, path) = bundle_with_entry(stored).await;
    let reader = open_checked(&path).await.expect("structure is fine");

    let (delivered, error) = drain_entry(&reader).await;
    let error = error.expect("the bomb must end with an error");
    assert_eq!(error.kind(), ErrorKind::Integrity, "{error}");
    assert!(
        error.message().contains(BOMB) && error.message().contains("uncompressedSize"),
        "{error}"
    );
    assert!(
        delivered <= DECLARED + CHUNK_SIZE,
        "{delivered} bytes delivered for an entry declared as {DECLARED}"
    );
}

#[tokio::test]
async fn an_entry_decompressing_to_exactly_the_declared_size_is_delivered_whole() {
    // Guards the crafting: the same bundle with an honest payload reads without error.
    let stored = zstd_zeros(DECLARED, None);
    let (_dir, path) = bundle_with_entry(stored).await;
    let reader = open_checked(&path).await.expect("open");
    reader.verify(&NoProgress).await.expect("verify");
    let (delivered, error) = drain_entry(&reader).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(delivered, DECLARED);
}

#[tokio::test]
async fn a_zstd_frame_asking_for_a_window_over_128_mib_is_refused() {
    // 2^28 bytes of window: more than the decoder may allocate for one entry.
    let stored = zstd_zeros(DECLARED, Some(28));
    let (_dir, path) = bundle_with_entry(stored).await;
    let reader = open_checked(&path).await.expect("open");
    let err = reader
        .verify(&NoProgress)
        .await
        .expect_err("window too large");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    let (delivered, error) = drain_entry(&reader).await;
    let error = error.expect("the frame must be refused");
    assert_eq!(error.kind(), ErrorKind::Integrity, "{error}");
    assert!(error.message().contains(BOMB), "{error}");
    assert_eq!(delivered, 0);
}

#[tokio::test]
async fn an_uncompressed_entry_declaring_another_uncompressed_size_is_rejected() {
    let (dir, path, _) = sample_bundle().await;
    let mut entries = read_entries(&path);
    let mut manifest = manifest_json(&entries);
    let size = manifest["entries"][0]["size"].as_u64().expect("size");
    manifest["entries"][0]["uncompressedSize"] = serde_json::json!(size * 1000);
    set_manifest(&mut entries, &manifest);
    let crafted = dir.path().join("crafted.zip");
    write_raw_zip(&crafted, &entries);
    let err = open_checked(&crafted).await.expect_err("sizes disagree");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(err.message().contains("data/db/app.dump"), "{err}");
}
