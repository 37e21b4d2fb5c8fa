//! The PostgreSQL adapter for backup-core: `pg_dump` exports, `pg_restore` / `psql`
//! imports, a post-restore smoke test, and a snapshot diff from manifest metadata.
//!
//! Every tool runs through the service's [`backup_core::CommandRunner`] (locally, in a
//! Podman container, or in a Kubernetes pod); the password reaches the tools only as
//! `PGPASSWORD`.
//!
//! ```no_run
//! # async fn example() -> backup_core::Result<()> {
//! use backup_core::{DataExporter, RecipeRegistry, ServiceTarget};
//!
//! let mut registry = RecipeRegistry::new();
//! backup_postgres::register(&mut registry)?;
//! let recipe = registry.get(backup_postgres::RECIPE)?;
//! let service = ServiceTarget::local(
//!     "db",
//!     backup_postgres::RECIPE,
//!     serde_json::json!({"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "app"}),
//! );
//! if let Some(exporter) = recipe.exporter() {
//!     for artifact in exporter.artifacts(&service).await? {
//!         let data = exporter.export(&service, &artifact).await?;
//!         // stream `data.stream` into a bundle, then await `data.late_metadata`.
//!         # drop(data);
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Consistency
//!
//! Metadata is taken in the same MVCC snapshot as the dump: a `psql` session exports its
//! `REPEATABLE READ` snapshot, `pg_dump --snapshot` uses it, and the schema summary
//! (tables with columns, indexes) is queried in it while the dump streams. Exact
//! per-table row counts are read from the dump's own COPY data as it passes (see
//! `rowCountSource` in [`metadata::keys`]), with `count(*)` in the snapshot as the fallback
//! for dumps the counter does not read. Everything is delivered as late metadata after
//! the dump stream ended without error. `pg_dump` waits at most `lockWaitTimeout` seconds
//! (60 by default) for a table lock, so a session holding one fails the export with a
//! clear error instead of blocking it forever.
//!
//! # What a restore carries besides the dump
//!
//! The database's encoding, locale (collation, ctype, provider, ICU locale), settings
//! (`ALTER DATABASE … SET`, `ALTER ROLE … IN DATABASE … SET`) and comment are recorded at
//! export ([`DatabaseProperties`]) and recreated when the import creates the database.
//! Restored objects and a created database belong to the config's `owner` role (the
//! connecting `user` by default). A restored database is smoke-tested (tables and row
//! counts against the manifest) before it replaces an existing one.

mod config;
mod connection;
mod diff;
mod errors;
mod exporter;
mod held;
mod importer;
pub mod metadata;
mod properties;
mod row_count;
mod session;
mod smoke;
mod stream;

use std::sync::Arc;

use backup_core::secrets::SecretGenerator;
use backup_core::{Recipe, RecipeRegistry, Result};

pub use config::{
    config_schema, DumpFormat, DumpScope, PostgresConfig, SslMode, DEFAULT_COMPRESSION_LEVEL,
    DEFAULT_LOCK_WAIT_TIMEOUT_SECS, DEFAULT_PORT,
};
pub use diff::{
    diff, diff_bundles, BundleDiffEntry, ColumnChange, IndexChange, RowDelta, SchemaDiff,
};
pub use exporter::PostgresExporter;
pub use importer::PostgresImporter;
pub use metadata::DatabaseSummary;
pub use properties::DatabaseProperties;

/// The recipe slug.
pub const RECIPE: &str = "postgres";

/// The `postgres` recipe: config schema, `password` as a secret (regenerated on import),
/// and the exporter and importer.
///
/// # Errors
///
/// Only if the built-in schema failed to compile, which tests rule out.
pub fn recipe() -> Result<Recipe> {
    Recipe::builder(RECIPE, config_schema())
        .description("PostgreSQL server")
        .secret("password", SecretGenerator::password())
        .host_setting("binDir")
        .exporter(Arc::new(PostgresExporter::new()))
        .importer(Arc::new(PostgresImporter::new()))
        .data_export_description(
            "one pg_dump per database (custom format by default, or plain SQL; schema and data \
             or schema only), portable (--no-owner --no-privileges), with the server version, \
             table count, per-table row counts and a schema summary taken in the same snapshot",
        )
        .build()
}

/// Registers the `postgres` recipe.
///
/// # Errors
///
/// As [`recipe`].
pub fn register(registry: &mut RecipeRegistry) -> Result<()> {
    registry.register(recipe()?);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_recipe_validates_configs_and_marks_the_password_secret() {
        let recipe = recipe().unwrap();
        assert_eq!(recipe.slug(), RECIPE);
        assert!(recipe.secret_fields().iter().any(|f| f.name == "password"));
        recipe
            .validate_config(&json!({"host": "h", "user": "u", "database": "d", "password": "p"}))
            .unwrap();
        recipe
            .validate_config(&json!({"host": "h", "user": "u", "allDatabases": true, "format": "sql", "scope": "schema"}))
            .unwrap();
        assert!(recipe
            .validate_config(
                &json!({"host": "h", "user": "u", "database": "d", "databases": ["e"]})
            )
            .is_err());
        assert!(recipe
            .validate_config(&json!({"host": "h", "user": "u", "database": "d", "format": "tar"}))
            .is_err());
        let mut config = serde_json::Map::new();
        config.insert("password".into(), json!("old"));
        recipe.generate_secrets(&mut config);
        assert_ne!(config["password"], json!("old"));
    }
}
