//! The conformance suite every adapter runs against a real server.
//!
//! An adapter's test implements [`ConformanceFixture`] over a real server it started, then
//! calls the public async functions here (or [`run_all`]). Each function panics with a
//! message naming the broken guarantee, like any test assertion.

use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use backup_core::backup::{write_bundle, ServiceExport};
use backup_core::bundle::{BundleOptions, BundleReader};
use backup_core::progress::NoProgress;
use backup_core::restore::restore_service_data;
use backup_core::{DataExporter, DataImporter, ErrorKind, ImportMode};
use backup_core::{Recipe, Result, ServiceTarget};
use futures::StreamExt;

/// How much data [`ConformanceFixture::fill`] puts into a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataSize {
    /// Nothing: the service exists but holds no data.
    Empty,
    /// A few KiB to a few MiB of varied data.
    Small,
    /// More than 64 MiB.
    Large,
}

/// What an adapter's test provides so the suite can exercise it on a real server.
#[async_trait]
pub trait ConformanceFixture: Send + Sync {
    /// The recipe under test, with its exporter and importer.
    fn recipe(&self) -> Recipe;

    /// A new, empty service on the real server (its own database, instance or directory),
    /// named `name`.
    async fn new_service(&self, name: &str) -> Result<ServiceTarget>;

    /// Fills `service` with data of roughly `size`.
    async fn fill(&self, service: &ServiceTarget, size: DataSize) -> Result<()>;

    /// A digest of the service's whole content: equal digests mean equal data.
    async fn digest(&self, service: &ServiceTarget) -> Result<String>;

    /// A service whose export must fail (a missing database, a stopped server, …).
    async fn broken_service(&self, name: &str) -> Result<ServiceTarget>;
}

/// The largest chunk an export stream may yield: streams must never hand over a whole
/// artifact at once.
pub const MAX_CHUNK_BYTES: usize = 8 * 1024 * 1024;

fn parts(fixture: &dyn ConformanceFixture) -> (Arc<dyn DataExporter>, Arc<dyn DataImporter>) {
    let recipe = fixture.recipe();
    let exporter = recipe
        .exporter()
        .cloned()
        .unwrap_or_else(|| panic!("recipe `{}` has no exporter", recipe.slug()));
    let importer = recipe
        .importer()
        .cloned()
        .unwrap_or_else(|| panic!("recipe `{}` has no importer", recipe.slug()));
    (exporter, importer)
}

/// A new service named `name`, filled with `size` data.
async fn service_with(
    fixture: &dyn ConformanceFixture,
    name: &str,
    size: DataSize,
) -> ServiceTarget {
    let service = fixture
        .new_service(name)
        .await
        .unwrap_or_else(|e| panic!("creating service `{name}`: {e}"));
    fixture
        .fill(&service, size)
        .await
        .unwrap_or_else(|e| panic!("filling `{name}` with {size:?} data: {e}"));
    service
}

/// The digest of a service's content.
async fn digest_of(fixture: &dyn ConformanceFixture, service: &ServiceTarget) -> String {
    fixture
        .digest(service)
        .await
        .unwrap_or_else(|e| panic!("digest of `{}`: {e}", service.name))
}

fn bundle_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.backup.zip"))
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn export_to_bundle(
    fixture: &dyn ConformanceFixture,
    source: &ServiceTarget,
    path: &Path,
) -> Result<()> {
    let (exporter, _) = parts(fixture);
    let services = [ServiceExport {
        target: source.clone(),
        exporter,
    }];
    write_bundle(path, BundleOptions::default(), None, &services, &NoProgress).await?;
    Ok(())
}

async fn import_bundle(
    fixture: &dyn ConformanceFixture,
    path: &Path,
    source_name: &str,
    target: &ServiceTarget,
    mode: ImportMode,
) -> Result<()> {
    let (_, importer) = parts(fixture);
    let reader = BundleReader::open(path).await?;
    reader.verify(&NoProgress).await?;
    let entries: Vec<_> = reader
        .manifest()
        .entries
        .iter()
        .filter(|e| e.service == source_name)
        .cloned()
        .collect();
    assert!(
        !entries.is_empty(),
        "the bundle holds no entry for `{source_name}`"
    );
    let artifacts: Vec<_> = entries.iter().map(|e| e.artifact.clone()).collect();
    importer.check(target, &artifacts, mode).await?;
    restore_service_data(
        &reader,
        target,
        importer.as_ref(),
        &entries,
        mode,
        true,
        &NoProgress,
    )
    .await
}

