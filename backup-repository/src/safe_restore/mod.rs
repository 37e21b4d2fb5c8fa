//! Restoring from the repository with a way back: [`safe_restore`].
//!
//! In order, and nothing is touched before step 5:
//!
//! 1. choose the bundle (`latest`, index, id or name) and the services (the chosen ones
//!    plus those they depend on, unless told otherwise), and take a shared repository
//!    lock (no delete or prune meanwhile);
//! 2. verify every entry's size and sha256, decrypting when the bundle is encrypted;
//! 3. plan the stages from the bundle's `dependsOn`; for each service check it exists on
//!    the host, its importer reads the formats, and `check()` says the target can take
//!    the data (with force); describe what it holds now. A **dry run** stops here;
//! 4. stop the services that must be stopped (see *Quiesce*);
//! 5. take a **safety backup** of exactly those services' current data into the same
//!    repository (kind `safety`, reason `before-restore`), locked for
//!    [`SafeRestoreOptions::safety_lock`]; if it fails, stop (nothing was touched) unless
//!    [`SafeRestoreOptions::proceed_without_safety_backup`];
//! 6. import stage by stage, in plan order, each service with force, then its smoke test;
//! 7. on a failure, put the safety bundle's data back into every service this restore
//!    touched (the failing one included), in plan order, and return
//!    [`ErrorKind::RestoreRolledBack`] or [`ErrorKind::RollbackFailed`] with a
//!    [`RestoreFailure`] as the error's source;
//! 8. start the services stopped in 4 again, also after a failure.
//!
//! [`ErrorKind::RestoreRolledBack`]: backup_core::ErrorKind::RestoreRolledBack
//! [`ErrorKind::RollbackFailed`]: backup_core::ErrorKind::RollbackFailed

mod dry_run;
mod record;
mod report;
mod rollback;
mod safety;
mod select;

use std::time::Duration;

use backup_core::progress::{ProgressEvent, SharedProgress};
use backup_core::{BundleReader, RecipeRegistry, Result, WorkspaceHost};

pub use report::{
    ArtifactSize, RestoreFailure, SafeRestoreReport, ServiceReport, SkippedBundle, SmokeTest,
};
pub use safety::BEFORE_RESTORE;
pub use select::LATEST;

pub(crate) use record::{record as record_run, start as start_run};
use select::planning_reader;
pub(crate) use select::{holds_all, verified_reader};

use crate::index::IndexEntry;
use crate::locks::LockKind;
use crate::quiesce::{step, Quiesce};
use crate::repo::Repository;
use dry_run::Prepared;

/// How [`safe_restore`] (and [`crate::emergency_restore`]) restores.
#[derive(Debug, Clone)]
pub struct SafeRestoreOptions {
    /// Only these services (every service with data in the bundle when `None`).
    pub services: Option<Vec<String>>,
    /// Also restore the services the chosen ones depend on (the bundle's `dependsOn`,
    /// transitively). On by default.
    pub with_dependencies: bool,
    /// Verify, plan, check and describe only; change nothing.
    pub dry_run: bool,
    /// Whether a dry run reads and checks every entry of the bundle (on by default).
    /// Turn it off for a dry run that only shows the plan before a real restore: the
    /// restore verifies every entry before it touches anything anyway, so the bundle is
    /// then read once for the check instead of twice. A real restore ignores this.
    pub verify_in_dry_run: bool,
    /// Run each importer's smoke test after its data is in. On by default.
    pub smoke_test: bool,
    /// How long the safety bundle stays locked (7 days by default).
    pub safety_lock: Duration,
    /// Restore even when the safety backup cannot be taken. A failure is then not
    /// rolled back ([`backup_core::ErrorKind::RollbackFailed`]). Off by default.
    pub proceed_without_safety_backup: bool,
}

impl Default for SafeRestoreOptions {
    fn default() -> Self {
        SafeRestoreOptions {
            services: None,
            with_dependencies: true,
            dry_run: false,
            verify_in_dry_run: true,
            smoke_test: true,
            safety_lock: Duration::from_secs(7 * 24 * 3600),
            proceed_without_safety_backup: false,
        }
    }
}

/// What to do when the safety backup cannot be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SafetyPolicy {
    /// Stop, nothing touched.
    Required,
    /// The caller said to go on: record a note.
    Overridden,
    /// An emergency restore: go on, with a note saying why there is none.
    BestEffort,
}

