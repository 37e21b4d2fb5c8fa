//! Snapshot diff (seed 002 `*snapshot-diff`): what changed between two exports of a
//! database, from manifest metadata alone, without a server.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use backup_core::{ArtifactDescriptor, Result};

use crate::metadata::{keys, DatabaseSummary};

/// A column that was added, removed or changed type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ColumnChange {
    /// `schema.table`.
    pub table: String,
    /// Column name.
    pub column: String,
    /// Type before (removed or changed columns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before_type: Option<String>,
    /// Type after (added or changed columns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_type: Option<String>,
}

/// An index that was added or removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexChange {
    /// `schema.index`.
    pub name: String,
    /// `schema.table`.
    pub table: String,
    /// Its definition.
    pub definition: String,
}

/// Row count of one table before and after; a table missing on one side counts 0 there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RowDelta {
    /// `schema.table`.
    pub table: String,
    /// Rows before, when the table existed and rows were counted.
    pub before: Option<i64>,
    /// Rows after, when the table exists and rows were counted.
    pub after: Option<i64>,
    /// `after - before`, exact for any two `i64` counts (a manifest may hold any number,
    /// so the difference is computed in 128 bits and never overflows).
    pub delta: i128,
}

/// What changed between two exports: schema changes and row-count deltas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaDiff {
    /// The earlier artifact (`database (artifact name)`).
    pub before: String,
    /// The later artifact.
    pub after: String,
    /// Tables only in `after`.
    pub tables_added: Vec<String>,
    /// Tables only in `before`.
    pub tables_removed: Vec<String>,
    /// Columns only in `after` (of tables in both).
    pub columns_added: Vec<ColumnChange>,
    /// Columns only in `before` (of tables in both).
    pub columns_removed: Vec<ColumnChange>,
    /// Columns whose type changed.
    pub columns_changed: Vec<ColumnChange>,
    /// Indexes only in `after`.
    pub indexes_added: Vec<IndexChange>,
    /// Indexes only in `before`.
    pub indexes_removed: Vec<IndexChange>,
    /// Tables whose row count changed (empty when either side is schema-only).
    pub row_deltas: Vec<RowDelta>,
}

impl SchemaDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.tables_added.is_empty()
            && self.tables_removed.is_empty()
            && self.columns_added.is_empty()
            && self.columns_removed.is_empty()
            && self.columns_changed.is_empty()
            && self.indexes_added.is_empty()
            && self.indexes_removed.is_empty()
            && self.row_deltas.is_empty()
    }

    /// Whether the schema (tables, columns, indexes) changed.
    pub fn schema_changed(&self) -> bool {
        !(self.tables_added.is_empty()
            && self.tables_removed.is_empty()
            && self.columns_added.is_empty()
            && self.columns_removed.is_empty()
            && self.columns_changed.is_empty()
            && self.indexes_added.is_empty()
            && self.indexes_removed.is_empty())
    }
}

fn label(artifact: &ArtifactDescriptor) -> String {
    match artifact
        .metadata
        .get(keys::DATABASE)
        .and_then(|v| v.as_str())
    {
        Some(db) => format!("{db} ({})", artifact.name),
        None => artifact.name.clone(),
    }
}

