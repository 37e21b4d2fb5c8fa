//! What the embedding application implements so the library can read and recreate its
//! deployments: [`WorkspaceHost`].
//!
//! The library never talks to Kubernetes, Podman or a database of deployments itself; the
//! host does, behind this trait. [`crate::memory_host::InMemoryHost`] is a complete
//! implementation for tests and examples.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::command::{CommandRunner, LocalRunner};
use crate::snapshot::WorkspaceRef;
use crate::Result;

/// One deployed service as the host stores it, secrets included.
///
/// `Debug` shows config keys but never their values: they may be secrets.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// The host's id for it; a restore always gets a new one.
    pub id: String,
    /// Instance name, unique in the workspace.
    pub name: String,
    /// Recipe slug.
    pub recipe: String,
    /// Full config, secrets included.
    pub config: Map<String, Value>,
    /// Names of the deployments this one depends on.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// The host's status word, e.g. `running`. The words [`Deployment::is_stopped`]
    /// reads as "not running" are `stopped`, `exited` and `created`.
    pub status: String,
}

impl Deployment {
    /// Whether the host's status word says the service is not running (`stopped`,
    /// `exited` or `created`, any case). Operations that stop a service around their
    /// work leave such a service alone: it is neither stopped nor started, so it stays
    /// stopped.
    pub fn is_stopped(&self) -> bool {
        ["stopped", "exited", "created"]
            .iter()
            .any(|word| self.status.eq_ignore_ascii_case(word))
    }
}

impl fmt::Debug for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deployment")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("recipe", &self.recipe)
            .field("config", &RedactedConfig(&self.config))
            .field("depends_on", &self.depends_on)
            .field("status", &self.status)
            .finish()
    }
}

/// A deployment to create: everything but the id and status, which the host assigns.
///
/// `Debug` shows config keys but never their values: they may be secrets.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewDeployment {
    /// Instance name, unique in the workspace.
    pub name: String,
    /// Recipe slug.
    pub recipe: String,
    /// Full config, with newly generated secrets.
    pub config: Map<String, Value>,
    /// Names of the deployments this one depends on.
    #[serde(default)]
    pub depends_on: Vec<String>,
}

impl fmt::Debug for NewDeployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewDeployment")
            .field("name", &self.name)
            .field("recipe", &self.recipe)
            .field("config", &RedactedConfig(&self.config))
            .field("depends_on", &self.depends_on)
            .finish()
    }
}

/// Prints a config as `{"key": <redacted>, …}`.
pub(crate) struct RedactedConfig<'a>(pub(crate) &'a Map<String, Value>);

impl fmt::Debug for RedactedConfig<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|key| (key, Redacted)))
            .finish()
    }
}

struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The embedding application's deployments, as the library needs them for workspace
/// export and import.
///
/// # Contract
///
/// Every implementation must guarantee:
/// - names are unique within the workspace; [`WorkspaceHost::create_deployment`] of an
///   existing name fails with [`crate::ErrorKind::NameConflict`];
/// - [`WorkspaceHost::create_deployment`] assigns a new id and only records the deployment;
///   nothing runs until [`WorkspaceHost::deploy`];
/// - [`WorkspaceHost::wait_until_ready`] returns within about `timeout`, with
///   [`crate::ErrorKind::Unavailable`] when the deployment is not ready by then;
/// - operations on different names may be called concurrently;
/// - error messages never contain config values (they may be secrets).
///
/// # Secrets and data
///
/// - [`WorkspaceHost::deploy`] runs the service with the secrets of its config: a restored
///   service gets the secrets [`crate::workspace::import_workspace`] generated (or none
///   where the source service had none), and the data importers connect with exactly
///   those, so the host must apply them (set the database password, `requirepass`, …);
/// - [`WorkspaceHost::remove_deployment`] removes the service *and its data* (volumes,
///   data directories): a rollback or a `force` import relies on a removed service
///   leaving nothing behind.
///
/// # Quiescing services for a consistent export
///
/// An exporter whose [`crate::DataExporter::requirements`] say
/// [`crate::RequiredState::Stopped`] (a raw copy of files) needs the service stopped
/// while it reads. [`crate::backup::create_backup`] then calls
/// [`WorkspaceHost::stop_service`] before that service's export and
/// [`WorkspaceHost::start_service`] after it, also when the export fails or panics. A
/// host that can do this returns `true` from [`WorkspaceHost::can_stop`] and implements
/// both methods; the defaults say it cannot, and `create_backup` then refuses such a
/// service before writing anything, unless the caller stopped it itself and says so in
/// [`crate::backup::BackupRequest::already_stopped`]. If the backup is cancelled (its
/// future dropped) while a service is stopped, the service is not started again (there
/// is no way to run async code on drop); a `Failed` progress event names it.
#[async_trait]
pub trait WorkspaceHost: Send + Sync + fmt::Debug {
    /// The workspace these deployments belong to.
    ///
    /// # Errors
    ///
    /// Whatever the host's storage reports.
    async fn workspace(&self) -> Result<WorkspaceRef>;