/// Exports a service filled with `size` data into a bundle, restores it into a new
/// service, and checks the digests are equal (and the source is unchanged).
///
/// # Panics
///
/// When any step fails or the digests differ.
pub async fn round_trip(fixture: &dyn ConformanceFixture, size: DataSize) {
    let tag = format!("{size:?}").to_lowercase();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let source = service_with(fixture, &format!("rt_src_{tag}"), size).await;
    let before = digest_of(fixture, &source).await;
    let path = bundle_path(dir.path(), &tag);
    export_to_bundle(fixture, &source, &path)
        .await
        .unwrap_or_else(|e| panic!("exporting {size:?} data failed: {e}"));
    let target = service_with(fixture, &format!("rt_dst_{tag}"), DataSize::Empty).await;
    import_bundle(fixture, &path, &source.name, &target, ImportMode::default())
        .await
        .unwrap_or_else(|e| panic!("importing {size:?} data failed: {e}"));
    let restored = digest_of(fixture, &target).await;
    assert_eq!(before, restored, "{size:?} data changed in the round trip");
    let after = digest_of(fixture, &source).await;
    assert_eq!(before, after, "exporting changed the source");
}

/// Checks that an export of large data arrives as a stream: many bounded chunks, the
/// first long before the last.
///
/// # Panics
///
/// When a chunk exceeds [`MAX_CHUNK_BYTES`], the export is a single chunk, or the first
/// chunk arrives only at the end.
pub async fn export_streams_in_bounded_chunks(fixture: &dyn ConformanceFixture) {
    let (exporter, _) = parts(fixture);
    let source = service_with(fixture, "stream_src", DataSize::Large).await;
    let artifacts = exporter
        .artifacts(&source)
        .await
        .unwrap_or_else(|e| panic!("listing artifacts: {e}"));
    let mut chunks = 0usize;
    let mut total = 0usize;
    let mut largest = 0usize;
    let start = Instant::now();
    let mut first_chunk_at = None;
    for artifact in &artifacts {
        let mut data = exporter
            .export(&source, artifact)
            .await
            .unwrap_or_else(|e| panic!("export: {e}"))
            .stream;
        while let Some(chunk) = data.next().await {
            let chunk = chunk.unwrap_or_else(|e| panic!("export stream failed: {e}"));
            first_chunk_at.get_or_insert_with(|| start.elapsed());
            chunks += 1;
            total += chunk.len();
            largest = largest.max(chunk.len());
        }
    }
    let elapsed = start.elapsed();
    assert!(
        largest <= MAX_CHUNK_BYTES,
        "a chunk of {largest} bytes: exports must stream in chunks of at most {MAX_CHUNK_BYTES}"
    );
    assert!(chunks >= 8, "{total} bytes came in only {chunks} chunks");
    let first = first_chunk_at.unwrap_or(elapsed);
    assert!(
        first.as_secs_f64() <= elapsed.as_secs_f64() * 0.5,
        "the first bytes came after {first:?} of {elapsed:?}: the export is buffered, not streamed"
    );
}

/// Checks that a failing export yields an error and leaves no bundle and no partial file.
///
/// # Panics
///
/// When the export succeeds or leaves a file behind.
pub async fn failing_export_leaves_no_bundle(fixture: &dyn ConformanceFixture) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let broken = fixture
        .broken_service("broken")
        .await
        .unwrap_or_else(|e| panic!("creating the broken service: {e}"));
    let path = bundle_path(dir.path(), "broken");
    let result = export_to_bundle(fixture, &broken, &path).await;
    assert!(result.is_err(), "exporting a broken service succeeded");
    let left = files_in(dir.path());
    assert!(
        left.is_empty(),
        "a failed export left files behind: {left:?}"
    );
}

/// Flips one byte of a bundle's data and checks the restore is refused with an integrity
/// error before the (non-empty) target is touched, even with `force`.
///
/// # Panics
///
/// When the corrupt bundle is accepted or the target changed.
pub async fn corrupt_bundle_is_rejected_and_target_unchanged(fixture: &dyn ConformanceFixture) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let source = service_with(fixture, "corrupt_src", DataSize::Small).await;
    let path = bundle_path(dir.path(), "corrupt");
    export_to_bundle(fixture, &source, &path)
        .await
        .unwrap_or_else(|e| panic!("export: {e}"));
    let reader = BundleReader::open(&path)
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    let entry = reader
        .manifest()
        .entries
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("the bundle has no data entry"));
    drop(reader);
    crate::tamper::flip_byte_inside_entry(&path, &entry);

    let target = service_with(fixture, "corrupt_dst", DataSize::Small).await;
    let before = digest_of(fixture, &target).await;
    let err = import_bundle(
        fixture,
        &path,
        &source.name,
        &target,
        ImportMode { force: true },
    )
    .await
    .expect_err("a corrupt bundle was restored");
    assert_eq!(err.kind(), ErrorKind::Integrity, "unexpected error: {err}");
    let after = digest_of(fixture, &target).await;
    assert_eq!(before, after, "a refused restore changed the target");
}

