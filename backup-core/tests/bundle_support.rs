//! Shared helpers of the `bundle_*` integration tests (included with `#[path]`).
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use backup_core::bundle::{BundleOptions, BundleWriter, Compression, Manifest};
use backup_core::progress::NoProgress;
use backup_core::snapshot::{ServiceSnapshot, WorkspaceRef};
use backup_core::{ArtifactData, ArtifactDescriptor, ByteStream, WorkspaceSnapshot};
use bytes::Bytes;

/// A small two-service snapshot.
pub fn snapshot() -> WorkspaceSnapshot {
    let mut config = serde_json::Map::new();
    config.insert("port".into(), serde_json::json!(5432));
    WorkspaceSnapshot {
        version: 1,
        exported_at: "2026-01-01T00:00:00Z".into(),
        exported_by: "system".into(),
        workspace: WorkspaceRef {
            slug: "demo".into(),
            name: "Demo".into(),
        },
        services: vec![
            ServiceSnapshot {
                recipe: "postgres".into(),
                name: "db".into(),
                config,
                depends_on: vec![],
                status: "running".into(),
            },
            ServiceSnapshot {
                recipe: "directory".into(),
                name: "files".into(),
                config: serde_json::Map::new(),
                depends_on: vec!["db".into()],
                status: "running".into(),
            },
        ],
        metadata: None,
    }
}

/// Deterministic, poorly compressible bytes (xorshift).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Very compressible bytes.
pub fn text(len: usize) -> Vec<u8> {
    b"INSERT INTO t VALUES (1, 'hello');\n"
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

/// `bytes` as a stream of `chunk`-sized pieces.
pub fn stream_of(bytes: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = bytes
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures::stream::iter(chunks))
}

/// A stream that yields `good` and then fails.
pub fn failing_stream(good: &[u8]) -> ByteStream {
    let items = vec![
        Ok(Bytes::copy_from_slice(good)),
        Err(std::io::Error::other("pg_dump exited with status 1")),
    ];
    Box::pin(futures::stream::iter(items))
}

pub fn descriptor(name: &str) -> ArtifactDescriptor {
    ArtifactDescriptor::new(name, "tar", "application/x-tar").with_source_version("test 1.0")
}

/// The payloads of [`write_sample`]: (service, artifact name, bytes).
pub fn sample_payloads() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        ("db", "app.dump", pseudo_random(3 * 1024 * 1024 + 17, 7)),
        ("db", "empty.sql", Vec::new()),
        ("files", "tree.tar", text(2 * 1024 * 1024)),
    ]
}

/// Writes a bundle with a snapshot and the sample payloads at `path`.
pub async fn write_sample(path: &Path, compression: Compression) -> Manifest {
    let options = BundleOptions::default().with_compression(compression);
    let mut writer = BundleWriter::create(path, options)
        .await
        .expect("create bundle");
    writer.write_snapshot(&snapshot()).await.expect("snapshot");
    for (service, name, bytes) in sample_payloads() {
        writer
            .write_artifact(
                service,
                &descriptor(name),
                ArtifactData::from_stream(stream_of(&bytes, 64 * 1024)),
                &NoProgress,
            )
            .await
            .expect("write artifact");
    }
    writer.finish().await.expect("finish")
}

/// Collects a stream, failing on the first error item.
pub async fn collect(stream: ByteStream) -> std::io::Result<Vec<u8>> {
    use futures::TryStreamExt;
    stream
        .try_fold(Vec::new(), |mut acc, chunk| async move {
            acc.extend_from_slice(&chunk);
            Ok(acc)
        })
        .await
}

/// A bundle writer at `path` with default options.
pub async fn new_writer(path: &Path) -> BundleWriter {
    BundleWriter::create(path, BundleOptions::default())
        .await
        .expect("create")
}

