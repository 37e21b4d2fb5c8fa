//! One suite, run against the local backend, moto and s3s-fs (signatures checked).

mod repo_support;

use std::sync::Arc;

use backup_core::backup::BackupRequest;
use backup_core::bundle::{BundleKind, BundleOptions};
use backup_core::progress::CollectedProgress;
use backup_core::snapshot::WorkspaceRef;
use backup_core::{
    directory, ErrorKind, InMemoryHost, NewDeployment, ProgressEvent, RecipeRegistry,
};
use backup_repository::{BundleFilter, Repository};
use object_store::ObjectStoreExt;
use repo_support::{fresh, storage_for, write_bundle, Kind};

fn source(root: &std::path::Path) -> (InMemoryHost, RecipeRegistry) {
    std::fs::create_dir_all(root.join("files/sub")).expect("mkdir");
    std::fs::write(root.join("files/a.txt"), "hello").expect("write");
    std::fs::write(root.join("files/sub/b.bin"), vec![7u8; 300_000]).expect("write");
    let host = InMemoryHost::new(WorkspaceRef {
        slug: "ws".into(),
        name: "ws".into(),
    });
    let mut config = serde_json::Map::new();
    config.insert("path".into(), serde_json::json!(root.join("files")));
    host.insert(NewDeployment {
        name: "files".into(),
        recipe: "directory".into(),
        config,
        depends_on: Vec::new(),
    });
    let mut registry = RecipeRegistry::new();
    directory::register(&mut registry).expect("directory recipe");
    (host, registry)
}

