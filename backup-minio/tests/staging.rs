//! Objects above `partSizeMib` and up to `singlePutCutoffMib`, staged to a temporary file
//! and PUT whole, on real moto and s3s-fs servers: byte-equal round trip with metadata and
//! tags as a single PUT (larger objects multipart), staged versions replayed in order, at
//! most `concurrency` staged files at once, an empty staging directory after a good and a
//! failed import, clear errors for a staging directory that cannot be made and an invalid
//! cutoff.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aws_sdk_s3::Client;
use backup_core::{DataImporter, ErrorKind, ImportMode, ServiceTarget};
use backup_testkit::s3_server::S3Server;
use serde_json::{json, Value};

const MIB: usize = 1024 * 1024;

/// Import options: 5 MiB parts, objects up to `cutoff_mib` staged in `staging`.
fn staged(staging: &Path, cutoff_mib: u64) -> Value {
    json!({"partSizeMib": 5, "singlePutCutoffMib": cutoff_mib, "stagingDir": staging})
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

async fn etag(client: &Client, bucket: &str, key: &str) -> String {
    let head = client
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("head {key}: {e:?}"));
    head.e_tag().unwrap().trim_matches('"').to_string()
}

/// Backs `source` up (service `src`) into a bundle in `dir`; returns its path.
async fn back_up(server: &S3Server, source: &str, extra: Value, dir: &Path) -> std::path::PathBuf {
    let path = dir.join("s.backup.zip");
    common::backup(&common::service("src", server, &[source], extra), &path)
        .await
        .unwrap();
    path
}

