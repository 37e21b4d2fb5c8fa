//! Typed progress events for long operations, delivered to a sink the caller provides.
//!
//! A CLI draws progress bars from them; an HTTP host forwards them as server-sent events.
//!
//! # What the events promise
//!
//! - a restore emits [`ProgressEvent::PlanReady`] exactly once, after the bundle is
//!   verified and the plan validated, before anything is checked against or changed on
//!   the target;
//! - [`ProgressEvent::Failed`] always names a service; a failure of the whole operation
//!   (a bad bundle, validation, a write error) is [`ProgressEvent::OperationFailed`];
//! - when a service fails, its `Failed` comes before any [`ProgressEvent::RollingBack`];
//! - [`ProgressEvent::Finished`] comes only when the whole operation succeeded, as its
//!   last event; a failed operation ends with `OperationFailed` (or `RollingBack` and the
//!   rollback's own events) instead.

use std::sync::{Arc, Mutex};

use serde::Serialize;

/// One thing that happened during an export, verify or restore.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
#[non_exhaustive]
pub enum ProgressEvent {
    /// A restore plan is ready; `stages` lists service names per stage.
    #[serde(rename_all = "camelCase")]
    PlanReady {
        /// Service names, one list per stage.
        stages: Vec<Vec<String>>,
    },
    /// Work on one service (or one artifact of it) started.
    #[serde(rename_all = "camelCase")]
    ServiceStarted {
        /// Service name.
        service: String,
        /// What is being done: "export", "import", "verify", "create".
        operation: String,
    },
    /// Bytes moved for one artifact; `total` when known.
    #[serde(rename_all = "camelCase")]
    BytesTransferred {
        /// Service name.
        service: String,
        /// Artifact name.
        artifact: String,
        /// Bytes so far.
        done: u64,
        /// Total bytes, when known in advance.
        total: Option<u64>,
    },
    /// An artifact's checksum and size matched the manifest.
    #[serde(rename_all = "camelCase")]
    Verified {
        /// Entry path in the bundle.
        path: String,
        /// Stored size in bytes.
        size: u64,
    },
    /// A service finished.
    #[serde(rename_all = "camelCase")]
    ServiceFinished {
        /// Service name.
        service: String,
        /// What was done.
        operation: String,
    },
    /// Work on a service failed; `error` is the one-line error text (never a secret).
    #[serde(rename_all = "camelCase")]
    Failed {
        /// Service name (never empty).
        service: String,
        /// The error's one-line text.
        error: String,
    },
    /// A failed restore is being rolled back.
    #[serde(rename_all = "camelCase")]
    RollingBack {
        /// Why.
        reason: String,
    },
    /// The whole operation finished successfully.
    #[serde(rename_all = "camelCase")]
    Finished {
        /// What finished: "export", "verify", "import", "restore".
        operation: String,
    },
    /// The whole operation failed; `error` is the one-line error text (never a secret).
    #[serde(rename_all = "camelCase")]
    OperationFailed {
        /// What failed: "export", "verify", "import", "restore".
        operation: String,
        /// The error's one-line text.
        error: String,
    },
    /// A step of a longer operation (a safe or emergency restore, a guard) with what it
    /// found, e.g. "skipped bundle … : it does not verify" or "no safety backup: the
    /// database is down". Never a secret.
    #[serde(rename_all = "camelCase")]
    Step {
        /// The operation: "safe-restore", "emergency-restore", "guard".
        operation: String,
        /// The step, in words.
        message: String,
    },
}

/// Receives progress events. Implementations must be cheap and must not block.
pub trait ProgressSink: Send + Sync {
    /// Called once per event, in order for any one service.
    fn event(&self, event: &ProgressEvent);
}

impl<F> ProgressSink for F
where
    F: Fn(&ProgressEvent) + Send + Sync,
{
    fn event(&self, event: &ProgressEvent) {
        self(event)
    }
}

/// A sink that drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn event(&self, _event: &ProgressEvent) {}
}

/// A sink that keeps every event, for tests and for callers that report at the end.
#[derive(Debug, Clone, Default)]
pub struct CollectedProgress {
    events: Arc<Mutex<Vec<ProgressEvent>>>,
}

impl CollectedProgress {
    /// Creates an empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every event received so far.
    pub fn events(&self) -> Vec<ProgressEvent> {
        match self.events.lock() {
            Ok(events) => events.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl ProgressSink for CollectedProgress {
    fn event(&self, event: &ProgressEvent) {
        match self.events.lock() {
            Ok(mut events) => events.push(event.clone()),
            Err(poisoned) => poisoned.into_inner().push(event.clone()),
        }
    }
}

/// A shared, clonable handle to a progress sink.
pub type SharedProgress = Arc<dyn ProgressSink>;

/// A shared sink that drops every event.
pub fn no_progress() -> SharedProgress {
    Arc::new(NoProgress)
}
