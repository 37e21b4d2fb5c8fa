//! The [`DataExporter`] and [`DataImporter`] of the `redis` recipe.

use std::sync::Arc;

use async_trait::async_trait;

use backup_core::artifact::formats::{REDIS_DUMP_RESTORE, REDIS_RDB};
use backup_core::artifact::{ArtifactData, ArtifactDescriptor, ByteStream};
use backup_core::data::ensure_format_supported;
use backup_core::{
    DataExporter, DataImporter, Error, ExportRequirements, ImportMode, RequiredState, Result,
    ServiceTarget,
};

use crate::config::{ExportFormat, RedisConfig};
use crate::held::held_data;
use crate::rdb_import::RedisServerControl;
use crate::resp::Connection;
use crate::server::{ensure_empty, ensure_not_cluster, server_info};
use crate::{logical_export, logical_import, rdb_export, rdb_import, RECIPE};

/// Artifact name of an RDB export.
pub const RDB_ARTIFACT: &str = "dump.rdb";
/// Artifact name of a logical export.
pub const LOGICAL_ARTIFACT: &str = "dump.redis-logical";

/// Exports a Redis server's data as one artifact: an RDB snapshot taken over the
/// replication protocol, or a logical export (see the crate docs).
#[derive(Debug, Clone, Default)]
pub struct RedisExporter;

#[async_trait]
impl DataExporter for RedisExporter {
    fn requirements(&self) -> ExportRequirements {
        ExportRequirements {
            required_state: RequiredState::Running,
            consistency: "rdb: a point-in-time snapshot the server forks for a replica; \
                          logical: keys are read one at a time with SCAN, so writes during \
                          the export may or may not be included"
                .to_string(),
        }
    }

    async fn artifacts(&self, service: &ServiceTarget) -> Result<Vec<ArtifactDescriptor>> {
        let config = RedisConfig::from_service(service)?;
        let mut conn = Connection::open(&config).await?;
        let info = server_info(&mut conn).await?;
        ensure_not_cluster(&info, &conn.endpoint().to_string())?;
        let (name, format) = match config.format {
            ExportFormat::Rdb => (RDB_ARTIFACT, REDIS_RDB),
            ExportFormat::Logical => (LOGICAL_ARTIFACT, REDIS_DUMP_RESTORE),
        };
        Ok(vec![ArtifactDescriptor::new(
            name,
            format,
            "application/octet-stream",
        )
        .with_source_version(format!("Redis {}", info.version))
        .with_metadata("redisVersion", info.version.clone().into())
        .with_metadata("keysPerDatabase", info.keyspace_json())])
    }

    async fn export(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
    ) -> Result<ArtifactData> {
        let config = RedisConfig::from_service(service)?;
        refuse_cluster(&config).await?;
        match artifact.format.as_str() {
            REDIS_RDB => rdb_export::start(&config).await,
            REDIS_DUMP_RESTORE => logical_export::start(&config).await,
            other => Err(Error::unsupported(
                RECIPE,
                &format!("exporting format `{other}`"),
            )),
        }
    }
}

/// Refuses the server of `config` when it is a Redis Cluster node.
async fn refuse_cluster(config: &RedisConfig) -> Result<()> {
    let mut conn = Connection::open(config).await?;
    let info = server_info(&mut conn).await?;
    ensure_not_cluster(&info, &conn.endpoint().to_string())
}

/// Imports what [`RedisExporter`] wrote.
///
/// - Logical exports are restored into any reachable server with pipelined `RESTORE`.
/// - RDB exports need a [`RedisServerControl`] (see [`RedisImporter::with_server_control`]):
///   the file is placed in the server's data directory while it is stopped. Without one,
///   [`formats`](DataImporter::formats) does not list `redis/rdb`, so a restore refuses
///   an RDB artifact while it checks formats, before it creates or changes anything (also
///   in a dry run); a direct import call fails with
///   [`backup_core::ErrorKind::Unsupported`].
#[derive(Debug, Clone, Default)]
pub struct RedisImporter {
    control: Option<Arc<dyn RedisServerControl>>,
}

