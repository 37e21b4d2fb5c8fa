//! [`Repository`]: open or create one, list, inspect, label, lock and delete bundles.

use std::sync::{Arc, OnceLock};

use backup_core::bundle::{
    BundleKind, Decryption, Encryption, EncryptionInfo, EncryptionMethod, Identities, Passphrase,
    UnlockedKey, ENCRYPTION_AGE,
};
use backup_core::{Error, ErrorKind, Result};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{corrupt, store_error};
use crate::index::{BundleFilter, BundleInfo, BundleLock, IndexEntry};
use crate::locks::{self, LockGuard, LockKind, LockTiming};
use crate::storage::{no_repository, RepositoryConfig, Storage, REPOSITORY_FORMAT_VERSION};
use crate::upload::UploadOptions;

/// A repository of bundles on local disk or object storage. See the crate docs for the
/// layout. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Repository {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) prefix: String,
    pub(crate) storage: Storage,
    pub(crate) config: RepositoryConfig,
    pub(crate) upload: UploadOptions,
    pub(crate) lock_timing: LockTiming,
    /// What new bundles are encrypted with (the key material; may be `None` until given).
    pub(crate) encryption: Encryption,
    /// What bundles are decrypted with when read.
    pub(crate) decryption: Option<Decryption>,
    /// Set once the key given has passed [`Repository::check_key`] (reset by a new key),
    /// with a passphrase repository's unlocked key that new bundles are encrypted to.
    pub(crate) key_checked: Arc<OnceLock<Option<UnlockedKey>>>,
}

pub(crate) const CONFIG: &str = "config.json";
pub(crate) const BUNDLES: &str = "bundles";
pub(crate) const INDEX: &str = "index";
pub(crate) const LOCKS: &str = "locks";
/// Suffix of every bundle object.
pub const BUNDLE_SUFFIX: &str = ".backup.zip";

fn join(prefix: &str, rel: &str) -> Path {
    if prefix.is_empty() {
        Path::from(rel)
    } else {
        Path::from(format!("{prefix}/{rel}"))
    }
}

impl Repository {
    /// Creates a repository at `storage` (the directory is created; a bucket must exist).
    ///
    /// Checks that the storage honours create-only writes (written twice, the second must
    /// be refused): locks and publishing rely on it, so a repository is never created
    /// where they could not be trusted.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AlreadyExists`] if a repository is there already,
    /// [`ErrorKind::Unsupported`] if create-only writes are not honoured, storage errors
    /// (bucket missing, permission denied) with hints.
    pub async fn init(storage: Storage) -> Result<Repository> {
        Self::init_encrypted(storage, Encryption::None).await
    }

