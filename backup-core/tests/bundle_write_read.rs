//! Bundles round-trip: what is written is read back byte for byte, with checksums and
//! metadata in the manifest, on files and on non-seekable sinks.

#[path = "bundle_support.rs"]
mod support;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use backup_core::bundle::{
    BundleKind, BundleOptions, BundleReader, BundleWriter, Compression, MANIFEST_FORMAT_VERSION,
};
use backup_core::progress::{CollectedProgress, NoProgress};
use backup_core::{ArtifactData, ProgressEvent};
use sha2::{Digest, Sha256};
use support::*;

async fn round_trip(compression: Compression) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bundle.zip");
    let manifest = write_sample(&path, compression).await;

    let reader = BundleReader::open(&path).await.expect("open");
    assert_eq!(reader.manifest(), &manifest);
    assert_eq!(reader.snapshot(), Some(&snapshot()));
    reader.verify(&NoProgress).await.expect("verify");

    let payloads = sample_payloads();
    assert_eq!(manifest.entries.len(), payloads.len());
    for (entry, (service, name, bytes)) in manifest.entries.iter().zip(payloads) {
        assert_eq!(entry.service, service);
        assert_eq!(entry.artifact.name, name);
        assert_eq!(entry.compression, compression);
        let suffix = if compression == Compression::Zstd {
            ".zst"
        } else {
            ""
        };
        assert_eq!(entry.path, format!("data/{service}/{name}{suffix}"));
        let read = collect(reader.open_entry(entry).expect("open entry"))
            .await
            .expect("read entry");
        assert_eq!(read, bytes, "entry {} round-trips", entry.path);
    }
}

#[tokio::test]
async fn round_trip_with_zstd_compression() {
    round_trip(Compression::Zstd).await;
}

#[tokio::test]
async fn round_trip_without_compression() {
    round_trip(Compression::None).await;
}

#[tokio::test]
async fn zstd_makes_compressible_entries_smaller_and_stock_zstd_reads_them() {
    let (_dir, path, _) = sample_bundle().await;
    let zst_dir = tempfile::tempdir().expect("tempdir");
    let zst_path = zst_dir.path().join("b.zip");
    let manifest = write_sample(&zst_path, Compression::Zstd).await;
    let text_entry = manifest
        .entry("data/files/tree.tar.zst")
        .expect("text entry");
    assert!(text_entry.size < text_entry.uncompressed_size / 10);
    assert!(
        std::fs::metadata(&zst_path).expect("meta").len()
            < std::fs::metadata(&path).expect("meta").len()
    );

    // The entry is a plain zstd stream.
    let stored = read_entries(&zst_path)
        .into_iter()
        .find(|(name, _)| name == "data/files/tree.tar.zst")
        .expect("stored entry")
        .1;
    let decoded = zstd::decode_all(stored.as_slice()).expect("zstd decodes");
    assert_eq!(decoded, text(2 * 1024 * 1024));
}

/// A sink that is `Write` but not `Seek`, like a pipe or an upload body.
#[derive(Clone, Default)]
struct SharedVec(Arc<Mutex<Vec<u8>>>);

impl Write for SharedVec {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn works_on_a_non_seekable_sink() {
    let sink = SharedVec::default();
    let mut writer = BundleWriter::to_writer(sink.clone(), BundleOptions::default());
    writer.write_snapshot(&snapshot()).await.expect("snapshot");
    let payload = pseudo_random(1024 * 1024, 3);
    writer
        .write_artifact(
            "db",
            &descriptor("app.dump"),
            ArtifactData::from_stream(stream_of(&payload, 10_000)),
            &NoProgress,
        )
        .await
        .expect("artifact");
    let manifest = writer.finish().await.expect("finish");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("piped.zip");
    std::fs::write(&path, sink.0.lock().expect("lock").as_slice()).expect("write");
    let reader = BundleReader::open(&path).await.expect("open");
    assert_eq!(reader.manifest(), &manifest);
    reader.verify(&NoProgress).await.expect("verify");
    let read = collect(reader.open_entry(&manifest.entries[0]).expect("entry"))
        .await
        .expect("read");
    assert_eq!(read, payload);
}

#[tokio::test]
async fn works_through_a_real_pipe() {
    let (mut pipe_reader, pipe_writer) = std::io::pipe().expect("pipe");
    let drain = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        pipe_reader.read_to_end(&mut bytes).expect("read pipe");
        bytes
    });
    let mut writer = BundleWriter::to_writer(pipe_writer, BundleOptions::default());
    let payload = text(5 * 1024 * 1024);
    writer
        .write_artifact(
            "files",
            &descriptor("tree.tar"),
            ArtifactData::from_stream(stream_of(&payload, 256 * 1024)),
            &NoProgress,
        )
        .await
        .expect("artifact");
    writer.finish().await.expect("finish");
    let bytes = drain.join().expect("drain thread");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("piped.zip");
    std::fs::write(&path, bytes).expect("write");
    let reader = BundleReader::open(&path).await.expect("open");
    let entry = reader.manifest().entries[0].clone();
    let read = collect(reader.open_entry(&entry).expect("entry"))
        .await
        .expect("read");
    assert_eq!(read, payload);
}

