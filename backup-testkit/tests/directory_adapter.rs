//! The built-in `directory` adapter: tree round trips, force, and hostile archives.

use backup_core::artifact::{formats, ArtifactDescriptor, ByteStream};
use backup_core::directory::{self, DirectoryExporter, DirectoryImporter};
use backup_core::{DataExporter, DataImporter, ErrorKind, ImportMode, ServiceTarget};
use backup_testkit::tree::{tree_digest, write_sample_tree};
use bytes::Bytes;
use futures::TryStreamExt;
use serde_json::json;

fn service(path: &std::path::Path) -> ServiceTarget {
    ServiceTarget::local("files", directory::RECIPE, json!({ "path": path }))
}

fn tar_descriptor() -> ArtifactDescriptor {
    ArtifactDescriptor::new(directory::ARTIFACT, formats::TAR, "application/x-tar")
}

async fn export_bytes(path: &std::path::Path) -> Vec<u8> {
    let svc = service(path);
    let artifacts = DirectoryExporter.artifacts(&svc).await.expect("artifacts");
    let data = DirectoryExporter
        .export(&svc, &artifacts[0])
        .await
        .expect("export");
    let chunks: Vec<Bytes> = data.stream.try_collect().await.expect("stream");
    chunks.concat()
}

/// Writes the sample tree under `dir/source` and exports it: (source path, tar bytes).
async fn exported_sample_tree(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    let source = dir.join("source");
    write_sample_tree(&source);
    let bytes = export_bytes(&source).await;
    (source, bytes)
}

/// Imports a tar `stream` into the directory at `target`.
async fn import_tar(
    target: &std::path::Path,
    stream: ByteStream,
    mode: ImportMode,
) -> backup_core::Result<()> {
    DirectoryImporter
        .import(&service(target), &tar_descriptor(), stream, mode)
        .await
}

fn stream_of(bytes: Vec<u8>) -> ByteStream {
    Box::pin(futures::stream::iter(
        bytes
            .chunks(7000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    ))
}

#[tokio::test]
async fn tree_round_trips_with_modes_mtimes_symlinks_and_empty_dirs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (source, bytes) = exported_sample_tree(tmp.path()).await;
    let target = tmp.path().join("restored");
    import_tar(&target, stream_of(bytes), ImportMode::default())
        .await
        .expect("import");
    assert_eq!(tree_digest(&source), tree_digest(&target));
    assert!(target.join("empty/nested").is_dir());
    assert_eq!(
        std::fs::read_link(target.join("bin/app.toml")).expect("link"),
        std::path::PathBuf::from("../config/app.toml")
    );
}

#[tokio::test]
async fn export_reports_counts_as_late_metadata() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_sample_tree(tmp.path());
    let svc = service(tmp.path());
    let data = DirectoryExporter
        .export(&svc, &tar_descriptor())
        .await
        .expect("export");
    let _: Vec<Bytes> = data.stream.try_collect().await.expect("stream");
    let meta = data
        .late_metadata
        .expect("late metadata")
        .await
        .expect("metadata");
    assert_eq!(meta["files"], json!(5));
    assert_eq!(meta["symlinks"], json!(2));
    assert_eq!(meta["directories"], json!(7));
}

#[tokio::test]
async fn export_of_a_missing_directory_fails_with_not_found() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = DirectoryExporter
        .artifacts(&service(&tmp.path().join("nope")))
        .await
        .expect_err("missing dir");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.hint().is_some());
}

#[tokio::test]
async fn import_into_a_non_empty_directory_needs_force() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (source, bytes) = exported_sample_tree(tmp.path()).await;
    let target = tmp.path().join("target");
    std::fs::create_dir_all(&target).expect("mkdir");
    std::fs::write(target.join("old.txt"), b"old").expect("write");
    let svc = service(&target);
    let err = DirectoryImporter
        .check(&svc, &[tar_descriptor()], ImportMode::default())
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    let err = DirectoryImporter
        .import(
            &svc,
            &tar_descriptor(),
            stream_of(bytes.clone()),
            ImportMode::default(),
        )
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(target.join("old.txt").exists());
    DirectoryImporter
        .import(
            &svc,
            &tar_descriptor(),
            stream_of(bytes),
            ImportMode { force: true },
        )
        .await
        .expect("force import");
    assert!(!target.join("old.txt").exists());
    assert_eq!(tree_digest(&source), tree_digest(&target));
}

