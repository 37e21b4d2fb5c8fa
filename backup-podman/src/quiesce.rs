//! Stopping exactly the running containers that use a volume, and starting them again
//! whatever happens: on success, on failure, and (from a background task) on cancel.

use backup_core::{Error, Result};

use crate::cli::Podman;

/// Containers stopped for a volume operation; started again by [`Quiesced::resume`], or
/// from a background task if dropped without it (the operation was cancelled).
#[derive(Debug)]
pub(crate) struct Quiesced {
    podman: Podman,
    /// Stopped containers in start order.
    stopped: Vec<String>,
    resumed: bool,
}

impl Quiesced {
    /// Nothing stopped.
    pub(crate) fn none(podman: Podman) -> Self {
        Quiesced {
            podman,
            stopped: Vec::new(),
            resumed: true,
        }
    }

    /// Stops the running containers that use any of `volumes` (containers that were
    /// stopped already are left alone and stay stopped).
    ///
    /// # Errors
    ///
    /// When listing or stopping fails; containers stopped before the failure are started
    /// again first.
    pub(crate) async fn stop_users(podman: &Podman, volumes: &[String]) -> Result<Self> {
        let mut ids: Vec<String> = Vec::new();
        for volume in volumes {
            for id in podman.running_users(volume).await? {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        let mut quiesced = Quiesced {
            podman: podman.clone(),
            stopped: ids,
            resumed: false,
        };
        if let Err(error) = podman.stop(&quiesced.stopped).await {
            let restarted = quiesced.resume().await;
            return Err(with_restart_outcome(error, restarted));
        }
        Ok(quiesced)
    }

    /// The stopped containers, in start order.
    pub(crate) fn stopped(&self) -> &[String] {
        &self.stopped
    }

    /// Starts the stopped containers again, in dependency order.
    ///
    /// # Errors
    ///
    /// The first container that did not start (the others are still tried).
    pub(crate) async fn resume(&mut self) -> Result<()> {
        if self.resumed {
            return Ok(());
        }
        self.resumed = true;
        let mut first_error = None;
        for id in &self.stopped {
            if let Err(e) = self.podman.start(std::slice::from_ref(id)).await {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => Err(e.context("starting the containers stopped for the volume operation")),
        }
    }
}

impl Drop for Quiesced {
    fn drop(&mut self) {
        if self.resumed || self.stopped.is_empty() {
            return;
        }
        // Cancelled: async code cannot run here, so a task starts the containers.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let podman = self.podman.clone();
            let stopped = std::mem::take(&mut self.stopped);
            handle.spawn(async move {
                for id in &stopped {
                    let _ = podman.start(std::slice::from_ref(id)).await;
                }
            });
        }
    }
}

/// Adds to `error` whether the containers were started again.
pub(crate) fn with_restart_outcome(error: Error, restarted: Result<()>) -> Error {
    match restarted {
        Ok(()) => error,
        Err(not_started) => error.context(format!("({not_started}) and before that")),
    }
}
