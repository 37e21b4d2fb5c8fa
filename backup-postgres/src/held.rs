//! What a PostgreSQL target holds now: each configured database and its size, for the
//! dry run of a safe restore.

use backup_core::{HeldData, Result, ServiceTarget};

use crate::config::PostgresConfig;
use crate::connection::{literal, query, MAINTENANCE_DB};
use crate::exporter::database_names;

/// The service's databases that exist, with `pg_database_size`; a configured database
/// that does not exist is left out (a restore creates it).
pub(crate) async fn describe(service: &ServiceTarget) -> Result<Option<Vec<HeldData>>> {
    let config = PostgresConfig::from_json(&service.config)?;
    let names = database_names(&service.runner, &config).await?;
    if names.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let list: Vec<String> = names.iter().map(|n| literal(n)).collect();
    let sql = format!(
        "SELECT datname || '|' || pg_catalog.pg_database_size(oid) FROM pg_catalog.pg_database \
         WHERE datname IN ({}) ORDER BY 1;",
        list.join(", ")
    );
    let rows = query(&service.runner, &config, MAINTENANCE_DB, &sql)
        .await
        .map_err(|e| {
            e.context(format!(
                "reading the databases of service `{}`",
                service.name
            ))
        })?;
    let held = rows
        .lines()
        .filter_map(|line| line.rsplit_once('|'))
        .map(|(name, size)| HeldData {
            kind: "database".into(),
            name: name.to_string(),
            size: size.trim().parse().ok(),
            count: None,
        })
        .collect();
    Ok(Some(held))
}
