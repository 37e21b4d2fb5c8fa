//! The framed binary format of a logical export (see the crate docs for the layout).

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

use backup_core::{Error, ErrorKind, Result};

/// First 8 bytes of every logical export.
pub(crate) const MAGIC: &[u8; 8] = b"RDSLOGI\n";
/// The format version this build writes and reads.
pub(crate) const VERSION: u32 = 1;
/// Tag of a "select database" record.
pub(crate) const TAG_DB: u8 = b'D';
/// Tag of a key record.
pub(crate) const TAG_KEY: u8 = b'K';
/// Tag of the end record.
pub(crate) const TAG_END: u8 = b'E';
/// Longest key accepted (Redis' own limit).
const MAX_KEY: u32 = 512 * 1024 * 1024;

/// Magic and version.
pub(crate) fn header() -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&VERSION.to_be_bytes());
    out
}

/// A database marker: the key records that follow belong to database `db`.
pub(crate) fn db_record(db: u32) -> [u8; 5] {
    let mut out = [TAG_DB, 0, 0, 0, 0];
    out[1..].copy_from_slice(&db.to_be_bytes());
    out
}

/// Everything of a key record before its payload bytes.
pub(crate) fn key_record_head(key: &[u8], expire_at_ms: i64, payload_len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 21);
    out.push(TAG_KEY);
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&expire_at_ms.to_be_bytes());
    out.extend_from_slice(&payload_len.to_be_bytes());
    out
}

/// The end record's tag and count (covered by the CRC that follows them).
pub(crate) fn end_record_head(records: u64) -> [u8; 9] {
    let mut out = [TAG_END, 0, 0, 0, 0, 0, 0, 0, 0];
    out[1..].copy_from_slice(&records.to_be_bytes());
    out
}

/// One record read from a logical export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Following keys go to this database.
    Db(u32),
    /// A key; its `payload_len` payload bytes follow and must be read with
    /// [`FrameReader::payload_chunk`] / [`FrameReader::consume`].
    Key {
        key: Vec<u8>,
        expire_at_ms: i64,
        payload_len: u64,
    },
    /// The verified end: every byte was read, the count and checksum matched.
    End { records: u64 },
}

fn truncated() -> Error {
    Error::integrity("the redis logical export is truncated: it ends before its end record")
        .with_hint("the export is incomplete: use an intact export")
}

/// Reads and verifies the frames of a logical export from a byte source.
#[derive(Debug)]
pub(crate) struct FrameReader<R> {
    inner: BufReader<R>,
    crc: crc32fast::Hasher,
    records: u64,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps `source`.
    pub(crate) fn new(source: R) -> Self {
        FrameReader {
            inner: BufReader::with_capacity(backup_core::artifact::CHUNK_SIZE, source),
            crc: crc32fast::Hasher::new(),
            records: 0,
        }
    }

    async fn exact<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.read_into(&mut buf).await?;
        Ok(buf)
    }

    async fn read_into(&mut self, buf: &mut [u8]) -> Result<()> {
        self.inner.read_exact(buf).await.map_err(map_source_error)?;
        self.crc.update(buf);
        Ok(())
    }

    /// Reads and checks magic and version.
    pub(crate) async fn read_header(&mut self) -> Result<()> {
        let magic: [u8; 8] = self.exact().await?;
        if &magic != MAGIC {
            return Err(Error::integrity(
                "this is not a redis logical export (wrong magic bytes)",
            ));
        }
        let version = u32::from_be_bytes(self.exact().await?);
        if version != VERSION {
            return Err(Error::new(
                ErrorKind::UnsupportedVersion,
                format!("redis logical export version {version} is not supported (this build reads version {VERSION})"),
            )
            .with_hint("import it with a newer version of this library"));
        }
        Ok(())
    }

    /// Reads the next record header. For [`Frame::Key`] the caller must consume exactly
    /// `payload_len` bytes before calling again.
    pub(crate) async fn next_frame(&mut self) -> Result<Frame> {
        let [tag] = self.exact::<1>().await?;
        match tag {
            TAG_DB => Ok(Frame::Db(u32::from_be_bytes(self.exact().await?))),
            TAG_KEY => {
                let key_len = u32::from_be_bytes(self.exact().await?);
                if key_len > MAX_KEY {
                    return Err(Error::integrity(
                        "the redis logical export is corrupt: a key length is impossible",
                    ));
                }
                let mut key = vec![0u8; key_len as usize];
                self.read_into(&mut key).await?;
                let expire_at_ms = i64::from_be_bytes(self.exact().await?);
                let payload_len = u64::from_be_bytes(self.exact().await?);
                self.records += 1;
                Ok(Frame::Key {
                    key,
                    expire_at_ms,
                    payload_len,
                })
            }
            TAG_END => {
                let records = u64::from_be_bytes(self.exact().await?);
                let expected = self.crc.clone().finalize();
                let mut crc = [0u8; 4];
                self.inner
                    .read_exact(&mut crc)
                    .await
                    .map_err(map_source_error)?;
                if u32::from_be_bytes(crc) != expected {
                    return Err(Error::integrity(
                        "the redis logical export is corrupt: its checksum does not match",
                    )
                    .with_hint("use an intact export"));
                }
                if records != self.records {
                    return Err(Error::integrity(format!(
                        "the redis logical export is corrupt: it promises {records} keys but holds {}",
                        self.records
                    )));
                }
                let mut rest = [0u8; 1];
                let n = self.inner.read(&mut rest).await.map_err(map_source_error)?;
                if n != 0 {
                    return Err(Error::integrity(
                        "the redis logical export has bytes after its end record",
                    ));
                }
                Ok(Frame::End { records })
            }
            _ => Err(Error::integrity(
                "the redis logical export is corrupt: unknown record type",
            )),
        }
    }

    /// Up to `max` payload bytes, without consuming them. Empty never happens: a source
    /// that ends here is a truncation error.
    pub(crate) async fn payload_chunk(&mut self, max: usize) -> Result<&[u8]> {
        let buf = self.inner.fill_buf().await.map_err(map_source_error)?;
        if buf.is_empty() {
            return Err(truncated());
        }
        let n = buf.len().min(max);
        Ok(&buf[..n])
    }

    /// Marks `n` bytes of the last [`payload_chunk`](Self::payload_chunk) as read.
    pub(crate) fn consume(&mut self, n: usize) {
        self.crc.update(&self.inner.buffer()[..n]);
        self.inner.consume(n);
    }
}

fn map_source_error(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        truncated()
    } else {
        Error::io("reading the redis logical export", e)
    }
}
