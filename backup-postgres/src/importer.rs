//! [`PostgresImporter`]: restores dumps with `pg_restore` or `psql`, in one transaction,
//! into a new database, an empty one, or (with `force`) a fresh one swapped in on success.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use backup_core::command::{CommandRunner, CommandRunnerExt, CommandSpec};
use backup_core::data::ensure_format_supported;
use backup_core::{
    ArtifactDescriptor, ByteStream, DataImporter, Error, ErrorKind, HeldData, ImportMode, Result,
    ServiceTarget,
};

use crate::config::{DumpFormat, PostgresConfig};
use crate::connection::{ident, literal, query, tool, MAINTENANCE_DB};
use crate::metadata::keys;
use crate::properties::DatabaseProperties;
use crate::smoke;
use crate::stream::require_plain_dump_trailer;
use crate::RECIPE;

/// Imports `postgres/custom` and `postgres/sql` artifacts.
///
/// - custom dumps: `pg_restore --single-transaction --exit-on-error --no-owner
///   --no-privileges`; plain dumps: `psql -v ON_ERROR_STOP=1 --single-transaction`; both
///   read the artifact stream on stdin;
/// - a missing target database is created (`TEMPLATE template0`); if the restore fails it
///   is dropped again;
/// - an existing empty database is restored into directly; a failure rolls the single
///   transaction back and leaves it empty;
/// - an existing database that holds objects is refused with
///   [`ErrorKind::AlreadyExists`] unless `force` is set; with `force` the dump is restored
///   into a fresh temporary database, smoke-tested there (table list and row counts
///   against the artifact's metadata), and only when both succeed swapped in:
///   connections to the target are terminated, the target is renamed away, the new one
///   renamed in (one transaction), and the old one dropped. A failed restore or smoke
///   test drops the temporary database and leaves the target exactly as it was;
/// - a database the import creates gets the source database's encoding and locale
///   (see [`DatabaseProperties`]) and belongs to the config's
///   [owner role](PostgresConfig::owner_role); once its data is in, the source's database
///   settings (`ALTER DATABASE … SET`, and `ALTER ROLE … IN DATABASE … SET` for roles
///   that exist on the target) and comment are applied. An existing empty database
///   keeps its own encoding, locale and owner and gets the settings and comment;
/// - every restored object is created as the owner role (`pg_restore --role`, or
///   `SET ROLE` before a plain dump), so it belongs to that role;
/// - a database the import created is smoke-tested the same way and dropped again when
///   the test fails.
///
/// A plain dump that lacks pg_dump's closing line is treated as truncated and aborted
/// before psql can commit.
#[derive(Debug, Clone, Default)]
pub struct PostgresImporter {
    _private: (),
}

impl PostgresImporter {
    /// Creates the importer.
    pub fn new() -> Self {
        Self::default()
    }
}

/// What a target database holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetState {
    Missing,
    Empty,
    NonEmpty,
}

/// The database an artifact is restored into: the config's `database` when set, else the
/// database the artifact was dumped from.
pub(crate) fn target_database(
    config: &PostgresConfig,
    artifact: &ArtifactDescriptor,
) -> Result<String> {
    if let Some(db) = &config.database {
        return Ok(db.clone());
    }
    artifact
        .metadata
        .get(keys::DATABASE)
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "artifact `{}` does not name its database and the config names none",
                    artifact.name
                ),
            )
            .with_hint("set `database` in the service config")
        })
}

/// What `database` holds; with `create_missing` (the options after `TEMPLATE template0`,
/// see [`create_options`]), a missing database is created in the same psql run (and
/// `Missing` still returned, meaning "was missing, now created").
async fn target_state(
    runner: &Arc<dyn CommandRunner>,
    config: &PostgresConfig,
    database: &str,
    create_missing: Option<&str>,
) -> Result<TargetState> {
    let mut sql = format!(
        "SELECT count(*) FROM pg_catalog.pg_database WHERE datname = {};\n",
        literal(database)
    );
    if let Some(options) = create_missing {
        // The statement is built from literals: \gexec runs it only when the database is
        // missing.
        sql.push_str(&format!(
            "SELECT {} WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = {}) \\gexec\n",
            literal(&format!("CREATE DATABASE {} TEMPLATE template0{options}", ident(database))),
            literal(database)
        ));
    }
    let exists = query(runner, config, MAINTENANCE_DB, &sql)
        .await
        .map_err(|e| e.context("checking the target server"))?;
    if exists.lines().next().map(str::trim) == Some("0") {
        return Ok(TargetState::Missing);
    }
    let objects = query(runner, config, database, OBJECT_COUNT_SQL)
        .await
        .map_err(|e| e.context(format!("inspecting database `{database}`")))?;
    Ok(if objects.trim() == "0" {
        TargetState::Empty
    } else {
        TargetState::NonEmpty
    })
}

