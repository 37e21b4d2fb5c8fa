//! Where bundles live over time: a repository on local disk or object storage, and
//! [`retention`] rules that decide which bundles to keep.
//!
//! # Layout
//!
//! One code path over [`object_store::ObjectStore`]: a local directory
//! ([`object_store::local::LocalFileSystem`]) or an S3-compatible bucket and prefix.
//!
//! ```text
//! config.json                    format version, repository id, encryption parameters,
//!                                key check (passphrase repositories)
//!                                (never a secret)
//! bundles/<name>.backup.zip      the bundles, byte for byte what a BundleWriter wrote
//! index/<id>.json                one entry per published bundle: name, size, a copy of its
//!                                manifest, the label and lock set after the fact
//! locks/<id>.json                repository locks (shared for create, exclusive for
//!                                delete and prune)
//! runs/<started>_<id>.json       run history: one record per run (scheduled, guard,
//!                                manual, restore), succeeded or failed, written
//!                                create-only; `<started>` is UTC to the millisecond
//!                                (`20261130T021500.123Z`), so keys sort by start time
//! ```
//!
//! Bundle names read as `{UTC timestamp}_{label or kind}_{short id}`, for example
//! `20261130T021500Z_before-upgrade_1a2b3c4d`.
//!
//! # Publishing
//!
//! A bundle streams straight into `bundles/` through a multipart upload (memory bounded by
//! part size × parts in flight, never by the bundle's size). Only once the upload is
//! complete is `index/<id>.json` written, create-only: listing reads only `index/`, so a
//! crash or an error mid-write leaves nothing listable. What it does leave (a bundle
//! without index entry, an abandoned partial upload) is reported by
//! [`Repository::check`] and removed by [`Repository::prune`] once older than a grace
//! period. On S3 an abandoned multipart upload is no object at all (nothing to list); a
//! bucket lifecycle rule "abort incomplete multipart uploads after N days" frees its
//! parts.
//!
//! # Repository locks
//!
//! Writing a bundle takes a shared lock, delete and prune an exclusive one: lock objects
//! under `locks/` written create-only, refreshed in the background while held (see
//! [`LockTiming`]). A lock is stale when it has not been refreshed for
//! [`STALE_AFTER`], or when its holder ran on this host and its process is gone; whoever
//! finds a stale lock removes it, a live one is never broken: the operation fails naming
//! the holder's host, pid and start time. [`Repository::init`] checks that the storage
//! refuses a second create-only write of one key and refuses to create a repository
//! where it does not.
//!
//! # Encryption
//!
//! [`Repository::init_encrypted`] records in `config.json` how bundles are encrypted
//! (age per data entry: passphrase with its scrypt work factor, or the recipients' public
//! keys), never a secret. Listing, `info` and checksum verification need no key;
//! [`Repository::with_passphrase`] / [`Repository::with_identities`] give the key for
//! writing (passphrase only) and decrypting reads.
//!
//! # Labels and locks after the fact
//!
//! A bundle's own manifest is immutable. [`Repository::set_label`] and
//! [`Repository::lock_bundle`] rewrite its index entry; the index label wins over the
//! manifest's label everywhere the repository shows one.
//!
//! # Run history
//!
//! [`history`]: every run is recorded under `runs/` with its status, error and hint,
//! duration, bundle and size, and the warnings its exporters reported;
//! [`Repository::runs`] lists them newest first. [`Repository::backup_recorded`] backs up
//! and records in one call. `check` and `prune` do not touch `runs/`.
//!
//! # Schedules
//!
//! [`schedule`]: daily, weekly, monthly or cron backups in an IANA time zone, each with
//! its services, label and retention policy, run by a [`schedule::Scheduler`] inside
//! the host's tokio runtime; the module docs say what happens around DST changes.
//!
//! # Safe restore, emergency restore, guards
//!
//! [`safe_restore()`] restores a bundle (by `latest`, index, id or name) into the host's
//! existing services with a way back: verify everything, check every importer, take a
//! locked safety backup of what will be replaced, import stage by stage, and on failure
//! put the safety backup back ([`backup_core::ErrorKind::RestoreRolledBack`]) or say
//! exactly what is left where ([`backup_core::ErrorKind::RollbackFailed`]); see
//! [`safe_restore`](mod@safe_restore) for the order of work. [`emergency_restore`]
//! does the same from the newest bundle that verifies, without asking. [`guard()`]
//! takes an automatic backup before the host's destructive operation and returns a
//! [`GuardOutcome`] the host must act on. Every run is recorded in [`history`].

mod clock;
mod emergency;
mod error;
mod guard;
pub mod history;
mod index;
mod locks;
mod maintain;
mod multipart;
mod naming;
mod quiesce;
mod repo;
pub mod retention;
pub mod safe_restore;
pub mod schedule;
mod source;
mod storage;
mod upload;
mod write;

pub use clock::{Clock, SystemClock, TokioClock};
pub use emergency::emergency_restore;
pub use guard::{guard, GuardOutcome, GuardReason, Overridden};
pub use index::{BundleFilter, BundleInfo, BundleLock, IndexEntry};
pub use locks::{LockKind, LockRecord, LockTiming, REFRESH_EVERY, STALE_AFTER};
pub use maintain::{CheckReport, Orphan, OrphanKind, PruneOptions, PruneReport};
pub use repo::{Repository, BUNDLE_SUFFIX};
pub use safe_restore::{
    safe_restore, RestoreFailure, SafeRestoreOptions, SafeRestoreReport, ServiceReport, SmokeTest,
};
pub use source::ObjectSource;
pub use storage::{RepositoryConfig, S3Options, Storage, REPOSITORY_FORMAT_VERSION};
pub use upload::UploadOptions;
pub use write::PendingBundle;

/// The `object_store` crate this repository is built on, for hosts that build their own
/// store for [`Storage::Store`] (GCS with the `gcp` feature, Azure with `azure`).
pub use object_store;
