//! Data-directory mode (`minio-data`): the server's data directory through the core
//! directory adapter; a server started on the restored directory serves the same objects.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use backup_core::{ImportMode, ServiceTarget};
use backup_testkit::s3_server::{S3Server, ACCESS_KEY, SECRET_KEY};
use serde_json::json;

/// An s3s-fs process over a directory we own, killed on drop.
struct Extra(Child);

impl Drop for Extra {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn s3s_fs_over(dir: &std::path::Path) -> (Extra, String) {
    let home = std::env::var("HOME")
        .map(|h| format!("{h}/.cargo/bin"))
        .unwrap_or_default();
    let binary = backup_testkit::ports::require_binary("s3s-fs", &[&home]);
    let port = backup_testkit::ports::free_port();
    let child = Command::new(binary)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let extra = Extra(child);
    for _ in 0..600 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (extra, format!("http://127.0.0.1:{port}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("s3s-fs over the restored directory did not start within 60 s");
}

#[tokio::test]
async fn data_directory_mode_restores_a_directory_a_server_serves_again() {
    let server = S3Server::s3s_fs();
    let client = common::client(&server);
    server.create_bucket("media");
    for i in 0..10u64 {
        common::put_plain(
            &client,
            "media",
            &format!("img/{i}.bin"),
            common::bytes(i, 5000),
        )
        .await;
    }
    let recipe = backup_minio::data_dir_recipe().unwrap();
    let source = ServiceTarget::local(
        "m",
        backup_minio::MINIO_DATA,
        json!({"path": server.root()}),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.backup.zip");
    let services = [backup_core::backup::ServiceExport {
        target: source,
        exporter: Arc::clone(recipe.exporter().unwrap()),
    }];
    backup_core::backup::write_bundle(
        &path,
        backup_core::bundle::BundleOptions::default(),
        None,
        &services,
        &backup_core::progress::NoProgress,
    )
    .await
    .unwrap();

    let restored = dir.path().join("restored");
    std::fs::create_dir(&restored).unwrap();
    let target = ServiceTarget::local("m2", backup_minio::MINIO_DATA, json!({"path": restored}));
    let reader = backup_core::BundleReader::open(&path).await.unwrap();
    let entries = reader.manifest().entries.clone();
    let importer = recipe.importer().unwrap();
    let artifacts: Vec<_> = entries.iter().map(|e| e.artifact.clone()).collect();
    importer
        .check(&target, &artifacts, ImportMode::default())
        .await
        .unwrap();
    backup_core::restore::restore_service_data(
        &reader,
        &target,
        importer.as_ref(),
        &entries,
        ImportMode::default(),
        true,
        &backup_core::progress::NoProgress,
    )
    .await
    .unwrap();

    let (_extra, endpoint) = s3s_fs_over(&restored);
    let config: backup_minio::S3Config = serde_json::from_value(json!({"endpoint": endpoint,
        "accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY}))
    .unwrap();
    let again = backup_minio::client::client(&config);
    assert_eq!(
        common::keys(&again, "media").await,
        common::keys(&client, "media").await
    );
    for key in common::keys(&client, "media").await {
        let a = common::object_view(&client, "media", &key, None).await;
        let b = common::object_view(&again, "media", &key, None).await;
        assert_eq!(a["sha256"], b["sha256"], "{key}");
    }
}
