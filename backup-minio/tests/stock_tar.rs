//! The `s3/tar` artifact is a tar that stock GNU tar extracts: safe keys as files under
//! `objects/`, the others under `encoded/` with their real key in the record.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;

use backup_core::DataExporter;
use backup_testkit::s3_server::S3Server;
use futures::StreamExt;
use serde_json::{json, Value};

#[tokio::test]
async fn stock_tar_extracts_objects_and_records_hold_the_real_keys() {
    let server = S3Server::moto();
    let client = common::client(&server);
    let bucket = common::bucket_name("tar");
    common::create_bucket(&client, &bucket, false).await;
    let keys = [
        "dir/x.txt",
        "file",
        "file.txt",
        "file/under-a-file",
        "folder/",
        "../escape",
        "sp ace/ünï+%.txt",
    ];
    for (i, key) in keys.iter().enumerate() {
        common::put_rich(
            &client,
            &bucket,
            key,
            format!("body of {key} {i}").into_bytes(),
        )
        .await;
    }
    let service = common::service("s3", &server, &[&bucket], json!({}));
    let artifact = backup_minio::S3Exporter
        .artifacts(&service)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(artifact.name, format!("{bucket}.tar"));
    assert_eq!(artifact.format, "s3/tar");
    let mut stream = backup_minio::S3Exporter
        .export(&service, &artifact)
        .await
        .unwrap()
        .stream;
    let dir = tempfile::tempdir().unwrap();
    let tar_path = dir.path().join("b.tar");
    let mut file = std::fs::File::create(&tar_path).unwrap();
    while let Some(chunk) = stream.next().await {
        file.write_all(&chunk.unwrap()).unwrap();
    }
    drop(file);
    let out = dir.path().join("x");
    std::fs::create_dir(&out).unwrap();
    let status = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&tar_path)
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "stock tar failed");
    for (i, key) in keys.iter().enumerate() {
        let expected = format!("body of {key} {i}");
        let plain = out.join("objects").join(key);
        if ["file/under-a-file", "folder/", "../escape"].contains(key) {
            continue;
        }
        assert_eq!(std::fs::read_to_string(&plain).unwrap(), expected, "{key}");
    }
    let mut encoded = Vec::new();
    for entry in std::fs::read_dir(out.join("meta")).unwrap() {
        let record: Value =
            serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
        let path = record["path"].as_str().unwrap();
        let key = record["key"].as_str().unwrap();
        let body = std::fs::read_to_string(out.join(path)).unwrap();
        assert!(
            body.starts_with(&format!("body of {key} ")),
            "{key} at {path}"
        );
        assert_eq!(record["contentType"], "text/plain; charset=utf-8");
        assert_eq!(record["metadata"]["origin"], "test suite");
        assert_eq!(record["tags"]["team"], "backup");
        assert!(record["etag"].is_string() && record["lastModified"].is_string());
        if path.starts_with("encoded/") {
            encoded.push(key.to_string());
        }
    }
    encoded.sort();
    assert_eq!(encoded, ["../escape", "file/under-a-file", "folder/"]);
    let head: Value =
        serde_json::from_slice(&std::fs::read(out.join("s3-backup.json")).unwrap()).unwrap();
    assert_eq!(head["bucket"], bucket.as_str());
    let end: Value = serde_json::from_slice(&std::fs::read(out.join("end.json")).unwrap()).unwrap();
    assert_eq!(end["records"], keys.len());
}
