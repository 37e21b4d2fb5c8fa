//! [`ObjectSource`]: a bundle read through ranged GETs, for verify and restore without a
//! local copy.

use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use backup_core::BundleSource;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::runtime::Handle;

/// Bytes fetched per ranged read (the reader asks for less; the rest is cached).
const BLOCK: u64 = 4 * 1024 * 1024;

/// A bundle object read with ranged GETs; one block cached. `read_at` blocks: call it
/// from blocking threads only (as `BundleReader` does).
pub struct ObjectSource {
    store: Arc<dyn ObjectStore>,
    path: Path,
    len: u64,
    handle: Handle,
    cache: Mutex<Option<(u64, Bytes)>>,
}

impl std::fmt::Debug for ObjectSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectSource")
            .field("path", &self.path)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl ObjectSource {
    /// A source over `path` of `len` bytes; must be made inside a Tokio runtime.
    pub(crate) fn new(store: Arc<dyn ObjectStore>, path: Path, len: u64) -> ObjectSource {
        ObjectSource {
            store,
            path,
            len,
            handle: Handle::current(),
            cache: Mutex::new(None),
        }
    }

    fn fetch(&self, range: Range<u64>) -> io::Result<Bytes> {
        self.handle
            .block_on(self.store.get_range(&self.path, range))
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => {
                    io::Error::new(io::ErrorKind::NotFound, e.to_string())
                }
                e => io::Error::other(e.to_string()),
            })
    }
}

impl BundleSource for ObjectSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| io::Error::other("bundle source cache poisoned"))?;
        let hit = matches!(&*cache, Some((start, block))
            if offset >= *start && offset < *start + block.len() as u64);
        if !hit {
            let start = offset - offset % BLOCK;
            let end = (start + BLOCK).min(self.len);
            *cache = Some((start, self.fetch(start..end)?));
        }
        let Some((start, block)) = cache.as_ref() else {
            return Ok(0);
        };
        let from = usize::try_from(offset - start).map_err(io::Error::other)?;
        let n = buf.len().min(block.len().saturating_sub(from));
        buf[..n].copy_from_slice(&block[from..from + n]);
        Ok(n)
    }

    fn describe(&self) -> String {
        format!("repository object {}", self.path)
    }
}