/// create → list → info → label → lock → delete refused → unlock → delete.
async fn round_trip(kind: Kind) {
    let (backend, repo) = fresh(kind).await;
    let src = tempfile::tempdir().expect("tempdir");
    let (host, registry) = source(src.path());
    let progress = Arc::new(CollectedProgress::new());
    let request = BackupRequest {
        bundle: BundleOptions::default()
            .with_label("v1.0")
            .with_purpose("before upgrade"),
        ..BackupRequest::default()
    };
    let created = repo
        .create_backup(&host, &registry, &request, progress.clone())
        .await
        .expect("create");
    assert!(created.name.contains("_v1.0_"), "{}", created.name);
    assert!(progress
        .events()
        .iter()
        .any(|e| matches!(e, ProgressEvent::Finished { .. })));
    let older = write_bundle(&repo, None, BundleKind::Automatic, "db", 1000, 1).await;

    // A second handle sees the same repository.
    let again = Repository::open(storage_for(&backend, "bkt"))
        .await
        .expect("open");
    assert_eq!(again.config().id, repo.config().id);
    let list = again.list(&BundleFilter::default()).await.expect("list");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].id, older.id, "newest first");
    assert_eq!((list[0].index, list[1].index), (1, 2));
    assert!(list.iter().all(|b| b.recent));
    let b = &list[1];
    assert_eq!(b.label.as_deref(), Some("v1.0"));
    assert_eq!(b.purpose.as_deref(), Some("before upgrade"));
    assert_eq!(b.kind, BundleKind::Manual);
    assert_eq!(b.services, vec!["files".to_string()]);
    let object = repo
        .object_store()
        .head(&repo.key(&format!("bundles/{}.backup.zip", b.name)))
        .await
        .expect("bundle object");
    assert_eq!(object.size, b.size);

    let by_service = BundleFilter {
        service: Some("files".into()),
        ..BundleFilter::default()
    };
    assert_eq!(repo.list(&by_service).await.expect("list").len(), 1);
    let by_kind = BundleFilter {
        kind: Some(BundleKind::Automatic),
        ..BundleFilter::default()
    };
    assert_eq!(repo.list(&by_kind).await.expect("list")[0].id, older.id);

    let verify_progress = CollectedProgress::new();
    let verified = repo.verify("2", &verify_progress).await.expect("verify");
    let events = verify_progress.events();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, ProgressEvent::Verified { .. }))
            .count(),
        verified.entries.len(),
        "one Verified event per entry"
    );
    assert!(matches!(
        events.last(),
        Some(ProgressEvent::Finished { .. })
    ));
    assert_eq!(
        verified.entries.len(),
        repo.info("2").await.expect("info").manifest.entries.len() + 1,
        "every data entry and the snapshot re-read"
    );
    repo.verify(&older.id, progress.as_ref())
        .await
        .expect("verify");

    for selector in ["2", b.id.as_str(), b.name.as_str(), &b.id[..8]] {
        let info = repo.info(selector).await.expect("info");
        assert_eq!(info.manifest.id, b.id, "selector {selector}");
        assert!(info.manifest.entries.iter().any(|e| e.service == "files"));
    }
    let missing = repo.info("99").await.expect_err("no such bundle");
    assert_eq!(missing.kind(), ErrorKind::NotFound);

    repo.set_label("2", Some("before-x")).await.expect("label");
    let by_label = BundleFilter {
        label: Some("before-x".into()),
        ..BundleFilter::default()
    };
    let relabelled = repo.list(&by_label).await.expect("list");
    assert_eq!(relabelled.len(), 1);
    assert_eq!(relabelled[0].id, b.id);
    assert_eq!(
        repo.info(&b.id)
            .await
            .expect("info")
            .manifest
            .label
            .as_deref(),
        Some("v1.0"),
        "the bundle's manifest is immutable; the index label wins"
    );

    repo.lock_bundle(&b.id, None).await.expect("lock");
    let refused = repo.delete(&b.id).await.expect_err("locked");
    assert_eq!(refused.kind(), ErrorKind::PermissionDenied);
    assert!(refused.hint().unwrap_or("").contains("unlock"), "{refused}");
    repo.unlock_bundle(&b.id).await.expect("unlock");
    repo.delete(&b.id).await.expect("delete");
    repo.delete(&older.id).await.expect("delete");
    assert!(repo
        .list(&BundleFilter::default())
        .await
        .expect("list")
        .is_empty());
    let check = repo.check().await.expect("check");
    assert!(check.orphans.is_empty(), "{check:?}");
    if matches!(kind, Kind::S3sFs) {
        assert!(
            check.warnings[0].contains("cannot list incomplete multipart uploads"),
            "a server without ListMultipartUploads is reported, not an error: {check:?}"
        );
    } else {
        assert!(check.warnings.is_empty(), "{check:?}");
    }
    drop(backend);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_local() {
    round_trip(Kind::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_moto() {
    round_trip(Kind::Moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_s3s_fs() {
    round_trip(Kind::S3sFs).await;
}

/// `Storage::Store`: a store the host built (the path GCS and Azure take).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_host_built_store() {
    round_trip(Kind::Store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_without_repository_says_so_with_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Repository::open(backup_repository::Storage::Local(dir.path().join("none")))
        .await
        .expect_err("nothing there");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("no repository at"), "{err}");
    assert!(err.hint().is_some());
    let twice = Repository::init(backup_repository::Storage::Local(dir.path().join("r")))
        .await
        .map(|_| ());
    assert!(twice.is_ok());
    let again = Repository::init(backup_repository::Storage::Local(dir.path().join("r")))
        .await
        .expect_err("exists");
    assert_eq!(again.kind(), ErrorKind::AlreadyExists);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bucket_is_a_clear_error() {
    let backend = repo_support::backend(Kind::Moto);
    let err = Repository::init(storage_for(&backend, "no-such-bucket"))
        .await
        .expect_err("no bucket");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.hint().unwrap_or("").contains("bucket"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_permission_denied() {
    let backend = repo_support::backend(Kind::S3sFs);
    let mut storage = storage_for(&backend, "bkt");
    if let backup_repository::Storage::S3(o) = &mut storage {
        o.secret_access_key = Some("wrong".into());
    }
    let err = Repository::init(storage).await.expect_err("bad signature");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(!err.to_string().contains("wrong"), "secret never in errors");
}

/// A bundle written to S3 in several parts downloads whole, passes `unzip -t`, and its
/// data entry is byte-equal to what was written.
async fn s3_download_is_byte_equal(kind: Kind) {
    let (_backend, repo) = fresh(kind).await;
    let repo = repo.with_upload_options(backup_repository::UploadOptions {
        part_size: 5 * 1024 * 1024,
        max_in_flight: 2,
    });
    let len = 12 * 1024 * 1024 + 123;
    let info = write_bundle(&repo, Some("big"), BundleKind::Manual, "db", len, 42).await;
    let bytes = repo
        .object_store()
        .get(&repo.key(&format!("bundles/{}.backup.zip", info.name)))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(bytes.len() as u64, info.size);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("b.backup.zip");
    std::fs::write(&file, &bytes).expect("write");
    repo_support::unzip_test(&file);
    let names = std::process::Command::new("unzip")
        .arg("-Z1")
        .arg(&file)
        .output()
        .expect("unzip -Z1");
    let names = String::from_utf8_lossy(&names.stdout).to_string();
    let entry = names
        .lines()
        .find(|l| l.contains("data.bin"))
        .unwrap_or_else(|| panic!("data entry in {names}"));
    let decompress = if entry.ends_with(".zst") {
        " | zstd -dc"
    } else {
        ""
    };
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("unzip -p \"$0\" \"$1\"{decompress}"))
        .arg(&file)
        .arg(entry)
        .output()
        .expect("unzip -p");
    assert_eq!(
        out.stdout,
        backup_testkit::data::pseudo_random_bytes(len as usize, 42)
    );
    repo.verify(&info.id, &backup_core::progress::NoProgress)
        .await
        .expect("verify through ranged reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_download_is_byte_equal_moto() {
    s3_download_is_byte_equal(Kind::Moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_download_is_byte_equal_s3s_fs() {
    s3_download_is_byte_equal(Kind::S3sFs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_detects_a_flipped_byte() {
    let (backend, repo) = fresh(Kind::Local).await;
    let info = write_bundle(&repo, None, BundleKind::Manual, "db", 200_000, 7).await;
    let repo_support::Backend::Local(dir) = &backend else {
        unreachable!()
    };
    let file = dir
        .path()
        .join("repo/bundles")
        .join(format!("{}.backup.zip", info.name));
    let mut bytes = std::fs::read(&file).expect("read");
    bytes[100_000] ^= 0x40;
    std::fs::write(&file, &bytes).expect("write");
    let err = repo
        .verify(&info.id, &backup_core::progress::NoProgress)
        .await
        .expect_err("tampered");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
}
