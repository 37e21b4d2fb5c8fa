//! Repository locks: create takes a shared lock, delete and prune an exclusive one.
//!
//! A lock is an object `locks/<uuid>.json` written create-only (never overwriting another
//! process's lock), then the lock directory is listed: if a live conflicting lock exists
//! the new lock is removed again and the operation refused, naming the holder. A held
//! lock is refreshed in the background every [`REFRESH_EVERY`]; a lock not refreshed for
//! [`STALE_AFTER`], or whose process is gone from this same host, is stale and removed by
//! whoever finds it. A live lock is never broken.

use std::sync::Arc;
use std::time::Duration;

use backup_core::{Error, ErrorKind, Result};
use bytes::Bytes;
use futures::TryStreamExt;
use jiff::Timestamp;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::store_error;
use crate::naming::{hostname, process_alive};

/// A lock not refreshed for this long is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(120);
/// How often a held lock is refreshed.
pub const REFRESH_EVERY: Duration = Duration::from_secs(30);

/// How long a lock lives without refresh, and how often a held lock is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockTiming {
    /// A lock not refreshed for this long is stale (whoever finds it removes it).
    pub stale_after: Duration,
    /// How often a held lock is refreshed; must be well under `stale_after`.
    pub refresh_every: Duration,
}

impl Default for LockTiming {
    fn default() -> Self {
        LockTiming {
            stale_after: STALE_AFTER,
            refresh_every: REFRESH_EVERY,
        }
    }
}

/// Shared (create) or exclusive (delete, prune).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    /// Many may hold it at once; excludes an exclusive lock.
    Shared,
    /// Excludes every other lock.
    Exclusive,
}

/// `locks/<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockRecord {
    /// Shared or exclusive.
    pub kind: LockKind,
    /// Host name of the holder.
    pub host: String,
    /// Process id of the holder on that host.
    pub pid: u32,
    /// What the holder does ("create", "delete", "prune", …).
    pub operation: String,
    /// When it was taken.
    pub since: Timestamp,
    /// When it was last refreshed.
    pub refreshed: Timestamp,
}

impl LockRecord {
    /// Whether the lock is stale at `now` (too old, or its process is gone from this host).
    pub fn is_stale(&self, now: Timestamp, this_host: &str, stale_after: Duration) -> bool {
        let age = now.duration_since(self.refreshed);
        let ttl = jiff::SignedDuration::try_from(stale_after).unwrap_or_default();
        age > ttl || (self.host == this_host && !process_alive(self.pid))
    }

    fn conflicts(&self, kind: LockKind) -> bool {
        kind == LockKind::Exclusive || self.kind == LockKind::Exclusive
    }
}

/// A held lock; dropping it stops the refresh and removes the lock object.
#[derive(Debug)]
pub(crate) struct LockGuard {
    store: Arc<dyn ObjectStore>,
    path: Path,
    refresh: Option<JoinHandle<()>>,
    /// Tells the refresh task to stop after any write under way.
    stop: Option<oneshot::Sender<()>>,
}

impl LockGuard {
    /// Stops refreshing and removes the lock. Waits for a refresh under way to finish
    /// first: aborting it could let its write land after the delete and bring the lock
    /// back until it goes stale.
    pub(crate) async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.refresh.take() {
            let _ = task.await;
        }
        let _ = self.store.delete(&self.path).await;
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(task) = self.refresh.take() {
            task.abort();
            let store = Arc::clone(&self.store);
            let path = self.path.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = store.delete(&path).await;
                });
            }
        }
    }
}

fn encode(record: &LockRecord) -> Result<PutPayload> {
    serde_json::to_vec_pretty(record)
        .map(|v| PutPayload::from(Bytes::from(v)))
        .map_err(|e| Error::new(ErrorKind::Io, format!("serialising a lock: {e}")))
}

/// Every lock record in the repository, with its path (unreadable ones skipped).
pub(crate) async fn list_locks(
    store: &Arc<dyn ObjectStore>,
    dir: &Path,
) -> Result<Vec<(Path, LockRecord)>> {
    let metas: Vec<_> = store
        .list(Some(dir))
        .try_collect()
        .await
        .map_err(|e| store_error("listing locks", e))?;
    let mut out = Vec::new();
    for meta in metas {
        let Ok(got) = store.get(&meta.location).await else {
            continue;
        };
        let Ok(bytes) = got.bytes().await else {
            continue;
        };
        if let Ok(record) = serde_json::from_slice::<LockRecord>(&bytes) {
            out.push((meta.location, record));
        }
    }
    Ok(out)
}

