//! A small reader of the tar stream this crate writes: regular files, GNU long names,
//! checksummed headers, two zero blocks at the end. Anything else is refused.

use backup_core::{Error, Result};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::layout::padding;

/// Longest GNU long name accepted.
const MAX_NAME: u64 = 64 * 1024;

/// One entry's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryHead {
    /// Path in the archive.
    pub name: String,
    /// Data size.
    pub size: u64,
}

/// Reads entries one after the other.
#[derive(Debug)]
pub struct TarIn<R> {
    reader: R,
    /// Data bytes of the current entry not read yet.
    remaining: u64,
    /// Padding after the current entry.
    pad: usize,
}

fn truncated(what: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        Error::integrity(format!("the archive ends early, inside {what}"))
    } else {
        Error::io(format!("reading the archive ({what})"), e)
    }
}

impl<R: AsyncRead + Unpin> TarIn<R> {
    /// Reads from `reader`.
    pub fn new(reader: R) -> Self {
        TarIn {
            reader,
            remaining: 0,
            pad: 0,
        }
    }

    async fn block(&mut self) -> Result<[u8; 512]> {
        let mut block = [0u8; 512];
        self.reader
            .read_exact(&mut block)
            .await
            .map_err(|e| truncated("a header", e))?;
        Ok(block)
    }

    async fn skip_rest(&mut self) -> Result<()> {
        let mut left = self.remaining + self.pad as u64;
        let mut sink = [0u8; 4096];
        while left > 0 {
            let n = left.min(sink.len() as u64) as usize;
            self.reader
                .read_exact(&mut sink[..n])
                .await
                .map_err(|e| truncated("an entry", e))?;
            left -= n as u64;
        }
        self.remaining = 0;
        self.pad = 0;
        Ok(())
    }

    /// The next entry, or `None` at the end-of-archive blocks.
    ///
    /// # Errors
    ///
    /// [`backup_core::ErrorKind::Integrity`] on a truncated stream, a bad checksum or an
    /// entry type this crate never writes.
    pub async fn next(&mut self) -> Result<Option<EntryHead>> {
        self.skip_rest().await?;
        let mut long_name: Option<String> = None;
        loop {
            let block = self.block().await?;
            if block.iter().all(|b| *b == 0) {
                return Ok(None);
            }
            let header = tar::Header::from_byte_slice(&block);
            let stored = header
                .cksum()
                .map_err(|e| Error::integrity(format!("tar header checksum: {e}")))?;
            let computed: u32 = block
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        u32::from(*b)
                    }
                })
                .sum();
            if stored != computed {
                return Err(Error::integrity("a tar header's checksum does not match"));
            }
            let size = header
                .entry_size()
                .map_err(|e| Error::integrity(format!("tar entry size: {e}")))?;
            match header.entry_type() {
                tar::EntryType::GNULongName if size <= MAX_NAME => {
                    let mut name = vec![0u8; size as usize];
                    self.reader
                        .read_exact(&mut name)
                        .await
                        .map_err(|e| truncated("a long name", e))?;
                    self.remaining = 0;
                    self.pad = padding(size);
                    self.skip_rest().await?;
                    while name.last() == Some(&0) {
                        name.pop();
                    }
                    long_name = Some(String::from_utf8(name).map_err(|_| {
                        Error::integrity("a long name in the archive is not UTF-8")
                    })?);
                }
                tar::EntryType::Regular => {
                    let name = match long_name.take() {
                        Some(name) => name,
                        None => String::from_utf8(header.path_bytes().into_owned())
                            .map_err(|_| Error::integrity("a name in the archive is not UTF-8"))?,
                    };
                    self.remaining = size;
                    self.pad = padding(size);
                    return Ok(Some(EntryHead { name, size }));
                }
                other => {
                    return Err(Error::integrity(format!(
                        "unexpected tar entry type {other:?}: not an s3/tar archive"
                    )))
                }
            }
        }
    }

    /// Reads the next `n` bytes of the current entry into `buf` (appending).
    ///
    /// # Errors
    ///
    /// When fewer bytes are left in the entry or the stream ends.
    pub async fn read_into(&mut self, buf: &mut BytesMut, n: u64) -> Result<()> {
        if n > self.remaining {
            return Err(Error::integrity("read past the end of a tar entry"));
        }
        let start = buf.len();
        buf.resize(start + n as usize, 0);
        self.reader
            .read_exact(&mut buf[start..])
            .await
            .map_err(|e| truncated("an object's data", e))?;
        self.remaining -= n;
        Ok(())
    }

    /// Reads the rest of the current entry, at most `limit` bytes.
    ///
    /// # Errors
    ///
    /// When the entry is larger than `limit` or the stream ends.
    pub async fn read_small(&mut self, limit: u64) -> Result<Vec<u8>> {
        if self.remaining > limit {
            return Err(Error::integrity(format!(
                "an archive entry of {} bytes exceeds the limit of {limit}",
                self.remaining
            )));
        }
        let mut buf = BytesMut::new();
        let n = self.remaining;
        self.read_into(&mut buf, n).await?;
        Ok(buf.to_vec())
    }

    /// Checks nothing follows the end-of-archive block but zeros.
    ///
    /// # Errors
    ///
    /// When the second end block is missing.
    pub async fn finish(&mut self) -> Result<()> {
        let block = self.block().await?;
        if block.iter().any(|b| *b != 0) {
            return Err(Error::integrity("data after the end of the archive"));
        }
        Ok(())
    }
}
