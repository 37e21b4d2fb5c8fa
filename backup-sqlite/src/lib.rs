//! The SQLite adapter for backup-core: a consistent copy of a live database file, and a
//! checked, atomic restore. For apps whose data is one SQLite database in their volume,
//! such as n8n and Uptime Kuma.
//!
//! # Recipes
//!
//! | recipe | config | database file |
//! |---|---|---|
//! | `sqlite` | `{ "path": "/srv/app/app.db" }` | `path` |
//! | `n8n` | `{ "dataDir": "/home/node/.n8n" }` | `dataDir/database.sqlite` |
//! | `uptime-kuma` | `{ "dataDir": "/app/data" }` | `dataDir/kuma.db` |
//!
//! Every config may also set `runner` (`"local"`, the default, or `"command"`), `tool`
//! (the `sqlite3` program in command mode), `tempDir` (command mode's temporary directory,
//! `/tmp` by default) and `busyTimeoutSecs` (how long to wait for the app's locks, 30 by
//! default). Unknown fields are refused.
//!
//! # Export (format `sqlite`, artifact `database.sqlite`)
//!
//! The app keeps running ([`backup_core::RequiredState::Any`]).
//!
//! - **Local mode** (the file is on this machine): SQLite's online backup API copies every
//!   page in one step, so in one read transaction, into a private temporary directory
//!   (mode 0700, in `TMPDIR`, never beside the app's files). In WAL mode writers go on
//!   meanwhile; in rollback-journal mode they wait for the copy (up to their own busy
//!   timeout). The copy is streamed into the bundle and removed afterwards, also when the
//!   export fails or is dropped. The copy keeps the page layout and journal mode.
//! - **Command mode** (`"runner": "command"`, for a file only reachable inside a
//!   container): the `sqlite3` tool is run through the service's
//!   [`backup_core::CommandRunner`] (`podman exec`, `kubectl exec`, or locally):
//!   `VACUUM INTO` writes a consistent snapshot to `tempDir`, which is measured, streamed
//!   out with `cat` and removed with `rm -f`. When the image has no `sqlite3`, the export
//!   fails with [`backup_core::ErrorKind::Unavailable`] and a hint to back up the data
//!   directory with the directory (or volume) adapter while the app is stopped.
//!
//! The artifact's metadata (see [`metadata::keys`]), measured on the snapshot itself:
//! SQLite version, page size and count, the source's journal mode, every table with its
//! row count, `user_version`, a schema hash (sha256 of the sorted `sqlite_master` SQL) and
//! the size in bytes.
//!
//! # Import
//!
//! **Stop the app first**: the importer replaces the file under it (an app that kept the
//! old file open would go on writing to the replaced, deleted file). Right before the swap
//! the importer takes SQLite's exclusive lock on the old file without waiting and refuses
//! with [`backup_core::ErrorKind::Unavailable`] when another process holds it: in WAL mode
//! that catches any process with the database open; in rollback-journal mode only one in
//! a transaction, so stopping the app stays the user's job. The stream is written
//! to a temporary file in the target's directory (never held in memory), its header and
//! length are checked, `PRAGMA integrity_check` must pass and the row counts and schema
//! hash and sha256 must equal the artifact's metadata; only then are the old file's `-wal`, `-shm`
//! and `-journal` removed (a stale WAL would otherwise be replayed into the new file) and
//! the new file renamed over the target, keeping the old file's mode and (as root) owner.
//! A truncated or corrupt stream fails the import and leaves the target as it was, with
//! no temporary file behind. A target holding data (any schema object) is replaced only
//! with `force`. Restores run in local mode only; a command-mode service is refused by
//! [`backup_core::DataImporter::check`] with a hint.
//!
//! The presets back up the database only. n8n keeps the key that encrypts its stored
//! credentials in `dataDir/config` (or `N8N_ENCRYPTION_KEY`): back that up too (e.g. the
//! directory adapter), or restored credentials cannot be decrypted. Uptime Kuma's
//! `upload/` folder is not in the database either.
//!
//! The smoke test after a restore runs `PRAGMA integrity_check` and compares row counts
//! and the schema hash with the manifest.
//!
//! ```no_run
//! # async fn example() -> backup_core::Result<()> {
//! use backup_core::{DataExporter, RecipeRegistry, ServiceTarget};
//!
//! let mut registry = RecipeRegistry::new();
//! backup_sqlite::register(&mut registry)?;
//! let recipe = registry.get(backup_sqlite::N8N)?;
//! let service = ServiceTarget::local(
//!     "n8n",
//!     backup_sqlite::N8N,
//!     serde_json::json!({ "dataDir": "/home/node/.n8n" }),
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

mod adapter;
mod config;
mod local;
pub mod metadata;
mod remote;

