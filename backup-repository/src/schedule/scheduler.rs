//! [`Scheduler`]: runs schedules inside the host's tokio runtime until cancelled.

use std::sync::Arc;
use std::time::Duration;

use backup_core::backup::BackupRequest;
use backup_core::bundle::{BundleKind, BundleOptions};
use backup_core::progress::{no_progress, SharedProgress};
use backup_core::{Error, ErrorKind, ProgressEvent, RecipeRegistry, Result, WorkspaceHost};
use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{MissedRun, Schedule};
use crate::clock::{Clock, SystemClock};
use crate::history::{RunError, RunFilter, RunKind, RunRecord, RunStart};
use crate::index::BundleFilter;
use crate::locks::LockKind;
use crate::repo::Repository;

/// How long a run waits for an exclusive repository lock (a prune or delete by someone
/// else) to go away before it fails.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(10 * 60);
/// How often a waiting scheduler reads its clock again (a suspended host, a clock set
/// forward, are noticed within this).
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// How often a run retries the repository lock while waiting.
const LOCK_RETRY: Duration = Duration::from_secs(15);
/// Most occurrences walked to find the newest missed one.
const MAX_MISSED_WALK: usize = 100_000;

/// One finished scheduled run.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The schedule's name.
    pub schedule: String,
    /// The run as recorded in the history: status, error and hint, bundle, warnings.
    pub run: RunRecord,
    /// Why the run could not be recorded in the history, if it could not.
    pub history_error: Option<RunError>,
    /// Bundles removed by the schedule's retention after the run.
    pub removed_bundles: Vec<String>,
    /// Why retention failed after a successful run (the bundle stays; the next
    /// successful run applies retention again).
    pub retention_error: Option<RunError>,
}

impl RunReport {
    /// Whether the backup succeeded.
    pub fn succeeded(&self) -> bool {
        self.run.succeeded()
    }
}

/// What a running scheduler reports through its [`SchedulerHandle`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SchedulerEvent {
    /// A run finished, succeeded or failed.
    Ran(Box<RunReport>),
    /// A run missed while the host was down was skipped ([`MissedRun::Skip`]).
    MissedRunSkipped {
        /// The schedule's name.
        schedule: String,
        /// The newest occurrence missed.
        missed: Timestamp,
        /// When it runs next.
        next: Timestamp,
    },
    /// The run history could not be read at start-up: missed runs of this schedule
    /// cannot be told, none is run.
    HistoryUnreadable {
        /// The schedule's name.
        schedule: String,
        /// Why.
        error: RunError,
    },
    /// A schedule stopped: no next occurrence can be computed.
    ScheduleEnded {
        /// The schedule's name.
        schedule: String,
        /// Why.
        error: RunError,
    },
}

