//! Retention over a subset of the repository's bundles (a schedule's own).

use backup_core::Result;
use jiff::Timestamp;

use crate::index::{BundleFilter, BundleInfo};
use crate::locks::LockKind;
use crate::maintain::PruneReport;
use crate::repo::Repository;
use crate::retention::RetentionPolicy;

impl Repository {
    /// Applies `policy` to the bundles `scope` selects, and only to them (a schedule's
    /// bundles: kind `automatic` and its label), under an exclusive lock. Locked bundles
    /// are never removed; orphans are left to [`prune`](Self::prune). Bundle times are
    /// judged against the system clock, the clock that dated them.
    ///
    /// # Errors
    ///
    /// Lock and storage errors; the policy's (no rules, a bad time zone).
    pub async fn apply_retention(
        &self,
        policy: &RetentionPolicy,
        scope: &BundleFilter,
        dry_run: bool,
    ) -> Result<PruneReport> {
        let guard = self.lock(LockKind::Exclusive, "retention").await?;
        let result = async {
            let now = Timestamp::now();
            let entries: Vec<_> = self
                .entries()
                .await?
                .into_iter()
                .filter(|e| scope.matches(&BundleInfo::from_entry(e, 0, now)))
                .collect();
            let mut report = PruneReport {
                dry_run,
                ..PruneReport::default()
            };
            self.retain(&entries, policy, now, dry_run, &mut report)
                .await?;
            Ok(report)
        }
        .await;
        guard.release().await;
        result
    }
}