/// Takes a lock of `kind` for `operation`, or fails naming the live holder.
pub(crate) async fn acquire(
    store: &Arc<dyn ObjectStore>,
    dir: &Path,
    kind: LockKind,
    operation: &str,
    timing: LockTiming,
) -> Result<LockGuard> {
    let host = hostname();
    let now = Timestamp::now();
    let record = LockRecord {
        kind,
        host: host.clone(),
        pid: std::process::id(),
        operation: operation.to_string(),
        since: now,
        refreshed: now,
    };
    let path = dir.clone().join(format!("{}.json", uuid::Uuid::new_v4()));
    let create = PutOptions::from(PutMode::Create);
    store
        .put_opts(&path, encode(&record)?, create)
        .await
        .map_err(|e| store_error("writing a repository lock", e))?;
    let mut guard = LockGuard {
        store: Arc::clone(store),
        path: path.clone(),
        refresh: None,
        stop: None,
    };
    let others = match list_locks(store, dir).await {
        Ok(others) => others,
        Err(e) => {
            guard.release().await;
            return Err(e);
        }
    };
    for (other_path, other) in others {
        if other_path == path || !other.conflicts(kind) {
            continue;
        }
        if other.is_stale(Timestamp::now(), &host, timing.stale_after) {
            let _ = store.delete(&other_path).await;
            continue;
        }
        guard.release().await;
        return Err(Error::new(
            ErrorKind::Locked,
            format!(
                "the repository is locked ({} lock for {}) by host `{}` pid {} since {}",
                match other.kind {
                    LockKind::Shared => "shared",
                    LockKind::Exclusive => "exclusive",
                },
                other.operation,
                other.host,
                other.pid,
                other.since
            ),
        )
        .with_hint(format!(
            "wait for it to finish and retry; a lock whose process is gone is cleared \
             automatically after {} s without refresh",
            timing.stale_after.as_secs()
        )));
    }
    let (store2, path2) = (Arc::clone(store), path.clone());
    let (stop, mut stopped) = oneshot::channel::<()>();
    guard.stop = Some(stop);
    guard.refresh = Some(tokio::spawn(async move {
        let mut record = record;
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                () = tokio::time::sleep(timing.refresh_every) => {}
            }
            record.refreshed = Timestamp::now();
            if let Ok(payload) = encode(&record) {
                let _ = store2.put(&path2, payload).await;
            }
        }
    }));
    Ok(guard)
}

/// Checks that the server refuses a second create-only write of one key; locks cannot be
/// trusted otherwise.
pub(crate) async fn probe_create_only(store: &Arc<dyn ObjectStore>, dir: &Path) -> Result<()> {
    let path = dir.clone().join(format!("probe-{}", uuid::Uuid::new_v4()));
    let put = |n: &'static str| {
        store.put_opts(
            &path,
            PutPayload::from_static(n.as_bytes()),
            PutOptions::from(PutMode::Create),
        )
    };
    put("1")
        .await
        .map_err(|e| store_error("probing create-only writes", e))?;
    let second = put("2").await;
    let _ = store.delete(&path).await;
    match second {
        Err(object_store::Error::AlreadyExists { .. })
        | Err(object_store::Error::Precondition { .. }) => Ok(()),
        Ok(_) => Err(Error::new(
            ErrorKind::Unsupported,
            "the storage server overwrote an object written create-only: repository locks \
             and publishing would not be safe there",
        )
        .with_hint("use a server that honours If-None-Match on PUT (AWS S3, MinIO, moto ≥ 5)")),
        Err(e) => Err(store_error("probing create-only writes", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::local::LocalFileSystem;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_released_lock_stays_released_even_when_a_refresh_was_under_way() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new_with_prefix(dir.path()).expect("store"));
        let locks = Path::from("locks");
        let timing = LockTiming {
            stale_after: Duration::from_secs(120),
            refresh_every: Duration::from_millis(1),
        };
        for _ in 0..200 {
            let shared = acquire(&store, &locks, LockKind::Shared, "create", timing)
                .await
                .expect("shared");
            tokio::time::sleep(Duration::from_millis(2)).await;
            shared.release().await;
            // A refresh that landed after the delete would bring the shared lock back and
            // refuse this.
            let exclusive = acquire(&store, &locks, LockKind::Exclusive, "prune", timing)
                .await
                .expect("no lock left behind by a release");
            exclusive.release().await;
        }
    }
}
