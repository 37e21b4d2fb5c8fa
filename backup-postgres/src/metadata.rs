//! What the manifest records about a dumped database: server version, format, scope,
//! table count, per-table row counts and a schema summary (tables, columns, indexes).
//!
//! The exporter gathers it inside the same MVCC snapshot as the dump (see
//! [`crate::PostgresExporter`]); the smoke test gathers it again after a restore and
//! compares; [`crate::diff`] compares two of them without a server.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use backup_core::{ArtifactDescriptor, Error, ErrorKind, Result};

/// Metadata keys in an artifact descriptor.
pub mod keys {
    /// Database name the artifact was dumped from.
    pub const DATABASE: &str = "database";
    /// `custom` or `sql`.
    pub const FORMAT: &str = "format";
    /// `full` or `schema`.
    pub const SCOPE: &str = "scope";
    /// `server_version` of the source.
    pub const SERVER_VERSION: &str = "serverVersion";
    /// Number of tables (ordinary and partitioned), extension-owned ones excluded.
    pub const TABLE_COUNT: &str = "tableCount";
    /// Object of `schema.table` to exact row count (full scope only); a partitioned
    /// table counts the rows of all its partitions.
    pub const ROW_COUNTS: &str = "rowCounts";
    /// [`super::SchemaSummary`].
    pub const SCHEMA: &str = "schema";
    /// Whether metadata and dump share one snapshot.
    pub const CONSISTENT_SNAPSHOT: &str = "consistentSnapshot";
    /// Bytes of dump produced.
    pub const DUMP_BYTES: &str = "dumpBytes";
    /// A shell command that restores this artifact, read on stdin, into a new database
    /// named like the source with the stock client tools alone (connection from the
    /// `PG*` environment variables): the way back when this library is not at hand.
    pub const RESTORE_COMMAND: &str = "restoreCommand";
    /// How the row counts were taken: `dump` (counted in the dump's own COPY data as it
    /// streamed) or `query` (`count(*)` in the dump's snapshot, for a dump the counter
    /// does not read).
    pub const ROW_COUNT_SOURCE: &str = "rowCountSource";
    /// [`crate::DatabaseProperties`]: encoding, locale, settings, comment and owner of
    /// the source database, recreated on import.
    pub const DATABASE_PROPERTIES: &str = "databaseProperties";
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ColumnSummary {
    /// Column name.
    pub name: String,
    /// SQL type as `format_type` prints it (`integer`, `character varying(20)`).
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
}

/// One table (ordinary or partitioned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableSummary {
    /// `schema.table`.
    pub name: String,
    /// Columns in order.
    pub columns: Vec<ColumnSummary>,
}

/// One index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexSummary {
    /// `schema.index`.
    pub name: String,
    /// `schema.table` it belongs to.
    pub table: String,
    /// `CREATE INDEX …` as the server prints it.
    pub definition: String,
}

/// Tables with their columns, and indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaSummary {
    /// Tables, sorted by name.
    pub tables: Vec<TableSummary>,
    /// Indexes, sorted by name.
    pub indexes: Vec<IndexSummary>,
}

/// What one database looked like at the moment of the dump.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSummary {
    /// `server_version`.
    pub server_version: String,
    /// Exact row counts by table, when counted (full scope).
    pub row_counts: Option<BTreeMap<String, i64>>,
    /// Tables, columns and indexes.
    pub schema: SchemaSummary,
}

impl DatabaseSummary {
    /// The descriptor metadata fields this summary fills.
    pub fn to_metadata(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        map.insert(
            keys::SERVER_VERSION.into(),
            self.server_version.clone().into(),
        );
        map.insert(keys::TABLE_COUNT.into(), self.schema.tables.len().into());
        if let Some(rows) = &self.row_counts {
            map.insert(
                keys::ROW_COUNTS.into(),
                serde_json::to_value(rows).unwrap_or_default(),
            );
        }
        map.insert(
            keys::SCHEMA.into(),
            serde_json::to_value(&self.schema).unwrap_or_default(),
        );
        map
    }

    /// Reads a summary back from an artifact descriptor's metadata.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] naming the artifact when it carries no (or malformed)
    /// postgres metadata.
    pub fn from_descriptor(artifact: &ArtifactDescriptor) -> Result<Self> {
        let meta = &artifact.metadata;
        let bad = |what: &str| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "artifact `{}` has no usable `{what}` metadata",
                    artifact.name
                ),
            )
            .with_hint(
                "use an artifact exported by the postgres adapter, with its manifest metadata",
            )
        };
        let schema = meta
            .get(keys::SCHEMA)
            .cloned()
            .ok_or_else(|| bad(keys::SCHEMA))
            .and_then(|v| serde_json::from_value(v).map_err(|_| bad(keys::SCHEMA)))?;
        let row_counts = match meta.get(keys::ROW_COUNTS) {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(serde_json::from_value(v.clone()).map_err(|_| bad(keys::ROW_COUNTS))?),
        };
        let server_version = meta
            .get(keys::SERVER_VERSION)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        Ok(DatabaseSummary {
            server_version,
            row_counts,
            schema,
        })
    }

    /// Table names.
    pub fn table_names(&self) -> Vec<&str> {
        self.schema.tables.iter().map(|t| t.name.as_str()).collect()
    }
}

/// The tables a summary covers: ordinary and partitioned, outside the system schemas,
/// not owned by an extension.
const TABLES_CTE: &str = r#"WITH tbl AS (
  SELECT c.oid, n.nspname, c.relname, c.relkind, n.nspname || '.' || c.relname AS name
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname !~ '^pg_(toast|temp)'
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
)"#;

