//! Core of the backup library: snapshot and manifest model, streaming data traits, bundle
//! format, restore planning and the recipe registry.

mod error;

pub mod artifact;
pub mod blocking_io;
pub mod command;
pub mod data;
pub mod progress;
pub mod recipe;
pub mod registry;
pub mod secrets;
pub mod snapshot;

pub use artifact::{ArtifactData, ArtifactDescriptor, ByteStream};
pub use command::{
    CommandRunner, CommandRunnerExt, CommandSpec, ExecRunner, ExecTarget, LocalRunner,
};
pub use data::{
    DataExporter, DataImporter, ExportRequirements, ImportMode, RequiredState, ServiceTarget,
};
pub use error::{Error, ErrorKind, FieldError, Result};
pub use progress::{ProgressEvent, ProgressSink};
pub use recipe::Recipe;
pub use registry::RecipeRegistry;
pub use snapshot::WorkspaceSnapshot;
pub mod backup;
pub mod bundle;
pub mod directory;
pub mod host;
pub mod memory_host;
pub mod plan;
pub mod restore;
pub mod workspace;
