//! Failures a user meets, on real servers: wrong credentials (s3s-fs checks signatures),
//! an unreachable endpoint, a server that dies mid-export, an import cut off midway.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Mutex;

use backup_core::{DataExporter, DataImporter, ErrorKind, ImportMode, ProgressEvent};
use backup_testkit::s3_server::S3Server;
use serde_json::json;

fn files_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn wrong_credentials_fail_clearly_and_leave_no_bundle() {
    let server = S3Server::s3s_fs();
    server.create_bucket("photos");
    let secret = "not-the-right-secret-0123";
    let service = common::service(
        "s3",
        &server,
        &["photos"],
        json!({ "secretAccessKey": secret }),
    );
    let dir = tempfile::tempdir().unwrap();
    let err = common::backup(&service, &dir.path().join("x.backup.zip"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(
        err.hint().unwrap_or_default().contains("secretAccessKey"),
        "{err}"
    );
    assert!(
        !format!("{err} {err:?}").contains(secret),
        "the secret leaked: {err}"
    );
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[tokio::test]
async fn signed_requests_round_trip_on_s3s_fs() {
    let server = S3Server::s3s_fs();
    let client = common::client(&server);
    server.create_bucket("site");
    for i in 0..20u64 {
        let key = format!("pages/{i}.html");
        client
            .put_object()
            .bucket("site")
            .key(&key)
            .content_type("text/html")
            .metadata("page", i.to_string())
            .body(common::bytes(i, 2000 + i as usize).into())
            .send()
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.backup.zip");
    common::backup(
        &common::service("src", &server, &["site"], json!({})),
        &path,
    )
    .await
    .unwrap();
    let dst = common::service("dst", &server, &["site-restored"], json!({}));
    common::restore(&path, "src", &dst, false).await.unwrap();
    assert_eq!(
        common::keys(&client, "site-restored").await,
        common::keys(&client, "site").await
    );
    for key in common::keys(&client, "site").await {
        let a = common::object_view(&client, "site", &key, None).await;
        let b = common::object_view(&client, "site-restored", &key, None).await;
        assert_eq!(a["sha256"], b["sha256"], "{key}");
        assert_eq!(a["metadata"], b["metadata"], "{key}");
        assert_eq!(a["contentType"], b["contentType"], "{key}");
    }
}

#[tokio::test]
async fn unreachable_endpoint_and_missing_bucket_have_hints() {
    let port = backup_testkit::ports::free_port();
    let service = backup_core::ServiceTarget::local(
        "s3",
        backup_minio::RECIPE,
        json!({"endpoint": format!("http://127.0.0.1:{port}"), "accessKeyId": "a",
               "secretAccessKey": "b", "buckets": ["x-bucket"]}),
    );
    let err = backup_minio::S3Exporter
        .artifacts(&service)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.hint().unwrap_or_default().contains("endpoint"), "{err}");

    let server = S3Server::moto();
    let missing = common::service("s3", &server, &["missing-bucket"], json!({}));
    let err = backup_minio::S3Exporter
        .artifacts(&missing)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.hint().unwrap_or_default().contains("bucket"), "{err}");
}

/// Kills the server it holds at the first bytes of the bundle.
struct KillOnFirstBytes(Mutex<Option<S3Server>>);

impl backup_core::ProgressSink for KillOnFirstBytes {
    fn event(&self, event: &ProgressEvent) {
        if matches!(event, ProgressEvent::BytesTransferred { .. }) {
            drop(self.0.lock().unwrap().take());
        }
    }
}

#[tokio::test]
async fn server_killed_mid_export_fails_and_leaves_no_bundle() {
    let server = S3Server::moto();
    let client = common::client(&server);
    let bucket = common::bucket_name("doomed");
    common::fill_bucket(&client, &bucket, ("f", 2), 12, 3 << 20).await;
    let service = common::service("s3", &server, &[&bucket], json!({}));
    let exporter = std::sync::Arc::new(backup_minio::S3Exporter);
    let services = [backup_core::backup::ServiceExport {
        target: service,
        exporter,
    }];
    let dir = tempfile::tempdir().unwrap();
    let killer = KillOnFirstBytes(Mutex::new(Some(server)));
    let result = backup_core::backup::write_bundle(
        &dir.path().join("k.backup.zip"),
        backup_core::bundle::BundleOptions::default(),
        None,
        &services,
        &killer,
    )
    .await;
    assert!(
        killer.0.lock().unwrap().is_none(),
        "the server was never killed"
    );
    let err = result.unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Unavailable | ErrorKind::Integrity | ErrorKind::Io
        ),
        "{err}"
    );
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_cut_off_midway_aborts_its_upload_removes_its_objects_and_fails() {
    let server = S3Server::moto();
    let client = common::client(&server);
    let source = common::bucket_name("cut-src");
    common::fill_bucket(&client, &source, ("a", 1), 5, 1000).await;
    common::put_plain(&client, &source, "b-big", common::bytes(9, 40 << 20)).await;
    let src = common::service("src", &server, &[&source], json!({}));
    // Forward the first 30 MiB (into the big object's parts), then fail like a dropped
    // connection.
    let (artifact, cut) = common::export_cut_off(&src, 30 << 20).await;
    let target = common::bucket_name("cut-dst");
    common::create_bucket(&client, &target, false).await;
    // Nothing staged: the 40 MiB object goes up in parts (staging has its own test).
    let dst = common::service("dst", &server, &[&target], json!({"singlePutCutoffMib": 0}));
    let importer = backup_minio::S3Importer::new();
    let err = importer
        .import(&dst, &artifact, cut, ImportMode::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cut-src"), "{err}");
    assert_eq!(
        common::open_uploads(&client, &target).await,
        0,
        "a multipart upload was left open"
    );
    assert!(
        common::keys(&client, &target).await.is_empty(),
        "the failed import left objects"
    );
}