    /// [`init`](Self::init) for a repository whose bundles are encrypted with age per
    /// entry: `config.json` records the method, the scrypt work factor or the recipients'
    /// public keys (never the passphrase), and every bundle written is encrypted so.
    ///
    /// # Errors
    ///
    /// As [`init`](Self::init).
    pub async fn init_encrypted(storage: Storage, encryption: Encryption) -> Result<Repository> {
        let (store, prefix) = storage.build(true)?;
        locks::probe_create_only(&store, &join(&prefix, LOCKS)).await?;
        let config = RepositoryConfig {
            format_version: REPOSITORY_FORMAT_VERSION,
            id: uuid::Uuid::new_v4().to_string(),
            created_at: Timestamp::now().to_string(),
            encryption: encryption_info(&encryption),
            key_check: seal_key_check(&encryption).await?,
        };
        let json = serde_json::to_vec_pretty(&config)
            .map_err(|e| Error::new(ErrorKind::Io, format!("serialising config.json: {e}")))?;
        store
            .put_opts(
                &join(&prefix, CONFIG),
                PutPayload::from(Bytes::from(json)),
                PutOptions::from(PutMode::Create),
            )
            .await
            .map_err(|e| match e {
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. } => Error::new(
                    ErrorKind::AlreadyExists,
                    format!("a repository already exists at {}", storage.describe()),
                )
                .with_hint("open it with Repository::open"),
                e => store_error(
                    format!("creating a repository at {}", storage.describe()),
                    e,
                ),
            })?;
        Ok(Repository {
            store,
            prefix,
            upload: UploadOptions::for_storage(&storage),
            storage,
            config,
            lock_timing: LockTiming::default(),
            encryption,
            decryption: None,
            key_checked: Arc::default(),
        })
    }

    /// Opens the repository at `storage`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] "no repository at …" with a hint,
    /// [`ErrorKind::UnsupportedVersion`] for a newer format, storage errors with hints.
    pub async fn open(storage: Storage) -> Result<Repository> {
        let (store, prefix) = storage.build(false)?;
        let got = match store.get(&join(&prefix, CONFIG)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(no_repository(&storage.describe()))
            }
            Err(e) => {
                return Err(store_error(
                    format!("opening the repository at {}", storage.describe()),
                    e,
                ))
            }
        };
        let bytes = got
            .bytes()
            .await
            .map_err(|e| store_error("reading config.json", e))?;
        let config: RepositoryConfig =
            serde_json::from_slice(&bytes).map_err(|e| corrupt("config.json", e))?;
        if config.format_version != REPOSITORY_FORMAT_VERSION {
            return Err(Error::new(
                ErrorKind::UnsupportedVersion,
                format!(
                    "repository format {} is not supported (this build reads {})",
                    config.format_version, REPOSITORY_FORMAT_VERSION
                ),
            )
            .with_hint("use a newer version of this tool"));
        }
        Ok(Repository {
            store,
            prefix,
            upload: UploadOptions::for_storage(&storage),
            storage,
            config,
            lock_timing: LockTiming::default(),
            encryption: Encryption::None,
            decryption: None,
            key_checked: Arc::default(),
        })
    }

    /// The same repository, uploading with other part size / concurrency.
    pub fn with_upload_options(mut self, options: UploadOptions) -> Self {
        self.upload = options;
        self
    }

    /// The same repository, with other lock staleness and refresh intervals.
    pub fn with_lock_timing(mut self, timing: LockTiming) -> Self {
        self.lock_timing = timing;
        self
    }

    /// Gives the passphrase of a passphrase-encrypted repository: new bundles are
    /// encrypted with it (at the work factor `config.json` records) and
    /// [`verify`](Self::verify) decrypts with it.
    pub fn with_passphrase(mut self, passphrase: Passphrase) -> Self {
        let work_factor = self
            .config
            .encryption
            .as_ref()
            .and_then(|i| i.work_factor)
            .unwrap_or(backup_core::bundle::DEFAULT_SCRYPT_WORK_FACTOR);
        self.encryption = Encryption::Passphrase {
            passphrase: passphrase.clone(),
            work_factor,
        };
        self.decryption = Some(Decryption::Passphrase(passphrase));
        self.key_checked = Arc::default();
        self
    }

    /// Gives identities of a recipients-encrypted repository: [`verify`](Self::verify)
    /// decrypts with them. (Writing needs no secret: the recipients' public keys are in
    /// `config.json`.)
    pub fn with_identities(mut self, identities: Identities) -> Self {
        self.decryption = Some(Decryption::Identities(identities));
        self.key_checked = Arc::default();
        self
    }

    /// Checks the key given against `config.json` before anything is written or read
    /// with it: a passphrase against the key check sealed at [`init_encrypted`]
    /// (one scrypt run, off the async workers; done once per key, and by
    /// [`begin`](Self::begin) before every first write), identities against the
    /// recipients' public keys. Passes when there is nothing to check (no encryption,
    /// no key given, a repository created before key checks).
    ///
    /// [`init_encrypted`]: Self::init_encrypted
    ///
    /// # Errors
    ///
    /// [`ErrorKind::WrongKey`] "wrong passphrase for the repository at …", or
    /// "none of the given identities is a recipient of …", with a hint.
    pub async fn check_key(&self) -> Result<()> {
        if self.key_checked.get().is_some() {
            return Ok(());
        }
        let Some(info) = &self.config.encryption else {
            return Ok(());
        };
        let what = format!("the repository at {}", self.storage.describe());
        let mut unlocked = None;
        match (&self.decryption, info.method) {
            (Some(Decryption::Passphrase(passphrase)), EncryptionMethod::Passphrase) => {
                if let Some(sealed) = self.config.key_check.clone() {
                    let passphrase = passphrase.clone();
                    let work_factor = info.work_factor;
                    let key = tokio::task::spawn_blocking(move || {
                        passphrase.unlock_key_check(&sealed, work_factor, &what)
                    })
                    .await
                    .map_err(|e| Error::new(ErrorKind::Io, format!("checking the key: {e}")))??;
                    unlocked = Some(key);
                }
            }
            (Some(Decryption::Identities(identities)), EncryptionMethod::Recipients) => {
                let ours = identities.public_keys();
                if !ours.iter().any(|key| info.recipients.contains(key)) {
                    return Err(Error::new(
                        ErrorKind::WrongKey,
                        format!("none of the given identities is a recipient of {what}"),
                    )
                    .with_hint(format!(
                        "give an identity file for one of: {}",
                        info.recipients.join(", ")
                    )));
                }
            }
            (Some(_), method) => {
                return Err(Error::new(
                    ErrorKind::WrongKey,
                    format!(
                        "{what} is encrypted with {method:?}, and another kind of key was given"
                    ),
                )
                .with_hint(match method {
                    EncryptionMethod::Passphrase => "open it with Repository::with_passphrase",
                    EncryptionMethod::Recipients => "open it with Repository::with_identities",
                }))
            }
            (None, _) => return Ok(()),
        }
        let _ = self.key_checked.set(unlocked);
        Ok(())
    }

    /// What a new bundle is encrypted with, from `config.json` and the key given.
    pub(crate) fn write_encryption(&self) -> Result<Encryption> {
        let Some(info) = &self.config.encryption else {
            return Ok(Encryption::None);
        };
        match info.method {
            EncryptionMethod::Recipients => Encryption::recipients(&info.recipients),
            EncryptionMethod::Passphrase => match &self.encryption {
                // The key check unlocked: bundles go to its key, no scrypt run each.
                Encryption::Passphrase { .. } => match self.key_checked.get() {
                    Some(Some(key)) => Ok(Encryption::PassphraseKey(key.clone())),
                    _ => Ok(self.encryption.clone()),
                },
                _ => Err(Error::new(
                    ErrorKind::WrongKey,
                    format!(
                        "the repository at {} is encrypted with a passphrase, and none was given",
                        self.storage.describe()
                    ),
                )
                .with_hint("open it with Repository::with_passphrase")),
            },
        }
    }

    /// Its `config.json`.
    pub fn config(&self) -> &RepositoryConfig {
        &self.config
    }

    /// Where it lives.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The underlying object store (keys are under [`Repository::key`]`("")`).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The object key of `rel` (for example `bundles/<name>.backup.zip`).
    pub fn key(&self, rel: &str) -> Path {
        join(&self.prefix, rel)
    }

    pub(crate) fn bundle_path(&self, name: &str) -> Path {
        self.key(&format!("{BUNDLES}/{name}{BUNDLE_SUFFIX}"))
    }

    pub(crate) fn index_path(&self, id: &str) -> Path {
        self.key(&format!("{INDEX}/{id}.json"))
    }

    pub(crate) async fn lock(&self, kind: LockKind, operation: &str) -> Result<LockGuard> {
        locks::acquire(
            &self.store,
            &self.key(LOCKS),
            kind,
            operation,
            self.lock_timing,
        )
        .await
    }

    /// Every index entry, newest first.
    pub(crate) async fn entries(&self) -> Result<Vec<IndexEntry>> {
        let metas: Vec<_> = self
            .store
            .list(Some(&self.key(INDEX)))
            .try_collect()
            .await
            .map_err(|e| store_error("listing the index", e))?;
        let store = &self.store;
        let mut entries: Vec<IndexEntry> = futures::stream::iter(metas)
            .map(|meta| async move {
                let bytes = store
                    .get(&meta.location)
                    .await
                    .map_err(|e| store_error(format!("reading {}", meta.location), e))?
                    .bytes()
                    .await
                    .map_err(|e| store_error(format!("reading {}", meta.location), e))?;
                serde_json::from_slice::<IndexEntry>(&bytes)
                    .map_err(|e| corrupt(format!("index entry {}", meta.location), e))
            })
            .buffer_unordered(64)
            .try_collect()
            .await?;
        entries.sort_by(|a, b| {
            b.manifest
                .created_at
                .cmp(&a.manifest.created_at)
                .then_with(|| b.name.cmp(&a.name))
        });
        Ok(entries)
    }

    /// Every bundle, newest first, numbered from 1; only index entries are read.
    ///
    /// # Errors
    ///
    /// Storage errors; [`ErrorKind::Integrity`] for an unreadable index entry.
    pub async fn list(&self, filter: &BundleFilter) -> Result<Vec<BundleInfo>> {
        let now = Timestamp::now();
        Ok(self
            .entries()
            .await?
            .iter()
            .enumerate()
            .map(|(i, e)| BundleInfo::from_entry(e, i + 1, now))
            .filter(|info| filter.matches(info))
            .collect())
    }

    /// The index entry (with the full manifest) of the bundle `selector` names: its index
    /// number in [`list`](Self::list), its id, a unique id prefix (8+ characters) or its
    /// name.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] with a hint; [`ErrorKind::InvalidInput`] for an ambiguous
    /// prefix.
    pub async fn info(&self, selector: &str) -> Result<IndexEntry> {
        let entries = self.entries().await?;
        resolve(entries, selector)
    }

    /// Re-reads every entry of a bundle through ranged reads (no local copy) and checks
    /// every size and sha256 against its manifest, and that manifest against the index.
    ///
    /// Progress: core's `Verified` events, then `Finished`/`OperationFailed` (`"verify"`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Integrity`] naming the entry that does not match; as
    /// [`info`](Self::info); storage errors.
    pub async fn verify(
        &self,
        selector: &str,
        progress: &dyn backup_core::ProgressSink,
    ) -> Result<backup_core::bundle::VerifyReport> {
        let entry = self.info(selector).await?;
        self.checked_reader(&entry).await?.verify(progress).await
    }

    /// [`open_reader`](Self::open_reader) with the repository's key, after checking the
    /// bundle's manifest is the one its index entry says.
    pub(crate) async fn checked_reader(
        &self,
        entry: &IndexEntry,
    ) -> Result<backup_core::BundleReader> {
        let mut reader = self.open_reader(entry).await?;
        if let Some(decryption) = &self.decryption {
            reader = reader.with_decryption(decryption.clone());
        }
        if reader.manifest().id != entry.manifest.id {
            return Err(Error::integrity(format!(
                "bundle `{}` holds manifest {}, its index entry says {}",
                entry.name,
                reader.manifest().id,
                entry.manifest.id
            )));
        }
        Ok(reader)
    }

    /// A reader over a bundle's object (ranged reads): for verify and restore.
    ///
    /// # Errors
    ///
    /// Storage errors; the reader's when the object is not a valid bundle.
    pub async fn open_reader(&self, entry: &IndexEntry) -> Result<backup_core::BundleReader> {
        let path = self.bundle_path(&entry.name);
        let meta = self
            .store
            .head(&path)
            .await
            .map_err(|e| store_error(format!("reading {path}"), e))?;
        let source = crate::source::ObjectSource::new(Arc::clone(&self.store), path, meta.size);
        backup_core::BundleReader::open_source(Arc::new(source)).await
    }

    /// Sets or clears a bundle's label. The bundle's own manifest is immutable: the label
    /// lives in its index entry and wins over the manifest's.
    ///
    /// # Errors
    ///
    /// As [`info`](Self::info), lock and storage errors.
    pub async fn set_label(&self, selector: &str, label: Option<&str>) -> Result<IndexEntry> {
        self.rewrite(selector, "label", |e| e.label = label.map(str::to_string))
            .await
    }

    /// Locks a bundle forever (`until: None`) or until a time: it cannot be deleted or
    /// pruned meanwhile.
    ///
    /// # Errors
    ///
    /// As [`info`](Self::info), lock and storage errors.
    pub async fn lock_bundle(
        &self,
        selector: &str,
        until: Option<Timestamp>,
    ) -> Result<IndexEntry> {
        self.rewrite(selector, "lock", |e| e.lock = Some(BundleLock { until }))
            .await
    }

    /// Removes a bundle's lock.
    ///
    /// # Errors
    ///
    /// As [`info`](Self::info), lock and storage errors.
    pub async fn unlock_bundle(&self, selector: &str) -> Result<IndexEntry> {
        self.rewrite(selector, "unlock", |e| e.lock = None).await
    }

    async fn rewrite(
        &self,
        selector: &str,
        operation: &str,
        change: impl FnOnce(&mut IndexEntry),
    ) -> Result<IndexEntry> {
        // Shared: excludes delete and prune, which could otherwise resurrect the entry.
        let guard = self.lock(LockKind::Shared, operation).await?;
        let result = async {
            let mut entry = self.info(selector).await?;
            change(&mut entry);
            self.put_index(&entry, PutMode::Overwrite).await?;
            Ok(entry)
        }
        .await;
        guard.release().await;
        result
    }

    pub(crate) async fn put_index(&self, entry: &IndexEntry, mode: PutMode) -> Result<()> {
        let json = serde_json::to_vec_pretty(entry)
            .map_err(|e| Error::new(ErrorKind::Io, format!("serialising an index entry: {e}")))?;
        let path = self.index_path(&entry.manifest.id);
        self.store
            .put_opts(
                &path,
                PutPayload::from(Bytes::from(json)),
                PutOptions::from(mode),
            )
            .await
            .map_err(|e| store_error(format!("writing {path}"), e))?;
        Ok(())
    }

    /// Deletes a bundle (its index entry first, so it is never listed half-deleted), under
    /// an exclusive repository lock.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::PermissionDenied`] for a locked bundle (with a hint), as
    /// [`info`](Self::info), lock and storage errors.
    pub async fn delete(&self, selector: &str) -> Result<IndexEntry> {
        let guard = self.lock(LockKind::Exclusive, "delete").await?;
        let result = async {
            let entry = self.info(selector).await?;
            refuse_locked(&entry, Timestamp::now(), "deleted")?;
            self.remove(&entry).await?;
            Ok(entry)
        }
        .await;
        guard.release().await;
        result
    }

    pub(crate) async fn remove(&self, entry: &IndexEntry) -> Result<()> {
        let index = self.index_path(&entry.manifest.id);
        self.store
            .delete(&index)
            .await
            .map_err(|e| store_error(format!("deleting {index}"), e))?;
        let bundle = self.bundle_path(&entry.name);
        match self.store.delete(&bundle).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(format!("deleting {bundle}"), e)),
        }
    }
}

