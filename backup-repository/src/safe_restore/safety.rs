//! The safety backup: exactly what a restore will replace, into the same repository,
//! kind `safety`, reason `before-restore`, locked for a while.

use std::time::Duration;

use backup_core::backup::BackupRequest;
use backup_core::bundle::{BundleKind, BundleOptions};
use backup_core::progress::SharedProgress;
use backup_core::{Error, ErrorKind, RecipeRegistry, Result, WorkspaceHost};
use jiff::{SignedDuration, Timestamp};

use crate::index::BundleInfo;
use crate::repo::Repository;

/// The reason recorded on a safety bundle.
pub const BEFORE_RESTORE: &str = "before-restore";

/// Backs up `services` (whose data a restore of `bundle_name` will replace) and locks the
/// bundle until now + `lock_for`. Services in `already_stopped` are not stopped or
/// started by the backup.
///
/// # Errors
///
/// The backup's error (nothing is listed then), or the lock's (the bundle exists but is
/// not locked: the error says so).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn take(
    repo: &Repository,
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    services: &[String],
    already_stopped: Vec<String>,
    bundle_name: &str,
    lock_for: Duration,
    progress: &SharedProgress,
) -> Result<BundleInfo> {
    let request = BackupRequest {
        bundle: BundleOptions {
            kind: BundleKind::Safety,
            reason: Some(BEFORE_RESTORE.into()),
            purpose: Some(format!("the data replaced by restoring {bundle_name}")),
            ..BundleOptions::default()
        },
        services: Some(services.to_vec()),
        already_stopped,
        ..BackupRequest::default()
    };
    let info = repo
        .create_backup(host, registry, &request, progress.clone())
        .await
        .map_err(|e| e.context("taking the safety backup"))?;
    let until = lock_until(lock_for)?;
    repo.lock_bundle(&info.id, Some(until)).await.map_err(|e| {
        e.context(format!(
            "locking the safety bundle `{}` (it exists, unlocked)",
            info.name
        ))
    })?;
    Ok(info)
}

fn lock_until(lock_for: Duration) -> Result<Timestamp> {
    SignedDuration::try_from(lock_for)
        .ok()
        .and_then(|d| Timestamp::now().checked_add(d).ok())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("a safety lock of {lock_for:?} is out of range"),
            )
        })
}
