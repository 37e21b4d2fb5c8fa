//! The `objectTags` modes on real servers: `advertised` (the default) asks for tags only
//! where GetObject advertised a count (after a sample of each bucket's first objects),
//! `always` asks for every object's; both round-trip every tag on moto, and s3s-fs (no
//! tagging at all) exports with empty tags. The export's metadata counts the tag requests.

#![allow(clippy::unwrap_used)]

mod common;

use backup_core::{ErrorKind, ServiceTarget};
use backup_minio::tags::TAG_SAMPLE;
use backup_testkit::s3_server::S3Server;
use serde_json::{json, Map, Value};

/// Fills a fresh bucket with `count` small objects `obj/NN`; those `tagged` picks carry
/// tags and metadata, the others nothing. Returns the bucket.
async fn fill(server: &S3Server, count: u64, tagged: impl Fn(u64) -> bool) -> String {
    let client = common::client(server);
    let bucket = common::bucket_name("tags");
    common::create_bucket(&client, &bucket, false).await;
    for i in 0..count {
        let (key, body) = (format!("obj/{i:02}"), common::bytes(i, 100 + i as usize));
        if tagged(i) {
            common::put_rich(&client, &bucket, &key, body).await;
        } else {
            common::put_plain(&client, &bucket, &key, body).await;
        }
    }
    bucket
}

/// Backs `bucket` up with `extra` config, restores it into a fresh bucket, asserts the
/// restored bucket equals the source (bytes, metadata and tags); returns the artifact's
/// metadata.
async fn round_trip(server: &S3Server, bucket: &str, extra: Value) -> Map<String, Value> {
    let client = common::client(server);
    let before = common::bucket_digest(&client, bucket).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.backup.zip");
    common::backup(&common::service("src", server, &[bucket], extra), &path)
        .await
        .unwrap();
    let fresh = common::bucket_name("tags-restored");
    let dst = common::service("dst", server, &[&fresh], json!({}));
    common::restore(&path, "src", &dst, false).await.unwrap();
    assert_eq!(common::bucket_digest(&client, &fresh).await, before);
    artifact_metadata(&path).await
}

async fn artifact_metadata(path: &std::path::Path) -> Map<String, Value> {
    let reader = backup_core::BundleReader::open(path).await.unwrap();
    reader.manifest().entries[0].artifact.metadata.clone()
}

/// Objects carrying tags among `count` whose index is at least `from`.
fn tagged_from(count: u64, from: u64, tagged: impl Fn(u64) -> bool) -> u64 {
    (from..count).filter(|i| tagged(*i)).count() as u64
}

#[tokio::test]
async fn advertised_mode_round_trips_tagged_and_untagged_objects() {
    let server = S3Server::moto();
    let every_third = |i: u64| i.is_multiple_of(3);
    let bucket = fill(&server, 24, every_third).await;
    let meta = round_trip(&server, &bucket, json!({})).await;
    // The sample, then only the objects whose GET advertised tags.
    let expected = TAG_SAMPLE as u64 + tagged_from(24, TAG_SAMPLE as u64, every_third);
    assert_eq!(meta["tagRequests"], expected);
    assert!(!meta.contains_key("warnings"), "{meta:?}");
}

#[tokio::test]
async fn tags_only_beyond_the_sample_still_round_trip_by_the_advertised_count() {
    let server = S3Server::moto();
    let late = |i: u64| i >= 12;
    let bucket = fill(&server, 20, late).await;
    let meta = round_trip(&server, &bucket, json!({"objectTags": "advertised"})).await;
    assert_eq!(meta["tagRequests"], TAG_SAMPLE as u64 + 8);
    assert!(!meta.contains_key("warnings"), "{meta:?}");
}

#[tokio::test]
async fn always_mode_asks_every_object_for_its_tags() {
    let server = S3Server::moto();
    let bucket = fill(&server, 14, |i| i % 4 == 1).await;
    let meta = round_trip(&server, &bucket, json!({"objectTags": "always"})).await;
    assert_eq!(meta["tagRequests"], 14);
    assert!(!meta.contains_key("warnings"), "{meta:?}");
}

#[tokio::test]
async fn a_server_without_tagging_exports_empty_tags_without_error() {
    let server = S3Server::s3s_fs();
    let client = common::client(&server);
    server.create_bucket("untagged");
    for i in 0..12u64 {
        let key = format!("obj/{i:02}");
        common::put_plain(&client, "untagged", &key, common::bytes(i, 300)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.backup.zip");
    let src = common::service("src", &server, &["untagged"], json!({}));
    common::backup(&src, &path).await.unwrap();
    let meta = artifact_metadata(&path).await;
    assert_eq!(meta["records"], 12);
    // Only the sample asked (and was told tagging is not implemented).
    assert_eq!(meta["tagRequests"], TAG_SAMPLE as u64);
    let dst = common::service("dst", &server, &["untagged-restored"], json!({}));
    common::restore(&path, "src", &dst, false).await.unwrap();
    for key in common::keys(&client, "untagged").await {
        let a = common::object_view(&client, "untagged", &key, None).await;
        let b = common::object_view(&client, "untagged-restored", &key, None).await;
        assert_eq!(a["sha256"], b["sha256"], "{key}");
        assert_eq!(b["tags"], json!({}), "{key}");
    }
}

fn parse(object_tags: Value) -> backup_core::Result<backup_minio::S3Config> {
    let config = json!({"endpoint": "http://127.0.0.1:9", "accessKeyId": "id",
        "secretAccessKey": "secret", "objectTags": object_tags});
    backup_minio::S3Config::from_service(&ServiceTarget::local("s3", backup_minio::RECIPE, config))
}

#[test]
fn an_unknown_object_tags_mode_is_rejected_naming_the_modes() {
    use backup_minio::config::ObjectTags;
    assert_eq!(
        parse(json!("always")).unwrap().object_tags,
        ObjectTags::Always
    );
    assert_eq!(
        parse(json!("advertised")).unwrap().object_tags,
        ObjectTags::Advertised
    );
    let err = parse(json!("sometimes")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    let text = err.to_string();
    assert!(
        text.contains("sometimes") && text.contains("advertised") && text.contains("always"),
        "{text}"
    );
    let recipe = backup_minio::recipe().unwrap();
    let config = json!({"endpoint": "http://127.0.0.1:9", "accessKeyId": "id",
        "secretAccessKey": "secret", "objectTags": "sometimes"});
    assert!(recipe.validate_config(&config).is_err());
    let schema = backup_minio::config::config_schema();
    assert_eq!(
        schema["properties"]["objectTags"]["enum"],
        json!(["advertised", "always"])
    );
}