/// Refuses an operation on a bundle whose lock holds at `now`.
pub(crate) fn refuse_locked(entry: &IndexEntry, now: Timestamp, what: &str) -> Result<()> {
    match &entry.lock {
        Some(lock) if lock.holds_at(now) => Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "bundle `{}` is locked {} and cannot be {what}",
                entry.name,
                match lock.until {
                    Some(until) => format!("until {until}"),
                    None => "forever".into(),
                }
            ),
        )
        .with_hint(format!(
            "unlock it first (Repository::unlock_bundle(\"{}\"))",
            entry.name
        ))),
        _ => Ok(()),
    }
}

fn resolve(entries: Vec<IndexEntry>, selector: &str) -> Result<IndexEntry> {
    let not_found = || {
        Error::new(
            ErrorKind::NotFound,
            format!("no bundle `{selector}` in the repository"),
        )
        .with_hint("list the bundles; select one by index number, id or name")
    };
    if let Some(n) = as_index(selector) {
        return n
            .checked_sub(1)
            .and_then(|i| entries.get(i).cloned())
            .ok_or_else(not_found);
    }
    if let Some(e) = entries
        .iter()
        .find(|e| e.manifest.id == selector || e.name == selector)
    {
        return Ok(e.clone());
    }
    if selector.len() >= 8 {
        let mut found = entries
            .into_iter()
            .filter(|e| e.manifest.id.starts_with(selector));
        if let Some(first) = found.next() {
            if found.next().is_some() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("`{selector}` names more than one bundle"),
                )
                .with_hint("give more of the id, or the full name"));
            }
            return Ok(first);
        }
    }
    Err(not_found())
}