impl RedisImporter {
    /// An importer for logical exports only.
    pub fn new() -> Self {
        Self::default()
    }

    /// An importer that can also restore RDB exports into servers `control` runs.
    pub fn with_server_control(control: Arc<dyn RedisServerControl>) -> Self {
        RedisImporter {
            control: Some(control),
        }
    }

    fn rdb_unsupported() -> Error {
        Error::unsupported(RECIPE, "restoring an RDB export into a server it does not control")
            .with_hint("export with format `logical` to restore into any running server, or give the importer a RedisServerControl for this server")
    }
}

/// The `rdbVersion` an RDB export recorded in its metadata, if any.
fn artifact_rdb_version(artifact: &ArtifactDescriptor) -> Option<u32> {
    artifact
        .metadata
        .get("rdbVersion")
        .and_then(serde_json::Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
}

#[async_trait]
impl DataImporter for RedisImporter {
    fn formats(&self) -> Vec<String> {
        // Only what this importer can restore: RDB needs a server control.
        let mut formats = vec![REDIS_DUMP_RESTORE.to_string()];
        if self.control.is_some() {
            formats.push(REDIS_RDB.to_string());
        }
        formats
    }

    async fn check(
        &self,
        service: &ServiceTarget,
        artifacts: &[ArtifactDescriptor],
        mode: ImportMode,
    ) -> Result<()> {
        for artifact in artifacts {
            if artifact.format == REDIS_RDB && self.control.is_none() {
                return Err(Self::rdb_unsupported());
            }
            ensure_format_supported(self, RECIPE, artifact)?;
        }
        let config = RedisConfig::from_service(service)?;
        let mut conn = Connection::open(&config).await?;
        let info = server_info(&mut conn).await?;
        let endpoint = conn.endpoint().to_string();
        ensure_not_cluster(&info, &endpoint)?;
        for artifact in artifacts {
            if artifact.format == REDIS_RDB {
                rdb_import::ensure_loadable(&info, artifact_rdb_version(artifact), &endpoint)?;
            }
        }
        ensure_empty(&info, &endpoint, mode.force)
    }

    async fn import(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
        data: ByteStream,
        mode: ImportMode,
    ) -> Result<()> {
        if artifact.format == REDIS_RDB && self.control.is_none() {
            return Err(Self::rdb_unsupported());
        }
        ensure_format_supported(self, RECIPE, artifact)?;
        let config = RedisConfig::from_service(service)?;
        refuse_cluster(&config).await?;
        if artifact.format == REDIS_RDB {
            let Some(control) = &self.control else {
                return Err(Self::rdb_unsupported());
            };
            rdb_import::import(control.as_ref(), service, &config, data, mode).await
        } else {
            logical_import::import(&config, data, mode)
                .await
                .map(|_| ())
        }
    }

    /// Keys per database and the dataset's memory (`INFO keyspace`, `INFO memory`).
    async fn describe_target(
        &self,
        service: &ServiceTarget,
    ) -> Result<Option<Vec<backup_core::HeldData>>> {
        let config = RedisConfig::from_service(service)?;
        let mut conn = Connection::open(&config).await?;
        held_data(&mut conn).await.map(Some)
    }

    async fn smoke_test(
        &self,
        service: &ServiceTarget,
        _artifact: &ArtifactDescriptor,
    ) -> Result<()> {
        // Keys with a TTL may have expired since the export, so counts are not compared:
        // the server must answer and have finished loading.
        let config = RedisConfig::from_service(service)?;
        let mut conn = Connection::open(&config).await?;
        let info = server_info(&mut conn).await?;
        if info.loading {
            return Err(Error::new(
                backup_core::ErrorKind::Unavailable,
                "redis is still loading its dataset",
            ));
        }
        Ok(())
    }
}
