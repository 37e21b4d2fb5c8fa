//! A blocking [`Write`] that streams into an object store multipart upload.
//!
//! The bundle writer's zip thread calls [`Write::write`]; each call waits (blocking that
//! thread, never the runtime) until fewer than `max_in_flight` parts are being uploaded,
//! then hands the bytes to [`WriteMultipart`], which cuts them into parts. Memory is
//! bounded by `part_size × (max_in_flight + 1)` whatever the bundle's size.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use backup_core::Result;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::runtime::Handle;

/// How a bundle is uploaded.
#[derive(Debug, Clone, Copy)]
pub struct UploadOptions {
    /// Bytes per part (S3 requires at least 5 MiB for all parts but the last).
    pub part_size: usize,
    /// Parts uploaded at once.
    pub max_in_flight: usize,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            part_size: 8 * 1024 * 1024,
            max_in_flight: 4,
        }
    }
}

impl UploadOptions {
    /// The defaults for `storage`: on a local directory one part at a time (parallel
    /// parts gain nothing on one disk and each holds `part_size` bytes, so a long write
    /// would peak `3 × part_size` higher than a short one); elsewhere [`Default`].
    pub fn for_storage(storage: &crate::Storage) -> UploadOptions {
        match storage {
            crate::Storage::Local(_) => UploadOptions {
                max_in_flight: 1,
                ..UploadOptions::default()
            },
            _ => UploadOptions::default(),
        }
    }
}

/// The upload's state, shared by the repository and the zip thread.
struct Slot {
    store: Arc<dyn ObjectStore>,
    part_size: usize,
    /// Where the object goes; set before the first write.
    path: Option<Path>,
    /// Started on the first write.
    upload: Option<WriteMultipart>,
    /// Finished or aborted.
    closed: bool,
}

type Shared = Arc<Mutex<Slot>>;

/// The upload, owned by the repository; the sink shares it with the zip thread.
pub(crate) struct Upload {
    shared: Shared,
}

/// The [`Write`] half given to `BundleWriter::to_writer`.
pub(crate) struct UploadSink {
    shared: Shared,
    handle: Handle,
    max_in_flight: usize,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload").finish_non_exhaustive()
    }
}

impl Upload {
    /// Prepares an upload; the multipart upload starts on the first write, to the path
    /// set with [`Upload::set_path`] (which must come before it).
    pub(crate) fn new(
        store: &Arc<dyn ObjectStore>,
        options: UploadOptions,
    ) -> (Upload, UploadSink) {
        let shared = Arc::new(Mutex::new(Slot {
            store: Arc::clone(store),
            part_size: options.part_size.max(5 * 1024 * 1024),
            path: None,
            upload: None,
            closed: false,
        }));
        let sink = UploadSink {
            shared: Arc::clone(&shared),
            handle: Handle::current(),
            max_in_flight: options.max_in_flight.max(1),
        };
        (Upload { shared }, sink)
    }

    /// Sets where the object goes.
    pub(crate) fn set_path(&self, path: Path) {
        if let Ok(mut slot) = self.shared.lock() {
            slot.path = Some(path);
        }
    }

    fn take(&self) -> Option<WriteMultipart> {
        self.shared.lock().ok().and_then(|mut g| {
            g.closed = true;
            g.upload.take()
        })
    }

    /// Completes the upload: the object appears whole, or not at all.
    pub(crate) async fn finish(self, path: &Path) -> Result<()> {
        let Some(upload) = self.take() else {
            return Err(backup_core::Error::new(
                backup_core::ErrorKind::Io,
                format!("the upload of {path} never started or was already closed"),
            ));
        };
        upload
            .finish()
            .await
            .map(|_| ())
            .map_err(|e| crate::error::store_error(format!("completing the upload of {path}"), e))
    }

    /// Abandons the upload: no object appears.
    pub(crate) async fn abort(self) {
        if let Some(upload) = self.take() {
            let _ = upload.abort().await;
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // Dropped without finish or abort (a cancelled future): abort in the background.
        if let Some(upload) = self.take() {
            if let Ok(handle) = Handle::try_current() {
                handle.spawn(async move {
                    let _ = upload.abort().await;
                });
            }
        }
    }
}

impl Write for UploadSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut slot = self
            .shared
            .lock()
            .map_err(|_| io::Error::other("upload state poisoned"))?;
        if slot.closed {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the upload was closed",
            ));
        }
        let _enter = self.handle.enter();
        if slot.upload.is_none() {
            let path = slot
                .path
                .clone()
                .ok_or_else(|| io::Error::other("upload path not set"))?;
            let store = Arc::clone(&slot.store);
            let upload = self
                .handle
                .block_on(store.put_multipart(&path))
                .map_err(io::Error::other)?;
            slot.upload = Some(WriteMultipart::new_with_chunk_size(upload, slot.part_size));
        }
        let Some(upload) = slot.upload.as_mut() else {
            return Err(io::Error::other("upload not started"));
        };
        self.handle
            .block_on(upload.wait_for_capacity(self.max_in_flight))
            .map_err(io::Error::other)?;
        upload.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
