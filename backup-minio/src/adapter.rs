//! The exporter and importer of the `s3` / `minio` recipes.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use backup_core::artifact::{formats, ArtifactData, ArtifactDescriptor};
use backup_core::data::ensure_format_supported;
use backup_core::{
    ByteStream, DataExporter, DataImporter, Error, ErrorKind, ExportRequirements, ImportMode,
    RequiredState, Result, ServiceTarget,
};

use crate::client::{client, s3_error};
use crate::config::{S3Config, Versions};
use crate::export::{export_bucket, ExportJob};
use crate::import::{ensure_usable, import_archive, ImportJob, ImportReport};
use crate::settings;

/// The artifacts' media type.
pub const CONTENT_TYPE: &str = "application/x-tar";

/// Exports every selected bucket as one `s3/tar` artifact `<bucket>.tar`.
#[derive(Debug, Clone, Copy, Default)]
pub struct S3Exporter;

/// Imports `s3/tar` artifacts; keeps the report of each import (see [`S3Importer::reports`]).
#[derive(Debug, Clone, Default)]
pub struct S3Importer {
    reports: Arc<Mutex<Vec<ImportReport>>>,
}

impl S3Importer {
    /// A new importer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The reports of the imports this importer finished, oldest first: buckets, counts
    /// and the map of old to new version ids.
    pub fn reports(&self) -> Vec<ImportReport> {
        self.reports.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// The source bucket of an artifact: its `bucket` metadata, else its name without `.tar`.
pub fn artifact_bucket(artifact: &ArtifactDescriptor) -> String {
    artifact
        .metadata
        .get("bucket")
        .and_then(|b| b.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| artifact.name.trim_end_matches(".tar").to_string())
}

async fn buckets(config: &S3Config, client: &aws_sdk_s3::Client) -> Result<Vec<String>> {
    if !config.buckets.is_empty() {
        return Ok(config.buckets.clone());
    }
    let out = client
        .list_buckets()
        .send()
        .await
        .map_err(|e| s3_error(e, "listing buckets", &config.endpoint))?;
    let mut names: Vec<String> = out
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_string))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("no bucket to back up on {}", config.endpoint),
        )
        .with_hint(
            "create a bucket, or check the access key may list buckets (s3:ListAllMyBuckets)",
        ));
    }
    Ok(names)
}

#[async_trait]
impl DataExporter for S3Exporter {
    fn requirements(&self) -> ExportRequirements {
        ExportRequirements {
            required_state: RequiredState::Running,
            consistency: "objects are read one at a time over the S3 API while the server \
                          runs: each object is consistent, the bucket is not a point-in-time \
                          snapshot (pause writers for one)"
                .to_string(),
        }
    }

    async fn artifacts(&self, service: &ServiceTarget) -> Result<Vec<ArtifactDescriptor>> {
        let config = S3Config::from_service(service)?;
        let client = client(&config);
        let mut artifacts = Vec::new();
        for bucket in buckets(&config, &client).await? {
            let settings = settings::read(&client, &bucket, &config.endpoint).await?;
            let settings = serde_json::to_value(&settings)
                .map_err(|e| Error::new(ErrorKind::Io, format!("bucket settings: {e}")))?;
            let versions = match config.versions {
                Versions::Latest => "latest",
                Versions::All => "all",
            };
            artifacts.push(
                ArtifactDescriptor::new(format!("{bucket}.tar"), formats::S3_TAR, CONTENT_TYPE)
                    .with_metadata("bucket", bucket.clone().into())
                    .with_metadata("prefix", config.prefix.clone().into())
                    .with_metadata("versions", versions.into())
                    .with_metadata("settings", settings),
            );
        }
        Ok(artifacts)
    }

    async fn export(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
    ) -> Result<ArtifactData> {
        let config = S3Config::from_service(service)?;
        let client = client(&config);
        let bucket = artifact_bucket(artifact);
        let settings = settings::read(&client, &bucket, &config.endpoint).await?;
        let all_versions = config.versions == Versions::All && settings.versioning.is_some();
        Ok(export_bucket(ExportJob {
            client,
            endpoint: config.endpoint.clone(),
            bucket,
            prefix: config.prefix.clone(),
            all_versions,
            settings,
            object_tags: config.object_tags,
            read_ahead: 2 * config.concurrency(),
        }))
    }
}

fn job(config: &S3Config, bucket: String, mode: ImportMode) -> ImportJob {
    ImportJob {
        client: client(config),
        endpoint: config.endpoint.clone(),
        region: config.region.clone(),
        bucket,
        force: mode.force,
        concurrency: config.concurrency(),
        part_size: config.part_size(),
        single_put_cutoff: config.single_put_cutoff(),
        staging_dir: config.staging_dir.clone(),
    }
}

#[async_trait]
impl DataImporter for S3Importer {
    fn formats(&self) -> Vec<String> {
        vec![formats::S3_TAR.to_string()]
    }

    async fn check(
        &self,
        service: &ServiceTarget,
        artifacts: &[ArtifactDescriptor],
        mode: ImportMode,
    ) -> Result<()> {
        let config = S3Config::from_service(service)?;
        // A staging directory that cannot be made fails here, before anything is restored.
        drop(job(&config, String::new(), mode).staging()?);
        let client = client(&config);
        let mut targets = Vec::new();
        for artifact in artifacts {
            ensure_format_supported(self, crate::RECIPE, artifact)?;
            let target = config.target_bucket(&artifact_bucket(artifact));
            if targets.contains(&target) {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    format!(
                        "two buckets of the backup would be restored into bucket `{target}` of service `{}`",
                        service.name
                    ),
                )
                .with_hint("map each source bucket to its own target with `bucketMap`"));
            }
            ensure_usable(&client, &target, &config.endpoint, mode.force).await?;
            targets.push(target);
        }
        Ok(())
    }

    async fn import(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
        data: ByteStream,
        mode: ImportMode,
    ) -> Result<()> {
        ensure_format_supported(self, crate::RECIPE, artifact)?;
        let config = S3Config::from_service(service)?;
        let target = config.target_bucket(&artifact_bucket(artifact));
        let report = import_archive(&job(&config, target, mode), data).await?;
        if let Ok(mut reports) = self.reports.lock() {
            reports.push(report);
        }
        Ok(())
    }
}
