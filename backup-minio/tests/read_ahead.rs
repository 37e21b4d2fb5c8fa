//! The export fetches small objects ahead while it writes earlier ones: the archive still
//! lists every object in key order with its own bytes, and a prefetched object that
//! cannot be read fails the export with no bundle left behind.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;

use backup_testkit::s3_server::S3Server;
use futures::StreamExt;
use serde_json::json;

/// Sizes that make fetches finish out of order: tiny, near the 1 MiB read-ahead limit,
/// and above it (streamed when their turn comes).
fn size_of(i: usize) -> usize {
    match i % 5 {
        0 => 900 << 10,
        3 => (3 << 20) / 2,
        _ => i,
    }
}

/// Exports `service`'s only bucket to `path`.
async fn export_to(service: &backup_core::ServiceTarget, path: &std::path::Path) {
    let (_, mut stream) = common::export_stream(service).await;
    let mut file = std::fs::File::create(path).unwrap();
    while let Some(chunk) = stream.next().await {
        file.write_all(&chunk.unwrap()).unwrap();
    }
}

fn tar(args: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new("tar")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "tar {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_ahead_keeps_key_order_and_each_objects_bytes() {
    let server = S3Server::moto();
    let client = common::client(&server);
    let bucket = common::bucket_name("ahead");
    common::create_bucket(&client, &bucket, false).await;
    let keys: Vec<String> = (0..40).map(|i| format!("k{i:02}")).collect();
    // Stored newest key first, so storage order is not key order.
    for (i, key) in keys.iter().enumerate().rev() {
        common::put_plain(&client, &bucket, key, common::bytes(i as u64, size_of(i))).await;
    }
    let service = common::service("s3", &server, &[&bucket], json!({"concurrency": 4}));
    let dir = tempfile::tempdir().unwrap();
    let tar_path = dir.path().join("b.tar");
    export_to(&service, &tar_path).await;

    let listed = tar(&["-tf".as_ref(), tar_path.as_os_str()]);
    let objects: Vec<&str> = listed
        .lines()
        .filter_map(|name| name.strip_prefix("objects/"))
        .collect();
    assert_eq!(objects, keys, "objects out of key order");
    let metas = listed.lines().filter(|n| n.starts_with("meta/")).count();
    assert_eq!(metas, keys.len());

    tar(&[
        "-xf".as_ref(),
        tar_path.as_os_str(),
        "-C".as_ref(),
        dir.path().as_os_str(),
    ]);
    for (i, key) in keys.iter().enumerate() {
        let got = std::fs::read(dir.path().join("objects").join(key)).unwrap();
        assert!(
            got == common::bytes(i as u64, size_of(i)),
            "`{key}` holds another object's bytes"
        );
    }
}

/// URL-safe base64 without padding, as s3s-fs names its per-object files.
fn base64_url(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefetched_object_that_fails_fails_the_export_and_leaves_no_bundle() {
    let server = S3Server::s3s_fs();
    let bucket = common::bucket_name("ahead-fail");
    server.create_bucket(&bucket);
    let client = common::client(&server);
    for i in 0..20u64 {
        common::put_plain(
            &client,
            &bucket,
            &format!("k{i:02}"),
            common::bytes(i, 2048),
        )
        .await;
    }
    // s3s-fs reads this file on every GET of `k09`: garbage there makes the GET fail
    // while the listing still shows the object. `k09` is small and well within the
    // read-ahead, so it is fetched ahead of its turn.
    let info = format!(
        ".bucket-{}.object-{}.internal.json",
        base64_url(bucket.as_bytes()),
        base64_url(b"k09")
    );
    std::fs::write(server.root().join(info), b"not json").unwrap();
    let service = common::service("s3", &server, &[&bucket], json!({"concurrency": 4}));
    let dir = tempfile::tempdir().unwrap();
    let err = common::backup(&service, &dir.path().join("b.backup.zip"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`k09`"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "the failed export left {left:?}");
}
