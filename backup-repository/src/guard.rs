//! [`guard`]: an automatic backup before the host does something destructive (removes
//! a service, applies a new config), which the host must have or explicitly override.
//!
//! ```no_run
//! use backup_core::{RecipeRegistry, Result, WorkspaceHost};
//! use backup_repository::{guard, GuardReason, Repository};
//!
//! /// The host's "remove service" button.
//! async fn remove_service(
//!     repo: &Repository,
//!     host: &dyn WorkspaceHost,
//!     registry: &RecipeRegistry,
//!     name: &str,
//!     operator_accepts_data_loss: bool,
//! ) -> Result<()> {
//!     let services = vec![name.to_string()];
//!     let progress = backup_core::progress::no_progress();
//!     let outcome = guard(repo, host, registry, &services, GuardReason::BeforeRemove, progress).await;
//!     if operator_accepts_data_loss {
//!         let overridden = outcome.override_failure("the operator confirmed removal without a backup");
//!         if let Some(error) = &overridden.error {
//!             eprintln!("removing `{name}` without a backup: {error}");
//!         }
//!     } else {
//!         let backup = outcome.proceed()?; // no backup, no removal
//!         eprintln!("backed up as {} before removing `{name}`", backup.name);
//!     }
//!     host.remove_deployment(name).await
//! }
//! ```

use backup_core::backup::BackupRequest;
use backup_core::bundle::{BundleKind, BundleOptions};
use backup_core::progress::SharedProgress;
use backup_core::{Error, RecipeRegistry, Result, WorkspaceHost};

use crate::history::{RunKind, RunStart};
use crate::index::BundleInfo;
use crate::quiesce::{step, Quiesce};
use crate::repo::Repository;
use crate::safe_restore::finish;

const GUARD: &str = "guard";

/// Why a guard backup is taken; recorded as the bundle's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardReason {
    /// `before-remove`: the host is about to remove services.
    BeforeRemove,
    /// `before-apply`: the host is about to apply a new config.
    BeforeApply,
    /// The caller's own reason.
    Other(String),
}

impl GuardReason {
    /// The reason as recorded in the manifest.
    pub fn as_str(&self) -> &str {
        match self {
            GuardReason::BeforeRemove => "before-remove",
            GuardReason::BeforeApply => "before-apply",
            GuardReason::Other(reason) => reason,
        }
    }
}

/// What [`guard`] did. The host may run its destructive operation only after
/// [`GuardOutcome::proceed`] returned the backup, or after deciding, through
/// [`GuardOutcome::override_failure`], to go on without one: dropping it unused is a
/// compile warning.
#[must_use = "run the destructive operation only after `proceed()` succeeded, or after `override_failure(why)`"]
#[derive(Debug)]
pub struct GuardOutcome {
    result: Result<BundleInfo>,
}

impl GuardOutcome {
    /// The backup, or the reason there is none: the operation must not run on `Err`.
    ///
    /// # Errors
    ///
    /// Why the guard backup could not be taken (nothing is listed then), with a hint on
    /// how to override.
    pub fn proceed(self) -> Result<BundleInfo> {
        self.result.map_err(|error| {
            let hint = match error.hint() {
                Some(hint) => format!("{hint}; to run the operation without a backup, call GuardOutcome::override_failure with a reason"),
                None => "to run the operation without a backup, call GuardOutcome::override_failure with a reason".into(),
            };
            error.with_hint(hint)
        })
    }

    /// Goes on whatever happened: the backup when there is one, else `None`, after the
    /// caller said why it runs the operation without one (log `why` with the error).
    pub fn override_failure(self, why: &str) -> Overridden {
        match self.result {
            Ok(info) => Overridden {
                backup: Some(info),
                error: None,
                why: why.to_string(),
            },
            Err(error) => Overridden {
                backup: None,
                error: Some(error),
                why: why.to_string(),
            },
        }
    }

    /// Whether the backup was taken.
    pub fn is_backed_up(&self) -> bool {
        self.result.is_ok()
    }
}

/// A guard the caller chose to go past ([`GuardOutcome::override_failure`]).
#[derive(Debug)]
pub struct Overridden {
    /// The backup, when it was taken after all.
    pub backup: Option<BundleInfo>,
    /// Why it was not, when it was not.
    pub error: Option<Error>,
    /// The caller's reason for going on.
    pub why: String,
}

/// Backs up `services` into `repo` (kind `automatic`, reason from `reason`) before the
/// host performs a destructive operation on them. Services whose exporter needs them
/// stopped are stopped and started again; those that were not running stay stopped.
///
/// Progress: a `Step` when the backup is taken (naming it) or refused, the backup's
/// export events, then `Finished` / `OperationFailed` (`"guard"`).
///
/// Guard bundles fall under retention's `automatic` group. The run is recorded in the
/// history (kind `guard`, trigger the reason), succeeded with the bundle or failed with
/// the error.
pub async fn guard(
    repo: &Repository,
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    services: &[String],
    reason: GuardReason,
    progress: SharedProgress,
) -> GuardOutcome {
    let result = async {
        let deployments = host.list_deployments().await?;
        let chosen: Vec<_> = deployments
            .iter()
            .filter(|d| services.contains(&d.name))
            .map(|d| (d, None))
            .collect();
        // Running services are stopped by the backup itself; idle ones stay stopped.
        let quiesce = Quiesce::plan(host, registry, chosen)?;
        let request = BackupRequest {
            bundle: BundleOptions {
                kind: BundleKind::Automatic,
                reason: Some(reason.as_str().to_string()),
                ..BundleOptions::default()
            },
            services: Some(services.to_vec()),
            already_stopped: quiesce.idle.clone(),
            ..BackupRequest::default()
        };
        let run = RunStart::new(RunKind::Guard, reason.as_str()).services(services.iter().cloned());
        let recorded = repo
            .backup_recorded(host, registry, &request, run, progress.clone())
            .await;
        if let Err(error) = &recorded.recorded {
            step(
                progress.as_ref(),
                GUARD,
                format!("the guard run could not be recorded in the history: {error}"),
            );
        }
        recorded
            .into_result()
            .map_err(|e| e.context(format!("guard backup {}", reason.as_str())))
    }
    .await;
    match &result {
        Ok(info) => step(
            progress.as_ref(),
            GUARD,
            format!("guard backup `{}` taken", info.name),
        ),
        Err(error) => step(
            progress.as_ref(),
            GUARD,
            format!("guard backup failed, the operation must not run unless overridden: {error}"),
        ),
    }
    GuardOutcome {
        result: finish(&progress, GUARD, result),
    }
}
