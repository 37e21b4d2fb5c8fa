//! Writing run records (create-only) and listing them newest first, with bounded reads.

use backup_core::{Error, ErrorKind, Result};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::Serialize;

use super::record::{RunKind, RunRecord, RunStatus};
use crate::error::store_error;
use crate::repo::Repository;

/// The folder of run records.
pub(crate) const RUNS: &str = "runs";
/// A run record larger than this is reported as unreadable without being read.
pub const MAX_RUN_RECORD_BYTES: u64 = 1024 * 1024;
/// Runs listed when [`RunFilter::limit`] is not set.
pub const DEFAULT_RUN_LIMIT: usize = 100;
/// Records read at once while listing.
const READ_BATCH: usize = 16;

/// Which runs [`Repository::runs`] lists; every field set must match.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// With this status.
    pub status: Option<RunStatus>,
    /// Of this kind.
    pub kind: Option<RunKind>,
    /// Concerning this service.
    pub service: Option<String>,
    /// Started by exactly this trigger (`schedule:nightly`).
    pub trigger: Option<String>,
    /// At most this many runs ([`DEFAULT_RUN_LIMIT`] when `None`); reading stops once
    /// that many matched.
    pub limit: Option<usize>,
}

impl RunFilter {
    fn matches(&self, run: &RunRecord) -> bool {
        self.status.is_none_or(|s| run.status == s)
            && self.kind.is_none_or(|k| run.kind == k)
            && self
                .service
                .as_ref()
                .is_none_or(|s| run.services.contains(s))
            && self.trigger.as_ref().is_none_or(|t| &run.trigger == t)
    }
}

/// A run record that could not be read: reported, never fatal to the listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnreadableRun {
    /// Its object key.
    pub path: String,
    /// Why it could not be read.
    pub error: String,
}

/// What [`Repository::runs`] found.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunList {
    /// Matching runs, newest first.
    pub runs: Vec<RunRecord>,
    /// Records met while listing that could not be read (too large, not JSON, …).
    pub unreadable: Vec<UnreadableRun>,
}

/// `runs/<started, UTC, to the millisecond>_<id>.json`: keys sort by start time.
pub(crate) fn run_key(run: &RunRecord) -> String {
    let stamp = run.started.strftime("%Y%m%dT%H%M%S");
    let millis = run.started.subsec_millisecond();
    format!("{RUNS}/{stamp}.{millis:03}Z_{}.json", run.id)
}

impl Repository {
    /// Records a run in the repository: `runs/<started>_<id>.json`, written create-only
    /// (never replacing another record). Returns the record's object key.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AlreadyExists`] when a record with this id and start time exists;
    /// storage errors.
    pub async fn record_run(&self, run: &RunRecord) -> Result<String> {
        let json = serde_json::to_vec_pretty(run)
            .map_err(|e| Error::new(ErrorKind::Io, format!("serialising a run record: {e}")))?;
        let path = self.key(&run_key(run));
        self.store
            .put_opts(
                &path,
                PutPayload::from(Bytes::from(json)),
                PutOptions::from(PutMode::Create),
            )
            .await
            .map_err(|e| store_error(format!("writing run record {path}"), e))?;
        Ok(path.to_string())
    }

    /// Recorded runs, newest first (by start time, to the nanosecond the record holds;
    /// runs are read in millisecond order), filtered; reads records only until
    /// the filter's limit is reached, each at most [`MAX_RUN_RECORD_BYTES`]. A record
    /// that cannot be read is listed in [`RunList::unreadable`], not an error.
    ///
    /// # Errors
    ///
    /// Storage errors listing `runs/`.
    pub async fn runs(&self, filter: &RunFilter) -> Result<RunList> {
        let mut metas: Vec<ObjectMeta> = self
            .store
            .list(Some(&self.key(RUNS)))
            .try_collect()
            .await
            .map_err(|e| store_error("listing runs", e))?;
        metas.sort_by(|a, b| b.location.cmp(&a.location));
        let limit = filter.limit.unwrap_or(DEFAULT_RUN_LIMIT);
        let mut list = RunList::default();
        for batch in metas.chunks(READ_BATCH) {
            if list.runs.len() >= limit {
                break;
            }
            let read =
                futures::future::join_all(batch.iter().map(|meta| self.read_run(meta))).await;
            for (meta, got) in batch.iter().zip(read) {
                match got {
                    Ok(run) if filter.matches(&run) && list.runs.len() < limit => {
                        list.runs.push(run)
                    }
                    Ok(_) => {}
                    Err(error) => list.unreadable.push(UnreadableRun {
                        path: meta.location.to_string(),
                        error,
                    }),
                }
            }
        }
        // Keys order runs to the millisecond; runs that started within the same one are
        // put in order by their exact start time (a stable sort keeps the rest as listed).
        list.runs.sort_by_key(|run| std::cmp::Reverse(run.started));
        Ok(list)
    }

    async fn read_run(&self, meta: &ObjectMeta) -> std::result::Result<RunRecord, String> {
        if meta.size > MAX_RUN_RECORD_BYTES {
            return Err(format!(
                "{} bytes, more than the {MAX_RUN_RECORD_BYTES} a run record may have",
                meta.size
            ));
        }
        let bytes = read_bounded(self, &meta.location)
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_slice::<RunRecord>(&bytes).map_err(|e| format!("not a run record: {e}"))
    }
}

async fn read_bounded(repo: &Repository, path: &Path) -> Result<Bytes> {
    let bytes = repo
        .store
        .get_range(path, 0..MAX_RUN_RECORD_BYTES + 1)
        .await
        .map_err(|e| store_error(format!("reading {path}"), e))?;
    if bytes.len() as u64 > MAX_RUN_RECORD_BYTES {
        return Err(Error::new(
            ErrorKind::ResourceExhausted,
            format!("{path} is larger than {MAX_RUN_RECORD_BYTES} bytes"),
        ));
    }
    Ok(bytes)
}
