//! Round trips on a real moto server: many objects with odd keys and a 200 MiB object,
//! a versioned bucket's whole history, and `force`.

#![allow(clippy::unwrap_used)]

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use backup_core::ErrorKind;
use backup_testkit::s3_server::S3Server;
use futures::StreamExt;
use serde_json::json;

/// Uploads a `parts` × `part_mib` MiB object generated part by part (never whole in memory).
async fn put_generated(client: &Client, bucket: &str, key: &str, parts: i32, part_mib: usize) {
    let up = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .content_type("application/octet-stream")
        .metadata("kind", "generated")
        .tagging("size=big")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let mut done = Vec::new();
    for n in 1..=parts {
        let body = common::bytes(n as u64, part_mib * 1024 * 1024);
        let out = client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    let completed = client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await;
    // moto 5 answers with an XML root the SDK does not expect; a 2xx is success.
    if let Err(e) = completed {
        assert!(
            backup_minio::client::unparsed_success(&e).is_some(),
            "{e:?}"
        );
    }
}

const ODD_KEYS: &[&str] = &[
    "ünïcødé/ファイル.txt",
    "with space/and more spaces.txt",
    "plus+sign+key",
    "percent%20literal%2F",
    "folder/",
    "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/deep.txt",
    "../escape",
    "/leading-slash",
    "dup//slashes",
    "file",
    "file.txt",
    "file/under-a-file",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_objects_odd_keys_and_a_200_mib_object_round_trip_with_metadata_and_tags() {
    let server = S3Server::moto();
    let client = common::client(&server);
    let source = common::bucket_name("src");
    common::create_bucket(&client, &source, false).await;
    futures::stream::iter(0..1000u64)
        .map(|i| {
            let (client, source) = (client.clone(), source.clone());
            async move {
                let key = format!("small/{:02}/obj-{i:04}", i % 17);
                common::put_rich(
                    &client,
                    &source,
                    &key,
                    common::bytes(i, (i as usize * 13) % 3000 + 1),
                )
                .await
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    common::put_rich(&client, &source, "empty-object", Vec::new()).await;
    for (i, key) in ODD_KEYS.iter().enumerate() {
        common::put_rich(&client, &source, key, common::bytes(5000 + i as u64, 64)).await;
    }
    put_generated(&client, &source, "big/blob.bin", 13, 16).await; // 208 MiB
    let before = common::bucket_digest(&client, &source).await;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.backup.zip");
    let src = common::service("src", &server, &[&source], json!({}));
    common::backup(&src, &path).await.unwrap();

    let fresh = common::bucket_name("fresh");
    let dst = common::service("dst", &server, &[&fresh], json!({}));
    let reports = common::restore(&path, "src", &dst, false).await.unwrap();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].created_bucket, "the missing bucket was created");
    assert_eq!(reports[0].objects, 1000 + 1 + ODD_KEYS.len() as u64 + 1);
    assert_eq!(common::bucket_digest(&client, &fresh).await, before);
    assert_eq!(common::open_uploads(&client, &fresh).await, 0);
}

/// Overwrites and delete markers on one key, with time between (moto's timestamps have
/// one-second resolution).
async fn step() {
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
}

#[tokio::test]
async fn versioned_bucket_replays_every_version_and_delete_marker_in_order() {
    let server = S3Server::moto();
    let client = common::client(&server);
    let source = common::bucket_name("ver");
    common::create_bucket(&client, &source, true).await;
    let mut old_ids = Vec::new();
    old_ids.push(common::put_plain(&client, &source, "doc", b"v1".to_vec()).await);
    common::put_plain(&client, &source, "kept", b"k1".to_vec()).await;
    step().await;
    old_ids.push(common::put_plain(&client, &source, "doc", b"v2".to_vec()).await);
    common::put_plain(&client, &source, "gone", b"g1".to_vec()).await;
    step().await;
    client
        .delete_object()
        .bucket(&source)
        .key("gone")
        .send()
        .await
        .unwrap();
    client
        .delete_object()
        .bucket(&source)
        .key("doc")
        .send()
        .await
        .unwrap();
    step().await;
    old_ids.push(common::put_plain(&client, &source, "doc", b"v3".to_vec()).await);
    let history = common::version_history(&client, &source).await;
    let latest = common::bucket_digest(&client, &source).await;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.backup.zip");
    let src = common::service("src", &server, &[&source], json!({"versions": "all"}));
    common::backup(&src, &path).await.unwrap();
    let target = common::bucket_name("ver-restored");
    let dst = common::service("dst", &server, &[&target], json!({}));
    let reports = common::restore(&path, "src", &dst, false).await.unwrap();

    // Replayed in the source's order, oldest first, each version with its own bytes.
    let report = &reports[0];
    assert_eq!(report.delete_markers, 2);
    let replayed: Vec<(String, bool, String)> = report
        .versions
        .iter()
        .map(|v| (v.key.clone(), v.delete_marker, v.old.clone()))
        .collect();
    let expected: Vec<(String, bool, String)> = history
        .iter()
        .map(|(key, marker, _, version)| (key.clone(), *marker, version.clone()))
        .collect();
    assert_eq!(
        replayed, expected,
        "versions replayed oldest first, markers included"
    );
    let doc_versions: Vec<_> = history
        .iter()
        .filter(|h| h.0 == "doc" && !h.1)
        .map(|h| Some(h.3.clone()))
        .collect();
    assert_eq!(doc_versions, old_ids);
    for mapping in &report.versions {
        let new = mapping.new.clone().unwrap();
        assert_ne!(new, mapping.old);
        if !mapping.delete_marker {
            let a = common::object_view(&client, &source, &mapping.key, Some(&mapping.old)).await;
            let b = common::object_view(&client, &target, &mapping.key, Some(&new)).await;
            assert_eq!(a, b, "version {} of {}", mapping.old, mapping.key);
        }
    }
    let target_history = common::version_history(&client, &target).await;
    assert_eq!(target_history.len(), history.len());
    assert_eq!(common::bucket_digest(&client, &target).await, latest);
}

#[tokio::test]
async fn existing_keys_are_replaced_only_with_force() {
    let server = S3Server::moto();
    let client = common::client(&server);
    let source = common::bucket_name("force-src");
    common::create_bucket(&client, &source, false).await;
    common::put_rich(&client, &source, "a.txt", b"new".to_vec()).await;
    let target = common::bucket_name("force-dst");
    common::create_bucket(&client, &target, false).await;
    common::put_rich(&client, &target, "a.txt", b"old".to_vec()).await;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.backup.zip");
    common::backup(
        &common::service("src", &server, &[&source], json!({})),
        &path,
    )
    .await
    .unwrap();
    let dst = common::service("dst", &server, &[&target], json!({}));
    let before = common::bucket_digest(&client, &target).await;
    let err = common::restore(&path, "src", &dst, false)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert!(err.hint().unwrap_or_default().contains("force"));
    assert_eq!(common::bucket_digest(&client, &target).await, before);
    common::restore(&path, "src", &dst, true).await.unwrap();
    assert_eq!(
        common::bucket_digest(&client, &target).await,
        common::bucket_digest(&client, &source).await
    );
}