/// Counts what makes a database "not empty": relations, schemas, extensions, functions,
/// types and large objects beyond what a database created from `template0` has.
const OBJECT_COUNT_SQL: &str = "SELECT \
 (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)') \
 + (SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname NOT IN ('public', 'pg_catalog', 'information_schema') \
   AND nspname !~ '^pg_(toast|temp)') \
 + (SELECT count(*) FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql') \
 + (SELECT count(*) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')) \
 + (SELECT count(*) FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)') \
 + (SELECT count(*) FROM pg_catalog.pg_largeobject_metadata);";

fn not_empty_error(database: &str) -> Error {
    Error::new(
        ErrorKind::AlreadyExists,
        format!("database `{database}` already holds data"),
    )
    .with_hint("import with force to replace it (it is swapped only after a successful restore), or restore into another database")
}

/// The restore command for a format, reading the dump on stdin; the objects are created
/// as the config's [owner role](PostgresConfig::owner_role).
fn restore_spec(config: &PostgresConfig, database: &str, format: DumpFormat) -> CommandSpec {
    let owner = config.owner_role();
    let as_owner = owner != config.user;
    match format {
        DumpFormat::Custom => {
            let spec = tool(config, "pg_restore", database).args([
                "--single-transaction",
                "--exit-on-error",
                "--no-owner",
                "--no-privileges",
            ]);
            if as_owner {
                spec.arg(format!("--role={owner}"))
            } else {
                spec
            }
        }
        DumpFormat::Sql => {
            let spec = tool(config, "psql", database).args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "--single-transaction",
                "-o",
                "/dev/null",
            ]);
            let spec = if as_owner {
                spec.arg("-c").arg(format!("SET ROLE {}", ident(owner)))
            } else {
                spec
            };
            spec.args(["-f", "-"])
        }
    }
}

/// The options after `CREATE DATABASE name TEMPLATE template0` for an artifact: its
/// recorded encoding and locale (when it has them) and the owner role.
async fn create_options(
    runner: &Arc<dyn CommandRunner>,
    config: &PostgresConfig,
    properties: Option<&DatabaseProperties>,
) -> Result<String> {
    let mut options = match properties {
        Some(properties) => {
            let version = query(
                runner,
                config,
                MAINTENANCE_DB,
                "SELECT current_setting('server_version_num');",
            )
            .await
            .map_err(|e| e.context("checking the target server"))?;
            let version = version.trim().parse::<u32>().map_err(|_| {
                Error::new(
                    ErrorKind::ToolFailed,
                    "the server reported an unreadable version",
                )
            })?;
            properties.create_options(version)?
        }
        None => String::new(),
    };
    options.push_str(&format!(" OWNER {}", ident(config.owner_role())));
    Ok(options)
}

/// Applies the artifact's database settings and comment to `database`, once its data is
/// in.
async fn apply_properties(
    runner: &Arc<dyn CommandRunner>,
    config: &PostgresConfig,
    database: &str,
    properties: Option<&DatabaseProperties>,
) -> Result<()> {
    let Some(properties) = properties else {
        return Ok(());
    };
    let script = properties.apply_script(database)?;
    if script.is_empty() {
        return Ok(());
    }
    on_server(runner, config, &script)
        .await
        .map_err(|e| e.context(format!("setting the properties of database `{database}`")))
}

/// A database name for a temporary restore, at most 63 bytes.
fn temporary_name(database: &str, purpose: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let suffix = format!(
        "__{purpose}_{:08x}",
        (nanos as u64 ^ u64::from(std::process::id())) as u32
    );
    let mut prefix_len = database.len().min(63 - suffix.len());
    while !database.is_char_boundary(prefix_len) {
        prefix_len -= 1;
    }
    format!("{}{suffix}", &database[..prefix_len])
}

