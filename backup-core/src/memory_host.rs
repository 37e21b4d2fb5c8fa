//! [`InMemoryHost`]: a [`WorkspaceHost`] that keeps deployments in memory, for tests and
//! examples.
//!
//! It records every call that changes or waits on a deployment, in order, so a test can
//! check that dependencies were created and ready before their dependents (or that a
//! service was stopped during its export), and it can be told to fail on a given service
//! to exercise rollback. It holds no data of its own: a service's data lives where its
//! config points (a directory), and removing a deployment removes only its record.
//!
//! ```
//! use backup_core::host::{NewDeployment, WorkspaceHost};
//! use backup_core::memory_host::{HostCall, InMemoryHost};
//! use backup_core::snapshot::WorkspaceRef;
//!
//! # futures::executor::block_on(async {
//! let host = InMemoryHost::new(WorkspaceRef { slug: "demo".into(), name: "Demo".into() });
//! let new = NewDeployment {
//!     name: "db".into(),
//!     recipe: "directory".into(),
//!     config: Default::default(),
//!     depends_on: vec![],
//! };
//! host.create_deployment(new).await?;
//! assert_eq!(host.calls(), [HostCall::Created("db".into())]);
//! # Ok::<(), backup_core::Error>(())
//! # })?;
//! # Ok::<(), backup_core::Error>(())
//! ```

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::host::{Deployment, NewDeployment, WorkspaceHost};
use crate::snapshot::WorkspaceRef;
use crate::{Error, ErrorKind, Result};

/// One call an [`InMemoryHost`] received, as recorded by [`InMemoryHost::calls`].
///
/// Reads (`workspace`, `list_deployments`) are not recorded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostCall {
    /// `create_deployment` of this name (recorded also when it fails).
    Created(String),
    /// `deploy` of this name.
    Deployed(String),
    /// `wait_until_ready` of this name returned ready.
    Ready(String),
    /// `remove_deployment` of this name.
    Removed(String),
    /// `stop_service` of this name.
    Stopped(String),
    /// `start_service` of this name.
    Started(String),
}

/// Status of a deployment seeded with [`InMemoryHost::insert`] or reported ready.
pub const STATUS_RUNNING: &str = "running";
/// Status of a deployment just created, not yet deployed.
pub const STATUS_CREATED: &str = "created";
/// Status of a deployment deployed but not yet reported ready.
pub const STATUS_DEPLOYING: &str = "deploying";
/// Status of a deployment stopped with `stop_service`.
pub const STATUS_STOPPED: &str = "stopped";

/// A thread-safe, in-memory [`WorkspaceHost`]. Ids are random UUIDs.
#[derive(Debug)]
pub struct InMemoryHost {
    workspace: WorkspaceRef,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// In creation order.
    deployments: Vec<Deployment>,
    calls: Vec<HostCall>,
    fail_on_create: BTreeSet<String>,
    fail_on_deploy: BTreeSet<String>,
    fail_on_ready: BTreeSet<String>,
    ready_delay: Duration,
    cannot_stop: bool,
}

impl InMemoryHost {
    /// An empty host for `workspace`.
    pub fn new(workspace: WorkspaceRef) -> Self {
        InMemoryHost {
            workspace,
            state: Mutex::new(State::default()),
        }
    }

    /// Seeds a running deployment (not recorded as a call); for building a host in one
    /// expression.
    pub fn with_deployment(self, new: NewDeployment) -> Self {
        self.insert(new);
        self
    }

    /// Seeds a running deployment (not recorded as a call) and returns it, replacing any
    /// deployment of the same name.
    pub fn insert(&self, new: NewDeployment) -> Deployment {
        let deployment = deployment_from(new, STATUS_RUNNING);
        let mut state = self.lock();
        state.deployments.retain(|d| d.name != deployment.name);
        state.deployments.push(deployment.clone());
        deployment
    }

    /// Makes `create_deployment` of `name` fail with [`ErrorKind::Unavailable`].
    pub fn fail_on_create(&self, name: impl Into<String>) -> &Self {
        self.lock().fail_on_create.insert(name.into());
        self
    }

    /// Makes `deploy` of `name` fail with [`ErrorKind::Unavailable`].
    pub fn fail_on_deploy(&self, name: impl Into<String>) -> &Self {
        self.lock().fail_on_deploy.insert(name.into());
        self
    }

    /// Makes `wait_until_ready` of `name` fail with [`ErrorKind::Unavailable`].
    pub fn fail_on_ready(&self, name: impl Into<String>) -> &Self {
        self.lock().fail_on_ready.insert(name.into());
        self
    }