/// Restores the bundle `selector` names (`latest`, an index number, an id or a name)
/// into the host's existing services, with a safety backup first and a rollback on
/// failure. See the module docs for the order of work.
///
/// Progress: `Verified` per entry, `PlanReady`, `Step`s (stopped, safety backup taken,
/// started), the safety backup's export events, per service `import` events (`rollback`
/// during a rollback, after `RollingBack`), then `Finished` / `OperationFailed`
/// (`"safe-restore"`).
///
/// The run (not a dry run) is recorded in the repository's history
/// ([`crate::history`], kind `restore`): succeeded with the bundle and this report, or
/// failed with the error, its hint and the rollback's outcome.
///
/// # Errors
///
/// Before anything is touched: selection ([`backup_core::ErrorKind::NotFound`]), lock,
/// verification ([`backup_core::ErrorKind::Integrity`],
/// [`backup_core::ErrorKind::WrongKey`]), check and safety backup errors. After:
/// [`backup_core::ErrorKind::RestoreRolledBack`] or
/// [`backup_core::ErrorKind::RollbackFailed`], details in [`RestoreFailure::of`].
pub async fn safe_restore(
    repo: &Repository,
    selector: &str,
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    options: &SafeRestoreOptions,
    progress: SharedProgress,
) -> Result<SafeRestoreReport> {
    let run = Run {
        repo,
        host,
        registry,
        options,
        progress: &progress,
        operation: SAFE_RESTORE,
    };
    let history = start_run(crate::history::RunKind::Restore, "user");
    let mut outcome = async {
        let lock = repo.lock(LockKind::Shared, SAFE_RESTORE).await?;
        let result = async {
            let entry = select::resolve(repo, selector, options.services.as_deref()).await?;
            let reader = if options.dry_run && !options.verify_in_dry_run {
                planning_reader(repo, &entry).await?
            } else {
                verified_reader(repo, &entry, progress.as_ref()).await?
            };
            let safety = if options.proceed_without_safety_backup {
                SafetyPolicy::Overridden
            } else {
                SafetyPolicy::Required
            };
            run.restore(&entry, &reader, safety, Vec::new()).await
        }
        .await;
        lock.release().await;
        result
    }
    .await;
    record_run(repo, history, SAFE_RESTORE, &mut outcome, &progress).await;
    finish(&progress, SAFE_RESTORE, outcome)
}

const SAFE_RESTORE: &str = "safe-restore";

/// Reports the end of an operation.
pub(crate) fn finish<T>(
    progress: &SharedProgress,
    operation: &str,
    outcome: Result<T>,
) -> Result<T> {
    match &outcome {
        Ok(_) => progress.event(&ProgressEvent::Finished {
            operation: operation.into(),
        }),
        Err(error) => progress.event(&ProgressEvent::OperationFailed {
            operation: operation.into(),
            error: error.to_string(),
        }),
    }
    outcome
}

/// One restore: what it works on.
pub(crate) struct Run<'a> {
    pub(crate) repo: &'a Repository,
    pub(crate) host: &'a dyn WorkspaceHost,
    pub(crate) registry: &'a RecipeRegistry,
    pub(crate) options: &'a SafeRestoreOptions,
    pub(crate) progress: &'a SharedProgress,
    pub(crate) operation: &'static str,
}

