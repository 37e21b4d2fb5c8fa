//! [`ConfiguredHost`]: a [`WorkspaceHost`] for services that already run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use backup_core::host::{Deployment, NewDeployment, WorkspaceHost};
use backup_core::recipe::Recipe;
use backup_core::snapshot::WorkspaceRef;
use backup_core::{Error, ErrorKind, RecipeRegistry, Result};
use serde_json::Value;

use crate::config::{Config, ResolvedService};

/// The registry of every adapter this build ships: `directory`, `postgres`, `redis`,
/// `sqlite` (with its `n8n` and `uptime-kuma` presets), `podman`, and `s3` / `minio` /
/// `minio-data`.
///
/// Extension point: an adapter built elsewhere (a host's own recipe) is added with
/// [`ConfiguredHost::with_recipe`].
///
/// # Errors
///
/// Only if a built-in recipe's schema failed to compile, which the adapters' tests rule
/// out.
pub fn default_registry() -> Result<RecipeRegistry> {
    let mut registry = RecipeRegistry::new();
    backup_core::directory::register(&mut registry)?;
    backup_postgres::register(&mut registry)?;
    backup_redis::register(&mut registry)?;
    backup_sqlite::register(&mut registry)?;
    backup_podman::register(&mut registry)?;
    backup_minio::register(&mut registry)?;
    Ok(registry)
}

/// A workspace of services that already run, described once (in code or in a
/// `backupctl.toml`), with every adapter registered: back it up with
/// `backup_core::backup::create_backup` and restore into it with
/// `restore_backup` and `RestoreOptions { recreate_services: false, .. }`.
///
/// It replaces the host glue an embedder would write when the services exist already:
/// listing returns the configured services (`status: "running"`), `deploy` and
/// `wait_until_ready` succeed for them, and creating or removing services is refused
/// with [`ErrorKind::Unsupported`] (this host never creates or deletes a service; it
/// restores data into the ones it has).
///
/// Services whose export needs them stopped (the `directory` adapter) are stopped with
/// their configured `stop` command and started with `start`; a service without one is
/// read as it is, and the directory adapter fails the export if a file changes while it
/// is read (never a silently inconsistent bundle). Services stopped by a backup that was
/// cancelled are started again by [`ConfiguredHost::start_stopped`].
///
/// ```no_run
/// # async fn demo() -> backup_core::Result<()> {
/// use backupctl::ConfiguredHost;
/// let host = ConfiguredHost::new("shop")?
///     .service("uploads", "directory", serde_json::json!({"path": "/srv/uploads"}))?;
/// let bundle = std::path::Path::new("shop.backup.zip");
/// backup_core::backup::create_backup(&host, host.registry(), &Default::default(), bundle,
///     std::sync::Arc::new(backup_core::progress::NoProgress)).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ConfiguredHost {
    workspace: WorkspaceRef,
    registry: RecipeRegistry,
    services: BTreeMap<String, ResolvedService>,
    stopped: Arc<Mutex<BTreeSet<String>>>,
}

impl ConfiguredHost {
    /// An empty workspace `slug` with every built-in adapter registered.
    ///
    /// # Errors
    ///
    /// As [`default_registry`].
    pub fn new(slug: &str) -> Result<ConfiguredHost> {
        Ok(ConfiguredHost {
            workspace: WorkspaceRef {
                slug: slug.to_string(),
                name: slug.to_string(),
            },
            registry: default_registry()?,
            services: BTreeMap::new(),
            stopped: Arc::default(),
        })
    }

    /// The host a configuration file describes (secrets read from the environment or the
    /// files it names).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] with every field error of the services.
    pub fn from_config(config: &Config) -> Result<ConfiguredHost> {
        Self::from_config_with(config, default_registry()?)
    }

    /// [`from_config`](Self::from_config) with the caller's registry (extra adapters).
    ///
    /// # Errors
    ///
    /// As [`from_config`](Self::from_config).
    pub fn from_config_with(config: &Config, registry: RecipeRegistry) -> Result<ConfiguredHost> {
        let services = config.services(&registry)?;
        Ok(ConfiguredHost {
            workspace: WorkspaceRef {
                slug: config.workspace.slug.clone(),
                name: config
                    .workspace
                    .name
                    .clone()
                    .unwrap_or_else(|| config.workspace.slug.clone()),
            },
            registry,
            services,
            stopped: Arc::default(),
        })
    }

    /// Adds (or replaces) a recipe: the extension point for adapters not built in.
    pub fn with_recipe(mut self, recipe: Recipe) -> Self {
        self.registry.register(recipe);
        self
    }

    /// Adds a running service: its recipe slug and full config (secrets included, e.g.
    /// read from the environment by the caller).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::UnknownRecipe`], [`ErrorKind::InvalidConfig`] with field errors, or
    /// [`ErrorKind::NameConflict`] for a name already added.
    pub fn service(self, name: &str, recipe: &str, config: Value) -> Result<ConfiguredHost> {
        self.service_depending_on(name, recipe, config, &[])
    }