/// A 1 KiB, a 7 MiB and a 12 MiB object, with metadata (and tags where the server keeps
/// them), restored with 5 MiB parts and a 10 MiB cutoff: all byte-equal with their
/// metadata, the 7 MiB one stored by a single PUT, the 12 MiB one in 3 parts, and nothing
/// left in the staging directory.
async fn staged_objects_round_trip(server: S3Server) {
    let client = common::client(&server);
    let source = common::bucket_name("staged");
    common::create_bucket(&client, &source, false).await;
    for (i, (key, size)) in [("small", 1024), ("mid/seven", 7 * MIB), ("big", 12 * MIB)]
        .into_iter()
        .enumerate()
    {
        common::put_rich(&client, &source, key, common::bytes(i as u64, size)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = back_up(&server, &source, json!({}), dir.path()).await;
    let staging = tempfile::tempdir().unwrap();
    let target = common::bucket_name("staged-restored");
    let dst = common::service("dst", &server, &[&target], staged(staging.path(), 10));
    common::restore(&path, "src", &dst, false).await.unwrap();

    for key in common::keys(&client, &source).await {
        let a = common::object_view(&client, &source, &key, None).await;
        let b = common::object_view(&client, &target, &key, None).await;
        assert_eq!(a, b, "{key}");
    }
    let seven = etag(&client, &target, "mid/seven").await;
    assert!(!seven.contains('-'), "not a single PUT: {seven}");
    assert_eq!(seven, etag(&client, &source, "mid/seven").await);
    assert!(etag(&client, &target, "big").await.ends_with("-3"));
    assert!(
        entries(staging.path()).is_empty(),
        "{:?}",
        entries(staging.path())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_up_to_the_cutoff_are_put_whole_with_metadata_and_larger_ones_in_parts_on_moto() {
    staged_objects_round_trip(S3Server::moto()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_up_to_the_cutoff_are_put_whole_with_metadata_and_larger_ones_in_parts_on_s3s_fs() {
    staged_objects_round_trip(S3Server::s3s_fs()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_versions_of_one_key_are_replayed_oldest_first() {
    let server = S3Server::moto();
    let client = common::client(&server);
    let source = common::bucket_name("staged-ver");
    common::create_bucket(&client, &source, true).await;
    // A large first version: a later, small one would overtake it without the ordering.
    for (i, size) in [40, 6, 6].into_iter().enumerate() {
        if i > 0 {
            // moto's timestamps have one-second resolution.
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
        common::put_plain(&client, &source, "doc", common::bytes(i as u64, size * MIB)).await;
    }
    common::put_plain(&client, &source, "other", common::bytes(9, 8 * MIB)).await;
    let history = common::version_history(&client, &source).await;
    let dir = tempfile::tempdir().unwrap();
    let path = back_up(&server, &source, json!({"versions": "all"}), dir.path()).await;
    let staging = tempfile::tempdir().unwrap();
    let target = common::bucket_name("staged-ver-restored");
    let dst = common::service("dst", &server, &[&target], staged(staging.path(), 40));
    let reports = common::restore(&path, "src", &dst, false).await.unwrap();

    let replayed: Vec<_> = reports[0].versions.iter().map(|v| v.old.clone()).collect();
    let expected: Vec<_> = history.iter().map(|h| h.3.clone()).collect();
    assert_eq!(replayed, expected, "replay order");
    // The target's versions of `doc`, oldest first, hold the source's bytes in order.
    let bytes_in_order = |h: Vec<(String, bool, String, String)>| -> Vec<(String, String)> {
        h.into_iter().map(|(key, _, sha, _)| (key, sha)).collect()
    };
    assert_eq!(
        bytes_in_order(common::version_history(&client, &target).await),
        bytes_in_order(history)
    );
    assert!(
        entries(staging.path()).is_empty(),
        "{:?}",
        entries(staging.path())
    );
}

/// Watches `dir` (and the directories in it) on a thread until the returned flag is set;
/// the thread returns the most files and bytes seen at once.
fn watch(dir: &Path) -> (Arc<AtomicBool>, std::thread::JoinHandle<(usize, u64)>) {
    let (stop, dir) = (Arc::new(AtomicBool::new(false)), dir.to_path_buf());
    let stopped = stop.clone();
    let watcher = std::thread::spawn(move || {
        let mut most = (0, 0);
        while !stopped.load(Ordering::Relaxed) {
            let files: Vec<u64> = walk(&dir);
            most.0 = most.0.max(files.len());
            most.1 = most.1.max(files.iter().sum());
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        most
    });
    (stop, watcher)
}

/// Sizes of the files under `dir` (files vanish while it reads: they count as gone).
fn walk(dir: &Path) -> Vec<u64> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut sizes = Vec::new();
    for entry in read.flatten() {
        match entry.metadata() {
            Ok(m) if m.is_dir() => sizes.extend(walk(&entry.path())),
            Ok(m) => sizes.push(m.len()),
            Err(_) => {}
        }
    }
    sizes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_holds_at_most_concurrency_objects_at_once() {
    let server = S3Server::moto();
    let client = common::client(&server);
    let source = common::bucket_name("staged-many");
    common::fill_bucket(&client, &source, ("o", 1), 8, 6 * MIB).await;
    let dir = tempfile::tempdir().unwrap();
    let path = back_up(&server, &source, json!({}), dir.path()).await;
    let staging = tempfile::tempdir().unwrap();
    let target = common::bucket_name("staged-many-dst");
    let mut options = staged(staging.path(), 10);
    options["concurrency"] = 2.into();
    let dst = common::service("dst", &server, &[&target], options);
    let (stop, watcher) = watch(staging.path());
    common::restore(&path, "src", &dst, false).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let (files, bytes) = watcher.join().unwrap();
    assert!(files >= 1, "the watcher never saw a staged file");
    assert!(
        files <= 2 && bytes <= 2 * 6 * MIB as u64,
        "{files} files, {bytes} bytes"
    );
    assert_eq!(common::keys(&client, &target).await.len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_cut_off_while_staging_removes_its_objects_and_leaves_no_staged_file() {
    let server = S3Server::moto();
    let client = common::client(&server);
    let source = common::bucket_name("staged-cut");
    common::fill_bucket(&client, &source, ("o", 1), 4, 7 * MIB).await;
    let src = common::service("src", &server, &[&source], json!({}));
    // Two objects whole, the third cut off while it is staged.
    let (artifact, cut) = common::export_cut_off(&src, 17 * MIB).await;
    let target = common::bucket_name("staged-cut-dst");
    let staging = tempfile::tempdir().unwrap();
    let dst = common::service("dst", &server, &[&target], staged(staging.path(), 10));
    let err = backup_minio::S3Importer::new()
        .import(&dst, &artifact, cut, ImportMode::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("staged-cut"), "{err}");
    assert!(
        entries(staging.path()).is_empty(),
        "{:?}",
        entries(staging.path())
    );
    assert!(
        !backup_minio::import::bucket_exists(&client, &target, &server.endpoint())
            .await
            .unwrap(),
        "the failed import left the bucket it created (and so its objects)"
    );
}

#[tokio::test]
async fn a_staging_directory_that_cannot_be_made_fails_before_the_bucket_is_touched() {
    let server = S3Server::moto();
    let client = common::client(&server);
    let source = common::bucket_name("staged-nodir");
    common::create_bucket(&client, &source, false).await;
    common::put_plain(&client, &source, "seven", common::bytes(1, 7 * MIB)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = back_up(&server, &source, json!({}), dir.path()).await;
    let missing = dir.path().join("no-such-dir");
    let target = common::bucket_name("staged-nodir-dst");
    let dst = common::service("dst", &server, &[&target], staged(&missing, 10));
    let err = common::restore(&path, "src", &dst, false)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
    assert!(
        err.hint().unwrap_or_default().contains("stagingDir"),
        "{err}"
    );
    assert!(
        !backup_minio::import::bucket_exists(&client, &target, &server.endpoint())
            .await
            .unwrap()
    );

    // With the cutoff at 0 nothing is staged: the same import needs no staging directory
    // and uploads the 7 MiB object in parts.
    let dst = common::service("dst", &server, &[&target], staged(&missing, 0));
    common::restore(&path, "src", &dst, false).await.unwrap();
    assert!(etag(&client, &target, "seven").await.ends_with("-2"));
}

fn parse(extra: Value) -> backup_core::Result<backup_minio::S3Config> {
    let mut config = json!({"endpoint": "http://127.0.0.1:9", "accessKeyId": "id",
        "secretAccessKey": "secret"});
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let recipe = backup_minio::recipe().unwrap();
    let schema = recipe.validate_config(&config);
    let parsed = backup_minio::S3Config::from_service(&ServiceTarget::local(
        "s3",
        backup_minio::RECIPE,
        config,
    ));
    assert_eq!(
        schema.is_ok(),
        parsed.is_ok(),
        "schema and validation agree"
    );
    parsed
}

#[test]
fn a_cutoff_above_five_gib_or_an_empty_staging_dir_is_rejected_clearly() {
    assert_eq!(parse(json!({})).unwrap().single_put_cutoff_mib, 200);
    assert_eq!(
        parse(json!({"singlePutCutoffMib": 0}))
            .unwrap()
            .single_put_cutoff(),
        0
    );
    assert_eq!(
        parse(json!({"singlePutCutoffMib": 5120}))
            .unwrap()
            .single_put_cutoff(),
        5 << 30
    );
    let err = parse(json!({"singlePutCutoffMib": 6000})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        err.to_string().contains("singlePutCutoffMib") && err.to_string().contains("5120"),
        "{err}"
    );
    assert!(err.hint().unwrap_or_default().contains("0"), "{err}");
    let err = parse(json!({"singlePutCutoffMib": -1})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        err.hint()
            .unwrap_or_default()
            .contains("singlePutCutoffMib (0 to 5120)"),
        "{err}"
    );
    let err = parse(json!({"stagingDir": ""})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.to_string().contains("stagingDir"), "{err}");
}