/// Runs [`Schedule`]s: each run backs up with
/// [`Repository::backup_recorded`](crate::Repository::backup_recorded) (kind `automatic`,
/// the schedule's label and services; recorded in the run history with trigger
/// `schedule:<name>`), then applies the schedule's retention policy to its own bundles.
///
/// - **No overlap.** Runs happen one at a time: a run due while another runs starts
///   when it ends (late, once). A run holds a shared repository lock from before its
///   backup to after it is recorded, so another process's prune or delete cannot run
///   meanwhile; when one holds the exclusive lock, the run waits for it (up to
///   [`DEFAULT_LOCK_WAIT`]) and otherwise fails. Occurrences of a schedule that pass
///   during its own run are not run again. Run one scheduler per repository.
/// - **Failures.** A failed run is recorded (status failed, error and hint, no bundle),
///   reported through the handle and the progress sink (`OperationFailed` with operation
///   `schedule:<name>`), and the next run happens as scheduled. A successful run ends with
///   `Finished` (`schedule:<name>`).
/// - **Missed runs** and **DST**: see the [module docs](super).
/// - **Stopping.** Cancelling the token (or [`SchedulerHandle::stop`]) ends the scheduler
///   between runs: a run in progress finishes first (so its services are started again
///   and it is recorded).
///
/// ```no_run
/// use std::sync::Arc;
/// use backup_core::{directory, RecipeRegistry, WorkspaceHost};
/// use backup_repository::retention::RetentionPolicy;
/// use backup_repository::schedule::{Schedule, Scheduler, SchedulerEvent};
/// use backup_repository::{Repository, Storage};
/// use jiff::civil::time;
/// use tokio_util::sync::CancellationToken;
///
/// async fn schedules(host: Arc<dyn WorkspaceHost>) -> backup_core::Result<()> {
///     let repo = Repository::open(Storage::Local("/var/backups/repo".into())).await?;
///     let mut registry = RecipeRegistry::new();
///     directory::register(&mut registry)?;
///     let keep = RetentionPolicy::from_json(r#"{"default": {"keepDaily": 7, "keepWeekly": 4}}"#)?;
///     let nightly = Schedule::daily("nightly", time(2, 30, 0, 0), "Europe/Berlin")?
///         .with_services(["db", "files"])
///         .with_retention(keep);
///     let weekly = Schedule::cron("weekly-full", "0 4 * * SUN", "Europe/Berlin")?;
///     let cancel = CancellationToken::new(); // cancel it on shutdown
///     let mut handle = Scheduler::new(repo, host, Arc::new(registry))
///         .with_schedule(nightly)?
///         .with_schedule(weekly)?
///         .start(cancel.clone());
///     while let Some(event) = handle.next_event().await {
///         if let SchedulerEvent::Ran(report) = event {
///             match &report.run.error {
///                 None => println!("{}: {:?}", report.schedule, report.run.bundle),
///                 Some(e) => eprintln!("{} failed: {} ({:?})", report.schedule, e.message, e.hint),
///             }
///         }
///     }
///     Ok(())
/// }
/// ```
pub struct Scheduler {
    repo: Repository,
    host: Arc<dyn WorkspaceHost>,
    registry: Arc<RecipeRegistry>,
    schedules: Vec<Schedule>,
    clock: Arc<dyn Clock>,
    progress: SharedProgress,
    lock_wait: Duration,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("repo", &self.repo.storage())
            .field("schedules", &self.schedules)
            .field("clock", &self.clock)
            .field("lock_wait", &self.lock_wait)
            .finish_non_exhaustive()
    }
}

