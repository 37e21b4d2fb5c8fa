//! What every handler shares: the configured workspace host, its repository, the owner
//! check, the jobs and the settings.

use std::sync::Arc;
use std::time::Duration;

use backup_core::data::ServiceTarget;
use backup_core::host::WorkspaceHost;
use backup_core::recipe::Recipe;
use backup_core::{Error, ErrorKind, Result};
use backup_repository::Repository;
use backupctl::{Config, ConfiguredHost};

use crate::auth::{Caller, OwnerCheck};
use crate::jobs::Jobs;

/// Settings from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Read-only mode (seed 004): nothing is written to the repository or the services;
    /// "export everything" streams the bundle to the response.
    pub read_only: bool,
    /// The largest upload `import-data` accepts, in bytes.
    pub max_upload_bytes: u64,
    /// How often an idle SSE stream sends a heartbeat comment.
    pub heartbeat: Duration,
}

/// The shared state.
#[derive(Clone)]
pub struct AppState {
    /// The workspace of configured services.
    pub host: Arc<ConfiguredHost>,
    /// The repository from the configuration.
    pub repo: Repository,
    /// The embedder's owner check.
    pub owners: Arc<dyn OwnerCheck>,
    /// Background jobs.
    pub jobs: Jobs,
    /// Settings.
    pub settings: Settings,
    /// The configured retention policy (for prune).
    pub retention: Option<backup_repository::retention::RetentionPolicy>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("services", &self.host.service_names())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The state for a configuration: its host, and its repository (created when the
    /// configured location holds none yet, with the configured encryption).
    ///
    /// # Errors
    ///
    /// Invalid configuration, unreadable secrets, an unreachable repository.
    pub async fn from_config(
        config: &Config,
        owners: Arc<dyn OwnerCheck>,
        settings: Settings,
    ) -> Result<AppState> {
        let host = ConfiguredHost::from_config(config)?;
        let repo = match Repository::open(config.storage()?).await {
            Ok(repo) => repo,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                Repository::init_encrypted(config.storage()?, config.init_encryption()?).await?
            }
            Err(e) => return Err(e),
        };
        let (passphrase, identities) = config.keys()?;
        let mut repo = repo;
        if let Some(p) = passphrase {
            repo = repo.with_passphrase(p);
        }
        if let Some(i) = identities {
            repo = repo.with_identities(i);
        }
        Ok(AppState {
            host: Arc::new(host),
            repo,
            owners,
            jobs: Jobs::default(),
            settings,
            retention: config.retention.clone(),
        })
    }

    /// Refuses a workspace the caller does not own, as not found.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`].
    pub async fn authorize(&self, caller: &Caller, workspace: &str) -> Result<()> {
        if self.owners.may_access(caller, workspace).await {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::NotFound,
                format!("no workspace `{workspace}`"),
            ))
        }
    }

    /// Refuses a write in read-only mode.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::PermissionDenied`].
    pub fn writable(&self, what: &str) -> Result<()> {
        if self.settings.read_only {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("this server is read-only: {what} is disabled"),
            )
            .with_hint("restart the server without --read-only to change data"));
        }
        Ok(())
    }

    /// The service `name`: its target (config with secrets, for the adapters only) and
    /// recipe.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] naming the configured services.
    pub async fn service(&self, name: &str) -> Result<(ServiceTarget, Recipe)> {
        let deployments = self.host.list_deployments().await?;
        let Some(deployment) = deployments.iter().find(|d| d.name == name) else {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("service `{name}` is not configured"),
            )
            .with_hint(format!(
                "configured services: {}",
                self.host.service_names().join(", ")
            )));
        };
        let recipe = self.host.registry().get(&deployment.recipe)?.clone();
        let target = backup_core::backup::service_target(
            self.host.as_ref(),
            deployment,
            backup_core::progress::no_progress(),
        );
        Ok((target, recipe))
    }
}
