//! `check` (orphans) and `prune` (orphans past a grace period, and retention).

use std::collections::HashSet;
use std::time::Duration;

use backup_core::Result;
use futures::TryStreamExt;
use jiff::Timestamp;
use object_store::ObjectStoreExt;
use serde::Serialize;

use crate::error::store_error;
use crate::index::{created_of, IndexEntry};
use crate::locks::LockKind;
use crate::repo::refuse_locked;
use crate::repo::{Repository, BUNDLES, BUNDLE_SUFFIX};
use crate::retention::{plan, RetentionItem, RetentionPlan, RetentionPolicy};
use crate::storage::Storage;

/// What an orphan is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrphanKind {
    /// A bundle object no index entry names (a write that never published).
    BundleWithoutIndex,
    /// An index entry whose bundle object is missing.
    IndexWithoutBundle,
    /// An abandoned partial (multipart) upload left by a killed writer (local storage).
    PartialUpload,
    /// An incomplete S3 multipart upload under the repository's `bundles/` (a writer
    /// killed mid-upload); its parts stay on the server until aborted.
    IncompleteMultipartUpload,
}

/// Something in the repository that is not a listed, complete bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Orphan {
    /// What it is.
    pub kind: OrphanKind,
    /// Its object key (or, for a partial upload, its file path).
    pub path: String,
    /// When it was last written (for a multipart upload: when it was started).
    pub modified: Timestamp,
    /// The server's upload id, for an incomplete multipart upload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
}

/// What [`Repository::check`] found.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    /// Listed bundles.
    pub bundles: usize,
    /// Orphans.
    pub orphans: Vec<Orphan>,
    /// What could not be checked, and why (for example a server that cannot list
    /// incomplete multipart uploads).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What [`Repository::prune`] does.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Orphans younger than this are left alone (a write may still be under way).
    pub grace: Duration,
    /// Report only; change nothing (the same decisions are reported).
    pub dry_run: bool,
    /// Retention policy applied to the listed bundles (`None`: only orphans are pruned).
    pub policy: Option<RetentionPolicy>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            grace: Duration::from_secs(24 * 3600),
            dry_run: false,
            policy: None,
        }
    }
}

/// What [`Repository::prune`] removed (or would remove, on a dry run).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    /// Orphans removed.
    pub removed_orphans: Vec<Orphan>,
    /// Orphans kept because they are younger than the grace period.
    pub kept_orphans: Vec<Orphan>,
    /// The retention decisions, when a policy was given.
    pub plan: Option<RetentionPlan>,
    /// Names of the bundles removed by retention (or that would be, on a dry run).
    pub removed_bundles: Vec<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

impl Repository {
    /// Finds orphans: bundle objects no index entry names, index entries without their
    /// bundle, abandoned partial uploads (local storage) and incomplete multipart uploads
    /// (S3; one `ListMultipartUploads` call per 1,000). Reads no bundle data.
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub async fn check(&self) -> Result<CheckReport> {
        let entries = self.entries().await?;
        let bundles: Vec<_> = self
            .store
            .list(Some(&self.key(BUNDLES)))
            .try_collect()
            .await
            .map_err(|e| store_error("listing bundles", e))?;
        let named: HashSet<String> = entries
            .iter()
            .map(|e| self.bundle_path(&e.name).to_string())
            .collect();
        let present: HashSet<String> = bundles.iter().map(|m| m.location.to_string()).collect();
        let mut orphans = Vec::new();
        for meta in &bundles {
            if !named.contains(meta.location.as_ref()) {
                orphans.push(Orphan {
                    kind: OrphanKind::BundleWithoutIndex,
                    path: meta.location.to_string(),
                    modified: Timestamp::from_second(meta.last_modified.timestamp())
                        .unwrap_or(Timestamp::UNIX_EPOCH),
                    upload_id: None,
                });
            }
        }
        for entry in &entries {
            if !present.contains(self.bundle_path(&entry.name).as_ref()) {
                orphans.push(Orphan {
                    kind: OrphanKind::IndexWithoutBundle,
                    path: self.index_path(&entry.manifest.id).to_string(),
                    modified: crate::index::created_of(&entry.manifest),
                    upload_id: None,
                });
            }
        }
        orphans.extend(self.partial_uploads()?);
        let mut warnings = Vec::new();
        match self.incomplete_multipart_uploads().await? {
            Some(uploads) => orphans.extend(uploads),
            None => warnings.push(format!(
                "{} cannot list incomplete multipart uploads (ListMultipartUploads is not implemented); add a bucket lifecycle rule that aborts them",
                self.storage.describe()
            )),
        }
        Ok(CheckReport {
            bundles: entries.len(),
            orphans,
            warnings,
        })
    }