    /// [`service`](Self::service) with `dependsOn` (restored after those services).
    ///
    /// # Errors
    ///
    /// As [`service`](Self::service), and [`ErrorKind::UnknownDependency`] for a
    /// dependency not added before.
    pub fn service_depending_on(
        mut self,
        name: &str,
        recipe: &str,
        config: Value,
        depends_on: &[&str],
    ) -> Result<ConfiguredHost> {
        self.registry.get(recipe)?.validate_config(&config)?;
        let Value::Object(config) = config else {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!("the config of `{name}` must be a JSON object"),
            ));
        };
        if self.services.contains_key(name) {
            return Err(Error::new(
                ErrorKind::NameConflict,
                format!("service `{name}` was added twice"),
            ));
        }
        if let Some(dep) = depends_on.iter().find(|d| !self.services.contains_key(**d)) {
            return Err(Error::new(
                ErrorKind::UnknownDependency,
                format!("`{name}` depends on `{dep}`, which was not added before it"),
            ));
        }
        self.services.insert(
            name.to_string(),
            ResolvedService {
                recipe: recipe.to_string(),
                config,
                depends_on: depends_on.iter().map(|d| d.to_string()).collect(),
                stop: None,
                start: None,
            },
        );
        Ok(self)
    }

    /// The recipes this host knows.
    pub fn registry(&self) -> &RecipeRegistry {
        &self.registry
    }

    /// The configured services' names, sorted.
    pub fn service_names(&self) -> Vec<String> {
        self.services.keys().cloned().collect()
    }

    /// The same host with one service's config changed (for one operation, e.g. a
    /// schema-only PostgreSQL export).
    pub fn with_config_field(mut self, service: &str, field: &str, value: Value) -> Self {
        if let Some(s) = self.services.get_mut(service) {
            s.config.insert(field.to_string(), value);
        }
        self
    }

    /// The configured service `name`.
    pub fn get(&self, name: &str) -> Option<&ResolvedService> {
        self.services.get(name)
    }

    /// Starts every service this host stopped and has not started again (after a
    /// cancelled backup); returns their names.
    ///
    /// # Errors
    ///
    /// The first start command that fails (the others are still tried).
    pub async fn start_stopped(&self) -> Result<Vec<String>> {
        let names: Vec<String> = self.lock_stopped().iter().cloned().collect();
        let mut first_error = None;
        for name in &names {
            if let Err(e) = self.start_service(name).await {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(names),
        }
    }

    fn lock_stopped(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.stopped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn known(&self, name: &str) -> Result<&ResolvedService> {
        self.services.get(name).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("service `{name}` is not configured"),
            )
            .with_hint(format!(
                "configured services: {}",
                self.service_names().join(", ")
            ))
        })
    }
}

async fn run_command(name: &str, what: &str, argv: &[String]) -> Result<()> {
    let Some((program, args)) = argv.split_first() else {
        return Ok(());
    };
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::ToolFailed,
                format!("the {what} command of `{name}` (`{program}`) could not run: {e}"),
            )
        })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(Error::new(
        ErrorKind::ToolFailed,
        format!(
            "the {what} command of `{name}` (`{program}`) failed with {}: {}",
            output.status,
            stderr.trim()
        ),
    ))
}

fn unsupported(what: &str, name: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!("a configured host does not {what} services (asked for `{name}`)"),
    )
    .with_hint("restore into the configured services (recreate_services: false), or add the service to the configuration")
}

#[async_trait]
impl WorkspaceHost for ConfiguredHost {
    async fn workspace(&self) -> Result<WorkspaceRef> {
        Ok(self.workspace.clone())
    }

    async fn list_deployments(&self) -> Result<Vec<Deployment>> {
        Ok(self
            .services
            .iter()
            .map(|(name, s)| Deployment {
                id: name.clone(),
                name: name.clone(),
                recipe: s.recipe.clone(),
                config: s.config.clone(),
                depends_on: s.depends_on.clone(),
                status: "running".into(),
            })
            .collect())
    }

    async fn create_deployment(&self, new: NewDeployment) -> Result<Deployment> {
        if self.services.contains_key(&new.name) {
            return Err(Error::new(
                ErrorKind::NameConflict,
                format!("service `{}` exists", new.name),
            ));
        }
        Err(unsupported("create", &new.name))
    }

    async fn remove_deployment(&self, name: &str) -> Result<()> {
        self.known(name)?;
        Err(unsupported("remove", name))
    }

    async fn deploy(&self, name: &str) -> Result<()> {
        self.known(name).map(|_| ())
    }

    async fn wait_until_ready(&self, name: &str, _timeout: Duration) -> Result<()> {
        self.known(name).map(|_| ())
    }

    fn can_stop(&self, _deployment: &Deployment) -> bool {
        true
    }

    async fn stop_service(&self, name: &str) -> Result<()> {
        let service = self.known(name)?;
        self.lock_stopped().insert(name.to_string());
        match &service.stop {
            Some(argv) => run_command(name, "stop", argv).await,
            None => Ok(()),
        }
    }

    async fn start_service(&self, name: &str) -> Result<()> {
        let service = self.known(name)?;
        if let Some(argv) = &service.start {
            run_command(name, "start", argv).await?;
        }
        self.lock_stopped().remove(name);
        Ok(())
    }
}