/// Compares two exports of a database from their manifest metadata.
///
/// Row deltas are listed only when both exports counted rows (full scope).
///
/// # Errors
///
/// [`backup_core::ErrorKind::InvalidInput`] when either descriptor lacks the postgres
/// metadata (schema summary) this needs.
pub fn diff(before: &ArtifactDescriptor, after: &ArtifactDescriptor) -> Result<SchemaDiff> {
    let old = DatabaseSummary::from_descriptor(before)?;
    let new = DatabaseSummary::from_descriptor(after)?;
    let old_tables: BTreeMap<&str, _> = old
        .schema
        .tables
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let new_tables: BTreeMap<&str, _> = new
        .schema
        .tables
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();

    let mut out = SchemaDiff {
        before: label(before),
        after: label(after),
        tables_added: new_tables
            .keys()
            .filter(|t| !old_tables.contains_key(*t))
            .map(|t| t.to_string())
            .collect(),
        tables_removed: old_tables
            .keys()
            .filter(|t| !new_tables.contains_key(*t))
            .map(|t| t.to_string())
            .collect(),
        columns_added: Vec::new(),
        columns_removed: Vec::new(),
        columns_changed: Vec::new(),
        indexes_added: Vec::new(),
        indexes_removed: Vec::new(),
        row_deltas: Vec::new(),
    };

    for (name, old_table) in &old_tables {
        let Some(new_table) = new_tables.get(name) else {
            continue;
        };
        let old_cols: BTreeMap<&str, &str> = old_table
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.data_type.as_str()))
            .collect();
        let new_cols: BTreeMap<&str, &str> = new_table
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.data_type.as_str()))
            .collect();
        for (col, ty) in &new_cols {
            match old_cols.get(col) {
                None => out.columns_added.push(ColumnChange {
                    table: name.to_string(),
                    column: col.to_string(),
                    before_type: None,
                    after_type: Some(ty.to_string()),
                }),
                Some(old_ty) if old_ty != ty => out.columns_changed.push(ColumnChange {
                    table: name.to_string(),
                    column: col.to_string(),
                    before_type: Some(old_ty.to_string()),
                    after_type: Some(ty.to_string()),
                }),
                Some(_) => {}
            }
        }
        for (col, ty) in &old_cols {
            if !new_cols.contains_key(col) {
                out.columns_removed.push(ColumnChange {
                    table: name.to_string(),
                    column: col.to_string(),
                    before_type: Some(ty.to_string()),
                    after_type: None,
                });
            }
        }
    }

    let old_idx: BTreeSet<&str> = old.schema.indexes.iter().map(|i| i.name.as_str()).collect();
    let new_idx: BTreeSet<&str> = new.schema.indexes.iter().map(|i| i.name.as_str()).collect();
    let change = |i: &crate::metadata::IndexSummary| IndexChange {
        name: i.name.clone(),
        table: i.table.clone(),
        definition: i.definition.clone(),
    };
    out.indexes_added = new
        .schema
        .indexes
        .iter()
        .filter(|i| !old_idx.contains(i.name.as_str()))
        .map(change)
        .collect();
    out.indexes_removed = old
        .schema
        .indexes
        .iter()
        .filter(|i| !new_idx.contains(i.name.as_str()))
        .map(change)
        .collect();

    if let (Some(old_rows), Some(new_rows)) = (&old.row_counts, &new.row_counts) {
        let tables: BTreeSet<&String> = old_rows.keys().chain(new_rows.keys()).collect();
        for table in tables {
            let before = old_rows.get(table).copied();
            let after = new_rows.get(table).copied();
            let delta = i128::from(after.unwrap_or(0)) - i128::from(before.unwrap_or(0));
            if delta != 0 || before.is_none() != after.is_none() {
                out.row_deltas.push(RowDelta {
                    table: table.clone(),
                    before,
                    after,
                    delta,
                });
            }
        }
    }
    Ok(out)
}

impl fmt::Display for SchemaDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "snapshot diff: {} -> {}", self.before, self.after)?;
        if self.is_empty() {
            return writeln!(f, "no changes");
        }
        if self.schema_changed() {
            writeln!(f, "schema changes:")?;
            for t in &self.tables_added {
                writeln!(f, "  + table {t}")?;
            }
            for t in &self.tables_removed {
                writeln!(f, "  - table {t}")?;
            }
            for c in &self.columns_added {
                writeln!(
                    f,
                    "  + column {}.{} {}",
                    c.table,
                    c.column,
                    c.after_type.as_deref().unwrap_or("")
                )?;
            }
            for c in &self.columns_removed {
                writeln!(
                    f,
                    "  - column {}.{} {}",
                    c.table,
                    c.column,
                    c.before_type.as_deref().unwrap_or("")
                )?;
            }
            for c in &self.columns_changed {
                writeln!(
                    f,
                    "  ~ column {}.{}: {} -> {}",
                    c.table,
                    c.column,
                    c.before_type.as_deref().unwrap_or(""),
                    c.after_type.as_deref().unwrap_or("")
                )?;
            }
            for i in &self.indexes_added {
                writeln!(f, "  + index {} on {}", i.name, i.table)?;
            }
            for i in &self.indexes_removed {
                writeln!(f, "  - index {} on {}", i.name, i.table)?;
            }
        }
        if !self.row_deltas.is_empty() {
            writeln!(f, "row count changes:")?;
            for d in &self.row_deltas {
                let show = |n: Option<i64>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
                writeln!(
                    f,
                    "  {}: {} -> {} ({:+})",
                    d.table,
                    show(d.before),
                    show(d.after),
                    d.delta
                )?;
            }
        }
        Ok(())
    }
}