/// Every file name in `dir`.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Runs stock `unzip -t` on `path`; returns (success, output).
pub fn unzip_test(path: &Path) -> (bool, String) {
    let output = match Command::new("unzip").arg("-t").arg(path).output() {
        Ok(output) => output,
        Err(e) => panic!(
            "cannot run `unzip` ({e}): install it (Debian package `unzip`) or run scripts/test.sh"
        ),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Every entry of a zip, in order: (name, stored bytes).
pub fn read_entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let file = std::fs::File::open(path).expect("open zip");
    let mut archive = zip::ZipArchive::new(file).expect("zip archive");
    let mut entries = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).expect("entry");
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read entry");
        entries.push((entry.name().expect("name").to_string(), bytes));
    }
    entries
}

/// Writes `entries` as a plain STORE zip with the zip crate, names exactly as given.
pub fn write_raw_zip(path: &Path, entries: &[(String, Vec<u8>)]) {
    let file = std::fs::File::create(path).expect("create zip");
    let mut zip = zip::ZipWriter::new(file);
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in entries {
        zip.start_file(name.as_str(), options).expect("start file");
        zip.write_all(bytes).expect("write entry");
    }
    zip.finish().expect("finish zip");
}

/// Replaces every occurrence of `from` by `to` (same length) in the file's bytes.
pub fn patch_bytes(path: &Path, from: &[u8], to: &[u8]) -> usize {
    assert_eq!(from.len(), to.len(), "a patch must keep lengths");
    let mut bytes = std::fs::read(path).expect("read file");
    let mut count = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            count += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    std::fs::write(path, bytes).expect("write file");
    count
}

/// The manifest of a sample bundle, as JSON, for crafting variants.
pub fn manifest_json(entries: &[(String, Vec<u8>)]) -> serde_json::Value {
    let (_, bytes) = entries
        .iter()
        .find(|(name, _)| name == "manifest.json")
        .expect("manifest entry");
    serde_json::from_slice(bytes).expect("manifest json")
}

/// Replaces the manifest entry of `entries` with `manifest`.
pub fn set_manifest(entries: &mut [(String, Vec<u8>)], manifest: &serde_json::Value) {
    for (name, bytes) in entries.iter_mut() {
        if name == "manifest.json" {
            *bytes = serde_json::to_vec_pretty(manifest).expect("manifest json");
        }
    }
}

/// A fresh temp dir with a sample bundle in it (no compression).
pub async fn sample_bundle() -> (tempfile::TempDir, PathBuf, Manifest) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sample.zip");
    let manifest = write_sample(&path, Compression::None).await;
    (dir, path, manifest)
}

/// Opens `path` twice, as a file ([`BundleReader::open`]) and through an in-memory
/// [`backup_core::bundle::BundleSource`] named like the file
/// ([`BundleReader::open_source`]); asserts both agree (same manifest, or the same error
/// kind and message) and returns the source-backed reader, so the test's later reads
/// (verify, open_entry) go through the source path.
pub async fn open_checked(path: &Path) -> backup_core::Result<backup_core::BundleReader> {
    use backup_core::bundle::MemorySource;
    use backup_core::BundleReader;
    let from_file = BundleReader::open(path).await;
    let Ok(bytes) = std::fs::read(path) else {
        return from_file;
    };
    let source = std::sync::Arc::new(MemorySource::new(path.display().to_string(), bytes));
    let from_memory = BundleReader::open_source(source).await;
    match (&from_file, &from_memory) {
        (Ok(file), Ok(memory)) => assert_eq!(file.manifest(), memory.manifest()),
        (Err(file), Err(memory)) => {
            assert_eq!(file.kind(), memory.kind(), "file: {file}; memory: {memory}");
            assert_eq!(file.to_string(), memory.to_string());
        }
        (file, memory) => panic!(
            "a file and a memory source disagree on {}: file {:?}, memory {:?}",
            path.display(),
            file.as_ref().map(|_| ()),
            memory.as_ref().map(|_| ())
        ),
    }
    from_memory
}