#[tokio::test]
async fn truncated_stream_fails_and_leaves_the_target_as_it_was() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_, bytes) = exported_sample_tree(tmp.path()).await;
    let target = tmp.path().join("target");
    std::fs::create_dir_all(&target).expect("mkdir");
    std::fs::write(target.join("keep.txt"), b"precious").expect("write");
    let before = tree_digest(&target);
    let truncated = bytes[..bytes.len() / 2].to_vec();
    let err = import_tar(&target, stream_of(truncated), ImportMode { force: true })
        .await
        .expect_err("truncated");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert_eq!(before, tree_digest(&target));
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("list")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "staging directories left behind: {leftovers:?}"
    );
}

#[tokio::test]
async fn a_stream_error_fails_the_import_and_leaves_the_target_as_it_was() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let target = tmp.path().join("target");
    let stream: ByteStream = Box::pin(futures::stream::iter(vec![
        Ok(Bytes::from(vec![0u8; 512])),
        Err(backup_core::Error::integrity("sha256 mismatch").into_io()),
    ]));
    let err = import_tar(&target, stream, ImportMode::default())
        .await
        .expect_err("stream error");
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(!target.exists());
}

/// Builds a tar with one file entry whose raw name is `name` (bypassing the tar crate's
/// own refusal of `..`, as an attacker would).
fn hostile_tar(name: &str) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    {
        let raw = header.as_old_mut();
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
    }
    header.set_size(4);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    let mut body = b"evil".to_vec();
    body.resize(512, 0);
    out.extend(body);
    out.extend(vec![0u8; 1024]);
    out
}

#[tokio::test]
async fn archive_paths_that_escape_the_target_are_refused() {
    for name in [
        "../escaped.txt",
        "/tmp/absolute-escape.txt",
        "a/../../escaped.txt",
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let target = tmp.path().join("target");
        let err = import_tar(&target, stream_of(hostile_tar(name)), ImportMode::default())
            .await
            .expect_err(name);
        assert_eq!(err.kind(), ErrorKind::Integrity, "{name}: {err}");
        assert!(err.message().contains("escapes"), "{name}: {err}");
        assert!(!tmp.path().join("escaped.txt").exists());
        assert!(!target.exists(), "{name}: target was created");
    }
    assert!(!std::path::Path::new("/tmp/absolute-escape.txt").exists());
}

#[tokio::test]
async fn a_symlink_cannot_be_used_to_write_outside_the_target() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    let mut builder = tar::Builder::new(Vec::new());
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    link.set_mode(0o777);
    builder
        .append_link(&mut link, "escape", &outside)
        .expect("link entry");
    let mut file = tar::Header::new_gnu();
    file.set_size(4);
    file.set_mode(0o644);
    builder
        .append_data(&mut file, "escape/pwned.txt", &b"evil"[..])
        .expect("file entry");
    let bytes = builder.into_inner().expect("tar");
    let target = tmp.path().join("target");
    let err = import_tar(&target, stream_of(bytes), ImportMode::default())
        .await
        .expect_err("symlink escape");
    assert!(!outside.join("pwned.txt").exists());
    assert!(!target.exists(), "{err}");
}

#[tokio::test]
async fn an_unknown_format_is_refused_before_anything_is_touched() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let target = tmp.path().join("target");
    let wrong = ArtifactDescriptor::new(
        "db.dump",
        formats::POSTGRES_CUSTOM,
        "application/octet-stream",
    );
    let err = DirectoryImporter
        .check(&service(&target), &[wrong], ImportMode::default())
        .await
        .expect_err("format");
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion);
    assert!(err.message().contains("postgres/custom"));
}

#[tokio::test]
async fn a_stream_cut_at_an_entry_boundary_is_detected_as_truncated() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_, bytes) = exported_sample_tree(tmp.path()).await;
    // Drop the end-of-archive blocks: every entry is whole, but the archive is not.
    let cut = bytes[..bytes.len() - 1024].to_vec();
    let target = tmp.path().join("target");
    let err = import_tar(&target, stream_of(cut), ImportMode::default())
        .await
        .expect_err("cut at a boundary");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(!target.exists());
}
