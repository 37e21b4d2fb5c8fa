//! Importing the data of a restore stage by stage, and one service's data.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::StreamExt;

use super::{EntriesByService, RestoreOptions};
use crate::bundle::{BundleReader, ManifestEntry};
use crate::data::{DataImporter, ImportMode, ServiceTarget};
use crate::plan::RestorePlan;
use crate::progress::{ProgressEvent, ProgressSink, SharedProgress};
use crate::{Error, Result};

/// What [`import_stages`] did: the services whose data is in, and the first error.
pub(super) struct StagesOutcome {
    /// Services whose data was imported (and smoke-tested), in plan order.
    pub(super) done: Vec<String>,
    /// The first failure; no later stage was started after it.
    pub(super) result: Result<()>,
}

/// Imports every service's data stage by stage, services of one stage concurrently.
///
/// After a failure no new service starts, but the services of the stage already running
/// finish (cancelling an import halfway would leave its data in an unknown state), so
/// `done` lists exactly the services whose data was replaced.
#[allow(clippy::too_many_arguments)]
pub(super) async fn import_stages(
    reader: &BundleReader,
    plan: &RestorePlan,
    targets: &BTreeMap<String, ServiceTarget>,
    importers: &BTreeMap<String, Arc<dyn DataImporter>>,
    entries: &EntriesByService,
    mode: ImportMode,
    options: &RestoreOptions,
    progress: &SharedProgress,
) -> StagesOutcome {
    let concurrency = options.import.max_concurrency.max(1);
    let mut done = Vec::new();
    for stage in &plan.stages {
        let failed = AtomicBool::new(false);
        let failed = &failed;
        let jobs = stage.services.iter().filter_map(|service| {
            let target = targets.get(service)?;
            let importer = importers.get(service)?;
            let service_entries = entries.get(service)?;
            Some(async move {
                if failed.load(Ordering::SeqCst) {
                    return (service, None);
                }
                let result = restore_service_data(
                    reader,
                    target,
                    importer.as_ref(),
                    service_entries,
                    mode,
                    options.smoke_test,
                    progress.as_ref(),
                )
                .await;
                if result.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                (service, Some(result))
            })
        });
        let mut results: Vec<(&String, Option<Result<()>>)> = futures::stream::iter(jobs)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        results.sort_by(|a, b| a.0.cmp(b.0));
        let mut first_error = None;
        for (service, result) in results {
            match result {
                Some(Ok(())) => done.push(service.clone()),
                Some(Err(error)) => {
                    first_error.get_or_insert(error);
                }
                None => {}
            }
        }
        if let Some(error) = first_error {
            return StagesOutcome {
                done,
                result: Err(error),
            };
        }
    }
    StagesOutcome {
        done,
        result: Ok(()),
    }
}

/// Imports one service's entries from a verified bundle, then smoke-tests each artifact.
///
/// Each entry is streamed from the bundle and checked against its sha256 again on the
/// way, so a file changed after verification still fails the import.
///
/// # Errors
///
/// The importer's error, with the service and artifact named.
pub async fn restore_service_data(
    reader: &BundleReader,
    target: &ServiceTarget,
    importer: &dyn DataImporter,
    entries: &[ManifestEntry],
    mode: ImportMode,
    smoke_test: bool,
    progress: &dyn ProgressSink,
) -> Result<()> {
    let service = &target.name;
    progress.event(&ProgressEvent::ServiceStarted {
        service: service.clone(),
        operation: "import".into(),
    });
    let outcome = async {
        for entry in entries {
            let stream = reader.open_entry(entry)?;
            importer
                .import(target, &entry.artifact, stream, mode)
                .await
                .map_err(|e| {
                    e.context(format!(
                        "restoring `{}` of service `{service}`",
                        entry.artifact.name
                    ))
                })?;
            if smoke_test {
                importer
                    .smoke_test(target, &entry.artifact)
                    .await
                    .map_err(|e| e.context(format!("smoke test of service `{service}`")))?;
            }
        }
        Ok::<(), Error>(())
    }
    .await;
    match &outcome {
        Ok(()) => progress.event(&ProgressEvent::ServiceFinished {
            service: service.clone(),
            operation: "import".into(),
        }),
        Err(error) => progress.event(&ProgressEvent::Failed {
            service: service.clone(),
            error: error.to_string(),
        }),
    }
    outcome
}