#[tokio::test]
async fn manifest_sha256_and_sizes_equal_independently_computed_values() {
    for compression in [Compression::None, Compression::Zstd] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bundle.zip");
        let manifest = write_sample(&path, compression).await;
        let stored = read_entries(&path);
        for entry in &manifest.entries {
            let bytes = &stored
                .iter()
                .find(|(name, _)| *name == entry.path)
                .expect("entry in zip")
                .1;
            assert_eq!(entry.size, bytes.len() as u64, "{}", entry.path);
            assert_eq!(
                entry.sha256,
                hex::encode(Sha256::digest(bytes)),
                "{}",
                entry.path
            );
        }
        for ((_, _, raw), entry) in sample_payloads().iter().zip(&manifest.entries) {
            assert_eq!(entry.uncompressed_size, raw.len() as u64);
        }
        let snapshot_entry = manifest.snapshot.as_ref().expect("snapshot checksum");
        let snapshot_bytes = &stored
            .iter()
            .find(|(name, _)| name == "snapshot.json")
            .expect("snapshot in zip")
            .1;
        assert_eq!(snapshot_entry.size, snapshot_bytes.len() as u64);
        assert_eq!(
            snapshot_entry.sha256,
            hex::encode(Sha256::digest(snapshot_bytes))
        );
        // manifest.json is the last entry.
        assert_eq!(
            stored.last().map(|(n, _)| n.as_str()),
            Some("manifest.json")
        );
        assert_eq!(
            stored.first().map(|(n, _)| n.as_str()),
            Some("snapshot.json")
        );
    }
}

#[tokio::test]
async fn manifest_describes_the_bundle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("labelled.zip");
    let options = BundleOptions::default()
        .with_label("before-upgrade")
        .with_purpose("upgrade to 16")
        .with_kind(BundleKind::Safety)
        .with_reason("restore of bundle x");
    let mut writer = BundleWriter::create(&path, options).await.expect("create");
    writer.write_snapshot(&snapshot()).await.expect("snapshot");
    writer
        .write_artifact(
            "db",
            &descriptor("app.dump"),
            ArtifactData::from_stream(stream_of(b"data", 2)),
            &NoProgress,
        )
        .await
        .expect("artifact");
    let manifest = writer.finish().await.expect("finish");
    assert_eq!(manifest.format_version, MANIFEST_FORMAT_VERSION);
    assert!(uuid::Uuid::parse_str(&manifest.id).is_ok());
    assert!(time::OffsetDateTime::parse(
        &manifest.created_at,
        &time::format_description::well_known::Rfc3339
    )
    .is_ok());
    assert!(manifest.created_at.ends_with('Z'));
    assert_eq!(manifest.label.as_deref(), Some("before-upgrade"));
    assert_eq!(manifest.kind, BundleKind::Safety);
    assert_eq!(manifest.tool.name, "backup-rs");
    assert!(manifest.includes.config);
    assert_eq!(manifest.includes.services, vec!["db".to_string()]);
    assert_eq!(manifest.entries[0].encryption, "none");

    let json = manifest_json(&read_entries(&path));
    assert_eq!(json["formatVersion"], 1);
    assert_eq!(json["kind"], "safety");
    assert_eq!(json["entries"][0]["compression"], "zstd");
    assert_eq!(
        json["entries"][0]["artifact"]["contentType"],
        "application/x-tar"
    );
    assert_eq!(json["entries"][0]["uncompressedSize"], 4);
}

