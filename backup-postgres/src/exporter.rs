//! [`PostgresExporter`]: one `pg_dump` artifact per database, streamed, with its metadata
//! taken in the same MVCC snapshot as the dump.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt;

use backup_core::artifact::{late_metadata_channel, ArtifactData};
use backup_core::command::{CommandRunner, CommandRunnerExt, CommandSpec};
use backup_core::{
    ArtifactDescriptor, ByteStream, DataExporter, Error, ErrorKind, ExportRequirements,
    RequiredState, Result, ServiceTarget,
};

use crate::config::{DumpFormat, DumpScope, PostgresConfig};
use crate::connection::{query, tool, MAINTENANCE_DB};
use crate::metadata::{keys, restore_command, DatabaseSummary};
use crate::properties::{DatabaseProperties, PROPERTIES_SQL};
use crate::row_count;
use crate::session::SnapshotSession;

/// Exports PostgreSQL databases with `pg_dump`, one artifact per database.
///
/// Each export opens a `psql` session that runs `BEGIN ISOLATION LEVEL REPEATABLE READ`
/// and `pg_export_snapshot()`, starts `pg_dump --snapshot=<id>` (streamed), and, in the
/// same snapshot and while the dump streams, gathers the table count and the schema
/// summary. Exact per-table row counts are read from the dump's own COPY data as it
/// streams (with `count(*)` in the snapshot as the fallback for a dump the counter does
/// not read). They reach the manifest as *late metadata* once the dump ended without
/// error; then the session commits. The database's own properties (encoding, locale,
/// settings, comment, owner; see [`crate::DatabaseProperties`]) are recorded when the
/// artifacts are listed. Dumps are portable (`--no-owner --no-privileges`);
/// custom dumps use zlib level `compressionLevel` (1 by default); plain SQL dumps add
/// `--clean --if-exists`; schema scope adds `--schema-only` and skips row counts.
#[derive(Debug, Clone, Default)]
pub struct PostgresExporter {
    _private: (),
}

impl PostgresExporter {
    /// Creates the exporter.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The databases a config names, listing the server's for `allDatabases`.
///
/// # Errors
///
/// Connection failures, mapped to kinds with hints.
pub(crate) async fn database_names(
    runner: &Arc<dyn CommandRunner>,
    config: &PostgresConfig,
) -> Result<Vec<String>> {
    if let Some(db) = &config.database {
        return Ok(vec![db.clone()]);
    }
    let mut names: Vec<String> = config.databases.clone().unwrap_or_default();
    if config.all_databases {
        let listed = query(
            runner,
            config,
            MAINTENANCE_DB,
            "SELECT datname FROM pg_catalog.pg_database \
             WHERE NOT datistemplate AND datallowconn AND datname <> 'postgres' ORDER BY 1;",
        )
        .await?;
        for name in listed.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        names.sort();
    }
    Ok(names)
}

/// A file-name-safe artifact name for a database.
pub(crate) fn artifact_name(database: &str, format: DumpFormat) -> String {
    let safe: String = database
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.{}", format.extension())
}

#[async_trait]
impl DataExporter for PostgresExporter {
    fn requirements(&self) -> ExportRequirements {
        ExportRequirements {
            required_state: RequiredState::Running,
            consistency: "pg_dump snapshot (MVCC)".to_string(),
        }
    }

