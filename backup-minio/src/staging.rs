//! Objects above the part size and up to the single-PUT cutoff (`singlePutCutoffMib`)
//! are copied from the archive into a temporary file, their MD5 computed on the way, and
//! uploaded from that file in one PUT.
//!
//! Why a file: a PUT body read from a path can be read again, so the SDK retries a failed
//! PUT on its own (a body streamed from the archive could not be), and memory stays flat
//! whatever the cutoff. Why one PUT: S3 servers store a single PUT faster than they
//! assemble a multipart upload (rclone uploads objects under 200 MiB whole by default).
//!
//! Disk use: an import holds at most `concurrency` staged objects at once (the one being
//! staged included), so at most `concurrency × singlePutCutoffMib` MiB in the staging
//! directory. Each staged file is removed as soon as its upload ends; the import's
//! directory (under `stagingDir`, or the system temp dir) is removed when the import
//! ends, whether it succeeded or failed.

use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::{ByteStream, Length};
use backup_core::{Error, Result};
use bytes::BytesMut;
use md5::{Digest, Md5};
use tempfile::{TempDir, TempPath};
use tokio::io::{AsyncRead, AsyncWriteExt};

use crate::layout::ObjectRecord;
use crate::tar_in::TarIn;
use crate::upload::{put_whole, Target};

/// Bytes copied from the archive to the file, and read from the file for the PUT, at a
/// time.
const CHUNK: u64 = 1024 * 1024;

const HINT: &str = "set `stagingDir` to an existing, writable directory with room for \
                    concurrency × singlePutCutoffMib MiB, or set singlePutCutoffMib to 0 to \
                    upload every object above partSizeMib in parts (nothing staged)";

/// The staging directory of one import; removed (with anything left in it) on drop.
#[derive(Debug)]
pub struct Staging {
    dir: TempDir,
}

/// One object's bytes in a staged file, removed when this is dropped.
#[derive(Debug)]
pub struct Staged {
    path: TempPath,
    size: u64,
    md5: [u8; 16],
}

impl Staging {
    /// Creates a fresh directory inside `parent` (the system temp dir when `None`).
    ///
    /// # Errors
    ///
    /// When the directory cannot be created (missing or read-only parent), with a hint
    /// naming `stagingDir`.
    pub fn create(parent: Option<&Path>) -> Result<Staging> {
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let dir = tempfile::Builder::new()
            .prefix("backup-minio-import-")
            .tempdir_in(&parent)
            .map_err(|e| {
                Error::io(
                    format!(
                        "creating the staging directory for objects to upload in one PUT in `{}`",
                        parent.display()
                    ),
                    e,
                )
                .with_hint(HINT)
            })?;
        Ok(Staging { dir })
    }

    /// The directory staged files go to.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Copies the current tar entry (`record.size` bytes) into a new file of the
    /// directory, computing its MD5. A failure removes the partial file.
    ///
    /// # Errors
    ///
    /// When the archive ends early, or writing the file fails (disk full: a hint names
    /// `stagingDir`).
    pub async fn stage<R: AsyncRead + Unpin>(
        &self,
        tar: &mut TarIn<R>,
        record: &ObjectRecord,
    ) -> Result<Staged> {
        let failed = |e: std::io::Error| {
            Error::io(
                format!(
                    "staging `{}` ({} bytes) in `{}`",
                    record.key,
                    record.size,
                    self.path().display()
                ),
                e,
            )
            .with_hint(HINT)
        };
        let (file, path) = tempfile::Builder::new()
            .prefix("object-")
            .tempfile_in(self.path())
            .map_err(failed)?
            .into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut md5 = Md5::new();
        let mut buf = BytesMut::with_capacity(CHUNK as usize);
        let mut left = record.size;
        while left > 0 {
            let n = left.min(CHUNK);
            buf.clear();
            tar.read_into(&mut buf, n).await?;
            md5.update(&buf);
            file.write_all(&buf).await.map_err(failed)?;
            left -= n;
        }
        file.flush().await.map_err(failed)?;
        Ok(Staged {
            path,
            size: record.size,
            md5: md5.finalize().into(),
        })
    }
}

impl Staged {
    /// Uploads the file as `record`'s object with one PUT (metadata, tags and the check
    /// of [`put_whole`]: size, and ETag = MD5), then removes the file. Returns the new
    /// version id.
    ///
    /// # Errors
    ///
    /// When the file cannot be read, the server refuses, or the stored object differs.
    pub async fn put(self, target: &Target, record: &ObjectRecord) -> Result<Option<String>> {
        let path: PathBuf = self.path.to_path_buf();
        let body = ByteStream::read_from()
            .path(&path)
            .length(Length::Exact(self.size))
            // The SDK's default reads the file 4 KiB at a time.
            .buffer_size(CHUNK as usize)
            .build()
            .await
            .map_err(|e| {
                Error::new(
                    backup_core::ErrorKind::Io,
                    format!(
                        "reading the staged copy of `{}` at `{}`: {e}",
                        record.key,
                        path.display()
                    ),
                )
                .with_hint(HINT)
            })?;
        put_whole(target, record, body, self.size, self.md5).await
    }
}