/// A selector read as a list index: digits, shorter than the 8 characters an id prefix
/// needs (an id such as `50174870…` starts with digits only).
fn as_index(selector: &str) -> Option<usize> {
    if selector.len() >= 8 || !selector.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    selector.parse().ok()
}

/// The tag in a bundle's name: its label, else its kind.
pub(crate) fn name_tag(label: Option<&str>, kind: BundleKind) -> String {
    match label {
        Some(label) if !label.is_empty() => label.to_string(),
        _ => match kind {
            BundleKind::Manual => "manual".into(),
            BundleKind::Automatic => "automatic".into(),
            BundleKind::Safety => "safety".into(),
        },
    }
}

/// What `config.json` records of an encryption: public parameters only.
/// The key check a passphrase repository's `config.json` holds (one scrypt run, off the
/// async workers).
async fn seal_key_check(encryption: &Encryption) -> Result<Option<String>> {
    let Encryption::Passphrase {
        passphrase,
        work_factor,
    } = encryption
    else {
        return Ok(None);
    };
    let (passphrase, work_factor) = (passphrase.clone(), *work_factor);
    tokio::task::spawn_blocking(move || passphrase.seal_key_check(work_factor))
        .await
        .map_err(|e| Error::new(ErrorKind::Io, format!("sealing the key check: {e}")))?
        .map(Some)
}

fn encryption_info(encryption: &Encryption) -> Option<EncryptionInfo> {
    match encryption {
        Encryption::Passphrase { work_factor, .. } => Some(EncryptionInfo {
            scheme: ENCRYPTION_AGE.into(),
            method: EncryptionMethod::Passphrase,
            work_factor: Some(*work_factor),
            recipients: Vec::new(),
        }),
        Encryption::Recipients(keys) => Some(EncryptionInfo {
            scheme: ENCRYPTION_AGE.into(),
            method: EncryptionMethod::Recipients,
            work_factor: None,
            recipients: keys.clone(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod selector_tests {
    use super::as_index;

    #[test]
    fn an_id_prefix_of_digits_only_is_not_read_as_an_index() {
        assert_eq!(as_index("2"), Some(2));
        assert_eq!(as_index("1234567"), Some(1_234_567));
        assert_eq!(as_index("50174870"), None, "an 8-digit id prefix");
        assert_eq!(as_index("+2"), None);
        assert_eq!(as_index("2a"), None);
    }
}
