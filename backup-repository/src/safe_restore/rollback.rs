//! Importing a service's data (the restore, and the rollback from the safety bundle), and
//! the error of a failed restore with both outcomes.

use std::time::Instant;

use backup_core::bundle::ManifestEntry;
use backup_core::progress::{ProgressEvent, ProgressSink};
use backup_core::{BundleReader, Error, ErrorKind, Result};

use super::dry_run::{Prepared, FORCE};
use super::report::{RestoreFailure, SmokeTest};
use super::{quoted_list, select};
use crate::repo::Repository;

/// What importing one service did.
pub(crate) struct Imported {
    pub(crate) bytes: u64,
    pub(crate) duration_ms: u64,
    pub(crate) smoke_test: SmokeTest,
}

/// Imports `entries` from `reader` into the prepared service with force, each entry
/// re-checked against its sha256 as it streams, then smoke-tests each artifact.
///
/// # Errors
///
/// The importer's or the smoke test's error, naming the service and artifact.
pub(crate) async fn import(
    reader: &BundleReader,
    service: &Prepared,
    entries: &[ManifestEntry],
    smoke_test: bool,
    operation: &str,
    progress: &dyn ProgressSink,
) -> Result<Imported> {
    let name = service.name();
    progress.event(&ProgressEvent::ServiceStarted {
        service: name.to_string(),
        operation: operation.to_string(),
    });
    let started = Instant::now();
    let mut bytes = 0;
    let outcome = async {
        for entry in entries {
            let stream = reader.open_entry(entry)?;
            service
                .importer
                .import(&service.target, &entry.artifact, stream, FORCE)
                .await
                .map_err(|e| {
                    e.context(format!(
                        "restoring `{}` of service `{name}`",
                        entry.artifact.name
                    ))
                })?;
            bytes += entry.uncompressed_size;
        }
        if smoke_test {
            for entry in entries {
                service
                    .importer
                    .smoke_test(&service.target, &entry.artifact)
                    .await
                    .map_err(|e| e.context(format!("smoke test of service `{name}`")))?;
            }
        }
        Ok::<(), Error>(())
    }
    .await;
    match outcome {
        Ok(()) => {
            progress.event(&ProgressEvent::ServiceFinished {
                service: name.to_string(),
                operation: operation.to_string(),
            });
            Ok(Imported {
                bytes,
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                smoke_test: if smoke_test {
                    SmokeTest::Passed
                } else {
                    SmokeTest::Skipped
                },
            })
        }
        Err(error) => {
            progress.event(&ProgressEvent::Failed {
                service: name.to_string(),
                error: error.to_string(),
            });
            Err(error)
        }
    }
}

/// Puts the safety bundle's data back into `touched` (in plan order); fills
/// `failure.rolled_back` and `failure.not_rolled_back`.
pub(crate) async fn roll_back(
    repo: &Repository,
    safety: Option<&str>,
    touched: &[&Prepared],
    failure: &mut RestoreFailure,
    progress: &dyn ProgressSink,
) {
    progress.event(&ProgressEvent::RollingBack {
        reason: failure.restore_error.clone(),
    });
    let Some(safety) = safety else {
        for service in touched {
            failure.not_rolled_back.push((
                service.name().to_string(),
                "no safety backup was taken".into(),
            ));
        }
        return;
    };
    let reader = match open_safety(repo, safety, progress).await {
        Ok(reader) => reader,
        Err(error) => {
            for service in touched {
                failure.not_rolled_back.push((
                    service.name().to_string(),
                    format!("the safety bundle cannot be read: {error}"),
                ));
            }
            return;
        }
    };
    for service in touched {
        let name = service.name().to_string();
        let entries: Vec<ManifestEntry> = reader
            .manifest()
            .entries
            .iter()
            .filter(|e| e.service == name)
            .cloned()
            .collect();
        if entries.is_empty() {
            failure
                .not_rolled_back
                .push((name, "the safety bundle holds no data of it".into()));
            continue;
        }
        match import(&reader, service, &entries, true, "rollback", progress).await {
            Ok(_) => failure.rolled_back.push(name),
            Err(error) => failure.not_rolled_back.push((name, error.to_string())),
        }
    }
}

async fn open_safety(
    repo: &Repository,
    safety: &str,
    progress: &dyn ProgressSink,
) -> Result<BundleReader> {
    let entry = repo.info(safety).await?;
    select::verified_reader(repo, &entry, progress).await
}

/// The error of a failed restore: [`ErrorKind::RestoreRolledBack`] when every touched
/// service holds its old data again (and no service was left stopped), else
/// [`ErrorKind::RollbackFailed`] with what is left where and the manual steps.
pub(crate) fn failure_error(failure: RestoreFailure, safety_name: Option<&str>) -> Error {
    let safety_id = failure.safety_bundle.clone().unwrap_or_default();
    let bundle_ref = safety_name.unwrap_or(&safety_id);
    let error = if failure.rolled_back_fully() {
        let mut message = format!(
            "restore of bundle `{}` failed and was rolled back from safety bundle {safety_id}: {}",
            failure.bundle, failure.restore_error
        );
        if !failure.rolled_back.is_empty() {
            message.push_str(&format!(
                " (put back: {})",
                quoted_list(failure.rolled_back.iter().map(String::as_str))
            ));
        }
        let mut error = Error::new(ErrorKind::RestoreRolledBack, message).with_hint(format!(
            "the services hold what they held before; fix the cause and restore again (the safety bundle `{bundle_ref}` is kept, locked)"
        ));
        if !failure.not_started.is_empty() {
            error = error.with_hint(format!(
                "data is rolled back, but start {} by hand: {}",
                quoted_list(failure.not_started.iter().map(|(s, _)| s.as_str())),
                describe(&failure.not_started)
            ));
        }
        error
    } else {
        let left: Vec<String> = failure
            .not_rolled_back
            .iter()
            .map(|(s, why)| format!("`{s}` may hold part of bundle `{}` ({why})", failure.bundle))
            .collect();
        let message = format!(
            "restore of bundle `{}` failed: {}; the rollback failed too: {}",
            failure.bundle,
            failure.restore_error,
            left.join("; ")
        );
        let manual = match &failure.safety_bundle {
            Some(_) => format!(
                "restore {} by hand from safety bundle `{bundle_ref}` (safe_restore with that bundle and these services) once the cause is fixed; the safety bundle is kept and locked",
                quoted_list(failure.not_rolled_back.iter().map(|(s, _)| s.as_str()))
            ),
            None => "no safety backup was taken: restore these services from an earlier bundle".to_string(),
        };
        let rolled = if failure.rolled_back.is_empty() {
            String::new()
        } else {
            format!(
                "; {} were rolled back",
                quoted_list(failure.rolled_back.iter().map(String::as_str))
            )
        };
        let stopped = if failure.not_started.is_empty() {
            String::new()
        } else {
            format!("; start by hand: {}", describe(&failure.not_started))
        };
        Error::new(ErrorKind::RollbackFailed, message)
            .with_hint(format!("{manual}{rolled}{stopped}"))
    };
    error.with_source(failure)
}

fn describe(list: &[(String, String)]) -> String {
    list.iter()
        .map(|(s, why)| format!("`{s}` ({why})"))
        .collect::<Vec<_>>()
        .join(", ")
}
