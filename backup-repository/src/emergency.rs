//! [`emergency_restore`]: bring services back from the newest bundle that verifies,
//! without asking.

use backup_core::progress::SharedProgress;
use backup_core::{Error, ErrorKind, RecipeRegistry, Result, WorkspaceHost};

use crate::history::RunKind;
use crate::locks::LockKind;
use crate::quiesce::step;
use crate::repo::Repository;
use crate::safe_restore::{
    finish, holds_all, record_run, start_run, verified_reader, Run, SafeRestoreOptions,
    SafeRestoreReport, SafetyPolicy, SkippedBundle,
};

const EMERGENCY: &str = "emergency-restore";

/// Restores `options.services` (every service, when `None`) from the newest bundle that
/// holds data of all of them **and verifies**: newer bundles that fail verification are
/// skipped and listed in [`SafeRestoreReport::skipped_bundles`]. No confirmation is asked.
///
/// Otherwise as [`crate::safe_restore()`], except for the safety backup: it is taken when
/// the current state can be read; when it cannot (the database is down), the restore
/// goes on and [`SafeRestoreReport::notes`] says so (a failure is then not rolled back).
///
/// Progress: a `Step` for every bundle tried, skipped and chosen, for the safety backup
/// or its absence, and for services stopped and started; the restore's own events; then
/// `Finished` / `OperationFailed` (`"emergency-restore"`). The run is recorded in the
/// history (kind `emergency-restore`), with the skipped bundles in its details.
///
/// # Errors
///
/// [`ErrorKind::NotFound`] when no bundle holds the services, [`ErrorKind::Integrity`]
/// when none of them verifies (naming each), and the errors of [`crate::safe_restore()`].
pub async fn emergency_restore(
    repo: &Repository,
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    options: &SafeRestoreOptions,
    progress: SharedProgress,
) -> Result<SafeRestoreReport> {
    let history = start_run(RunKind::EmergencyRestore, "emergency");
    let mut outcome = async {
        let lock = repo.lock(LockKind::Shared, EMERGENCY).await?;
        let result = newest_verified(repo, host, registry, options, &progress).await;
        lock.release().await;
        result
    }
    .await;
    record_run(repo, history, EMERGENCY, &mut outcome, &progress).await;
    finish(&progress, EMERGENCY, outcome)
}

async fn newest_verified(
    repo: &Repository,
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    options: &SafeRestoreOptions,
    progress: &SharedProgress,
) -> Result<SafeRestoreReport> {
    let wanted = options.services.as_deref();
    let candidates: Vec<_> = repo
        .entries()
        .await?
        .into_iter()
        .filter(|e| holds_all(&e.manifest, wanted))
        .collect();
    if candidates.is_empty() {
        return Err(Error::new(
            ErrorKind::NotFound,
            "no bundle in the repository holds data of the services to restore",
        )
        .with_hint(
            "list the bundles; an emergency restore needs a backup of every service it restores",
        ));
    }
    let mut skipped = Vec::new();
    for entry in candidates {
        step(
            progress.as_ref(),
            EMERGENCY,
            format!("verifying bundle `{}`", entry.name),
        );
        match verified_reader(repo, &entry, progress.as_ref()).await {
            Ok(reader) => {
                step(
                    progress.as_ref(),
                    EMERGENCY,
                    format!("restoring bundle `{}`: it verifies", entry.name),
                );
                let run = Run {
                    repo,
                    host,
                    registry,
                    options,
                    progress,
                    operation: EMERGENCY,
                };
                return run
                    .restore(&entry, &reader, SafetyPolicy::BestEffort, skipped)
                    .await;
            }
            Err(error) => {
                step(
                    progress.as_ref(),
                    EMERGENCY,
                    format!(
                        "skipped bundle `{}`: it does not verify: {error}",
                        entry.name
                    ),
                );
                skipped.push(SkippedBundle {
                    id: entry.manifest.id.clone(),
                    name: entry.name.clone(),
                    error: error.to_string(),
                });
            }
        }
    }
    Err(Error::integrity(format!(
        "no bundle of the services verifies: {}",
        skipped
            .iter()
            .map(|s| format!("`{}` ({})", s.name, s.error))
            .collect::<Vec<_>>()
            .join("; ")
    ))
    .with_hint("nothing was changed; check the repository (Repository::check) and restore from another copy"))
}
