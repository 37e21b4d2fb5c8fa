//! The S3 adapter passes the shared conformance suite against a real moto server.

#![allow(clippy::unwrap_used)]

mod common;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use backup_core::{Recipe, Result, ServiceTarget};
use backup_testkit::conformance::{self, ConformanceFixture, DataSize};
use backup_testkit::s3_server::S3Server;
use serde_json::json;

struct S3Fixture {
    server: S3Server,
    client: Client,
}

impl S3Fixture {
    fn new() -> Self {
        let server = S3Server::moto();
        let client = common::client(&server);
        S3Fixture { server, client }
    }

    fn bucket(service: &ServiceTarget) -> String {
        service.config["buckets"][0].as_str().unwrap().to_string()
    }
}

#[async_trait]
impl ConformanceFixture for S3Fixture {
    fn recipe(&self) -> Recipe {
        backup_minio::recipe().unwrap()
    }

    async fn new_service(&self, name: &str) -> Result<ServiceTarget> {
        let bucket = common::bucket_name(name);
        common::create_bucket(&self.client, &bucket, false).await;
        Ok(common::service(name, &self.server, &[&bucket], json!({})))
    }

    async fn fill(&self, service: &ServiceTarget, size: DataSize) -> Result<()> {
        let bucket = Self::bucket(service);
        let small = match size {
            DataSize::Empty => return Ok(()),
            DataSize::Small => 40,
            DataSize::Large => 4,
        };
        for i in 0..small {
            let key = format!("docs/{i:03}/note.txt");
            common::put_rich(
                &self.client,
                &bucket,
                &key,
                common::bytes(i, 100 + 37 * i as usize),
            )
            .await;
        }
        if size == DataSize::Large {
            // One 66 MiB object: uploaded back in 9 parts of 8 MiB.
            let big = common::bytes(7, 66 * 1024 * 1024);
            common::put_rich(&self.client, &bucket, "large/blob.bin", big).await;
        }
        Ok(())
    }

    async fn digest(&self, service: &ServiceTarget) -> Result<String> {
        Ok(common::bucket_digest(&self.client, &Self::bucket(service)).await)
    }

    async fn broken_service(&self, name: &str) -> Result<ServiceTarget> {
        Ok(common::service(
            name,
            &self.server,
            &["no-such-bucket-here"],
            json!({}),
        ))
    }
}

#[tokio::test]
async fn empty_bucket_round_trips() {
    conformance::round_trip(&S3Fixture::new(), DataSize::Empty).await;
}

#[tokio::test]
async fn small_bucket_round_trips() {
    conformance::round_trip(&S3Fixture::new(), DataSize::Small).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bucket_round_trips_and_streams() {
    let fixture = S3Fixture::new();
    conformance::round_trip(&fixture, DataSize::Large).await;
    conformance::export_streams_in_bounded_chunks(&fixture).await;
}

#[tokio::test]
async fn failing_export_leaves_no_bundle() {
    conformance::failing_export_leaves_no_bundle(&S3Fixture::new()).await;
}

#[tokio::test]
async fn corrupt_bundle_is_rejected_and_target_unchanged() {
    conformance::corrupt_bundle_is_rejected_and_target_unchanged(&S3Fixture::new()).await;
}

#[tokio::test]
async fn truncated_stream_fails_import_and_target_unchanged() {
    conformance::truncated_stream_fails_import_and_target_unchanged(&S3Fixture::new()).await;
}

#[tokio::test]
async fn concurrent_exports_of_different_services() {
    conformance::concurrent_exports_of_different_services(&S3Fixture::new()).await;
}