/// Exact row counts of the `tbl` tables as one JSON object (NULL when there are none):
/// a partitioned table counts the rows of all its partitions, any other table its own.
const ROW_COUNTS_EXPR: &str =
    "(SELECT json_object_agg(t.name, (xpath('/row/c/text()', query_to_xml(format(\
 'SELECT count(*) AS c FROM %s %I.%I', CASE WHEN t.relkind = 'p' THEN '' ELSE 'ONLY' END, \
 t.nspname, t.relname), false, true, '')))[1]::text::bigint ORDER BY t.name) FROM tbl t)";

/// The query that returns a [`DatabaseSummary`] as one JSON line; counts rows exactly
/// when `count_rows`. The line also carries `partitionLeaves` (see
/// [`parse_partition_leaves`]).
pub(crate) fn summary_sql(count_rows: bool) -> String {
    let rows = if count_rows { ROW_COUNTS_EXPR } else { "NULL" };
    format!(
        r#"{TABLES_CTE}
SELECT json_build_object(
  'serverVersion', current_setting('server_version'),
  'rowCounts', {rows},
  'partitionLeaves', COALESCE((SELECT json_object_agg(t.name, (
      SELECT COALESCE(json_agg(ln.nspname || '.' || lc.relname ORDER BY 1), '[]'::json)
      FROM pg_catalog.pg_partition_tree(t.oid) pt
      JOIN pg_catalog.pg_class lc ON lc.oid = pt.relid
      JOIN pg_catalog.pg_namespace ln ON ln.oid = lc.relnamespace
      WHERE pt.isleaf AND lc.relkind = 'r'))
    FROM tbl t WHERE t.relkind = 'p'), '{{}}'::json),
  'schema', json_build_object(
    'tables', COALESCE((SELECT json_agg(json_build_object(
        'name', t.name,
        'columns', COALESCE((SELECT json_agg(json_build_object(
            'name', a.attname,
            'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
            'nullable', NOT a.attnotnull) ORDER BY a.attnum)
          FROM pg_catalog.pg_attribute a
          WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]'::json))
        ORDER BY t.name) FROM tbl t), '[]'::json),
    'indexes', COALESCE((SELECT json_agg(json_build_object(
        'name', t.nspname || '.' || ic.relname,
        'table', t.name,
        'definition', pg_catalog.pg_get_indexdef(i.indexrelid))
        ORDER BY t.nspname || '.' || ic.relname)
      FROM pg_catalog.pg_index i
      JOIN tbl t ON t.oid = i.indrelid
      JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid), '[]'::json)
  )
);
"#
    )
}

/// The query that returns the exact row counts of every summarised table as one JSON
/// object line (`{}` when there are no tables).
pub(crate) fn row_counts_sql() -> String {
    format!("{TABLES_CTE}\nSELECT COALESCE({ROW_COUNTS_EXPR}, '{{}}'::json);\n")
}

/// Parses the output of [`row_counts_sql`].
pub(crate) fn parse_row_counts(output: &str) -> Result<BTreeMap<String, i64>> {
    serde_json::from_str(output.trim()).map_err(|e| {
        Error::new(
            ErrorKind::ToolFailed,
            format!("psql returned row counts that do not parse: {e}"),
        )
    })
}

/// The leaf partitions of each partitioned table, from the output of [`summary_sql`].
pub(crate) fn parse_partition_leaves(output: &str) -> Result<BTreeMap<String, Vec<String>>> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Leaves {
        partition_leaves: BTreeMap<String, Vec<String>>,
    }
    serde_json::from_str::<Leaves>(output.trim())
        .map(|l| l.partition_leaves)
        .map_err(|e| {
            Error::new(
                ErrorKind::ToolFailed,
                format!("psql returned partition leaves that do not parse: {e}"),
            )
        })
}

/// Parses the output of [`summary_sql`].
pub(crate) fn parse_summary(output: &str, count_rows: bool) -> Result<DatabaseSummary> {
    let mut summary: DatabaseSummary = serde_json::from_str(output.trim()).map_err(|e| {
        Error::new(
            ErrorKind::ToolFailed,
            format!("psql returned a database summary that does not parse: {e}"),
        )
    })?;
    // No tables: json_object_agg yields NULL, which means "no rows anywhere".
    if count_rows && summary.row_counts.is_none() {
        summary.row_counts = Some(BTreeMap::new());
    }
    Ok(summary)
}

/// The [`keys::RESTORE_COMMAND`] for a dump of `database` in `format`: the same flags the
/// importer uses, with the database name quoted for a POSIX shell.
pub fn restore_command(database: &str, format: crate::DumpFormat) -> String {
    let db = shell_quote(database);
    let restore = match format {
        crate::DumpFormat::Custom => format!(
            "pg_restore --single-transaction --exit-on-error --no-owner --no-privileges -d {db}"
        ),
        crate::DumpFormat::Sql => {
            format!("psql -X -q -v ON_ERROR_STOP=1 --single-transaction -d {db} -f -")
        }
    };
    format!("createdb -T template0 {db} && {restore}")
}

/// `text` as one POSIX shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_commands_quote_the_database_for_the_shell() {
        assert_eq!(
            restore_command("it's", crate::DumpFormat::Custom),
            "createdb -T template0 'it'\\''s' && pg_restore --single-transaction \
             --exit-on-error --no-owner --no-privileges -d 'it'\\''s'"
        );
        assert!(restore_command("app", crate::DumpFormat::Sql)
            .ends_with("psql -X -q -v ON_ERROR_STOP=1 --single-transaction -d 'app' -f -"));
    }
}
