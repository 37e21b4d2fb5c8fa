//! Index entries: what listing reads, so it never touches bundle data.

use backup_core::bundle::BundleKind;
use backup_core::Manifest;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A lock on one bundle: it cannot be deleted or pruned while locked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleLock {
    /// Locked until this time (RFC 3339); forever when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
}

impl BundleLock {
    /// Whether the lock holds at `now`.
    pub fn holds_at(&self, now: Timestamp) -> bool {
        self.until.is_none_or(|until| now < until)
    }
}

/// `index/<id>.json`: one published bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    /// The bundle's name (its object is `bundles/<name>.backup.zip`).
    pub name: String,
    /// The bundle object's size in bytes.
    pub size: u64,
    /// The label set after the fact; when present it wins over the manifest's label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A lock on the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<BundleLock>,
    /// A copy of the bundle's manifest (immutable).
    pub manifest: Manifest,
}

impl IndexEntry {
    /// The label shown: the index's, else the manifest's.
    pub fn effective_label(&self) -> Option<&str> {
        self.label.as_deref().or(self.manifest.label.as_deref())
    }
}

/// One bundle as listed, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleInfo {
    /// 1 for the newest bundle, 2 for the next…
    pub index: usize,
    /// Bundle id (from its manifest).
    pub id: String,
    /// Bundle name.
    pub name: String,
    /// Label (the index's label wins over the manifest's).
    pub label: Option<String>,
    /// Manual, automatic or safety.
    pub kind: BundleKind,
    /// Why it was taken.
    pub reason: Option<String>,
    /// When it was taken.
    pub created: Timestamp,
    /// Bundle size in bytes.
    pub size: u64,
    /// Purpose.
    pub purpose: Option<String>,
    /// Services whose data it holds.
    pub services: Vec<String>,
    /// Younger than 24 hours.
    pub recent: bool,
    /// The bundle's lock, if any (expired locks included).
    pub lock: Option<BundleLock>,
    /// Whether the lock holds now.
    pub locked: bool,
}

impl BundleInfo {
    pub(crate) fn from_entry(entry: &IndexEntry, index: usize, now: Timestamp) -> Self {
        let created = created_of(&entry.manifest);
        BundleInfo {
            index,
            id: entry.manifest.id.clone(),
            name: entry.name.clone(),
            label: entry.effective_label().map(str::to_string),
            kind: entry.manifest.kind,
            reason: entry.manifest.reason.clone(),
            created,
            size: entry.size,
            purpose: entry.manifest.purpose.clone(),
            services: entry.manifest.includes.services.clone(),
            recent: now.duration_since(created) < jiff::SignedDuration::from_hours(24),
            lock: entry.lock.clone(),
            locked: entry.lock.as_ref().is_some_and(|l| l.holds_at(now)),
        }
    }
}

/// When a manifest says its bundle was taken (the epoch when unreadable).
pub(crate) fn created_of(manifest: &Manifest) -> Timestamp {
    manifest
        .created_at
        .parse::<Timestamp>()
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Which bundles to list; every field set must match.
#[derive(Debug, Clone, Default)]
pub struct BundleFilter {
    /// Holds data of this service.
    pub service: Option<String>,
    /// Of this kind.
    pub kind: Option<BundleKind>,
    /// With exactly this label.
    pub label: Option<String>,
}

impl BundleFilter {
    pub(crate) fn matches(&self, info: &BundleInfo) -> bool {
        self.service
            .as_ref()
            .is_none_or(|s| info.services.contains(s))
            && self.kind.is_none_or(|k| info.kind == k)
            && self
                .label
                .as_ref()
                .is_none_or(|l| info.label.as_deref() == Some(l.as_str()))
    }
}
