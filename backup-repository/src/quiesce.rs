//! Stopping services around a safety backup and a restore, and starting them again.
//!
//! A service is stopped when its exporter requires it ([`RequiredState::Stopped`], a raw
//! copy of files) or its importer does ([`DataImporter::requires_stopped_service`], a
//! SQLite file swapped under an app). A service that was not running (host status
//! `stopped`, `exited` or `created`) is neither stopped nor started: it stays stopped.

use backup_core::progress::ProgressEvent;
use backup_core::{
    DataImporter, Deployment, Error, ErrorKind, ProgressSink, RecipeRegistry, RequiredState,
    Result, WorkspaceHost,
};

/// Whether the host's status word says the service is not running.
pub(crate) fn not_running(deployment: &Deployment) -> bool {
    deployment.is_stopped()
}

/// Whether the service must be stopped while it is backed up or its data replaced.
pub(crate) fn must_stop(
    registry: &RecipeRegistry,
    deployment: &Deployment,
    importer: Option<&dyn DataImporter>,
) -> Result<bool> {
    let recipe = registry.get(&deployment.recipe)?;
    let exporter_needs = recipe
        .exporter()
        .is_some_and(|e| e.requirements().required_state == RequiredState::Stopped);
    Ok(exporter_needs || importer.is_some_and(|i| i.requires_stopped_service()))
}

/// Services to stop (running) and to leave alone (not running), for one operation.
#[derive(Debug, Default)]
pub(crate) struct Quiesce {
    /// Running services that must be stopped: stopped by [`Quiesce::stop`].
    pub(crate) running: Vec<String>,
    /// Services that must be stopped and are not running: they stay stopped.
    pub(crate) idle: Vec<String>,
    /// Services [`Quiesce::stop`] stopped, to start again.
    pub(crate) stopped: Vec<String>,
}

impl Quiesce {
    /// Sorts `deployments` that must be stopped into running and idle.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] for a running service the host cannot stop.
    pub(crate) fn plan<'a>(
        host: &dyn WorkspaceHost,
        registry: &RecipeRegistry,
        deployments: impl IntoIterator<Item = (&'a Deployment, Option<&'a dyn DataImporter>)>,
    ) -> Result<Quiesce> {
        let mut quiesce = Quiesce::default();
        let mut cannot = Vec::new();
        for (deployment, importer) in deployments {
            if !must_stop(registry, deployment, importer)? {
                continue;
            }
            if not_running(deployment) {
                quiesce.idle.push(deployment.name.clone());
            } else if host.can_stop(deployment) {
                quiesce.running.push(deployment.name.clone());
            } else {
                cannot.push(format!("`{}`", deployment.name));
            }
        }
        if !cannot.is_empty() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{} must be stopped while its data is copied or replaced, and this host cannot stop services",
                    cannot.join(", ")
                ),
            )
            .with_hint("implement WorkspaceHost::can_stop, stop_service and start_service, or stop the services first"));
        }
        Ok(quiesce)
    }

    /// The services no backup should stop or start: already stopped (by us or before).
    pub(crate) fn already_stopped(&self) -> Vec<String> {
        self.stopped.iter().chain(&self.idle).cloned().collect()
    }

    /// Stops every running service of the plan. On a failure the ones already stopped
    /// are started again and the error returned.
    ///
    /// # Errors
    ///
    /// The host's stop error, naming the service.
    pub(crate) async fn stop(
        &mut self,
        host: &dyn WorkspaceHost,
        progress: &dyn ProgressSink,
        operation: &str,
    ) -> Result<()> {
        for name in self.running.clone() {
            if let Err(error) = host.stop_service(&name).await {
                let error = error.context(format!("stopping service `{name}`"));
                let _ = self.start(host, progress, operation).await;
                return Err(error);
            }
            step(progress, operation, format!("stopped service `{name}`"));
            self.stopped.push(name);
        }
        Ok(())
    }

    /// Starts the services [`Quiesce::stop`] stopped, all of them even when one fails;
    /// returns those that did not start, with why.
    pub(crate) async fn start(
        &mut self,
        host: &dyn WorkspaceHost,
        progress: &dyn ProgressSink,
        operation: &str,
    ) -> Vec<(String, String)> {
        let mut failed = Vec::new();
        for name in std::mem::take(&mut self.stopped) {
            match host.start_service(&name).await {
                Ok(()) => step(
                    progress,
                    operation,
                    format!("started service `{name}` again"),
                ),
                Err(error) => {
                    progress.event(&ProgressEvent::Failed {
                        service: name.clone(),
                        error: format!("could not start it again: {error}"),
                    });
                    failed.push((name, error.to_string()));
                }
            }
        }
        failed
    }
}

/// Reports one step of an operation.
pub(crate) fn step(progress: &dyn ProgressSink, operation: &str, message: impl Into<String>) {
    progress.event(&ProgressEvent::Step {
        operation: operation.to_string(),
        message: message.into(),
    });
}
