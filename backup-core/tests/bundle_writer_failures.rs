//! A failed or abandoned export never leaves something that looks like a bundle.

#[path = "bundle_support.rs"]
mod support;

use backup_core::bundle::{BundleOptions, BundleWriter};
use backup_core::progress::NoProgress;
use backup_core::{ArtifactData, ErrorKind};
use support::*;

#[tokio::test]
async fn failing_artifact_stream_fails_the_write_and_leaves_no_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bundle.zip");
    let mut writer = new_writer(&path).await;
    assert_eq!(
        files_in(dir.path()).len(),
        1,
        "the partial file exists while writing"
    );
    writer.write_snapshot(&snapshot()).await.expect("snapshot");
    let err = writer
        .write_artifact(
            "db",
            &descriptor("app.dump"),
            ArtifactData::from_stream(failing_stream(&pseudo_random(100_000, 1))),
            &NoProgress,
        )
        .await
        .expect_err("an error item fails the artifact");
    assert!(err.message().contains("app.dump"), "{err}");
    assert!(err.message().contains("pg_dump exited"), "{err}");
    // Cleaned up at once, before the writer is dropped.
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );

    let finish = writer.finish().await.expect_err("finish must refuse");
    assert!(finish.message().contains("failed earlier"), "{finish}");
    assert!(!path.exists());
    assert!(files_in(dir.path()).is_empty());
}

#[tokio::test]
async fn later_writes_are_refused_after_a_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bundle.zip");
    let mut writer = new_writer(&path).await;
    let _ = writer
        .write_artifact(
            "db",
            &descriptor("a"),
            ArtifactData::from_stream(failing_stream(b"x")),
            &NoProgress,
        )
        .await
        .expect_err("fails");
    let again = writer
        .write_artifact(
            "db",
            &descriptor("b"),
            ArtifactData::from_stream(stream_of(b"fine", 4)),
            &NoProgress,
        )
        .await
        .expect_err("a failed bundle takes no more entries");
    assert!(again.message().contains("failed earlier"), "{again}");
}

#[tokio::test]
async fn failing_late_metadata_fails_the_bundle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bundle.zip");
    let mut writer = new_writer(&path).await;
    let late: backup_core::artifact::LateMetadata = Box::pin(async {
        Err(backup_core::Error::new(
            ErrorKind::ToolFailed,
            "pg_dump reported an error at the end",
        ))
    });
    let err = writer
        .write_artifact(
            "db",
            &descriptor("app.dump"),
            ArtifactData {
                stream: stream_of(b"bytes", 5),
                late_metadata: Some(late),
            },
            &NoProgress,
        )
        .await
        .expect_err("late metadata error fails the artifact");
    assert_eq!(err.kind(), ErrorKind::ToolFailed);
    assert!(writer.finish().await.is_err());
    assert!(files_in(dir.path()).is_empty());
}

#[tokio::test]
async fn dropping_an_unfinished_writer_leaves_no_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bundle.zip");
    {
        let mut writer = new_writer(&path).await;
        writer.write_snapshot(&snapshot()).await.expect("snapshot");
        writer
            .write_artifact(
                "db",
                &descriptor("app.dump"),
                ArtifactData::from_stream(stream_of(&pseudo_random(500_000, 2), 4096)),
                &NoProgress,
            )
            .await
            .expect("artifact");
        assert_eq!(files_in(dir.path()).len(), 1);
    }
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[tokio::test]
async fn dropping_a_writer_in_the_middle_of_an_artifact_leaves_no_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bundle.zip");
    let mut writer = new_writer(&path).await;
    // A stream that never ends: the write is cancelled by a timeout.
    let endless: backup_core::ByteStream = Box::pin(futures::stream::unfold((), |()| async {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        Some((Ok(bytes::Bytes::from_static(b"more")), ()))
    }));
    let endless_artifact = descriptor("endless");
    let write = writer.write_artifact(
        "db",
        &endless_artifact,
        ArtifactData::from_stream(endless),
        &NoProgress,
    );
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(100), write)
            .await
            .is_err()
    );
    let refused = writer
        .finish()
        .await
        .expect_err("an interrupted entry poisons the bundle");
    assert!(refused.message().contains("interrupted"), "{refused}");
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[tokio::test]
async fn abort_removes_the_partial_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bundle.zip");
    let mut writer = new_writer(&path).await;
    writer.write_snapshot(&snapshot()).await.expect("snapshot");
    writer.abort().await;
    assert!(files_in(dir.path()).is_empty());
}

#[tokio::test]
async fn the_final_name_appears_only_when_finished() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bundle.zip");
    let mut writer = new_writer(&path).await;
    writer.write_snapshot(&snapshot()).await.expect("snapshot");
    let names = files_in(dir.path());
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with(".bundle.zip.partial-"), "{names:?}");
    assert!(!path.exists());
    writer.finish().await.expect("finish");
    assert_eq!(files_in(dir.path()), vec!["bundle.zip".to_string()]);
}

#[tokio::test]
async fn an_existing_bundle_is_never_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bundle.zip");
    std::fs::write(&path, b"an older bundle").expect("write");
    let err = BundleWriter::create(&path, BundleOptions::default())
        .await
        .expect_err("refuses an existing path");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&path).expect("read"), b"an older bundle");
}

#[tokio::test]
async fn an_empty_bundle_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bundle.zip");
    let writer = new_writer(&path).await;
    let err = writer.finish().await.expect_err("nothing written");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(files_in(dir.path()).is_empty());
}

#[tokio::test]
async fn unsafe_service_and_artifact_names_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bundle.zip");
    let mut writer = new_writer(&path).await;
    for (service, artifact) in [
        ("..", "a"),
        ("db", "../x"),
        ("a/b", "x"),
        ("db", ""),
        ("db", "a\\b"),
    ] {
        let err = writer
            .write_artifact(
                service,
                &descriptor(artifact),
                ArtifactData::from_stream(stream_of(b"x", 1)),
                &NoProgress,
            )
            .await
            .expect_err("unsafe name");
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidInput,
            "{service}/{artifact}: {err}"
        );
    }
    // A refused name does not poison the bundle.
    writer
        .write_artifact(
            "db",
            &descriptor("ok"),
            ArtifactData::from_stream(stream_of(b"x", 1)),
            &NoProgress,
        )
        .await
        .expect("valid names still work");
    let duplicate = writer
        .write_artifact(
            "db",
            &descriptor("ok"),
            ArtifactData::from_stream(stream_of(b"x", 1)),
            &NoProgress,
        )
        .await
        .expect_err("duplicate artifact");
    assert_eq!(duplicate.kind(), ErrorKind::InvalidInput);
    writer.finish().await.expect("finish");
}
