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
use crate::rdb_import::RedisServerControl;
use crate::resp::Connection;
use crate::server::{ensure_empty, server_info};
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

/// Imports what [`RedisExporter`] wrote.
///
/// - Logical exports are restored into any reachable server with pipelined `RESTORE`.
/// - RDB exports need a [`RedisServerControl`] (see [`RedisImporter::with_server_control`]):
///   the file is placed in the server's data directory while it is stopped. Without one,
///   an RDB import is refused with [`backup_core::ErrorKind::Unsupported`].
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

#[async_trait]
impl DataImporter for RedisImporter {
    fn formats(&self) -> Vec<String> {
        vec![REDIS_RDB.to_string(), REDIS_DUMP_RESTORE.to_string()]
    }

    async fn check(
        &self,
        service: &ServiceTarget,
        artifacts: &[ArtifactDescriptor],
        mode: ImportMode,
    ) -> Result<()> {
        for artifact in artifacts {
            ensure_format_supported(self, RECIPE, artifact)?;
            if artifact.format == REDIS_RDB && self.control.is_none() {
                return Err(Self::rdb_unsupported());
            }
        }
        let config = RedisConfig::from_service(service)?;
        let mut conn = Connection::open(&config).await?;
        let info = server_info(&mut conn).await?;
        ensure_empty(&info, &conn.endpoint().to_string(), mode.force)
    }

    async fn import(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
        data: ByteStream,
        mode: ImportMode,
    ) -> Result<()> {
        ensure_format_supported(self, RECIPE, artifact)?;
        let config = RedisConfig::from_service(service)?;
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