/// Runs server-level `sql` (create, drop, rename databases) in the maintenance database.
async fn on_server(
    runner: &Arc<dyn CommandRunner>,
    config: &PostgresConfig,
    sql: &str,
) -> Result<()> {
    query(runner, config, MAINTENANCE_DB, sql).await.map(|_| ())
}

async fn create_database(
    runner: &Arc<dyn CommandRunner>,
    config: &PostgresConfig,
    database: &str,
    options: &str,
) -> Result<()> {
    let sql = format!(
        "CREATE DATABASE {} TEMPLATE template0{options};",
        ident(database)
    );
    on_server(runner, config, &sql)
        .await
        .map_err(|e| e.context(format!("creating database `{database}`")))
}

async fn drop_database(
    runner: &Arc<dyn CommandRunner>,
    config: &PostgresConfig,
    database: &str,
) -> Result<()> {
    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE);", ident(database));
    on_server(runner, config, &sql).await
}

/// Renames `fresh` to `target` and `target` away, in one transaction, after terminating
/// the target's connections; then drops the old one. Retries when a client reconnects.
async fn swap_in(
    runner: &Arc<dyn CommandRunner>,
    config: &PostgresConfig,
    target: &str,
    fresh: &str,
) -> Result<()> {
    let old = temporary_name(target, "old");
    let sql = format!(
        "BEGIN;\n\
         SELECT count(pg_catalog.pg_terminate_backend(pid, 5000)) FROM pg_catalog.pg_stat_activity \
         WHERE datname = {target_lit} AND pid <> pg_catalog.pg_backend_pid();\n\
         ALTER DATABASE {target_id} RENAME TO {old_id};\n\
         ALTER DATABASE {fresh_id} RENAME TO {target_id};\n\
         COMMIT;\n",
        target_lit = literal(target),
        target_id = ident(target),
        old_id = ident(&old),
        fresh_id = ident(fresh),
    );
    let mut attempt = 0;
    loop {
        attempt += 1;
        match on_server(runner, config, &sql).await {
            Ok(()) => break,
            Err(e) if attempt < 5 && e.message().contains("being accessed by other users") => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => {
                return Err(e.context(format!("swapping the restored database into `{target}`")))
            }
        }
    }
    // The restore is in place; an old copy that cannot be dropped now stays as `old`.
    let _ = drop_database(runner, config, &old).await;
    Ok(())
}

/// Runs the smoke test on `restored` (a database this import created) before it
/// becomes, or stays as, `target`, when the artifact carries the summary to compare with
/// (every artifact this exporter writes does); one without it is only checked by the
/// caller's smoke test, if any.
async fn verify_before_commit(
    runner: &Arc<dyn CommandRunner>,
    config: &PostgresConfig,
    restored: &str,
    target: &str,
    artifact: &ArtifactDescriptor,
) -> Result<()> {
    if !artifact.metadata.contains_key(keys::SCHEMA) {
        return Ok(());
    }
    smoke::compare_with_artifact(runner, config, restored, artifact)
        .await
        .map_err(|e| {
            e.context(format!(
                "checking the restored data before it replaces `{target}` (left unchanged)"
            ))
        })
}

async fn restore(
    runner: &Arc<dyn CommandRunner>,
    config: &PostgresConfig,
    database: &str,
    format: DumpFormat,
    data: ByteStream,
) -> Result<()> {
    let data = match format {
        DumpFormat::Custom => data,
        DumpFormat::Sql => require_plain_dump_trailer(data),
    };
    runner
        .run_with_stdin(&restore_spec(config, database, format), data)
        .await
        .map(|_| ())
        .map_err(|e| e.context(format!("restoring into database `{database}`")))
}

#[async_trait]
impl DataImporter for PostgresImporter {
    fn formats(&self) -> Vec<String> {
        vec![
            DumpFormat::Custom.artifact_format().to_string(),
            DumpFormat::Sql.artifact_format().to_string(),
        ]
    }