use std::sync::Arc;

use backup_core::{Recipe, RecipeRegistry, Result};

pub use adapter::{SqliteExporter, SqliteImporter, ARTIFACT, CONTENT_TYPE};
pub use config::{
    config_schema, Layout, Mode, SqliteConfig, DEFAULT_BUSY_TIMEOUT_SECS, DEFAULT_REMOTE_TEMP_DIR,
    DEFAULT_TOOL,
};

/// The recipe slug of a plain database file.
pub const RECIPE: &str = "sqlite";
/// The n8n preset's slug.
pub const N8N: &str = "n8n";
/// The Uptime Kuma preset's slug.
pub const UPTIME_KUMA: &str = "uptime-kuma";
/// n8n's database file inside its data directory.
pub const N8N_DATABASE: &str = "database.sqlite";
/// Uptime Kuma's database file inside its data directory.
pub const UPTIME_KUMA_DATABASE: &str = "kuma.db";

fn build(slug: &str, description: &str, layout: Layout) -> Result<Recipe> {
    Recipe::builder(slug, config_schema(layout))
        .description(description)
        .exporter(Arc::new(SqliteExporter::new(layout)))
        .importer(Arc::new(SqliteImporter::new(layout)))
        .data_export_description(
            "a consistent online copy of the SQLite database (backup API, or VACUUM INTO in \
             command mode) with the SQLite version, page size, journal mode, tables with row \
             counts, user_version and a schema hash",
        )
        .build()
}

/// The `sqlite` recipe: one database file at `path`.
///
/// # Errors
///
/// Only if the built-in schema failed to compile, which tests rule out.
pub fn recipe() -> Result<Recipe> {
    build(RECIPE, "A SQLite database file", Layout::Path)
}

/// The `n8n` preset: `database.sqlite` inside `dataDir`.
///
/// # Errors
///
/// As [`recipe`].
pub fn n8n_recipe() -> Result<Recipe> {
    build(
        N8N,
        "n8n's SQLite database (database.sqlite in its data directory)",
        Layout::InDataDir(N8N_DATABASE),
    )
}

/// The `uptime-kuma` preset: `kuma.db` inside `dataDir`.
///
/// # Errors
///
/// As [`recipe`].
pub fn uptime_kuma_recipe() -> Result<Recipe> {
    build(
        UPTIME_KUMA,
        "Uptime Kuma's SQLite database (kuma.db in its data directory)",
        Layout::InDataDir(UPTIME_KUMA_DATABASE),
    )
}

/// Registers `sqlite`, `n8n` and `uptime-kuma`.
///
/// # Errors
///
/// As [`recipe`].
pub fn register(registry: &mut RecipeRegistry) -> Result<()> {
    registry.register(recipe()?);
    registry.register(n8n_recipe()?);
    registry.register(uptime_kuma_recipe()?);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recipes_validate_their_configs_and_refuse_unknown_fields() {
        let sqlite = recipe().unwrap();
        sqlite
            .validate_config(&json!({"path": "/data/app.db"}))
            .unwrap();
        sqlite
            .validate_config(
                &json!({"path": "/data/app.db", "runner": "command", "tool": "/usr/bin/sqlite3"}),
            )
            .unwrap();
        assert!(sqlite
            .validate_config(&json!({"path": "relative.db"}))
            .is_err());
        assert!(sqlite
            .validate_config(&json!({"path": "/a.db", "bogus": 1}))
            .is_err());
        assert!(sqlite
            .validate_config(&json!({"path": "/a.db", "runner": "ssh"}))
            .is_err());
        assert!(sqlite
            .validate_config(&json!({"dataDir": "/data"}))
            .is_err());
        for preset in [n8n_recipe().unwrap(), uptime_kuma_recipe().unwrap()] {
            preset
                .validate_config(&json!({"dataDir": "/home/node/.n8n"}))
                .unwrap();
            assert!(preset.validate_config(&json!({"path": "/a.db"})).is_err());
        }
    }

    #[test]
    fn presets_name_the_apps_database_files() {
        let config: SqliteConfig =
            serde_json::from_value(json!({"dataDir": "/home/node/.n8n"})).unwrap();
        assert_eq!(
            config
                .database_path("n8n", Layout::InDataDir(N8N_DATABASE))
                .unwrap(),
            std::path::Path::new("/home/node/.n8n/database.sqlite")
        );
        assert_eq!(
            config
                .database_path("kuma", Layout::InDataDir(UPTIME_KUMA_DATABASE))
                .unwrap(),
            std::path::Path::new("/home/node/.n8n/kuma.db")
        );
        assert!(serde_json::from_value::<SqliteConfig>(json!({"path": "/a", "x": 1})).is_err());
    }
}
