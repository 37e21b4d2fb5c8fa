//! Writing a bundle into the repository: stream, then publish the index entry last.

use backup_core::backup::{create_backup_to, BackupRequest};
use backup_core::bundle::BundleOptions;
use backup_core::progress::SharedProgress;
use backup_core::{BundleWriter, Manifest, RecipeRegistry, Result, WorkspaceHost};
use jiff::Timestamp;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode};

use crate::error::store_error;
use crate::index::{BundleInfo, IndexEntry};
use crate::locks::{LockGuard, LockKind};
use crate::naming::bundle_name;
use crate::repo::{name_tag, Repository};
use crate::upload::Upload;

/// A bundle being written into a repository. Write into [`writer`](Self::writer), then
/// [`publish`](Self::publish); dropping it (or [`abort`](Self::abort)) abandons the
/// upload and nothing is listed.
#[derive(Debug)]
pub struct PendingBundle {
    repo: Repository,
    writer: Option<BundleWriter>,
    upload: Upload,
    name: String,
    path: Path,
    lock: Option<LockGuard>,
}

impl Repository {
    /// Starts a bundle, under a shared repository lock. In an encrypted repository the
    /// bundle's data entries are encrypted as `config.json` says (unless `options` asks
    /// for an encryption itself).
    ///
    /// # Errors
    ///
    /// [`backup_core::ErrorKind::WrongKey`] for a passphrase repository opened
    /// without its passphrase or with a wrong one ([`Repository::check_key`]);
    /// Lock errors (an exclusive lock held by a live process: host, pid, since).
    pub async fn begin(&self, mut options: BundleOptions) -> Result<PendingBundle> {
        if !options.encryption.is_enabled() {
            // The key check first: a passphrase repository's bundles are encrypted to the
            // key it unlocks.
            self.check_key().await?;
            options.encryption = self.write_encryption()?;
        }
        let lock = self.lock(LockKind::Shared, "create").await?;
        let (upload, sink) = Upload::new(&self.store, self.upload);
        let tag = name_tag(options.label.as_deref(), options.kind);
        let writer = BundleWriter::to_writer(sink, options);
        let name = bundle_name(Timestamp::now(), &tag, writer.id());
        let path = self.bundle_path(&name);
        upload.set_path(path.clone());
        Ok(PendingBundle {
            repo: self.clone(),
            writer: Some(writer),
            upload,
            name,
            path,
            lock: Some(lock),
        })
    }

    /// Backs up a workspace straight into the repository (core's `create_backup`, with
    /// the bundle streamed to the store) and publishes it.
    ///
    /// Progress: core's export events (`ServiceStarted`, `BytesTransferred`, …,
    /// `Finished`/`OperationFailed` for `"export"`).
    ///
    /// # Errors
    ///
    /// Core's backup errors, lock and storage errors; nothing is listed on error.
    pub async fn create_backup(
        &self,
        host: &dyn WorkspaceHost,
        registry: &RecipeRegistry,
        request: &BackupRequest,
        progress: SharedProgress,
    ) -> Result<BundleInfo> {
        let entry = self
            .create_backup_entry(host, registry, request, progress)
            .await?;
        Ok(BundleInfo::from_entry(&entry, 1, Timestamp::now()))
    }

    /// [`create_backup`](Self::create_backup), returning the published index entry (with
    /// the manifest, where exporters' warnings are).
    pub(crate) async fn create_backup_entry(
        &self,
        host: &dyn WorkspaceHost,
        registry: &RecipeRegistry,
        request: &BackupRequest,
        progress: SharedProgress,
    ) -> Result<IndexEntry> {
        let mut pending = self.begin(request.bundle.clone()).await?;
        let Some(writer) = pending.writer.take() else {
            return Err(closed());
        };
        match create_backup_to(writer, host, registry, request, progress).await {
            Ok(manifest) => pending.publish_manifest(manifest).await,
            Err(e) => {
                pending.abort().await;
                Err(e)
            }
        }
    }
}

fn closed() -> backup_core::Error {
    backup_core::Error::new(backup_core::ErrorKind::Io, "the bundle writer is closed")
}

impl PendingBundle {
    /// The bundle writer: write the snapshot and artifacts here.
    ///
    /// # Errors
    ///
    /// [`backup_core::ErrorKind::Io`] if the writer was already taken.
    pub fn writer(&mut self) -> Result<&mut BundleWriter> {
        self.writer.as_mut().ok_or_else(closed)
    }

    /// The name the bundle will have.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Finishes the bundle, completes the upload, then writes its index entry
    /// (create-only): only now is the bundle listed.
    ///
    /// # Errors
    ///
    /// The writer's and the storage's; on error nothing is listed.
    pub async fn publish(mut self) -> Result<BundleInfo> {
        let Some(writer) = self.writer.take() else {
            return Err(closed());
        };
        match writer.finish().await {
            Ok(manifest) => {
                let entry = self.publish_manifest(manifest).await?;
                Ok(BundleInfo::from_entry(&entry, 1, Timestamp::now()))
            }
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    async fn publish_manifest(self, manifest: Manifest) -> Result<IndexEntry> {
        let PendingBundle {
            repo,
            writer: _,
            upload,
            name,
            path,
            lock,
        } = self;
        let result = async {
            upload.finish(&path).await?;
            let size = repo
                .store
                .head(&path)
                .await
                .map_err(|e| store_error(format!("reading {path}"), e))?
                .size;
            let entry = IndexEntry {
                name: name.clone(),
                size,
                label: None,
                lock: None,
                manifest,
            };
            repo.put_index(&entry, PutMode::Create).await?;
            Ok(entry)
        }
        .await;
        if result.is_err() {
            let _ = repo.store.delete(&path).await;
        }
        if let Some(lock) = lock {
            lock.release().await;
        }
        result
    }

    /// Abandons the bundle: the upload is aborted and nothing is listed.
    pub async fn abort(self) {
        let PendingBundle {
            writer,
            upload,
            lock,
            ..
        } = self;
        if let Some(writer) = writer {
            writer.abort().await;
        }
        upload.abort().await;
        if let Some(lock) = lock {
            lock.release().await;
        }
    }
}
