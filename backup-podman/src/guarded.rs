//! [`PodmanDeploymentOps`]: the destructive operations a quadlet host runs on a podman
//! deployment — `remove` and `apply` — each behind an automatic guard backup
//! ([`backup_repository::guard`], reasons `before-remove` / `before-apply`): no backup,
//! no operation, unless the caller overrides explicitly ([`Guard::Override`]).

use std::path::{Path, PathBuf};

use backup_core::backup::service_target;
use backup_core::progress::{no_progress, SharedProgress};
use backup_core::{Error, ErrorKind, RecipeRegistry, Result, ServiceTarget, WorkspaceHost};
use backup_repository::{guard, BundleInfo, GuardReason, Repository};

use crate::config::PodmanConfig;
use crate::exporter::deployment_volumes;
use crate::remove_plan::{plan_removal, KeptPod, KeptVolume, SharedVolumes};
use crate::RECIPE;

/// Whether a guarded operation may run without its backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// No backup, no operation (the default).
    Required,
    /// Run the operation even when the guard backup fails; the reason is kept in the
    /// report next to the guard's error.
    Override {
        /// Why the caller accepts running without a backup (e.g. "operator confirmed").
        why: String,
    },
}

/// What the guard did before an operation ran.
#[derive(Debug)]
pub struct GuardRecord {
    /// The guard bundle (kind automatic, reason `before-remove` / `before-apply`), when
    /// it was taken.
    pub backup: Option<BundleInfo>,
    /// Why there is no backup, when the caller overrode a failed guard.
    pub error: Option<Error>,
    /// The caller's override reason, when it overrode.
    pub override_why: Option<String>,
}

/// What [`PodmanDeploymentOps::remove`] did.
#[derive(Debug)]
pub struct RemoveReport {
    /// The guard backup (or the overridden failure).
    pub guard: GuardRecord,
    /// The deployment's own containers removed (by name): every one that existed,
    /// whether it used a volume or not (pods' infra containers go with their pods).
    pub removed_containers: Vec<String>,
    /// The deployment's pods removed (by name), with their infra containers.
    pub removed_pods: Vec<String>,
    /// Volumes removed (those that existed and no other container used).
    pub removed_volumes: Vec<String>,
    /// The quadlet directory that was deleted, when it existed.
    pub removed_quadlet_dir: Option<PathBuf>,
    /// Volumes kept because containers outside the deployment use them
    /// ([`SharedVolumes::Keep`]), with those containers; untouched, content included.
    pub kept_volumes: Vec<KeptVolume>,
    /// The deployment's pods kept because containers outside the deployment are in them
    /// ([`SharedVolumes::Keep`]), with those containers; the pod, its infra container and
    /// those containers are untouched (the deployment's own containers in it are removed).
    pub kept_pods: Vec<KeptPod>,
}

/// What [`PodmanDeploymentOps::apply`] did.
#[derive(Debug)]
pub struct ApplyReport {
    /// The guard backup (or the overridden failure).
    pub guard: GuardRecord,
    /// The files of the new quadlet directory, relative to it.
    pub files: Vec<PathBuf>,
}

/// The guarded `remove` and `apply` of podman deployments for a host, backing up into a
/// repository first.
pub struct PodmanDeploymentOps<'a> {
    repo: &'a Repository,
    host: &'a dyn WorkspaceHost,
    registry: &'a RecipeRegistry,
    progress: SharedProgress,
}

impl std::fmt::Debug for PodmanDeploymentOps<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodmanDeploymentOps")
            .finish_non_exhaustive()
    }
}

impl<'a> PodmanDeploymentOps<'a> {
    /// Operations on `host`'s podman deployments, guarded by backups into `repo` made
    /// with the recipes of `registry` (which must hold the `podman` recipe).
    pub fn new(
        repo: &'a Repository,
        host: &'a dyn WorkspaceHost,
        registry: &'a RecipeRegistry,
    ) -> Self {
        PodmanDeploymentOps {
            repo,
            host,
            registry,
            progress: no_progress(),
        }
    }

    /// Sends the guard's and the backup's progress events to `progress`.
    #[must_use]
    pub fn with_progress(mut self, progress: SharedProgress) -> Self {
        self.progress = progress;
        self
    }

    /// Removes deployment `name` from podman, after a `before-remove` guard backup of
    /// its quadlet files and volumes — refusing, before anything is touched, when one of
    /// its volumes is shared with a container that is not the deployment's, or such a
    /// container is in one of its pods. The same as [`PodmanDeploymentOps::remove_with`]
    /// with [`SharedVolumes::Refuse`].
    ///
    /// # Errors
    ///
    /// As [`PodmanDeploymentOps::remove_with`].
    pub async fn remove(&self, name: &str, policy: Guard) -> Result<RemoveReport> {
        self.remove_with(name, policy, SharedVolumes::Refuse).await
    }