    /// Makes `wait_until_ready` take this long (a tokio sleep), so dependency order and
    /// concurrency can be observed.
    pub fn set_ready_delay(&self, delay: Duration) -> &Self {
        self.lock().ready_delay = delay;
        self
    }

    /// Makes this host unable to stop services, like a host that does not implement
    /// [`WorkspaceHost::stop_service`]: `can_stop` returns `false`.
    pub fn without_stop_support(self) -> Self {
        self.lock().cannot_stop = true;
        self
    }

    /// Every recorded call so far, in order.
    pub fn calls(&self) -> Vec<HostCall> {
        self.lock().calls.clone()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// A copy of every deployment, in creation order.
    pub fn deployments(&self) -> Vec<Deployment> {
        self.lock().deployments.clone()
    }

    /// A copy of the deployment called `name`.
    pub fn get(&self, name: &str) -> Option<Deployment> {
        self.lock()
            .deployments
            .iter()
            .find(|d| d.name == name)
            .cloned()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn set_status(&self, name: &str, status: &str) -> Result<()> {
        let mut state = self.lock();
        let deployment = state
            .deployments
            .iter_mut()
            .find(|d| d.name == name)
            .ok_or_else(|| not_found(name))?;
        deployment.status = status.to_string();
        Ok(())
    }
}

fn not_found(name: &str) -> Error {
    Error::new(ErrorKind::NotFound, format!("no deployment named `{name}`"))
}

fn injected(what: &str, name: &str) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("{what} `{name}` failed (failure injected by InMemoryHost)"),
    )
}

#[async_trait]
impl WorkspaceHost for InMemoryHost {
    async fn workspace(&self) -> Result<WorkspaceRef> {
        Ok(self.workspace.clone())
    }

    async fn list_deployments(&self) -> Result<Vec<Deployment>> {
        Ok(self.deployments())
    }

    async fn create_deployment(&self, new: NewDeployment) -> Result<Deployment> {
        let mut state = self.lock();
        state.calls.push(HostCall::Created(new.name.clone()));
        if state.fail_on_create.contains(&new.name) {
            return Err(injected("creating", &new.name));
        }
        if state.deployments.iter().any(|d| d.name == new.name) {
            return Err(Error::new(
                ErrorKind::NameConflict,
                format!("a deployment named `{}` already exists", new.name),
            ));
        }
        let deployment = deployment_from(new, STATUS_CREATED);
        state.deployments.push(deployment.clone());
        Ok(deployment)
    }

    async fn remove_deployment(&self, name: &str) -> Result<()> {
        let mut state = self.lock();
        state.calls.push(HostCall::Removed(name.to_string()));
        let before = state.deployments.len();
        state.deployments.retain(|d| d.name != name);
        if state.deployments.len() == before {
            return Err(not_found(name));
        }
        Ok(())
    }

    async fn deploy(&self, name: &str) -> Result<()> {
        {
            let mut state = self.lock();
            state.calls.push(HostCall::Deployed(name.to_string()));
            if state.fail_on_deploy.contains(name) {
                return Err(injected("deploying", name));
            }
        }
        self.set_status(name, STATUS_DEPLOYING)
    }

    async fn wait_until_ready(&self, name: &str, timeout: Duration) -> Result<()> {
        let (delay, fail) = {
            let state = self.lock();
            (state.ready_delay, state.fail_on_ready.contains(name))
        };
        if fail {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "`{name}` did not become ready within {}s (failure injected by InMemoryHost)",
                    timeout.as_secs()
                ),
            ));
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay.min(timeout)).await;
        }
        self.set_status(name, STATUS_RUNNING)?;
        self.lock().calls.push(HostCall::Ready(name.to_string()));
        Ok(())
    }

    fn can_stop(&self, _deployment: &Deployment) -> bool {
        !self.lock().cannot_stop
    }

    async fn stop_service(&self, name: &str) -> Result<()> {
        if self.lock().cannot_stop {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("cannot stop `{name}`: stopping is disabled on this InMemoryHost"),
            ));
        }
        self.lock().calls.push(HostCall::Stopped(name.to_string()));
        self.set_status(name, STATUS_STOPPED)
    }

    async fn start_service(&self, name: &str) -> Result<()> {
        self.lock().calls.push(HostCall::Started(name.to_string()));
        self.set_status(name, STATUS_RUNNING)
    }
}

/// Builds a config map from JSON, for seeding a host in tests: `{}` for anything but an
/// object.
pub fn config_from_json(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A deployment made from `new` with a fresh id and `status`.
fn deployment_from(new: NewDeployment, status: &str) -> Deployment {
    Deployment {
        id: uuid::Uuid::new_v4().to_string(),
        name: new.name,
        recipe: new.recipe,
        config: new.config,
        depends_on: new.depends_on,
        status: status.to_string(),
    }
}