/// A running scheduler: its events, and a way to stop it and wait for it.
#[derive(Debug)]
pub struct SchedulerHandle {
    events: mpsc::UnboundedReceiver<SchedulerEvent>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Scheduler {
    /// A scheduler backing up `host`'s services (recipes from `registry`) into `repo`, on
    /// the system clock, without progress events.
    pub fn new(
        repo: Repository,
        host: Arc<dyn WorkspaceHost>,
        registry: Arc<RecipeRegistry>,
    ) -> Self {
        Scheduler {
            repo,
            host,
            registry,
            schedules: Vec::new(),
            clock: Arc::new(SystemClock),
            progress: no_progress(),
            lock_wait: DEFAULT_LOCK_WAIT,
        }
    }

    /// Adds a schedule.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AlreadyExists`] when a schedule of that name was added already.
    pub fn with_schedule(mut self, schedule: Schedule) -> Result<Self> {
        if self.schedules.iter().any(|s| s.name() == schedule.name()) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("a schedule named `{}` exists already", schedule.name()),
            )
            .with_hint("give every schedule its own name: runs are recorded by it"));
        }
        self.schedules.push(schedule);
        Ok(self)
    }

    /// Reads the time from `clock` (tests move a [`TokioClock`](crate::TokioClock)
    /// together with tokio's paused clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sends the backups' progress events, and one `Finished` / `OperationFailed` per
    /// run, to `progress`.
    pub fn with_progress(mut self, progress: SharedProgress) -> Self {
        self.progress = progress;
        self
    }

    /// How long a run waits for another process's exclusive repository lock.
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Starts the scheduler on the current tokio runtime; it runs until `cancel` is
    /// cancelled. Must be called inside a tokio runtime.
    pub fn start(self, cancel: CancellationToken) -> SchedulerHandle {
        let (tx, events) = mpsc::unbounded_channel();
        let token = cancel.clone();
        let task = tokio::spawn(async move { self.run(token, tx).await });
        SchedulerHandle {
            events,
            cancel,
            task,
        }
    }

    async fn run(self, cancel: CancellationToken, tx: mpsc::UnboundedSender<SchedulerEvent>) {
        let send = |event: SchedulerEvent| {
            let _ = tx.send(event);
        };
        let mut due: Vec<Option<Timestamp>> = Vec::with_capacity(self.schedules.len());
        for schedule in &self.schedules {
            let (first, event) = self.first_due(schedule).await;
            if let Some(event) = event {
                send(event);
            }
            due.push(first);
        }
        loop {
            let Some((i, at)) = due
                .iter()
                .enumerate()
                .filter_map(|(i, d)| d.map(|d| (i, d)))
                .min_by_key(|(_, d)| *d)
            else {
                cancel.cancelled().await;
                return;
            };
            if !self.sleep_until(at, &cancel).await {
                return;
            }
            let schedule = &self.schedules[i];
            let report = self.run_once(schedule, at).await;
            send(SchedulerEvent::Ran(Box::new(report)));
            let after = self.clock.now().max(at);
            due[i] = match schedule.next_after(after) {
                Ok(next) => Some(next),
                Err(e) => {
                    send(ended(schedule, &e));
                    None
                }
            };
        }
    }

    /// When a schedule runs first, looking for a missed run in the history.
    async fn first_due(&self, schedule: &Schedule) -> (Option<Timestamp>, Option<SchedulerEvent>) {
        let now = self.clock.now();
        let next = match schedule.next_after(now) {
            Ok(next) => next,
            Err(e) => return (None, Some(ended(schedule, &e))),
        };
        let filter = RunFilter {
            trigger: Some(schedule.trigger()),
            limit: Some(1),
            ..RunFilter::default()
        };
        let last = match self.repo.runs(&filter).await {
            Ok(list) => list.runs.into_iter().next(),
            Err(e) => {
                let event = SchedulerEvent::HistoryUnreadable {
                    schedule: schedule.name().to_string(),
                    error: RunError::from(&e),
                };
                return (Some(next), Some(event));
            }
        };
        let Some(last) = last else {
            return (Some(next), None);
        };
        let Some(missed) = newest_missed(schedule, last.scheduled_for.unwrap_or(last.started), now)
        else {
            return (Some(next), None);
        };
        match schedule.missed_run() {
            MissedRun::RunOnce => (Some(missed), None),
            MissedRun::Skip => (
                Some(next),
                Some(SchedulerEvent::MissedRunSkipped {
                    schedule: schedule.name().to_string(),
                    missed,
                    next,
                }),
            ),
        }
    }

    /// Waits until the clock reads `at` or later; `false` when cancelled first.
    async fn sleep_until(&self, at: Timestamp, cancel: &CancellationToken) -> bool {
        loop {
            let now = self.clock.now();
            if now >= at {
                return !cancel.is_cancelled();
            }
            let left = Duration::try_from(at.duration_since(now)).unwrap_or(MAX_SLEEP);
            tokio::select! {
                () = cancel.cancelled() => return false,
                () = tokio::time::sleep(left.min(MAX_SLEEP)) => {}
            }
        }
    }

    /// One run: lock, backup, record, retention, report.
    async fn run_once(&self, schedule: &Schedule, scheduled_for: Timestamp) -> RunReport {
        let operation = schedule.trigger();
        let start =
            RunStart::with_clock(RunKind::Scheduled, schedule.trigger(), self.clock.clone())
                .label(Some(schedule.label().to_string()))
                .scheduled_for(scheduled_for);
        let (run, history_error) = match self.wait_for_lock().await {
            Err(e) => {
                let run = start.failed(&e);
                let recorded = self.repo.record_run(&run).await;
                (run, recorded.err())
            }
            Ok(lock) => {
                let request = BackupRequest {
                    bundle: BundleOptions {
                        kind: BundleKind::Automatic,
                        reason: Some(operation.clone()),
                        ..BundleOptions::default()
                    }
                    .with_label(schedule.label()),
                    services: schedule.services().map(<[String]>::to_vec),
                    ..BackupRequest::default()
                };
                let done = self
                    .repo
                    .backup_recorded(
                        self.host.as_ref(),
                        &self.registry,
                        &request,
                        start,
                        self.progress.clone(),
                    )
                    .await;
                lock.release().await;
                (done.run, done.recorded.err())
            }
        };
        let mut report = RunReport {
            schedule: schedule.name().to_string(),
            history_error: history_error.as_ref().map(RunError::from),
            removed_bundles: Vec::new(),
            retention_error: None,
            run,
        };
        if let (true, Some(policy)) = (report.succeeded(), schedule.retention()) {
            let scope = BundleFilter {
                kind: Some(BundleKind::Automatic),
                label: Some(schedule.label().to_string()),
                ..BundleFilter::default()
            };
            match self.repo.apply_retention(policy, &scope, false).await {
                Ok(pruned) => report.removed_bundles = pruned.removed_bundles,
                Err(e) => report.retention_error = Some(RunError::from(&e)),
            }
        }
        let failure = report
            .run
            .error
            .as_ref()
            .map(|e| format!("backup failed: {}", e.message))
            .or_else(|| {
                report
                    .retention_error
                    .as_ref()
                    .map(|e| format!("retention failed: {}", e.message))
            });
        self.progress.event(&match failure {
            Some(error) => ProgressEvent::OperationFailed { operation, error },
            None => ProgressEvent::Finished { operation },
        });
        report
    }

    /// A shared repository lock, waiting up to `lock_wait` while another process holds
    /// the exclusive one.
    async fn wait_for_lock(&self) -> Result<crate::locks::LockGuard> {
        let deadline = tokio::time::Instant::now() + self.lock_wait;
        loop {
            match self.repo.lock(LockKind::Shared, "scheduled-backup").await {
                Err(e)
                    if e.kind() == ErrorKind::Locked
                        && tokio::time::Instant::now() + LOCK_RETRY <= deadline =>
                {
                    tokio::time::sleep(LOCK_RETRY).await;
                }
                other => return other,
            }
        }
    }
}

