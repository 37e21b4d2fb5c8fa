//! The built-in `directory` adapter passes the shared conformance suite.

use std::path::PathBuf;

use async_trait::async_trait;
use backup_core::{directory, Recipe, Result, ServiceTarget};
use backup_testkit::conformance::{self, ConformanceFixture, DataSize};
use backup_testkit::tree::{tree_digest, write_bulk_files, write_sample_tree};
use serde_json::json;

struct DirectoryFixture {
    root: tempfile::TempDir,
}

impl DirectoryFixture {
    fn new() -> Self {
        DirectoryFixture {
            root: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    fn path(service: &ServiceTarget) -> PathBuf {
        PathBuf::from(service.config["path"].as_str().expect("path in config"))
    }
}

#[async_trait]
impl ConformanceFixture for DirectoryFixture {
    fn recipe(&self) -> Recipe {
        directory::recipe().expect("directory recipe")
    }

    async fn new_service(&self, name: &str) -> Result<ServiceTarget> {
        let path = self.path_of(name);
        std::fs::create_dir_all(&path)?;
        Ok(ServiceTarget::local(
            name,
            directory::RECIPE,
            json!({ "path": path }),
        ))
    }

    async fn fill(&self, service: &ServiceTarget, size: DataSize) -> Result<()> {
        let path = Self::path(service);
        match size {
            DataSize::Empty => {}
            DataSize::Small => write_sample_tree(&path),
            DataSize::Large => write_bulk_files(&path, 72, 1024 * 1024),
        }
        Ok(())
    }

    async fn digest(&self, service: &ServiceTarget) -> Result<String> {
        Ok(tree_digest(&Self::path(service)))
    }

    async fn broken_service(&self, name: &str) -> Result<ServiceTarget> {
        let missing = self.path_of(name).join("does-not-exist");
        Ok(ServiceTarget::local(
            name,
            directory::RECIPE,
            json!({ "path": missing }),
        ))
    }
}

#[tokio::test]
async fn empty_directory_round_trips() {
    conformance::round_trip(&DirectoryFixture::new(), DataSize::Empty).await;
}

#[tokio::test]
async fn small_tree_round_trips() {
    conformance::round_trip(&DirectoryFixture::new(), DataSize::Small).await;
}

#[tokio::test]
async fn large_tree_round_trips() {
    conformance::round_trip(&DirectoryFixture::new(), DataSize::Large).await;
}

#[tokio::test]
async fn export_streams_in_bounded_chunks() {
    conformance::export_streams_in_bounded_chunks(&DirectoryFixture::new()).await;
}

#[tokio::test]
async fn failing_export_leaves_no_bundle() {
    conformance::failing_export_leaves_no_bundle(&DirectoryFixture::new()).await;
}

#[tokio::test]
async fn corrupt_bundle_is_rejected_and_target_unchanged() {
    conformance::corrupt_bundle_is_rejected_and_target_unchanged(&DirectoryFixture::new()).await;
}

#[tokio::test]
async fn truncated_stream_fails_import_and_target_unchanged() {
    conformance::truncated_stream_fails_import_and_target_unchanged(&DirectoryFixture::new()).await;
}

#[tokio::test]
async fn concurrent_exports_of_different_services() {
    conformance::concurrent_exports_of_different_services(&DirectoryFixture::new()).await;
}