    /// Incomplete multipart uploads under `bundles/` on S3 storage (none elsewhere);
    /// `None` when the server cannot list them.
    async fn incomplete_multipart_uploads(&self) -> Result<Option<Vec<Orphan>>> {
        let Storage::S3(options) = &self.storage else {
            return Ok(Some(Vec::new()));
        };
        let prefix = format!("{}/", self.key(BUNDLES));
        let Some(uploads) = crate::multipart::list(options, &prefix).await? else {
            return Ok(None);
        };
        Ok(Some(
            uploads
                .into_iter()
                .map(|upload| Orphan {
                    kind: OrphanKind::IncompleteMultipartUpload,
                    path: upload.key,
                    modified: upload.initiated,
                    upload_id: Some(upload.upload_id),
                })
                .collect(),
        ))
    }

    /// Partial uploads on local storage: `bundles/<name>.backup.zip#<n>` staging files,
    /// which the object store never lists.
    fn partial_uploads(&self) -> Result<Vec<Orphan>> {
        let Storage::Local(root) = &self.storage else {
            return Ok(Vec::new());
        };
        let dir = root.join(BUNDLES);
        let Ok(read) = std::fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in read.flatten() {
            let name = item.file_name().to_string_lossy().to_string();
            let Some((base, _)) = name.split_once('#') else {
                continue;
            };
            if !base.ends_with(BUNDLE_SUFFIX) {
                continue;
            }
            let modified = item
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| Timestamp::try_from(t).ok())
                .unwrap_or(Timestamp::UNIX_EPOCH);
            out.push(Orphan {
                kind: OrphanKind::PartialUpload,
                path: item.path().display().to_string(),
                modified,
                upload_id: None,
            });
        }
        Ok(out)
    }

    /// Applies the retention policy (if any) and removes orphans older than
    /// `options.grace`, under an exclusive lock (a bundle being written holds a shared
    /// lock, so it is never taken for an orphan while its writer lives). A locked bundle is
    /// never removed. With `dry_run`, nothing changes and the same decisions are reported.
    ///
    /// # Errors
    ///
    /// Lock and storage errors.
    pub async fn prune(&self, options: &PruneOptions) -> Result<PruneReport> {
        let guard = self.lock(LockKind::Exclusive, "prune").await?;
        let result = self.prune_locked(options).await;
        guard.release().await;
        result
    }

    async fn prune_locked(&self, options: &PruneOptions) -> Result<PruneReport> {
        let now = Timestamp::now();
        let grace = jiff::SignedDuration::try_from(options.grace).unwrap_or_default();
        let mut report = PruneReport {
            dry_run: options.dry_run,
            ..PruneReport::default()
        };
        for orphan in self.check().await?.orphans {
            if now.duration_since(orphan.modified) < grace {
                report.kept_orphans.push(orphan);
                continue;
            }
            if !options.dry_run {
                match orphan.kind {
                    OrphanKind::IncompleteMultipartUpload => {
                        if let (Storage::S3(s3), Some(upload_id)) =
                            (&self.storage, orphan.upload_id.clone())
                        {
                            let upload = crate::multipart::IncompleteUpload {
                                key: orphan.path.clone(),
                                upload_id,
                                initiated: orphan.modified,
                            };
                            crate::multipart::abort(s3, &upload).await?;
                        }
                    }
                    OrphanKind::PartialUpload => {
                        if let Err(e) = std::fs::remove_file(&orphan.path) {
                            if e.kind() != std::io::ErrorKind::NotFound {
                                return Err(backup_core::Error::io(
                                    format!("removing {}", orphan.path),
                                    e,
                                ));
                            }
                        }
                    }
                    _ => {
                        let path = object_store::path::Path::from(orphan.path.as_str());
                        match self.store.delete(&path).await {
                            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                            Err(e) => return Err(store_error(format!("removing {path}"), e)),
                        }
                    }
                }
            }
            report.removed_orphans.push(orphan);
        }
        if let Some(policy) = &options.policy {
            let entries = self.entries().await?;
            self.retain(&entries, policy, now, options.dry_run, &mut report)
                .await?;
        }
        Ok(report)
    }

    /// Applies `policy` to `entries` (the bundles it judges, newest first): removes what
    /// it does not keep (unless `dry_run`), recording the plan and names in `report`.
    /// The caller holds an exclusive lock.
    pub(crate) async fn retain(
        &self,
        entries: &[IndexEntry],
        policy: &RetentionPolicy,
        now: Timestamp,
        dry_run: bool,
        report: &mut PruneReport,
    ) -> Result<()> {
        let items: Vec<RetentionItem> = entries
            .iter()
            .map(|e| RetentionItem {
                id: e.manifest.id.clone(),
                created: created_of(&e.manifest),
                label: e.effective_label().map(str::to_string),
                kind: e.manifest.kind,
                services: e.manifest.includes.services.clone(),
                locked: e.lock.as_ref().is_some_and(|l| l.holds_at(now)),
            })
            .collect();
        let decided = plan(&items, policy, now)?;
        for id in decided.to_remove() {
            let Some(entry) = entries.iter().find(|e| e.manifest.id == id) else {
                continue;
            };
            refuse_locked(entry, now, "pruned")?;
            if !dry_run {
                self.remove(entry).await?;
            }
            report.removed_bundles.push(entry.name.clone());
        }
        report.plan = Some(decided);
        Ok(())
    }
}
