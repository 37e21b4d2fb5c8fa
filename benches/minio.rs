//! S3 adapter export and import against `rclone copy` of the same bucket, on a real moto
//! server: 1,000 small objects, and 1 GiB in large objects (`MINIO_BENCH_LARGE_MIB`).
//! Prints time ratios and our peak memory (rclone is Debian package `rclone`).
//!
//! rclone uploads any object under 200 MiB (its `--s3-upload-cutoff`) in one PUT, 4 at a
//! time; so does the adapter by default (`singlePutCutoffMib` 200: objects above
//! `partSizeMib`, 8 MiB, are staged to a temporary file so the PUT is retryable and memory
//! stays flat), so the first import row is the same work. Cases with objects above 8 MiB
//! get a second import row for the multipart path: the adapter with staging off
//! (`singlePutCutoffMib: 0`, 8 MiB parts) against rclone made to upload in the same 8 MiB
//! parts.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use backup_benches::{measure, print_report, Row};
use backup_core::{DataExporter, DataImporter, ImportMode, ServiceTarget};
use backup_testkit::s3_server::{S3Server, ACCESS_KEY, SECRET_KEY};
use futures::StreamExt;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The bench's service; `MINIO_BENCH_OBJECT_TAGS` sets `objectTags` (`advertised` by
/// default, `always` for the two-requests-per-object export).
fn service(server: &S3Server, bucket: &str) -> ServiceTarget {
    let object_tags =
        std::env::var("MINIO_BENCH_OBJECT_TAGS").unwrap_or_else(|_| "advertised".to_string());
    ServiceTarget::local(
        "bench",
        backup_minio::RECIPE,
        serde_json::json!({"endpoint": server.endpoint(), "accessKeyId": ACCESS_KEY,
            "secretAccessKey": SECRET_KEY, "buckets": [bucket], "objectTags": object_tags}),
    )
}

/// [`service`] with staging off: every object above `partSizeMib` goes multipart.
fn multipart_service(server: &S3Server, bucket: &str) -> ServiceTarget {
    let mut service = service(server, bucket);
    service.config["singlePutCutoffMib"] = 0.into();
    service
}

