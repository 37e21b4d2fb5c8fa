//! What one run is: [`RunRecord`], and [`RunStart`] to build one.

use backup_core::{Error, ErrorKind};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::index::BundleInfo;

/// The format version of a run record this build writes.
pub const RUN_FORMAT_VERSION: u32 = 1;

/// What kind of run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunKind {
    /// A backup a schedule started.
    Scheduled,
    /// A backup taken before a destructive operation of the host (remove, apply, …).
    Guard,
    /// A backup someone asked for.
    Manual,
    /// A restore (with its safety backup), by id, name, index or `latest`.
    Restore,
    /// An emergency restore: the newest bundle that verifies, without confirmation.
    EmergencyRestore,
    /// A kind written by a newer version of this library.
    #[serde(other)]
    Other,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// It did what it was asked.
    Succeeded,
    /// It failed; [`RunRecord::error`] says why.
    Failed,
}

/// Why a run failed: the error's kind, message and hint (never a secret: errors never
/// hold one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunError {
    /// The error kind.
    pub kind: ErrorKind,
    /// The one-line message.
    pub message: String,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl From<&Error> for RunError {
    fn from(e: &Error) -> Self {
        RunError {
            kind: e.kind(),
            message: e.message().to_string(),
            hint: e.hint().map(str::to_string),
        }
    }
}

/// The bundle a run published (a backup) or used (a restore).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunBundle {
    /// Bundle id.
    pub id: String,
    /// Bundle name.
    pub name: String,
    /// Size of the bundle object in bytes.
    pub size: u64,
}

impl From<&BundleInfo> for RunBundle {
    fn from(info: &BundleInfo) -> Self {
        RunBundle {
            id: info.id.clone(),
            name: info.name.clone(),
            size: info.size,
        }
    }
}

/// Something an exporter (or importer) reported that did not fail the run: a skipped
/// socket, a bind mount left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunWarning {
    /// The service it concerns.
    pub service: String,
    /// What happened, for a person.
    pub message: String,
}

/// `runs/<started>_<id>.json`: one run, succeeded or failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// [`RUN_FORMAT_VERSION`].
    pub format_version: u32,
    /// Run id (a UUID).
    pub id: String,
    /// What kind of run.
    pub kind: RunKind,
    /// What started it: `schedule:<name>` for a schedule, the reason of a guard
    /// (`before-remove`), `user`, `emergency`, …
    pub trigger: String,
    /// The services it concerned (for a backup of the whole workspace, those the bundle
    /// holds, when it was published).
    pub services: Vec<String>,
    /// The label asked for (a schedule's label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// For a scheduled run: the occurrence it ran for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<Timestamp>,
    /// Succeeded or failed.
    pub status: RunStatus,
    /// When it started.
    pub started: Timestamp,
    /// When it ended.
    pub finished: Timestamp,
    /// `finished - started`, in milliseconds.
    pub duration_ms: u64,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    /// The bundle published (a backup) or restored (a restore); never set for a failed
    /// backup, which leaves no bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<RunBundle>,
    /// What exporters reported without failing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<RunWarning>,
    /// Anything else the run wants kept (a restore's safety bundle, its rollback
    /// outcome, …), free-form JSON.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl RunRecord {
    /// Sets when the run ended (and its duration).
    pub fn finished_at(mut self, finished: Timestamp) -> Self {
        self.finished = finished;
        self.duration_ms = duration_ms(self.started, finished);
        self
    }

    /// Adds warnings.
    pub fn with_warnings(mut self, warnings: impl IntoIterator<Item = RunWarning>) -> Self {
        self.warnings.extend(warnings);
        self
    }

    /// Adds one free-form detail.
    pub fn with_detail(mut self, key: impl Into<String>, value: serde_json::Value) -> Self {
        self.details.insert(key.into(), value);
        self
    }

    /// Whether it succeeded.
    pub fn succeeded(&self) -> bool {
        self.status == RunStatus::Succeeded
    }
}

fn duration_ms(started: Timestamp, finished: Timestamp) -> u64 {
    u64::try_from(finished.duration_since(started).as_millis()).unwrap_or(0)
}

/// A run under way: say what it is when it starts, then turn it into a [`RunRecord`]
/// with [`succeeded`](Self::succeeded) or [`failed`](Self::failed) and write that with
/// [`Repository::record_run`](crate::Repository::record_run).
///
/// ```
/// use backup_repository::history::{RunKind, RunStart};
/// let run = RunStart::new(RunKind::Guard, "before-remove").services(["db"]);
/// // … take the backup …
/// let record = run.succeeded(None);
/// assert!(record.succeeded());
/// ```
#[derive(Debug, Clone)]
pub struct RunStart {
    record: RunRecord,
    clock: Arc<dyn Clock>,
}

impl RunStart {
    /// A run of `kind` started now by `trigger`.
    pub fn new(kind: RunKind, trigger: impl Into<String>) -> Self {
        Self::with_clock(kind, trigger, Arc::new(SystemClock))
    }

    /// A run of `kind` started now by `trigger`, reading start and end times from `clock`.
    pub fn with_clock(kind: RunKind, trigger: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now();
        RunStart {
            clock,
            record: RunRecord {
                format_version: RUN_FORMAT_VERSION,
                id: uuid::Uuid::new_v4().to_string(),
                kind,
                trigger: trigger.into(),
                services: Vec::new(),
                label: None,
                scheduled_for: None,
                status: RunStatus::Succeeded,
                started: now,
                finished: now,
                duration_ms: 0,
                error: None,
                bundle: None,
                warnings: Vec::new(),
                details: serde_json::Map::new(),
            },
        }
    }

    /// The services it concerns.
    pub fn services<S: Into<String>>(mut self, services: impl IntoIterator<Item = S>) -> Self {
        self.record.services = services.into_iter().map(Into::into).collect();
        self
    }

    /// The label asked for.
    pub fn label(mut self, label: Option<String>) -> Self {
        self.record.label = label;
        self
    }

    /// The occurrence a scheduled run runs for.
    pub fn scheduled_for(mut self, at: Timestamp) -> Self {
        self.record.scheduled_for = Some(at);
        self
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// What it is so far.
    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    /// The run succeeded now, with the bundle it published or restored.
    pub fn succeeded(self, bundle: Option<&BundleInfo>) -> RunRecord {
        let now = self.clock.now();
        let mut record = self.record;
        record.status = RunStatus::Succeeded;
        record.bundle = bundle.map(RunBundle::from);
        if record.services.is_empty() {
            if let Some(b) = bundle {
                record.services = b.services.clone();
            }
        }
        let finished = now.max(record.started);
        record.finished_at(finished)
    }

    /// The run failed now with `error`.
    pub fn failed(self, error: &Error) -> RunRecord {
        let now = self.clock.now();
        let mut record = self.record;
        record.status = RunStatus::Failed;
        record.error = Some(RunError::from(error));
        let finished = now.max(record.started);
        record.finished_at(finished)
    }
}