    /// Every deployment of the workspace, secrets included.
    ///
    /// # Errors
    ///
    /// Whatever the host's storage reports.
    async fn list_deployments(&self) -> Result<Vec<Deployment>>;

    /// Records a new deployment with a new id; does not start it.
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::NameConflict`] when the name exists, or whatever the host's
    /// storage reports.
    async fn create_deployment(&self, new: NewDeployment) -> Result<Deployment>;

    /// Stops and removes a deployment, and deletes its data (volumes, data directories).
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::NotFound`] when there is no such deployment.
    async fn remove_deployment(&self, name: &str) -> Result<()>;

    /// Starts (deploys) a created deployment, applying every secret of its config (a
    /// secret field absent from the config means the service runs without that secret,
    /// e.g. a Redis without `requirepass`).
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::NotFound`] when there is no such deployment, or whatever the
    /// platform reports.
    async fn deploy(&self, name: &str) -> Result<()>;

    /// Waits until a deployed service is ready to serve its dependents.
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::Unavailable`] when it is not ready within `timeout`.
    async fn wait_until_ready(&self, name: &str, timeout: Duration) -> Result<()>;

    /// Where this deployment's native tools (pg_dump, redis-cli, …) run.
    ///
    /// The default runs them on this machine; a Kubernetes host returns a
    /// [`crate::ExecRunner`] for `kubectl exec` into the deployment's pod.
    fn runner_for(&self, _deployment: &Deployment) -> Arc<dyn CommandRunner> {
        Arc::new(LocalRunner::new())
    }

    /// Whether [`WorkspaceHost::stop_service`] and [`WorkspaceHost::start_service`] work
    /// for this deployment. The default is `false`.
    fn can_stop(&self, _deployment: &Deployment) -> bool {
        false
    }

    /// Stops a running service without removing it or its data, so its files can be
    /// copied consistently; returns once it is stopped.
    ///
    /// # Errors
    ///
    /// The default returns [`crate::ErrorKind::Unsupported`];
    /// [`crate::ErrorKind::NotFound`] when there is no such deployment.
    async fn stop_service(&self, name: &str) -> Result<()> {
        Err(cannot_stop(name))
    }

    /// Starts a service [`WorkspaceHost::stop_service`] stopped.
    ///
    /// # Errors
    ///
    /// The default returns [`crate::ErrorKind::Unsupported`];
    /// [`crate::ErrorKind::NotFound`] when there is no such deployment.
    async fn start_service(&self, name: &str) -> Result<()> {
        Err(cannot_stop(name))
    }
}

fn cannot_stop(name: &str) -> crate::Error {
    crate::Error::new(
        crate::ErrorKind::Unsupported,
        format!("this host cannot stop or start services (asked for `{name}`)"),
    )
    .with_hint("implement WorkspaceHost::can_stop, stop_service and start_service")
}