    /// Removes deployment `name` from podman — all its containers, its pods, its
    /// unshared volumes and its quadlet directory — after a `before-remove` guard backup
    /// of its quadlet files and volumes.
    ///
    /// The deployment's own containers are those its quadlet units create: each
    /// `.container`'s `ContainerName=` (else `systemd-STEM`), with or without volumes,
    /// in a pod or not; its own pods are its `.pod` units' (`PodName=`, else
    /// `systemd-STEM`), with their infra containers. Any other container is not the
    /// deployment's, whoever created it — one put into its pod with `podman run --pod`,
    /// those of its `.kube` units (their names are in YAML this crate does not read), and
    /// every user of a volume listed in the config's `volumes` when there is no quadlet
    /// directory.
    ///
    /// 1. Before anything else, the deployment's existing containers and pods are
    ///    listed, and the users of each existing deployment volume. A volume another
    ///    container uses, or a pod another container is in, is shared: with
    ///    [`SharedVolumes::Refuse`] nothing is touched and no backup is made
    ///    ([`ErrorKind::InUse`]); with [`SharedVolumes::Keep`] it is kept (a volume with
    ///    its content, a pod with its infra container and the other containers).
    /// 2. The guard backup (refused → nothing is touched, unless [`Guard::Override`]).
    /// 3. The quadlet directory is moved aside (its undo: moved back if a later step
    ///    fails).
    /// 4. All the deployment's containers are stopped and removed (quadlet's units are
    ///    `--rm` containers; the systemd units are the host's).
    /// 5. Its unshared pods: their infra containers stopped, then `podman pod rm`
    ///    without `--force`, which fails rather than delete a pod a container started
    ///    in meanwhile.
    /// 6. The unshared volumes are removed (`podman volume rm`, which fails rather than
    ///    delete a volume a container started using meanwhile), then the moved-aside
    ///    directory.
    ///
    /// It never deletes a container that is not the deployment's, nor a volume such a
    /// container uses, nor a pod such a container is in; nor images, networks, secrets
    /// or bind-mounted host directories. The host's own record of the deployment is left
    /// to the caller ([`WorkspaceHost::remove_deployment`]).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] / [`ErrorKind::InvalidInput`] when there is no such podman
    /// deployment; [`ErrorKind::InUse`] naming the shared volumes and pods and the other
    /// containers (with [`SharedVolumes::Refuse`]); the guard's error (with a hint how to
    /// override) when the backup failed; or the podman / file-system step that failed
    /// (the quadlet directory is back then; the guard bundle holds what was removed).
    pub async fn remove_with(
        &self,
        name: &str,
        policy: Guard,
        shared: SharedVolumes,
    ) -> Result<RemoveReport> {
        let service = self.podman_service(name).await?;
        let config = PodmanConfig::from_service(&service)?;
        let podman = config.podman(&service);
        let (deployment, volumes) = deployment_volumes(&config)?;
        let plan = plan_removal(&podman, name, &deployment, &volumes, shared).await?;
        let guard = self.guard(name, GuardReason::BeforeRemove, policy).await?;
        let aside = if config.quadlet_dir.exists() {
            let aside = sibling(&config.quadlet_dir, "removing")?;
            rename(&config.quadlet_dir, &aside)?;
            Some(aside)
        } else {
            None
        };
        let removed = async {
            let ids: Vec<String> = plan.containers.iter().map(|(id, _)| id.clone()).collect();
            podman.remove_containers(&ids).await?;
            for pod in &plan.pods {
                podman.stop(&pod.infra).await?;
                podman.pod_remove(&pod.name).await?;
            }
            for volume in &plan.volumes {
                podman.volume_remove(volume).await?;
            }
            Ok::<_, Error>(())
        }
        .await;
        if let Err(error) = removed {
            let error = error.context(format!("removing podman deployment `{name}`"));
            return Err(match &aside {
                Some(aside) => match rename(aside, &config.quadlet_dir) {
                    Ok(()) => error,
                    Err(back) => error.context(format!("({back}) and before that")),
                },
                None => error,
            });
        }
        if let Some(aside) = &aside {
            std::fs::remove_dir_all(aside)
                .map_err(|e| Error::io(format!("deleting `{}`", aside.display()), e))?;
        }
        Ok(RemoveReport {
            guard,
            removed_containers: plan.containers.into_iter().map(|(_, name)| name).collect(),
            removed_pods: plan.pods.into_iter().map(|pod| pod.name).collect(),
            removed_volumes: plan.volumes,
            removed_quadlet_dir: aside.map(|_| config.quadlet_dir.clone()),
            kept_volumes: plan.kept,
            kept_pods: plan.kept_pods,
        })
    }