#[tokio::test]
async fn late_metadata_is_merged_into_the_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("late.zip");
    let mut writer = new_writer(&path).await;
    let artifact = descriptor("app.dump").with_metadata("tables", serde_json::json!(3));
    let late: backup_core::artifact::LateMetadata = Box::pin(async {
        let mut extra = serde_json::Map::new();
        extra.insert("rows".into(), serde_json::json!(1234));
        Ok(extra)
    });
    let data = ArtifactData {
        stream: stream_of(b"dump bytes", 4),
        late_metadata: Some(late),
    };
    let entry = writer
        .write_artifact("db", &artifact, data, &NoProgress)
        .await
        .expect("artifact");
    assert_eq!(entry.artifact.metadata["rows"], 1234);
    assert_eq!(entry.artifact.metadata["tables"], 3);
    writer.finish().await.expect("finish");

    let reader = BundleReader::open(&path).await.expect("open");
    let stored = &reader.manifest().entries[0].artifact;
    assert_eq!(stored.metadata["rows"], 1234);
    assert_eq!(stored.metadata["tables"], 3);
    assert_eq!(stored.source_version.as_deref(), Some("test 1.0"));
}

#[tokio::test]
async fn progress_events_are_emitted_for_writing_and_verifying() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("progress.zip");
    let mut writer = new_writer(&path).await;
    let progress = CollectedProgress::new();
    let payload = pseudo_random(20 * 1024 * 1024, 11);
    writer
        .write_artifact(
            "db",
            &descriptor("app.dump"),
            ArtifactData::from_stream(stream_of(&payload, 256 * 1024)),
            &progress,
        )
        .await
        .expect("artifact");
    writer.finish().await.expect("finish");
    let transferred: Vec<(u64, Option<u64>)> = progress
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ProgressEvent::BytesTransferred {
                service,
                artifact,
                done,
                total,
            } => {
                assert_eq!((service.as_str(), artifact.as_str()), ("db", "app.dump"));
                Some((done, total))
            }
            _ => None,
        })
        .collect();
    assert!(
        transferred.len() >= 2,
        "intermediate and final events: {transferred:?}"
    );
    assert!(transferred.windows(2).all(|w| w[0].0 <= w[1].0));
    let last = payload.len() as u64;
    assert_eq!(transferred.last(), Some(&(last, Some(last))));

    let reader = BundleReader::open(&path).await.expect("open");
    let verify_progress = CollectedProgress::new();
    let report = reader.verify(&verify_progress).await.expect("verify");
    let events = verify_progress.events();
    assert!(events.contains(&ProgressEvent::Verified {
        path: "data/db/app.dump.zst".into(),
        size: reader.manifest().entries[0].size,
    }));
    assert!(
        matches!(events.last(), Some(ProgressEvent::Finished { operation }) if operation == "verify")
    );
    assert_eq!(report.entries.len(), 1);
}

#[tokio::test]
async fn unzip_accepts_a_normal_bundle() {
    for compression in [Compression::None, Compression::Zstd] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("normal.zip");
        write_sample(&path, compression).await;
        let (ok, output) = unzip_test(&path);
        assert!(ok, "unzip -t failed: {output}");
        assert!(output.contains("No errors detected"), "{output}");
        assert!(output.contains("manifest.json"), "{output}");
    }
}

#[tokio::test]
async fn open_entry_ends_with_an_integrity_error_when_bytes_changed_after_open() {
    let (_dir, path, manifest) = sample_bundle().await;
    let reader = BundleReader::open(&path).await.expect("open");
    let entry = manifest.entry("data/db/app.dump").expect("entry").clone();
    let payload = &sample_payloads()[0].2;
    let marker = &payload[1000..1064];
    let patched: Vec<u8> = marker.iter().map(|b| b ^ 0xff).collect();
    assert_eq!(patch_bytes(&path, marker, &patched), 1);

    let err = collect(reader.open_entry(&entry).expect("open entry"))
        .await
        .expect_err("a changed entry must not stream quietly");
    let err = backup_core::Error::io("reading", err);
    assert_eq!(err.kind(), backup_core::ErrorKind::Integrity);
    assert!(err.message().contains("data/db/app.dump"), "{err}");
}

#[tokio::test]
async fn writing_and_verifying_run_in_spawned_tasks() {
    // Hosts run exports in `tokio::spawn`: every future here must be `Send + 'static`.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("spawned.zip");
    let write_path = path.clone();
    let manifest = tokio::spawn(async move {
        let mut writer = BundleWriter::create(&write_path, BundleOptions::default())
            .await
            .expect("create");
        writer
            .write_artifact(
                "db",
                &descriptor("app.dump"),
                ArtifactData::from_stream(stream_of(b"spawned", 3)),
                &NoProgress,
            )
            .await
            .expect("artifact");
        writer.finish().await.expect("finish")
    })
    .await
    .expect("write task");
    let report = tokio::spawn(async move {
        let reader = BundleReader::open(&path).await.expect("open");
        reader.verify(&NoProgress).await.expect("verify")
    })
    .await
    .expect("verify task");
    assert_eq!(report.entries.len(), manifest.entries.len());
}
