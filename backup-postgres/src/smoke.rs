//! The post-restore smoke test: the restored database against the artifact's metadata.

use std::sync::Arc;

use backup_core::command::CommandRunner;
use backup_core::{ArtifactDescriptor, Error, Result};

use crate::config::PostgresConfig;
use crate::connection::query;
use crate::metadata::{parse_summary, summary_sql, DatabaseSummary};

/// Compares table count and per-table row counts of `database` with what `artifact`
/// recorded at export time.
///
/// # Errors
///
/// [`backup_core::ErrorKind::Integrity`] naming the first table that is missing,
/// unexpected, or has a different row count; connection errors as mapped.
pub(crate) async fn compare_with_artifact(
    runner: &Arc<dyn CommandRunner>,
    config: &PostgresConfig,
    database: &str,
    artifact: &ArtifactDescriptor,
) -> Result<()> {
    let expected = DatabaseSummary::from_descriptor(artifact)?;
    let count_rows = expected.row_counts.is_some();
    let sql = format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\n{}\nCOMMIT;\n",
        summary_sql(count_rows)
    );
    let output = query(runner, config, database, &sql)
        .await
        .map_err(|e| e.context(format!("smoke test of database `{database}`")))?;
    let actual = parse_summary(&output, count_rows)?;
    compare(database, &expected, &actual)
}

/// The comparison itself, without a server.
pub(crate) fn compare(
    database: &str,
    expected: &DatabaseSummary,
    actual: &DatabaseSummary,
) -> Result<()> {
    let hint = "the restored data differs from the backup: restore again, or verify the bundle";
    let expected_tables = expected.table_names();
    let actual_tables = actual.table_names();
    if let Some(missing) = expected_tables.iter().find(|t| !actual_tables.contains(t)) {
        return Err(Error::integrity(format!(
            "smoke test of `{database}`: table {missing} is missing after the restore"
        ))
        .with_hint(hint));
    }
    if let Some(extra) = actual_tables.iter().find(|t| !expected_tables.contains(t)) {
        return Err(Error::integrity(format!(
            "smoke test of `{database}`: table {extra} is not in the backup ({} tables expected, {} found)",
            expected_tables.len(),
            actual_tables.len()
        ))
        .with_hint(hint));
    }
    if let (Some(want), Some(have)) = (&expected.row_counts, &actual.row_counts) {
        for (table, rows) in want {
            let found = have.get(table).copied().unwrap_or(0);
            if found != *rows {
                return Err(Error::integrity(format!(
                    "smoke test of `{database}`: table {table} has {found} rows, the backup recorded {rows}"
                ))
                .with_hint(hint));
            }
        }
    }
    Ok(())
}
