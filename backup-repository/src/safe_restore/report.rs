//! What a safe or emergency restore reports: per service what was (or would be)
//! replaced, bytes, duration and smoke test; and the error of a failed one.

use std::fmt;

use backup_core::HeldData;
use serde::Serialize;

/// What [`super::safe_restore`] or [`crate::emergency_restore`] did, or would do in a
/// dry run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SafeRestoreReport {
    /// Id of the restored bundle.
    pub bundle_id: String,
    /// Name of the restored bundle.
    pub bundle_name: String,
    /// Whether nothing was changed (a dry run stops after the checks).
    pub dry_run: bool,
    /// The services, stage by stage, in the order they were (or would be) restored.
    pub stages: Vec<Vec<String>>,
    /// Id of the safety bundle of what was replaced (kind `safety`, reason
    /// `before-restore`, locked); `None` in a dry run or when none could be taken.
    pub safety_bundle: Option<String>,
    /// One report per service, in plan order.
    pub services: Vec<ServiceReport>,
    /// Newer bundles an emergency restore passed over because they do not verify.
    pub skipped_bundles: Vec<SkippedBundle>,
    /// Things the caller should know that are not failures (no safety backup because the
    /// current state cannot be read, a service that could not be described).
    pub notes: Vec<String>,
    /// Services stopped for the restore and started again.
    pub restarted: Vec<String>,
}

/// One service of a [`SafeRestoreReport`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceReport {
    /// Service name.
    pub service: String,
    /// What the service held before the restore (what is replaced), as its importer
    /// describes it; `None` when the importer cannot tell or the service cannot be read.
    pub replaced: Option<Vec<HeldData>>,
    /// The bundle's artifacts of this service, with their sizes.
    pub artifacts: Vec<ArtifactSize>,
    /// Bytes imported (uncompressed); 0 in a dry run.
    pub bytes: u64,
    /// Time spent importing and smoke-testing, in milliseconds; 0 in a dry run.
    pub duration_ms: u64,
    /// The smoke test's outcome.
    pub smoke_test: SmokeTest,
}

/// One artifact of a bundle, as a dry run shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactSize {
    /// Artifact name (a database's dump, `tree.tar`).
    pub name: String,
    /// Artifact format.
    pub format: String,
    /// Bytes stored in the bundle.
    pub size: u64,
    /// Bytes once decompressed: what the service receives.
    pub uncompressed_size: u64,
}

/// Outcome of a service's smoke test in a restore that succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SmokeTest {
    /// Every artifact's smoke test passed.
    Passed,
    /// Smoke tests were turned off.
    Skipped,
    /// Nothing was imported (a dry run).
    NotRun,
}

/// A bundle an emergency restore did not use because it failed verification.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedBundle {
    /// Bundle id.
    pub id: String,
    /// Bundle name.
    pub name: String,
    /// Why it failed verification.
    pub error: String,
}

/// The details of a failed safe restore, attached as the source of its error (kind
/// [`backup_core::ErrorKind::RestoreRolledBack`] or
/// [`backup_core::ErrorKind::RollbackFailed`]); get it with [`RestoreFailure::of`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreFailure {
    /// The bundle being restored.
    pub bundle: String,
    /// The service whose import or smoke test failed, when it was one service.
    pub failed_service: Option<String>,
    /// The restore's error, in one line.
    pub restore_error: String,
    /// Id of the safety bundle (kept and locked), when one was taken.
    pub safety_bundle: Option<String>,
    /// Services put back from the safety bundle, in plan order.
    pub rolled_back: Vec<String>,
    /// Services that could not be put back, with why: they may hold part of the new data.
    pub not_rolled_back: Vec<(String, String)>,
    /// Services stopped for the restore that could not be started again, with why.
    pub not_started: Vec<(String, String)>,
}

impl RestoreFailure {
    /// The details of a failed safe restore's error, if `error` is one.
    pub fn of(error: &backup_core::Error) -> Option<&RestoreFailure> {
        std::error::Error::source(error)?.downcast_ref::<RestoreFailure>()
    }

    /// Whether every touched service holds its old data again.
    pub fn rolled_back_fully(&self) -> bool {
        self.safety_bundle.is_some() && self.not_rolled_back.is_empty()
    }
}

impl fmt::Display for RestoreFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "restore of bundle `{}` failed: {}",
            self.bundle, self.restore_error
        )?;
        if !self.rolled_back.is_empty() {
            write!(f, "; rolled back: {}", self.rolled_back.join(", "))?;
        }
        for (service, why) in &self.not_rolled_back {
            write!(f, "; `{service}` not rolled back: {why}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RestoreFailure {}
