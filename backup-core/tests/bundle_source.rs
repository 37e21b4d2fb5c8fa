//! `BundleSource`: a bundle read through a random-access source (what object storage
//! provides with ranged reads) opens, verifies and reads back with a small, bounded
//! number of large reads, from blocking threads only.

#[path = "bundle_support.rs"]
mod support;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use backup_core::bundle::{BundleSource, Compression, FileSource, MemorySource, SOURCE_READ_SIZE};
use backup_core::progress::NoProgress;
use backup_core::{BundleReader, ErrorKind};
use support::*;

/// A memory source that counts its reads and, like an object-store source, runs each
/// read with `Handle::block_on` (which panics if called from an async task).
#[derive(Debug)]
struct CountingSource {
    inner: MemorySource,
    handle: tokio::runtime::Handle,
    calls: AtomicU64,
    bytes: AtomicU64,
    sizes: Mutex<Vec<usize>>,
}

impl CountingSource {
    fn new(bytes: Vec<u8>) -> Arc<Self> {
        Arc::new(Self {
            inner: MemorySource::new("memory://bundle", bytes),
            handle: tokio::runtime::Handle::current(),
            calls: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            sizes: Mutex::new(Vec::new()),
        })
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl BundleSource for CountingSource {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.sizes.lock().expect("sizes").push(buf.len());
        let n = self
            .handle
            .block_on(async { self.inner.read_at(offset, buf) })?;
        self.bytes.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

async fn sample_bytes(compression: Compression) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sample.zip");
    write_sample(&path, compression).await;
    std::fs::read(&path).expect("read bundle")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_and_verify_through_a_source_issue_few_large_reads() {
    for compression in [Compression::None, Compression::Zstd] {
        let bytes = sample_bytes(compression).await;
        let len = bytes.len() as u64;
        let source = CountingSource::new(bytes);
        let reader = BundleReader::open_source(source.clone())
            .await
            .expect("open through the source");
        let opened = source.calls();
        let entries = reader.manifest().entries.len() as u64 + 2;
        assert!(
            opened <= 2 * entries + 4,
            "{compression:?}: open issued {opened} reads for {entries} entries"
        );
        reader.verify(&NoProgress).await.expect("verify");
        let total = source.calls();
        // Verify reads each entry in windows of SOURCE_READ_SIZE: about one read per MiB.
        let window_reads = len.div_ceil(SOURCE_READ_SIZE as u64) + entries;
        assert!(
            total - opened <= window_reads,
            "{compression:?}: verify issued {} reads for a {len}-byte bundle",
            total - opened
        );
        assert!(total < 40, "{compression:?}: {total} reads in all");
        // Every byte of the bundle is read about once by verify, not many times over.
        let read = source.bytes.load(Ordering::SeqCst);
        assert!(
            read <= 2 * len + 4 * SOURCE_READ_SIZE as u64,
            "{compression:?}: {read} bytes read for a {len}-byte bundle"
        );
        // Reads are large: at most a handful below a window, and those exact spans.
        let small = source
            .sizes
            .lock()
            .expect("sizes")
            .iter()
            .filter(|&&n| n < 64 * 1024)
            .count() as u64;
        assert!(small <= entries + 2, "{compression:?}: {small} small reads");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entry_reads_back_through_a_source_with_bounded_reads() {
    let bytes = sample_bytes(Compression::Zstd).await;
    let len = bytes.len() as u64;
    let source = CountingSource::new(bytes);
    let reader = BundleReader::open_source(source.clone())
        .await
        .expect("open");
    let before = source.calls();
    let payloads = sample_payloads();
    for (entry, (_, _, want)) in reader.manifest().entries.clone().iter().zip(payloads) {
        let stream = reader.open_entry(entry).expect("open entry");
        let got = collect(stream).await.expect("read entry");
        assert!(
            got == want,
            "entry {} differs after reading back",
            entry.path
        );
    }
    let reads = source.calls() - before;
    assert!(
        reads <= len.div_ceil(SOURCE_READ_SIZE as u64) + 3,
        "{reads} reads to stream every entry of a {len}-byte bundle"
    );
}

#[tokio::test]
async fn a_file_source_reads_the_same_bundle_as_open() {
    let (_dir, path, manifest) = sample_bundle().await;
    let source = Arc::new(FileSource::open(&path).expect("file source"));
    let reader = BundleReader::open_source(source).await.expect("open");
    assert_eq!(reader.manifest(), &manifest);
    assert_eq!(reader.path(), Some(path.as_path()));
    reader.verify(&NoProgress).await.expect("verify");
    let by_path = BundleReader::open(&path).await.expect("open by path");
    assert_eq!(by_path.path(), Some(path.as_path()));
    assert_eq!(by_path.source().describe(), path.display().to_string());
}

/// A source whose reads fail, as a network does.
#[derive(Debug)]
struct FailingSource(u64);

impl BundleSource for FailingSource {
    fn len(&self) -> u64 {
        self.0
    }
    fn read_at(&self, _offset: u64, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "connection reset",
        ))
    }
    fn describe(&self) -> String {
        "s3://bucket/bundle.zip".into()
    }
}

#[tokio::test]
async fn a_failing_source_is_an_error_naming_the_bundle_not_a_panic() {
    let err = BundleReader::open_source(Arc::new(FailingSource(10_000)))
        .await
        .expect_err("reads fail");
    assert_ne!(
        err.kind(),
        ErrorKind::Integrity,
        "a read error is not damage: {err}"
    );
    assert!(err.to_string().contains("connection reset"), "{err}");
    assert!(err.to_string().contains("s3://bucket/bundle.zip"), "{err}");
}

#[tokio::test]
async fn a_truncated_bundle_in_memory_is_rejected_like_a_file() {
    let (_dir, path, _) = sample_bundle().await;
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
    let err = open_checked(&path).await.expect_err("truncated");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(err.to_string().contains("data/db/app.dump"), "{err}");
}
