//! Run history: every run (scheduled, guard, manual, restore) recorded in the repository.
//!
//! A run is one JSON object `runs/<started UTC, ms>_<run id>.json`, written create-only
//! like an index entry and never changed: kind, trigger, services, status (succeeded or
//! failed), the error with its hint, duration, the bundle published (id, name, size) and
//! the warnings exporters reported. [`Repository::runs`](crate::Repository::runs) lists
//! them newest first, filtered by status, kind, service or trigger; a record that cannot
//! be read is reported beside the list, never fatal. `check` and `prune` leave `runs/`
//! alone (run records are not bundles).
//!
//! A backup writes its record after the bundle is published (or the attempt failed and
//! was cleaned up): a failed backup has a `failed` record and no bundle.

mod backup;
mod record;
mod store;
mod warnings;

pub use backup::RecordedBackup;
pub use record::{
    RunBundle, RunError, RunKind, RunRecord, RunStart, RunStatus, RunWarning, RUN_FORMAT_VERSION,
};
pub use store::{RunFilter, RunList, UnreadableRun, DEFAULT_RUN_LIMIT, MAX_RUN_RECORD_BYTES};
pub use warnings::exporter_warnings;