/// Feeds an importer a stream cut in half (ending cleanly, as a truncated file would) and
/// checks it fails and leaves the empty target empty.
///
/// # Panics
///
/// When the truncated stream is accepted or the target changed.
pub async fn truncated_stream_fails_import_and_target_unchanged(fixture: &dyn ConformanceFixture) {
    let (exporter, importer) = parts(fixture);
    let source = service_with(fixture, "trunc_src", DataSize::Small).await;
    let artifacts = exporter
        .artifacts(&source)
        .await
        .unwrap_or_else(|e| panic!("artifacts: {e}"));
    let artifact = artifacts
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("no artifacts"));
    let data = exporter
        .export(&source, &artifact)
        .await
        .unwrap_or_else(|e| panic!("export: {e}"));
    let mut chunks = Vec::new();
    let mut stream = data.stream;
    while let Some(chunk) = stream.next().await {
        chunks.push(chunk.unwrap_or_else(|e| panic!("export stream: {e}")));
    }
    let whole: Vec<u8> = chunks.concat();
    assert!(whole.len() > 16, "the export is too small to truncate");
    let half = bytes::Bytes::from(whole[..whole.len() / 2].to_vec());
    let truncated: backup_core::ByteStream = Box::pin(futures::stream::iter(vec![Ok(half)]));

    let target = service_with(fixture, "trunc_dst", DataSize::Empty).await;
    let before = digest_of(fixture, &target).await;
    let result = importer
        .import(&target, &artifact, truncated, ImportMode::default())
        .await;
    assert!(
        result.is_err(),
        "a truncated stream was imported without error"
    );
    let after = digest_of(fixture, &target).await;
    assert_eq!(before, after, "a failed import changed the target");
}

/// Exports two different services at the same time and checks both bundles restore.
///
/// # Panics
///
/// When either export or restore fails or a digest differs.
pub async fn concurrent_exports_of_different_services(fixture: &dyn ConformanceFixture) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let a = service_with(fixture, "conc_a", DataSize::Small).await;
    let b = service_with(fixture, "conc_b", DataSize::Small).await;
    let (digest_a, digest_b) = (digest_of(fixture, &a).await, digest_of(fixture, &b).await);
    let (path_a, path_b) = (bundle_path(dir.path(), "a"), bundle_path(dir.path(), "b"));
    let (ra, rb) = tokio::join!(
        export_to_bundle(fixture, &a, &path_a),
        export_to_bundle(fixture, &b, &path_b)
    );
    ra.unwrap_or_else(|e| panic!("concurrent export a: {e}"));
    rb.unwrap_or_else(|e| panic!("concurrent export b: {e}"));
    for (path, source, digest, name) in [
        (&path_a, &a, &digest_a, "conc_a_dst"),
        (&path_b, &b, &digest_b, "conc_b_dst"),
    ] {
        let target = service_with(fixture, name, DataSize::Empty).await;
        import_bundle(fixture, path, &source.name, &target, ImportMode::default())
            .await
            .unwrap_or_else(|e| panic!("restoring {name}: {e}"));
        let restored = digest_of(fixture, &target).await;
        assert_eq!(digest, &restored, "{name} differs from its source");
    }
}

/// Runs the whole suite: round trips of empty, small and large data, streaming, failing
/// export, corrupt bundle, truncated stream, concurrent exports.
///
/// # Panics
///
/// On the first broken guarantee, naming it.
pub async fn run_all(fixture: &dyn ConformanceFixture) {
    round_trip(fixture, DataSize::Empty).await;
    round_trip(fixture, DataSize::Small).await;
    round_trip(fixture, DataSize::Large).await;
    export_streams_in_bounded_chunks(fixture).await;
    failing_export_leaves_no_bundle(fixture).await;
    corrupt_bundle_is_rejected_and_target_unchanged(fixture).await;
    truncated_stream_fails_import_and_target_unchanged(fixture).await;
    concurrent_exports_of_different_services(fixture).await;
}
