//! `backupctl`: the operator's command line over a backup repository, and
//! [`ConfiguredHost`], the workspace host it is built on.
//!
//! This crate is the one place that wires everything together: the TOML
//! [`config`]uration, every adapter (`directory`, `postgres`, `redis`, `sqlite`,
//! `podman`), the repository, and the commands. Embedders whose services already run
//! use [`ConfiguredHost`] instead of writing a `WorkspaceHost`:
//!
//! ```no_run
//! # async fn demo() -> backup_core::Result<()> {
//! use backupctl::ConfiguredHost;
//! use serde_json::json;
//! let host = ConfiguredHost::new("shop")?
//!     .service("db", "postgres", json!({"host": "127.0.0.1", "user": "postgres", "database": "shop"}))?
//!     .service("cache", "redis", json!({"host": "127.0.0.1", "port": 6379}))?;
//! let path = std::path::Path::new("shop.backup.zip");
//! let progress = std::sync::Arc::new(backup_core::progress::NoProgress);
//! backup_core::backup::create_backup(&host, host.registry(), &Default::default(), path, progress).await?;
//! # Ok(()) }
//! ```

pub mod cli;
pub mod config;
pub mod envelope;
pub mod exit;
pub mod host;
mod output;
mod progress;

pub use config::Config;
pub use exit::Exit;
pub use host::{default_registry, ConfiguredHost};
