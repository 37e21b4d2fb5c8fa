//! Core of the backup library: snapshot and manifest model, streaming data traits, bundle
//! format, restore planning, the recipe registry, and backup/restore through a host.
//!
//! A host application implements [`WorkspaceHost`] for its deployments, registers the
//! recipes it offers, and backs up and restores whole workspaces:
//!
//! ```no_run
//! use std::sync::Arc;
//! use backup_core::backup::{create_backup, BackupRequest};
//! use backup_core::memory_host::InMemoryHost;
//! use backup_core::progress::NoProgress;
//! use backup_core::restore::{restore_backup, RestoreOptions};
//! use backup_core::snapshot::WorkspaceRef;
//! use backup_core::{directory, RecipeRegistry};
//!
//! # async fn demo() -> backup_core::Result<()> {
//! let mut registry = RecipeRegistry::new();
//! directory::register(&mut registry)?;
//! let host = InMemoryHost::new(WorkspaceRef { slug: "demo".into(), name: "Demo".into() });
//! let path = std::path::Path::new("backups/demo.backup.zip");
//! create_backup(&host, &registry, &BackupRequest::default(), path, Arc::new(NoProgress)).await?;
//!
//! let target = InMemoryHost::new(WorkspaceRef { slug: "copy".into(), name: "Copy".into() });
//! let report =
//!     restore_backup(path, &target, &registry, &RestoreOptions::default(), Arc::new(NoProgress))
//!         .await?;
//! println!("restored {} services in {} stages", report.created.len(), report.plan.stages.len());
//! # Ok(()) }
//! ```
//!
//! Adapters implement [`DataExporter`] and [`DataImporter`] over [`ByteStream`]s and run
//! native tools through a [`CommandRunner`]; `backup-testkit` holds the conformance suite
//! every adapter passes against a real server.

mod error;
mod json_limits;

pub mod agent_tools;
pub mod artifact;
pub mod backup;
pub mod blocking_io;
pub mod bundle;
pub mod command;
pub mod data;
pub mod directory;
pub mod host;
pub mod memory_host;
pub mod narrate;
pub mod plan;
pub mod progress;
pub mod recipe;
pub mod registry;
pub mod restore;
pub mod secrets;
pub mod snapshot;
pub mod workspace;

pub use artifact::{ArtifactData, ArtifactDescriptor, ByteStream};
/// The attribute macro [`WorkspaceHost`], [`DataExporter`] and [`DataImporter`]
/// implementations need: `use backup_core::async_trait;` (no direct dependency needed).
pub use async_trait::async_trait;
pub use bundle::{BundleReader, BundleSource, BundleWriter, Manifest};
pub use command::{
    CommandRunner, CommandRunnerExt, CommandSpec, ExecRunner, ExecTarget, LocalRunner,
};
pub use data::{
    DataExporter, DataImporter, ExportRequirements, HeldData, ImportMode, RequiredState,
    ServiceTarget,
};
pub use error::{Error, ErrorKind, FieldError, Result};
pub use host::{Deployment, NewDeployment, WorkspaceHost};
pub use memory_host::InMemoryHost;
pub use plan::RestorePlan;
pub use progress::{ProgressEvent, ProgressSink};
pub use recipe::Recipe;
pub use registry::RecipeRegistry;
pub use snapshot::WorkspaceSnapshot;
