//! What an export records about the database, and the comparison a restore makes with it.

use std::collections::BTreeMap;

use backup_core::{ArtifactDescriptor, Error, Result};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The metadata keys an export records on its artifact.
pub mod keys {
    /// The SQLite library version that made the copy.
    pub const SQLITE_VERSION: &str = "sqliteVersion";
    /// The database's page size in bytes.
    pub const PAGE_SIZE: &str = "pageSize";
    /// The database's page count in the copy.
    pub const PAGE_COUNT: &str = "pageCount";
    /// The source database's journal mode (`wal`, `delete`, …).
    pub const JOURNAL_MODE: &str = "journalMode";
    /// `PRAGMA user_version` (apps keep their schema version there).
    pub const USER_VERSION: &str = "userVersion";
    /// Object of table name → row count (tables named `sqlite_*` excluded).
    pub const TABLES: &str = "tables";
    /// sha256 (hex) of every `sql` of `sqlite_master`, sorted, each followed by `\n`.
    pub const SCHEMA_HASH: &str = "schemaHash";
    /// Size in bytes of the artifact (the database copy).
    pub const SIZE: &str = "sizeBytes";
    /// sha256 (hex) of the artifact's bytes, checked by the importer before the swap.
    pub const SHA256: &str = "sha256";
}

/// Lists the user tables, sorted.
pub const TABLES_SQL: &str =
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name";
/// Lists the schema's SQL, sorted by bytes.
pub const SCHEMA_SQL: &str = "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY sql";

/// A database's summary, as recorded at export and measured after a restore.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatabaseSummary {
    /// SQLite version that read the database.
    pub sqlite_version: String,
    /// Page size in bytes.
    pub page_size: u64,
    /// Page count.
    pub page_count: u64,
    /// Journal mode of the source.
    pub journal_mode: String,
    /// `PRAGMA user_version`.
    pub user_version: i64,
    /// Row count per user table.
    pub tables: BTreeMap<String, u64>,
    /// See [`keys::SCHEMA_HASH`].
    pub schema_hash: String,
}

/// sha256 of the sorted schema statements.
pub fn schema_hash<I, S>(sorted_sql: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut hasher = Sha256::new();
    for sql in sorted_sql {
        hasher.update(sql.as_ref().as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

/// Quotes an identifier for SQL.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl DatabaseSummary {
    /// The summary as artifact metadata entries.
    pub fn to_metadata(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert(keys::SQLITE_VERSION.into(), json!(self.sqlite_version));
        map.insert(keys::PAGE_SIZE.into(), json!(self.page_size));
        map.insert(keys::PAGE_COUNT.into(), json!(self.page_count));
        map.insert(keys::JOURNAL_MODE.into(), json!(self.journal_mode));
        map.insert(keys::USER_VERSION.into(), json!(self.user_version));
        map.insert(keys::TABLES.into(), json!(self.tables));
        map.insert(keys::SCHEMA_HASH.into(), json!(self.schema_hash));
        map
    }
}

/// What an artifact promises about the restored database: row counts and schema hash,
/// when its metadata has them (an artifact listed before the export has none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// Row count per table.
    pub tables: Option<BTreeMap<String, u64>>,
    /// Schema hash.
    pub schema_hash: Option<String>,
    /// Artifact size in bytes.
    pub size: Option<u64>,
    /// sha256 (hex) of the artifact's bytes.
    pub sha256: Option<String>,
}

impl Expected {
    /// Reads the promises of `artifact`.
    ///
    /// # Errors
    ///
    /// [`backup_core::ErrorKind::Integrity`] when a key is present but malformed.
    pub fn from_descriptor(artifact: &ArtifactDescriptor) -> Result<Self> {
        let bad = |key: &str| {
            Error::integrity(format!(
                "artifact `{}` has malformed `{key}` metadata",
                artifact.name
            ))
        };
        let tables = match artifact.metadata.get(keys::TABLES) {
            None => None,
            Some(Value::Object(map)) => {
                let mut tables = BTreeMap::new();
                for (name, rows) in map {
                    tables.insert(
                        name.clone(),
                        rows.as_u64().ok_or_else(|| bad(keys::TABLES))?,
                    );
                }
                Some(tables)
            }
            Some(_) => return Err(bad(keys::TABLES)),
        };
        let schema_hash = match artifact.metadata.get(keys::SCHEMA_HASH) {
            None => None,
            Some(Value::String(hash)) => Some(hash.clone()),
            Some(_) => return Err(bad(keys::SCHEMA_HASH)),
        };
        let size = match artifact.metadata.get(keys::SIZE) {
            None => None,
            Some(value) => Some(value.as_u64().ok_or_else(|| bad(keys::SIZE))?),
        };
        let sha256 = match artifact.metadata.get(keys::SHA256) {
            None => None,
            Some(Value::String(hash)) => Some(hash.clone()),
            Some(_) => return Err(bad(keys::SHA256)),
        };
        Ok(Expected {
            tables,
            schema_hash,
            size,
            sha256,
        })
    }

    /// Compares a measured database with the promises.
    ///
    /// # Errors
    ///
    /// [`backup_core::ErrorKind::Integrity`] naming the first difference.
    pub fn check(&self, what: &str, actual: &DatabaseSummary) -> Result<()> {
        let hint = "the restored data differs from the backup: verify the bundle and restore again";
        if let Some(hash) = &self.schema_hash {
            if hash != &actual.schema_hash {
                return Err(Error::integrity(format!(
                    "{what}: the schema differs from the one the backup recorded"
                ))
                .with_hint(hint));
            }
        }
        if let Some(tables) = &self.tables {
            for (table, rows) in tables {
                match actual.tables.get(table) {
                    None => {
                        return Err(
                            Error::integrity(format!("{what}: table {table} is missing"))
                                .with_hint(hint),
                        )
                    }
                    Some(found) if found != rows => {
                        return Err(Error::integrity(format!(
                            "{what}: table {table} has {found} rows, the backup recorded {rows}"
                        ))
                        .with_hint(hint))
                    }
                    Some(_) => {}
                }
            }
            if let Some(extra) = actual.tables.keys().find(|t| !tables.contains_key(*t)) {
                return Err(Error::integrity(format!(
                    "{what}: table {extra} is not in the backup"
                ))
                .with_hint(hint));
            }
        }
        Ok(())
    }
}
