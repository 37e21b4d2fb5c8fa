//! A backup recorded in the run history: the one call schedules and guards make.

use backup_core::backup::BackupRequest;
use backup_core::progress::SharedProgress;
use backup_core::{Error, RecipeRegistry, WorkspaceHost};
use jiff::Timestamp;

use super::record::{RunRecord, RunStart};
use super::warnings::exporter_warnings;
use crate::index::BundleInfo;
use crate::repo::Repository;

/// What [`Repository::backup_recorded`] did.
#[derive(Debug)]
pub struct RecordedBackup {
    /// The run as recorded (or as it would have been, when recording failed).
    pub run: RunRecord,
    /// The backup's outcome: the published bundle, or why there is none.
    pub result: Result<BundleInfo, Error>,
    /// The record's object key, or why it could not be written (the backup's outcome
    /// stands either way).
    pub recorded: Result<String, Error>,
}

impl RecordedBackup {
    /// The backup's outcome.
    ///
    /// # Errors
    ///
    /// The backup's error.
    pub fn into_result(self) -> Result<BundleInfo, Error> {
        self.result
    }
}

impl Repository {
    /// [`create_backup`](Self::create_backup), then records the run in the history
    /// (succeeded with the bundle, its size and the exporters' warnings; or failed with
    /// the error and its hint, and no bundle: a failed backup never leaves one).
    ///
    /// `run` says what kind of run this is; its services default to `request.services`,
    /// else to the services of the published bundle (or, when the backup failed, the
    /// workspace's services as the host lists them).
    pub async fn backup_recorded(
        &self,
        host: &dyn WorkspaceHost,
        registry: &RecipeRegistry,
        request: &BackupRequest,
        run: RunStart,
        progress: SharedProgress,
    ) -> RecordedBackup {
        let run = if run.record().services.is_empty() {
            let services = match &request.services {
                Some(services) => services.clone(),
                // The whole workspace: its services as the host lists them (the bundle's,
                // once published, replace them).
                None => host
                    .list_deployments()
                    .await
                    .map(|d| d.into_iter().map(|d| d.name).collect())
                    .unwrap_or_default(),
            };
            run.services(services)
        } else {
            run
        };
        let outcome = self
            .create_backup_entry(host, registry, request, progress)
            .await;
        let (record, result) = match outcome {
            Ok(entry) => {
                let info = BundleInfo::from_entry(&entry, 1, Timestamp::now());
                let mut record = run.succeeded(Some(&info));
                if request.services.is_none() {
                    record.services = info.services.clone();
                }
                let record = record.with_warnings(exporter_warnings(&entry.manifest));
                (record, Ok(info))
            }
            Err(e) => (run.failed(&e), Err(e)),
        };
        let recorded = self.record_run(&record).await;
        RecordedBackup {
            run: record,
            result,
            recorded,
        }
    }
}
