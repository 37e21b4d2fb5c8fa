//! Export options on a real moto server: every bucket when none is listed, a key prefix,
//! and no secret in the bundle's manifest.

#![allow(clippy::unwrap_used)]

mod common;

use backup_core::DataExporter;
use backup_testkit::s3_server::{S3Server, SECRET_KEY};
use serde_json::json;

#[tokio::test]
async fn every_bucket_is_exported_when_none_is_listed() {
    let server = S3Server::moto();
    let client = common::client(&server);
    for bucket in ["alpha-one", "beta-two"] {
        common::create_bucket(&client, bucket, false).await;
    }
    let mut config = common::config(&server, &[], json!({}));
    config.as_object_mut().unwrap().remove("buckets");
    let service = backup_core::ServiceTarget::local("s3", backup_minio::RECIPE, config);
    let artifacts = backup_minio::S3Exporter.artifacts(&service).await.unwrap();
    let names: Vec<_> = artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["alpha-one.tar", "beta-two.tar"]);
    assert!(artifacts
        .iter()
        .all(|a| a.metadata.contains_key("settings")));
}

#[tokio::test]
async fn only_keys_under_the_prefix_are_exported_and_no_secret_reaches_the_manifest() {
    let server = S3Server::moto();
    let client = common::client(&server);
    let source = common::bucket_name("prefixed");
    common::create_bucket(&client, &source, false).await;
    for key in ["logs/1", "logs/2", "media/a.png", "logsx"] {
        common::put_rich(&client, &source, key, key.as_bytes().to_vec()).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.backup.zip");
    let src = common::service("src", &server, &[&source], json!({"prefix": "logs/"}));
    common::backup(&src, &path).await.unwrap();
    let manifest = backup_core::BundleReader::open(&path).await.unwrap();
    let text = serde_json::to_string(manifest.manifest()).unwrap();
    assert!(!text.contains(SECRET_KEY), "a secret reached the manifest");
    assert!(text.contains("\"prefix\":\"logs/\""), "{text}");

    let target = common::bucket_name("prefixed-restored");
    let dst = common::service("dst", &server, &[&target], json!({}));
    common::restore(&path, "src", &dst, false).await.unwrap();
    assert_eq!(common::keys(&client, &target).await, ["logs/1", "logs/2"]);
}
