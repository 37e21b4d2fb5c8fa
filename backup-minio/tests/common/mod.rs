//! Helpers shared by the S3 adapter's tests: clients, services, objects and digests on
//! real moto / s3s-fs servers.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use aws_sdk_s3::Client;
use backup_core::ServiceTarget;
use backup_testkit::s3_server::{S3Server, ACCESS_KEY, SECRET_KEY};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A bucket name unique in this process, made from `name`.
pub fn bucket_name(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let clean: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{clean}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// The config of a service on `server` over `buckets`, plus `extra` fields.
pub fn config(server: &S3Server, buckets: &[&str], extra: Value) -> Value {
    let mut config = json!({
        "endpoint": server.endpoint(),
        "accessKeyId": ACCESS_KEY,
        "secretAccessKey": SECRET_KEY,
        "buckets": buckets,
    });
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    config
}

/// A `s3` service named `name` on `server` over `buckets`.
pub fn service(name: &str, server: &S3Server, buckets: &[&str], extra: Value) -> ServiceTarget {
    ServiceTarget::local(name, backup_minio::RECIPE, config(server, buckets, extra))
}

/// A client for `server`, built the way the adapter builds its own.
pub fn client(server: &S3Server) -> Client {
    let config: backup_minio::S3Config =
        serde_json::from_value(config(server, &[], json!({}))).unwrap();
    backup_minio::client::client(&config)
}

/// Creates `bucket`, versioned or not.
pub async fn create_bucket(client: &Client, bucket: &str, versioned: bool) {
    client.create_bucket().bucket(bucket).send().await.unwrap();
    if versioned {
        client
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
}

/// Puts `body` at `key` with a content type, user metadata and tags derived from the key.
pub async fn put_rich(client: &Client, bucket: &str, key: &str, body: Vec<u8>) {
    let tag = hex::encode(&Sha256::digest(key.as_bytes())[..4]);
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .content_type("text/plain; charset=utf-8")
        .cache_control("max-age=60")
        .content_disposition("inline")
        .metadata("origin", "test suite")
        .metadata("key-hash", &tag)
        .tagging(format!("team=backup&hash={tag}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

/// Puts `body` at `key` without anything else; returns the version id.
pub async fn put_plain(client: &Client, bucket: &str, key: &str, body: Vec<u8>) -> Option<String> {
    let out = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    out.version_id().map(str::to_string)
}

/// Creates the unversioned bucket `bucket` holding `count` objects `{prefix}{i}` (`i`
/// zero-padded to `width`) of `size` pseudo-random bytes each (seed `i`).
pub async fn fill_bucket(
    client: &Client,
    bucket: &str,
    (prefix, width): (&str, usize),
    count: u64,
    size: usize,
) {
    create_bucket(client, bucket, false).await;
    for i in 0..count {
        put_plain(
            client,
            bucket,
            &format!("{prefix}{i:0width$}"),
            bytes(i, size),
        )
        .await;
    }
}

/// Deterministic bytes: `len` bytes seeded by `seed`.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Every key of `bucket`, sorted.
pub async fn keys(client: &Client, bucket: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
    }
    keys
}

/// One object as a restore must reproduce it: bytes (as sha256), size and metadata.
pub async fn object_view(client: &Client, bucket: &str, key: &str, version: Option<&str>) -> Value {
    let got = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_string))
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
    let tags: BTreeMap<String, String> = client
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_string))
        .send()
        .await
        .map(|t| {
            t.tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let meta: BTreeMap<String, String> = got
        .metadata()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let view = json!({
        "key": key,
        "size": got.content_length(),
        "contentType": got.content_type(),
        "cacheControl": got.cache_control(),
        "contentDisposition": got.content_disposition(),
        "contentEncoding": got.content_encoding(),
        "contentLanguage": got.content_language(),
        "metadata": meta,
        "tags": tags,
    });
    let mut body = got.body;
    let mut sha = Sha256::new();
    while let Some(chunk) = body.next().await {
        sha.update(chunk.unwrap());
    }
    let mut view = view;
    view["sha256"] = hex::encode(sha.finalize()).into();
    view
}

/// A digest of the latest view of `bucket`: every key with its bytes and metadata.
pub async fn bucket_digest(client: &Client, bucket: &str) -> String {
    let mut sha = Sha256::new();
    for key in keys(client, bucket).await {
        let view = object_view(client, bucket, &key, None).await;
        sha.update(view.to_string().as_bytes());
        sha.update(b"\n");
    }
    hex::encode(sha.finalize())
}

/// Every version of every key, oldest first per key by time (write versions a second
/// apart: timestamps may have one-second resolution): (key, is delete marker, sha256 or
/// "", version id).
pub async fn version_history(client: &Client, bucket: &str) -> Vec<(String, bool, String, String)> {
    let out = client
        .list_object_versions()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    assert_ne!(out.is_truncated(), Some(true), "test buckets fit one page");
    // (key, time, delete marker, version id, rank in its listing)
    type Listed = (String, (i64, u32), bool, Option<String>, usize);
    let mut all: Vec<Listed> = Vec::new();
    for (rank, v) in out.versions().iter().enumerate() {
        let t = v
            .last_modified()
            .map(|t| (t.secs(), t.subsec_nanos()))
            .unwrap_or((0, 0));
        all.push((
            v.key().unwrap().to_string(),
            t,
            false,
            v.version_id().map(str::to_string),
            rank,
        ));
    }
    for (rank, m) in out.delete_markers().iter().enumerate() {
        let t = m
            .last_modified()
            .map(|t| (t.secs(), t.subsec_nanos()))
            .unwrap_or((0, 0));
        all.push((
            m.key().unwrap().to_string(),
            t,
            true,
            m.version_id().map(str::to_string),
            rank,
        ));
    }
    all.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(b.4.cmp(&a.4)));
    let mut history = Vec::new();
    for (key, _, marker, version, _) in all {
        let sha = if marker {
            String::new()
        } else {
            object_view(client, bucket, &key, version.as_deref()).await["sha256"]
                .as_str()
                .unwrap()
                .to_string()
        };
        history.push((key, marker, sha, version.unwrap_or_default()));
    }
    history
}

/// Multipart uploads still open in `bucket`.
pub async fn open_uploads(client: &Client, bucket: &str) -> usize {
    let out = client
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    out.uploads().len()
}

/// Backs `source` up into a bundle at `path` with the adapter's exporter.
pub async fn backup(source: &ServiceTarget, path: &std::path::Path) -> backup_core::Result<()> {
    use backup_core::backup::{write_bundle, ServiceExport};
    let services = [ServiceExport {
        target: source.clone(),
        exporter: std::sync::Arc::new(backup_minio::S3Exporter),
    }];
    write_bundle(
        path,
        backup_core::bundle::BundleOptions::default(),
        None,
        &services,
        &backup_core::progress::NoProgress,
    )
    .await?;
    Ok(())
}

/// Restores the bundle at `path` (service `source_name`) into `target`; returns the
/// importer's reports.
pub async fn restore(
    path: &std::path::Path,
    source_name: &str,
    target: &ServiceTarget,
    force: bool,
) -> backup_core::Result<Vec<backup_minio::ImportReport>> {
    use backup_core::DataImporter;
    let importer = backup_minio::S3Importer::new();
    let reader = backup_core::BundleReader::open(path).await?;
    reader.verify(&backup_core::progress::NoProgress).await?;
    let entries: Vec<_> = reader
        .manifest()
        .entries
        .iter()
        .filter(|e| e.service == source_name)
        .cloned()
        .collect();
    let artifacts: Vec<_> = entries.iter().map(|e| e.artifact.clone()).collect();
    let mode = backup_core::ImportMode { force };
    importer.check(target, &artifacts, mode).await?;
    backup_core::restore::restore_service_data(
        &reader,
        target,
        &importer,
        &entries,
        mode,
        true,
        &backup_core::progress::NoProgress,
    )
    .await?;
    Ok(importer.reports())
}

/// `source`'s first artifact and its export stream.
pub async fn export_stream(
    source: &ServiceTarget,
) -> (backup_core::ArtifactDescriptor, backup_core::ByteStream) {
    use backup_core::DataExporter;
    let artifact = backup_minio::S3Exporter
        .artifacts(source)
        .await
        .unwrap()
        .remove(0);
    let export = backup_minio::S3Exporter
        .export(source, &artifact)
        .await
        .unwrap()
        .stream;
    (artifact, export)
}

/// The export of `source`'s first artifact, cut off like a dropped connection after the
/// first chunks holding about `limit` bytes.
pub async fn export_cut_off(
    source: &ServiceTarget,
    limit: usize,
) -> (backup_core::ArtifactDescriptor, backup_core::ByteStream) {
    use futures::StreamExt;
    let (artifact, mut export) = export_stream(source).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    tokio::spawn(async move {
        let mut sent = 0usize;
        while let Some(chunk) = export.next().await {
            let chunk = chunk.unwrap();
            sent += chunk.len();
            if sent > limit {
                break;
            }
            if tx.send(Ok(chunk)).await.is_err() {
                return;
            }
        }
        let _ = tx
            .send(Err(std::io::Error::other("connection reset")))
            .await;
    });
    let cut: backup_core::ByteStream = Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    (artifact, cut)
}
