//! Recording restore runs in the repository's run history.

use backup_core::progress::SharedProgress;
use backup_core::Result;
use jiff::Timestamp;

use super::report::{RestoreFailure, SafeRestoreReport};
use crate::history::{RunKind, RunStart};
use crate::index::BundleInfo;
use crate::quiesce::step;
use crate::repo::Repository;

/// Records a restore (not a dry run: it changes nothing) in the run history: succeeded
/// with the restored bundle, the safety bundle and notes as details; or failed with the
/// error, its hint and the rollback's outcome. A record that cannot be written is
/// reported as a `Step` and, on success, a note: the restore's outcome stands.
pub(crate) async fn record(
    repo: &Repository,
    run: RunStart,
    operation: &str,
    outcome: &mut Result<SafeRestoreReport>,
    progress: &SharedProgress,
) {
    let record = match outcome {
        Ok(report) if report.dry_run => return,
        Ok(report) => {
            let bundle = repo
                .info(&report.bundle_id)
                .await
                .ok()
                .map(|e| BundleInfo::from_entry(&e, 1, Timestamp::now()));
            let services: Vec<String> = report.services.iter().map(|s| s.service.clone()).collect();
            let details = serde_json::to_value(&*report).unwrap_or_default();
            run.services(services)
                .succeeded(bundle.as_ref())
                .with_detail("restore", details)
        }
        Err(error) => {
            let mut record = run.failed(error);
            if let Some(failure) = RestoreFailure::of(error) {
                record = record.with_detail(
                    "rollback",
                    serde_json::to_value(failure).unwrap_or_default(),
                );
                if let Some(service) = &failure.failed_service {
                    record.services.push(service.clone());
                }
            }
            record
        }
    };
    if let Err(error) = repo.record_run(&record).await {
        let note = format!("the run could not be recorded in the history: {error}");
        step(progress.as_ref(), operation, note.clone());
        if let Ok(report) = outcome {
            report.notes.push(note);
        }
    }
}

/// A restore run starting now.
pub(crate) fn start(kind: RunKind, trigger: &str) -> RunStart {
    RunStart::new(kind, trigger)
}