/// The newest occurrence after `last` and at or before `now`, if any: a run missed.
fn newest_missed(schedule: &Schedule, last: Timestamp, now: Timestamp) -> Option<Timestamp> {
    let mut missed = None;
    let mut at = last;
    for _ in 0..MAX_MISSED_WALK {
        match schedule.next_after(at) {
            Ok(next) if next <= now => {
                missed = Some(next);
                at = next;
            }
            _ => return missed,
        }
    }
    missed
}

fn ended(schedule: &Schedule, e: &Error) -> SchedulerEvent {
    SchedulerEvent::ScheduleEnded {
        schedule: schedule.name().to_string(),
        error: RunError::from(e),
    }
}

impl SchedulerHandle {
    /// The next event; waits for one. `None` once the scheduler has ended and every event
    /// was read.
    pub async fn next_event(&mut self) -> Option<SchedulerEvent> {
        self.events.recv().await
    }

    /// The next finished run, skipping other events; `None` once the scheduler ended.
    pub async fn next_run(&mut self) -> Option<RunReport> {
        loop {
            if let SchedulerEvent::Ran(report) = self.next_event().await? {
                return Some(*report);
            }
        }
    }

    /// An event already reported, without waiting.
    pub fn try_next_event(&mut self) -> Option<SchedulerEvent> {
        self.events.try_recv().ok()
    }

    /// Asks the scheduler to stop (a run in progress finishes first).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Stops the scheduler and waits until it has (a run in progress finishes first).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if the scheduler's task panicked.
    pub async fn stop(self) -> Result<()> {
        self.cancel.cancel();
        self.wait().await
    }

    /// Waits until the scheduler ends (its token is cancelled elsewhere).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if the scheduler's task panicked.
    pub async fn wait(self) -> Result<()> {
        self.task
            .await
            .map_err(|e| Error::new(ErrorKind::Io, format!("the scheduler task failed: {e}")))
    }
}