    async fn artifacts(&self, service: &ServiceTarget) -> Result<Vec<ArtifactDescriptor>> {
        let config = PostgresConfig::from_json(&service.config)?;
        let names = database_names(&service.runner, &config).await?;
        if names.is_empty() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("service `{}` has no database to export", service.name),
            )
            .with_hint("create a database, or name one with `database` / `databases`"));
        }
        let mut descriptors = Vec::with_capacity(names.len());
        for name in names {
            // Connecting to each database proves it exists and is readable.
            let output = query(
                &service.runner,
                &config,
                &name,
                &format!("SELECT current_setting('server_version');\n{PROPERTIES_SQL}\n"),
            )
            .await
            .map_err(|e| e.context(format!("database `{name}`")))?;
            let (version, properties) = output.split_once('\n').unwrap_or((&output, ""));
            let properties = DatabaseProperties::parse(properties)?;
            let version = version.trim().to_string();
            descriptors.push(
                ArtifactDescriptor::new(
                    artifact_name(&name, config.format),
                    config.format.artifact_format(),
                    config.format.content_type(),
                )
                .with_source_version(format!("PostgreSQL {version}"))
                .with_metadata(keys::DATABASE, name.clone().into())
                .with_metadata(keys::FORMAT, config.format.as_str().into())
                .with_metadata(keys::SCOPE, config.scope.as_str().into())
                .with_metadata(keys::SERVER_VERSION, version.into())
                .with_metadata(
                    keys::DATABASE_PROPERTIES,
                    serde_json::to_value(&properties).unwrap_or_default(),
                )
                .with_metadata(
                    keys::RESTORE_COMMAND,
                    restore_command(&name, config.format).into(),
                ),
            );
        }
        Ok(descriptors)
    }

    async fn export(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
    ) -> Result<ArtifactData> {
        let config = PostgresConfig::from_json(&service.config)?;
        let format = DumpFormat::from_artifact_format(&artifact.format).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("artifact `{}` is not a postgres dump", artifact.name),
            )
        })?;
        let database = artifact
            .metadata
            .get(keys::DATABASE)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or_else(|| config.database.clone())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("artifact `{}` does not name its database", artifact.name),
                )
            })?;
        let scope = match artifact.metadata.get(keys::SCOPE).and_then(|v| v.as_str()) {
            Some("schema") => DumpScope::Schema,
            Some(_) => DumpScope::Full,
            None => config.scope,
        };

        let (mut session, io) = SnapshotSession::open(&service.runner, &config, &database).await?;
        let snapshot = session.snapshot.clone();
        let dump = pg_dump_spec(&config, &database, format, scope, Some(&snapshot));
        let stream = service.runner.stream_stdout(&dump).await?;

        // Gather the schema summary in the snapshot while the dump streams, and count
        // each table's rows in the dump's own COPY data as it passes.
        let summary_task = tokio::spawn(io.summary());
        let (stream, counting) = match scope {
            DumpScope::Full => {
                let (stream, counting) = row_count::tee(stream, format);
                (stream, Some(counting))
            }
            DumpScope::Schema => (stream, None),
        };

        let dumped = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&dumped);
        let stream = stream.inspect_ok(move |chunk| {
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        });

        // The snapshot session must outlive pg_dump's import of its snapshot whatever the
        // caller does with the late metadata (await it, or drop it unread): a task of its
        // own owns it, and commits only once the dump stream has ended or been dropped.
        let (dump_done, dump_ended) = tokio::sync::oneshot::channel::<()>();
        let (metadata_tx, late) = late_metadata_channel("the snapshot session");
        tokio::spawn(async move {
            let outcome = async {
                let summary = summary_task.await;
                // Whatever the summary query did, the session (and its exported snapshot)
                // stays open until pg_dump is done with it.
                let _ = dump_ended.await;
                let (mut io, mut summary, leaves) = match summary {
                    Ok(Ok((io, Some((summary, leaves))))) => (io, summary, leaves),
                    Ok(Ok((io, None))) => {
                        drop(io);
                        return Err(session.failure().await);
                    }
                    Ok(Err(_)) | Err(_) => return Err(session.failure().await),
                };
                let mut source = None;
                if let Some(counting) = counting {
                    let counted = counting.await.map_err(|e| {
                        Error::new(ErrorKind::Io, format!("the row counter failed: {e}"))
                    })??;
                    match rows_from_dump(counted, &summary, &leaves)? {
                        Some(rows) => {
                            summary.row_counts = Some(rows);
                            source = Some("dump");
                        }
                        None => match io.exact_row_counts().await? {
                            Some(rows) => {
                                summary.row_counts = Some(rows);
                                source = Some("query");
                            }
                            None => {
                                drop(io);
                                return Err(session.failure().await);
                            }
                        },
                    }
                }
                let mut map = summary.to_metadata();
                map.insert(keys::DATABASE.into(), database.into());
                map.insert(keys::FORMAT.into(), format.as_str().into());
                map.insert(keys::SCOPE.into(), scope.as_str().into());
                map.insert(keys::CONSISTENT_SNAPSHOT.into(), true.into());
                if let Some(source) = source {
                    map.insert(keys::ROW_COUNT_SOURCE.into(), source.into());
                }
                map.insert(
                    keys::DUMP_BYTES.into(),
                    dumped.load(Ordering::Relaxed).into(),
                );
                Ok((map, session, io))
            }
            .await;
            match outcome {
                Ok((map, session, io)) => {
                    // The metadata is complete: deliver it, then end the read-only
                    // transaction (its outcome no longer matters to the dump).
                    let _ = metadata_tx.send(Ok(map));
                    let _ = session.commit(io).await;
                }
                Err(e) => {
                    let _ = metadata_tx.send(Err(e));
                }
            }
        });
        Ok(ArtifactData {
            stream: Box::pin(SignalOnEnd {
                inner: Box::pin(stream),
                done: Some(dump_done),
            }),
            late_metadata: Some(late),
        })
    }
}

/// Passes a stream through and signals (by dropping `done`) when it ends or is dropped.
struct SignalOnEnd {
    inner: ByteStream,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl futures::Stream for SignalOnEnd {
    type Item = std::io::Result<bytes::Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        if let std::task::Poll::Ready(None) = polled {
            self.done.take();
        }
        polled
    }
}