    /// Replaces deployment `name`'s quadlet directory with the files of `staged` (a
    /// directory of regular files and subdirectories, e.g. the host's staging area),
    /// after a `before-apply` guard backup of the current quadlets and volumes.
    ///
    /// The new files are copied next to the quadlet directory first, then swapped in by
    /// two renames (the old directory is moved back if the second fails) and the old
    /// one deleted. Reloading systemd (`systemctl daemon-reload`) and restarting the
    /// units is the host's next step.
    ///
    /// # Errors
    ///
    /// As [`PodmanDeploymentOps::remove`] for the deployment and the guard;
    /// [`ErrorKind::InvalidInput`] when `staged` holds something other than files and
    /// directories (nothing is changed then); the file-system step that failed.
    pub async fn apply(&self, name: &str, staged: &Path, policy: Guard) -> Result<ApplyReport> {
        let service = self.podman_service(name).await?;
        let config = PodmanConfig::from_service(&service)?;
        let files = staged_files(staged)?;
        let guard = self.guard(name, GuardReason::BeforeApply, policy).await?;
        let target = &config.quadlet_dir;
        let incoming = sibling(target, "applying")?;
        let copied = copy_files(staged, &incoming, &files);
        if let Err(error) = copied {
            let _ = std::fs::remove_dir_all(&incoming);
            return Err(error);
        }
        let old = if target.exists() {
            let old = sibling(target, "replaced")?;
            rename(target, &old)?;
            Some(old)
        } else {
            None
        };
        if let Err(error) = rename(&incoming, target) {
            let back = old.as_ref().map_or(Ok(()), |old| rename(old, target));
            let _ = std::fs::remove_dir_all(&incoming);
            return Err(match back {
                Ok(()) => error,
                Err(back) => error.context(format!("({back}) and before that")),
            });
        }
        if let Some(old) = old {
            std::fs::remove_dir_all(&old)
                .map_err(|e| Error::io(format!("deleting `{}`", old.display()), e))?;
        }
        Ok(ApplyReport { guard, files })
    }

    /// The host's deployment `name` as a podman service.
    async fn podman_service(&self, name: &str) -> Result<ServiceTarget> {
        let deployments = self.host.list_deployments().await?;
        let deployment = deployments.iter().find(|d| d.name == name).ok_or_else(|| {
            Error::new(ErrorKind::NotFound, format!("no deployment `{name}`"))
                .with_hint("list the workspace's deployments for the right name")
        })?;
        if deployment.recipe != RECIPE {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "deployment `{name}` is a `{}` deployment, not a podman one",
                    deployment.recipe
                ),
            )
            .with_hint("remove or apply it with the host's operation for its recipe"));
        }
        Ok(service_target(self.host, deployment, self.progress.clone()))
    }

    /// Runs the guard and applies the caller's policy.
    async fn guard(&self, name: &str, reason: GuardReason, policy: Guard) -> Result<GuardRecord> {
        let services = vec![name.to_string()];
        let outcome = guard(
            self.repo,
            self.host,
            self.registry,
            &services,
            reason,
            self.progress.clone(),
        )
        .await;
        match policy {
            Guard::Required => Ok(GuardRecord {
                backup: Some(outcome.proceed()?),
                error: None,
                override_why: None,
            }),
            Guard::Override { why } => {
                let overridden = outcome.override_failure(&why);
                Ok(GuardRecord {
                    backup: overridden.backup,
                    error: overridden.error,
                    override_why: Some(overridden.why),
                })
            }
        }
    }
}

/// A hidden sibling of `dir` for a swap: `.NAME.WHAT-PID`.
fn sibling(dir: &Path, what: &str) -> Result<PathBuf> {
    let (Some(parent), Some(file)) = (dir.parent(), dir.file_name()) else {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!("quadlet directory `{}` has no parent", dir.display()),
        ));
    };
    let name = format!(".{}.{what}-{}", file.to_string_lossy(), std::process::id());
    Ok(parent.join(name))
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| {
        Error::io(
            format!("moving `{}` to `{}`", from.display(), to.display()),
            e,
        )
    })
}

/// The relative paths of every regular file under `staged`, sorted.
fn staged_files(staged: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = staged.join(&rel);
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(format!("reading `{}`", dir.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(format!("reading `{}`", dir.display()), e))?;
            let kind = entry
                .file_type()
                .map_err(|e| Error::io(format!("reading `{}`", entry.path().display()), e))?;
            let path = rel.join(entry.file_name());
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                files.push(path);
            } else {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "`{}` in the staged quadlets is neither a file nor a directory",
                        entry.path().display()
                    ),
                )
                .with_hint("stage quadlet files and drop-in directories only (no symlinks)"));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Copies `files` (relative) from `from` into a new directory `to`.
fn copy_files(from: &Path, to: &Path, files: &[PathBuf]) -> Result<()> {
    std::fs::create_dir_all(to)
        .map_err(|e| Error::io(format!("creating `{}`", to.display()), e))?;
    for file in files {
        let dest = to.join(file);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating `{}`", parent.display()), e))?;
        }
        std::fs::copy(from.join(file), &dest)
            .map_err(|e| Error::io(format!("writing `{}`", dest.display()), e))?;
    }
    Ok(())
}