/// Runs `rclone copy FROM TO EXTRA…` with the remote `s3:` configured through the
/// environment (credentials never in argv).
fn rclone(server: &S3Server, from: &str, to: &str, extra: &[&str]) -> Duration {
    let start = Instant::now();
    let status = Command::new("rclone")
        .args([
            "copy",
            from,
            to,
            "--transfers",
            "4",
            "--s3-upload-concurrency",
            "4",
        ])
        .args(extra)
        .env("RCLONE_CONFIG_S3_TYPE", "s3")
        .env("RCLONE_CONFIG_S3_PROVIDER", "Other")
        .env("RCLONE_CONFIG_S3_ENDPOINT", server.endpoint())
        .env("RCLONE_CONFIG_S3_ACCESS_KEY_ID", ACCESS_KEY)
        .env("RCLONE_CONFIG_S3_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("RCLONE_CONFIG_S3_FORCE_PATH_STYLE", "true")
        .env("RCLONE_CONFIG_S3_REGION", "us-east-1")
        // rclone's AWS client refuses a custom CA bundle on its transport; the bench
        // talks plain HTTP to moto.
        .env_remove("AWS_CA_BUNDLE")
        .status()
        .unwrap_or_else(|e| panic!("cannot run rclone: {e}"));
    assert!(status.success(), "rclone copy {from} {to} failed: {status}");
    start.elapsed()
}

async fn put(client: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

async fn export_to(service: &ServiceTarget, path: &Path) -> u64 {
    let exporter = backup_minio::S3Exporter;
    let artifact = exporter
        .artifacts(service)
        .await
        .expect("artifacts")
        .remove(0);
    let mut stream = exporter
        .export(service, &artifact)
        .await
        .expect("export")
        .stream;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("export stream");
        n += chunk.len() as u64;
        file.write_all(&chunk).expect("write");
    }
    file.flush().expect("flush");
    n
}

async fn import_from(service: &ServiceTarget, path: &Path, bucket_src: &str) {
    let importer = backup_minio::S3Importer::new();
    let artifact = backup_core::ArtifactDescriptor::new(
        format!("{bucket_src}.tar"),
        "s3/tar",
        backup_minio::CONTENT_TYPE,
    );
    let file = tokio::fs::File::open(path).await.expect("open");
    let stream = backup_core::artifact::stream_from_reader(file);
    importer
        .import(service, &artifact, stream, ImportMode::default())
        .await
        .expect("import");
}

fn case(
    runtime: &tokio::runtime::Runtime,
    server: &S3Server,
    client: &aws_sdk_s3::Client,
    name: &str,
    fill: Vec<(String, u64)>,
) -> Vec<Row> {
    let work = tempfile::tempdir().expect("tempdir");
    let slug: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let bucket = format!("bench-{}", slug.trim_matches('-').replace("--", "-"));
    runtime.block_on(async {
        client
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("bucket");
        for (i, (key, size)) in fill.iter().enumerate() {
            put(client, &bucket, key, vec![(i % 251) as u8; *size as usize]).await;
        }
    });
    let bytes: u64 = fill.iter().map(|(_, s)| s).sum();
    let tar = work.path().join("ours.tar");
    let (_, ours_export, peak_export) =
        measure(|| runtime.block_on(export_to(&service(server, &bucket), &tar)));
    let copy = work.path().join("rclone");
    let native_export = rclone(
        server,
        &format!("s3:{bucket}"),
        &copy.to_string_lossy(),
        &[],
    );
    let ours_target = format!("{bucket}-ours");
    let (_, ours_import, peak_import) =
        measure(|| runtime.block_on(import_from(&service(server, &ours_target), &tar, &bucket)));
    let native_import = rclone(
        server,
        &copy.to_string_lossy(),
        &format!("s3:{bucket}-rclone"),
        &[],
    );
    let part = format!("{}M", backup_minio::config::DEFAULT_PART_SIZE_MIB);
    let multipart = fill
        .iter()
        .any(|(_, size)| *size > backup_minio::config::DEFAULT_PART_SIZE_MIB << 20);
    let same_parts = multipart.then(|| {
        let target = format!("{bucket}-ours-parts");
        let (_, ours, peak) = measure(|| {
            runtime.block_on(import_from(
                &multipart_service(server, &target),
                &tar,
                &bucket,
            ))
        });
        let native = rclone(
            server,
            &copy.to_string_lossy(),
            &format!("s3:{bucket}-rclone-parts"),
            &["--s3-upload-cutoff", &part, "--s3-chunk-size", &part],
        );
        (ours, native, peak)
    });
    let mut rows = vec![
        Row {
            name: format!("{name} export"),
            bytes,
            ours: ours_export,
            native: native_export,
            peak_kib: peak_export,
        },
        Row {
            name: format!("{name} import"),
            bytes,
            ours: ours_import,
            native: native_import,
            peak_kib: peak_import,
        },
    ];
    if let Some((ours, native, peak_kib)) = same_parts {
        rows.push(Row {
            name: format!("{name} import, both in {part} parts"),
            bytes,
            ours,
            native,
            peak_kib,
        });
    }
    rows
}

fn main() {
    if Command::new("rclone").arg("version").output().is_err() {
        panic!(
            "rclone is not installed: `apt-get install rclone` (Debian package) to run this bench"
        );
    }
    let large_mib = env_or("MINIO_BENCH_LARGE_MIB", 1024);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let server = S3Server::moto();
    let config: backup_minio::S3Config =
        serde_json::from_value(service(&server, "x").config).expect("config");
    let client = backup_minio::client::client(&config);
    let small: Vec<(String, u64)> = (0..1000).map(|i| (format!("small/{i:04}"), 4096)).collect();
    let mut rows = case(&runtime, &server, &client, "1000 x 4 KiB", small);
    let hundred: Vec<(String, u64)> = (0..2).map(|i| (format!("mid/{i}"), 50 << 20)).collect();
    rows.extend(case(
        &runtime,
        &server,
        &client,
        "100 MiB (2 x 50 MiB)",
        hundred,
    ));
    let per = 128u64;
    let large: Vec<(String, u64)> = (0..large_mib / per)
        .map(|i| (format!("large/{i}"), per << 20))
        .collect();
    rows.extend(case(
        &runtime,
        &server,
        &client,
        &format!("{large_mib} MiB ({per} MiB objects)"),
        large,
    ));
    print_report(
        "S3 bucket export / import (vs rclone copy, moto)",
        "rclone s",
        &rows,
    );
}