/// The row counts the dump's own data gave, checked to cover every table the summary
/// lists and rolled up into partitioned tables; `None` when the counter could not read
/// this dump (or missed a table), so the caller counts with SQL instead.
///
/// # Errors
///
/// When the dump stream itself failed (the export fails anyway).
fn rows_from_dump(
    counted: row_count::Counted,
    summary: &DatabaseSummary,
    leaves: &BTreeMap<String, Vec<String>>,
) -> Result<Option<BTreeMap<String, i64>>> {
    let mut rows = match counted {
        Ok(rows) => rows,
        Err(row_count::CountError::Read(e)) => {
            return Err(Error::io("reading the dump to count its rows", e))
        }
        Err(row_count::CountError::Unsupported(_) | row_count::CountError::Malformed(_)) => {
            return Ok(None)
        }
    };
    row_count::roll_up_partitions(&mut rows, leaves);
    let mut exact = BTreeMap::new();
    for table in summary.table_names() {
        match rows.get(table) {
            Some(count) => {
                exact.insert(table.to_string(), i64::try_from(*count).unwrap_or(i64::MAX));
            }
            None => return Ok(None),
        }
    }
    Ok(Some(exact))
}

/// The `pg_dump` invocation for one database.
pub(crate) fn pg_dump_spec(
    config: &PostgresConfig,
    database: &str,
    format: DumpFormat,
    scope: DumpScope,
    snapshot: Option<&str>,
) -> CommandSpec {
    let mut spec = tool(config, "pg_dump", database).args([
        "--no-owner".to_string(),
        "--no-privileges".to_string(),
        format!("--lock-wait-timeout={}s", config.lock_wait_timeout_secs()),
    ]);
    spec = match format {
        DumpFormat::Custom => spec.args([
            "--format=custom".to_string(),
            format!("--compress={}", config.custom_compression_level()),
        ]),
        DumpFormat::Sql => spec.args(["--format=plain", "--clean", "--if-exists"]),
    };
    if scope == DumpScope::Schema {
        spec = spec.arg("--schema-only");
    }
    if let Some(id) = snapshot {
        spec = spec.arg(format!("--snapshot={id}"));
    }
    spec
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::metadata::{SchemaSummary, TableSummary};

    fn summary(tables: &[&str]) -> DatabaseSummary {
        DatabaseSummary {
            schema: SchemaSummary {
                tables: tables
                    .iter()
                    .map(|name| TableSummary {
                        name: (*name).to_string(),
                        columns: Vec::new(),
                    })
                    .collect(),
                indexes: Vec::new(),
            },
            ..DatabaseSummary::default()
        }
    }

    #[test]
    fn pg_dump_waits_for_locks_only_as_long_as_configured() {
        let config = PostgresConfig::new("db", 5432, "app");
        let spec = pg_dump_spec(&config, "app", DumpFormat::Custom, DumpScope::Full, None);
        assert!(
            spec.args.iter().any(|a| a == "--lock-wait-timeout=60s"),
            "{spec:?}"
        );
        let config = config.with_lock_wait_timeout(5);
        let spec = pg_dump_spec(&config, "app", DumpFormat::Sql, DumpScope::Full, None);
        assert!(
            spec.args.iter().any(|a| a == "--lock-wait-timeout=5s"),
            "{spec:?}"
        );
    }

    #[test]
    fn dump_counts_roll_up_partitions_and_cover_every_table() {
        let counted: row_count::Counted = Ok(BTreeMap::from([
            ("public.p_a".to_string(), 3),
            ("public.p_b".to_string(), 4),
            ("public.t".to_string(), 5),
            ("ext.config".to_string(), 9),
        ]));
        let leaves = BTreeMap::from([(
            "public.p".to_string(),
            vec!["public.p_a".to_string(), "public.p_b".to_string()],
        )]);
        let tables = summary(&["public.p", "public.p_a", "public.p_b", "public.t"]);
        let rows = rows_from_dump(counted, &tables, &leaves).unwrap().unwrap();
        assert_eq!(rows["public.p"], 7);
        assert_eq!(rows["public.t"], 5);
        assert!(!rows.contains_key("ext.config"), "only summarised tables");
    }

    #[test]
    fn a_table_missing_from_the_dump_or_an_unreadable_dump_falls_back_to_sql() {
        let counted: row_count::Counted = Ok(BTreeMap::from([("public.t".to_string(), 5)]));
        let tables = summary(&["public.t", "public.u"]);
        assert!(rows_from_dump(counted, &tables, &BTreeMap::new())
            .unwrap()
            .is_none());
        let unsupported = Err(row_count::CountError::Unsupported("lz4".into()));
        assert!(rows_from_dump(unsupported, &tables, &BTreeMap::new())
            .unwrap()
            .is_none());
        let failed = Err(row_count::CountError::Read(std::io::Error::other("cut")));
        assert!(rows_from_dump(failed, &tables, &BTreeMap::new()).is_err());
    }
}