    async fn check(
        &self,
        service: &ServiceTarget,
        artifacts: &[ArtifactDescriptor],
        mode: ImportMode,
    ) -> Result<()> {
        let config = PostgresConfig::from_json(&service.config)?;
        for artifact in artifacts {
            ensure_format_supported(self, RECIPE, artifact)?;
        }
        if config.database.is_some() && artifacts.len() > 1 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{} artifacts cannot all be restored into the one database the config names",
                    artifacts.len()
                ),
            )
            .with_hint("use `databases` or `allDatabases` in the config to restore each into its own database"));
        }
        for artifact in artifacts {
            // Malformed recorded properties are refused before anything is touched.
            if let Some(properties) = DatabaseProperties::from_descriptor(artifact)? {
                properties.validate()?;
            }
        }
        if let Some(owner) = &config.owner {
            let found = query(
                &service.runner,
                &config,
                MAINTENANCE_DB,
                &format!(
                    "SELECT count(*) FROM pg_catalog.pg_roles WHERE rolname = {};",
                    literal(owner)
                ),
            )
            .await
            .map_err(|e| e.context("checking the target server"))?;
            if found.trim() != "1" {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("the owner role `{owner}` does not exist on the target server"),
                )
                .with_hint("create the role first (CREATE ROLE … LOGIN), or leave `owner` out to restore as the configured user"));
            }
        }
        // Reachable first: this fails with Unavailable and a hint when the server is down
        // (with artifacts, the state queries below prove it).
        if artifacts.is_empty() {
            query(&service.runner, &config, MAINTENANCE_DB, "SELECT 1;")
                .await
                .map_err(|e| e.context("checking the target server"))?;
        }
        for artifact in artifacts {
            let database = target_database(&config, artifact)?;
            let state = target_state(&service.runner, &config, &database, None).await?;
            if state == TargetState::NonEmpty && !mode.force {
                return Err(not_empty_error(&database));
            }
        }
        Ok(())
    }

    /// Each configured database that exists, with its size (`pg_database_size`).
    async fn describe_target(&self, service: &ServiceTarget) -> Result<Option<Vec<HeldData>>> {
        crate::held::describe(service).await
    }

    async fn import(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
        data: ByteStream,
        mode: ImportMode,
    ) -> Result<()> {
        ensure_format_supported(self, RECIPE, artifact)?;
        let config = PostgresConfig::from_json(&service.config)?;
        let format = DumpFormat::from_artifact_format(&artifact.format).ok_or_else(|| {
            Error::new(ErrorKind::UnsupportedVersion, "not a postgres dump format")
        })?;
        let database = target_database(&config, artifact)?;
        let runner = &service.runner;
        let properties = DatabaseProperties::from_descriptor(artifact)?;
        let properties = properties.as_ref();
        let options = create_options(runner, &config, properties).await?;
        match target_state(runner, &config, &database, Some(&options)).await? {
            TargetState::Missing => {
                // target_state created it.
                let restored = async {
                    restore(runner, &config, &database, format, data).await?;
                    verify_before_commit(runner, &config, &database, &database, artifact).await?;
                    apply_properties(runner, &config, &database, properties).await
                };
                if let Err(e) = restored.await {
                    let _ = drop_database(runner, &config, &database).await;
                    return Err(e);
                }
                Ok(())
            }
            TargetState::Empty => {
                restore(runner, &config, &database, format, data).await?;
                apply_properties(runner, &config, &database, properties).await
            }
            TargetState::NonEmpty if !mode.force => Err(not_empty_error(&database)),
            TargetState::NonEmpty => {
                let fresh = temporary_name(&database, "restore");
                create_database(runner, &config, &fresh, &options).await?;
                let restored = async {
                    restore(runner, &config, &fresh, format, data).await?;
                    // The old database is still untouched: check the new one against the
                    // backup's metadata before anything of the old one is given up.
                    verify_before_commit(runner, &config, &fresh, &database, artifact).await?;
                    apply_properties(runner, &config, &fresh, properties).await
                };
                if let Err(e) = restored.await {
                    let _ = drop_database(runner, &config, &fresh).await;
                    return Err(e);
                }
                if let Err(e) = swap_in(runner, &config, &database, &fresh).await {
                    let _ = drop_database(runner, &config, &fresh).await;
                    return Err(e);
                }
                Ok(())
            }
        }
    }

    async fn smoke_test(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
    ) -> Result<()> {
        let config = PostgresConfig::from_json(&service.config)?;
        let database = target_database(&config, artifact)?;
        smoke::compare_with_artifact(&service.runner, &config, &database, artifact).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_fit_in_63_bytes_and_keep_utf8_whole() {
        let long = "ä".repeat(40);
        let name = temporary_name(&long, "restore");
        assert!(name.len() <= 63, "{name}");
        assert!(name.contains("__restore_"));
    }
}
