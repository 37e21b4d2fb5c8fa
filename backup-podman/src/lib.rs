//! The podman adapter for backup-core: a deployment's quadlet files and its named volumes.
//!
//! A `podman` service is a quadlet directory (`.container`, `.volume`, `.pod`, `.network`,
//! `.kube`, `.image`, `.build` files and their drop-ins) plus the named volumes those
//! files use (or the `volumes` the config lists). See [`PodmanConfig`].
//!
//! - **Export**: artifact `quadlets.tar` holds the quadlet directory byte for byte (via
//!   the core directory adapter); one `volume-NAME.tar` per volume is the stream of
//!   `podman volume export`, checked as it passes (header checksums, end-of-archive
//!   marker), with the volume's driver, options, labels and root owner and mode in the
//!   manifest. An empty archive of a volume that holds data is an error. With
//!   `stopContainers` (the default) exactly the running containers that use a volume are
//!   stopped around its export and started again in dependency order, also when the
//!   export fails or is cancelled. Bind mounts are not podman volumes: with
//!   `bindMounts: "include"` each host directory the quadlets mount is a `bind-N.tar` of
//!   the core directory adapter (restored only to a path the restored quadlets mount);
//!   otherwise, and for paths that cannot be backed up (systemd specifiers, files,
//!   missing paths), they are listed in the quadlet artifact's `skippedBindMounts` with
//!   the reason.
//! - **Import** is a clean restore: quadlet files are swapped in atomically; a volume is
//!   emptied (or created with its recorded driver, options and labels) before
//!   `podman volume import`, so it ends up holding exactly the archive's content, and its
//!   root gets its owner and mode back. A volume import that fails leaves the volume
//!   empty; [`safe_restore`] keeps the previous content instead.
//! - **Safe restore** ([`safe_restore`]): a safety backup of the current quadlets and
//!   volumes, then stop, restore, start, check the containers run; on any failure the
//!   safety backup is restored and the error reports both outcomes.
//! - **Guarded remove / apply** ([`PodmanDeploymentOps`]): a `before-remove` /
//!   `before-apply` guard backup into a `backup-repository` repository first; no backup,
//!   no removal or apply, unless the caller passes [`Guard::Override`] with a reason.
//!   `remove` never deletes another deployment's containers or a volume they use: it
//!   refuses when a volume is shared, or keeps it with [`SharedVolumes::Keep`].
//!
//! Every podman command runs through the service's [`backup_core::CommandRunner`], with
//! the configured `podman` program and `podmanArgs` (e.g. `--root`, `--runroot`).

mod bind;
mod cli;
mod config;
mod export_inspection;
mod exporter;
mod guarded;
mod importer;
pub mod quadlet;
mod quiesce;
mod remove_plan;
mod safe_restore;
pub mod tarscan;

use std::sync::Arc;

use backup_core::{Recipe, RecipeRegistry, Result, ServiceTarget};

pub use cli::{Podman, RootAttributes, VolumeInfo, VolumeUser};
pub use config::{config_schema, BindMounts, PodmanConfig};
pub use exporter::PodmanExporter;
pub use guarded::{ApplyReport, Guard, GuardRecord, PodmanDeploymentOps, RemoveReport};
pub use importer::PodmanImporter;
pub use remove_plan::{KeptPod, KeptVolume, SharedVolumes};
pub use safe_restore::{safe_restore, SafeRestoreReport};

/// The recipe slug.
pub const RECIPE: &str = "podman";

/// The artifact holding the quadlet directory.
pub const QUADLETS_ARTIFACT: &str = "quadlets.tar";

/// Artifact formats of this adapter.
pub mod formats {
    /// A tar of the quadlet directory, files byte for byte.
    pub const QUADLETS: &str = "podman/quadlets-tar";
    /// The tar `podman volume export` writes.
    pub const VOLUME: &str = "podman/volume-tar";
}

/// The artifact name of a volume: `volume-NAME.tar`.
pub fn volume_artifact_name(volume: &str) -> String {
    format!("volume-{volume}.tar")
}

/// The service as the core directory adapter sees the quadlet directory.
pub(crate) fn quadlet_target(service: &ServiceTarget, config: &PodmanConfig) -> ServiceTarget {
    let mut target = service.clone();
    target.config = serde_json::json!({ "path": config.quadlet_dir });
    target
}

/// The `podman` recipe.
///
/// # Errors
///
/// Never in practice: the schema is static.
pub fn recipe() -> Result<Recipe> {
    Recipe::builder(RECIPE, config_schema())
        .description("A podman deployment: quadlet files and the named volumes they use")
        .exporter(Arc::new(PodmanExporter))
        .importer(Arc::new(PodmanImporter))
        .host_setting("podman")
        .host_setting("podmanArgs")
        .data_export_description(
            "The quadlet files byte for byte, and each named volume as `podman volume export` writes it, with its driver, options, labels and root owner and mode",
        )
        .build()
}

/// Registers the `podman` recipe.
///
/// # Errors
///
/// See [`recipe`].
pub fn register(registry: &mut RecipeRegistry) -> Result<()> {
    registry.register(recipe()?);
    Ok(())
}