/// One database's changes between two bundles.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleDiffEntry {
    /// Service name.
    pub service: String,
    /// Artifact (database dump) name.
    pub artifact: String,
    /// What changed; `None` when the artifact is only in one of the bundles.
    pub changes: Option<SchemaDiff>,
    /// `"both"`, `"before"` or `"after"`: which bundles hold the artifact.
    pub present_in: String,
}

/// Compares every PostgreSQL artifact of two bundles from their manifests only: no
/// server and no data is read (`*snapshot-diff before after`).
///
/// # Errors
///
/// When a bundle cannot be opened (see [`backup_core::bundle::BundleReader::open`]) or an
/// artifact's metadata is not a PostgreSQL summary.
pub async fn diff_bundles(
    before: &std::path::Path,
    after: &std::path::Path,
) -> Result<Vec<BundleDiffEntry>> {
    use backup_core::artifact::formats::{POSTGRES_CUSTOM, POSTGRES_SQL};
    use backup_core::bundle::BundleReader;

    let old = BundleReader::open(before).await?;
    let new = BundleReader::open(after).await?;
    let is_postgres = |format: &str| format == POSTGRES_CUSTOM || format == POSTGRES_SQL;
    let index = |reader: &BundleReader| -> BTreeMap<(String, String), ArtifactDescriptor> {
        reader
            .manifest()
            .entries
            .iter()
            .filter(|e| is_postgres(&e.artifact.format))
            .map(|e| {
                (
                    (e.service.clone(), e.artifact.name.clone()),
                    e.artifact.clone(),
                )
            })
            .collect()
    };
    let (old, new) = (index(&old), index(&new));
    let keys: std::collections::BTreeSet<_> = old.keys().chain(new.keys()).cloned().collect();
    let mut out = Vec::new();
    for key in keys {
        let entry = match (old.get(&key), new.get(&key)) {
            (Some(a), Some(b)) => BundleDiffEntry {
                service: key.0.clone(),
                artifact: key.1.clone(),
                changes: Some(diff(a, b)?),
                present_in: "both".into(),
            },
            (Some(_), None) => BundleDiffEntry {
                service: key.0.clone(),
                artifact: key.1.clone(),
                changes: None,
                present_in: "before".into(),
            },
            _ => BundleDiffEntry {
                service: key.0.clone(),
                artifact: key.1.clone(),
                changes: None,
                present_in: "after".into(),
            },
        };
        out.push(entry);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn artifact(rows: serde_json::Value) -> ArtifactDescriptor {
        ArtifactDescriptor::new("app.dump", "postgres/custom", "application/octet-stream")
            .with_metadata(keys::SCHEMA, json!({"tables": [], "indexes": []}))
            .with_metadata(keys::ROW_COUNTS, rows)
    }

    #[test]
    fn row_deltas_of_extreme_manifest_counts_do_not_overflow() {
        let before = artifact(json!({"public.a": i64::MIN, "public.b": i64::MAX, "public.c": 0}));
        let after =
            artifact(json!({"public.a": i64::MAX, "public.b": i64::MIN, "public.d": i64::MIN}));
        let changes = diff(&before, &after).unwrap();
        let delta = |table: &str| {
            changes
                .row_deltas
                .iter()
                .find(|d| d.table == table)
                .map(|d| d.delta)
                .unwrap()
        };
        assert_eq!(
            delta("public.a"),
            i128::from(i64::MAX) - i128::from(i64::MIN)
        );
        assert_eq!(
            delta("public.b"),
            i128::from(i64::MIN) - i128::from(i64::MAX)
        );
        assert_eq!(delta("public.c"), 0);
        assert_eq!(delta("public.d"), i128::from(i64::MIN));
        // Shown and serialised without loss.
        assert!(changes
            .to_string()
            .contains(&format!("{:+}", delta("public.a"))));
        let json = serde_json::to_string(&changes).unwrap();
        assert!(json.contains(&delta("public.b").to_string()), "{json}");
    }
}