impl Run<'_> {
    /// Steps 3 to 8 for a verified bundle, under the caller's repository lock.
    pub(crate) async fn restore(
        &self,
        entry: &IndexEntry,
        reader: &BundleReader,
        safety: SafetyPolicy,
        skipped: Vec<SkippedBundle>,
    ) -> Result<SafeRestoreReport> {
        let services = select::services(
            reader.manifest(),
            reader.snapshot(),
            self.options.services.as_deref(),
            self.options.with_dependencies,
        )?;
        let plan = select::plan(reader.snapshot(), &services)?;
        self.progress.event(&ProgressEvent::PlanReady {
            stages: plan.stage_names(),
        });
        let order: Vec<String> = plan.order().into_iter().map(str::to_string).collect();
        let mut report = SafeRestoreReport {
            bundle_id: entry.manifest.id.clone(),
            bundle_name: entry.name.clone(),
            dry_run: self.options.dry_run,
            stages: plan.stage_names(),
            safety_bundle: None,
            services: Vec::new(),
            skipped_bundles: skipped,
            notes: Vec::new(),
            restarted: Vec::new(),
        };
        let prepared = dry_run::prepare(
            reader,
            self.host,
            self.registry,
            &order,
            self.progress,
            &mut report.notes,
        )
        .await?;
        let mut quiesce = Quiesce::plan(
            self.host,
            self.registry,
            prepared
                .iter()
                .map(|p| (&p.deployment, Some(p.importer.as_ref()))),
        )?;
        if self.options.dry_run {
            report.services = prepared.iter().map(dry_service).collect();
            return Ok(report);
        }
        quiesce
            .stop(self.host, self.progress.as_ref(), self.operation)
            .await?;
        let restored = self
            .safety_then_import(
                entry,
                reader,
                &prepared,
                &order,
                &quiesce,
                safety,
                &mut report,
            )
            .await;
        let not_started = quiesce
            .start(self.host, self.progress.as_ref(), self.operation)
            .await;
        report.restarted = quiesce
            .running
            .iter()
            .filter(|s| !not_started.iter().any(|(n, _)| n == *s))
            .cloned()
            .collect();
        match restored {
            Ok(()) if not_started.is_empty() => Ok(report),
            Ok(()) => Err(backup_core::Error::new(
                backup_core::ErrorKind::Unavailable,
                format!(
                    "bundle `{}` was restored, but {} could not be started again",
                    entry.name,
                    quoted_list(not_started.iter().map(|(s, _)| s.as_str()))
                ),
            )
            .with_hint("start the services by hand; their data is restored")),
            Err(Failed::Before(error)) => Err(error),
            Err(Failed::After(mut failure, safety_name)) => {
                failure.not_started = not_started;
                Err(rollback::failure_error(*failure, safety_name.as_deref()))
            }
        }
    }

    /// Steps 5 to 7, with the services stopped.
    #[allow(clippy::too_many_arguments)]
    async fn safety_then_import(
        &self,
        entry: &IndexEntry,
        reader: &BundleReader,
        prepared: &[Prepared],
        order: &[String],
        quiesce: &Quiesce,
        policy: SafetyPolicy,
        report: &mut SafeRestoreReport,
    ) -> std::result::Result<(), Failed> {
        let taken = safety::take(
            self.repo,
            self.host,
            self.registry,
            order,
            quiesce.already_stopped(),
            &entry.name,
            self.options.safety_lock,
            self.progress,
        )
        .await;
        let safety_name = match taken {
            Ok(info) => {
                step(
                    self.progress.as_ref(),
                    self.operation,
                    format!("safety backup `{}` taken", info.name),
                );
                report.safety_bundle = Some(info.id.clone());
                Some(info.name)
            }
            Err(error) => {
                let note = match policy {
                    SafetyPolicy::Required => return Err(Failed::Before(error.with_hint(
                        "nothing was changed; fix the cause, or set proceed_without_safety_backup to restore without a way back",
                    ))),
                    SafetyPolicy::Overridden => format!(
                        "no safety backup (restoring anyway, as asked): {error}"
                    ),
                    SafetyPolicy::BestEffort => format!(
                        "no safety backup: the current state cannot be read ({error}); restoring without a way back"
                    ),
                };
                step(self.progress.as_ref(), self.operation, note.clone());
                report.notes.push(note);
                None
            }
        };
        let mut touched: Vec<&Prepared> = Vec::new();
        for service in prepared {
            touched.push(service);
            match rollback::import(
                reader,
                service,
                &service.entries,
                self.options.smoke_test,
                "import",
                self.progress.as_ref(),
            )
            .await
            {
                Ok(done) => report.services.push(ServiceReport {
                    service: service.name().to_string(),
                    replaced: service.held.clone(),
                    artifacts: service.artifact_sizes(),
                    bytes: done.bytes,
                    duration_ms: done.duration_ms,
                    smoke_test: done.smoke_test,
                }),
                Err(error) => {
                    let mut failure = RestoreFailure {
                        bundle: entry.name.clone(),
                        failed_service: Some(service.name().to_string()),
                        restore_error: error.to_string(),
                        safety_bundle: report.safety_bundle.clone(),
                        rolled_back: Vec::new(),
                        not_rolled_back: Vec::new(),
                        not_started: Vec::new(),
                    };
                    rollback::roll_back(
                        self.repo,
                        report.safety_bundle.as_deref(),
                        &touched,
                        &mut failure,
                        self.progress.as_ref(),
                    )
                    .await;
                    return Err(Failed::After(Box::new(failure), safety_name));
                }
            }
        }
        Ok(())
    }
}

/// How steps 5 to 7 failed.
enum Failed {
    /// Before anything was touched.
    Before(backup_core::Error),
    /// After: with the rollback's outcome and the safety bundle's name.
    After(Box<RestoreFailure>, Option<String>),
}

fn dry_service(service: &Prepared) -> ServiceReport {
    ServiceReport {
        service: service.name().to_string(),
        replaced: service.held.clone(),
        artifacts: service.artifact_sizes(),
        bytes: 0,
        duration_ms: 0,
        smoke_test: SmokeTest::NotRun,
    }
}

/// `a`, `b` and `c`-style list of quoted names.
pub(crate) fn quoted_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
