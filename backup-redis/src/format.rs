//! The framed binary format of a logical export (see the crate docs for the layout).

use std::collections::BTreeSet;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

use backup_core::{Error, ErrorKind, Result};

/// First 8 bytes of every logical export.
pub(crate) const MAGIC: &[u8; 8] = b"RDSLOGI\n";
/// The format version this build writes.
pub(crate) const VERSION: u32 = 2;
/// The oldest format version this build reads (version 1 has no functions record).
pub(crate) const OLDEST_VERSION: u32 = 1;
/// First version with a functions record.
const FUNCTIONS_VERSION: u32 = 2;
/// Tag of the functions record (`FUNCTION DUMP` payload), version 2 and later.
pub(crate) const TAG_FUNCTIONS: u8 = b'F';
/// Tag of a "select database" record.
pub(crate) const TAG_DB: u8 = b'D';
/// Tag of a key record.
pub(crate) const TAG_KEY: u8 = b'K';
/// Tag of the end record.
pub(crate) const TAG_END: u8 = b'E';
/// Longest key accepted (Redis' own limit). The key is read as it arrives, so a
/// length field alone never makes the reader allocate this much.
const MAX_KEY: u32 = 512 * 1024 * 1024;
/// Most distinct databases one export may name (Redis servers have 16 by default).
pub(crate) const MAX_DATABASES: usize = 65_536;
/// How much of a key is allocated ahead of the bytes that arrive.
const KEY_READ_STEP: u64 = 64 * 1024;

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

/// The functions record before its payload bytes (the `FUNCTION DUMP` payload).
pub(crate) fn functions_record_head(payload_len: u64) -> [u8; 9] {
    let mut out = [TAG_FUNCTIONS, 0, 0, 0, 0, 0, 0, 0, 0];
    out[1..].copy_from_slice(&payload_len.to_be_bytes());
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
    /// The server's function libraries: a `FUNCTION DUMP` payload of `payload_len` bytes
    /// follows (read it like a key's payload). At most once, before any database.
    Functions { payload_len: u64 },
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
    version: u32,
    functions_seen: bool,
    databases: BTreeSet<u32>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps `source`.
    pub(crate) fn new(source: R) -> Self {
        FrameReader {
            inner: BufReader::with_capacity(backup_core::artifact::CHUNK_SIZE, source),
            crc: crc32fast::Hasher::new(),
            records: 0,
            version: 0,
            functions_seen: false,
            databases: BTreeSet::new(),
        }
    }

    /// The databases named by the database records read so far: after
    /// [`Frame::End`], every database the export holds (also those it holds empty).
    pub(crate) fn databases(&self) -> &BTreeSet<u32> {
        &self.databases
    }

    /// Reads the whole rest of the export, skipping payloads, and returns at the verified
    /// end: the way to check an export completely before anything is changed.
    pub(crate) async fn verify_to_end(&mut self) -> Result<u64> {
        loop {
            match self.next_frame().await? {
                Frame::Functions { payload_len } | Frame::Key { payload_len, .. } => {
                    self.skip_payload(payload_len).await?;
                }
                Frame::Db(_) => {}
                Frame::End { records } => return Ok(records),
            }
        }
    }

    /// Consumes `len` payload bytes (they still count for the checksum).
    pub(crate) async fn skip_payload(&mut self, mut len: u64) -> Result<()> {
        while len > 0 {
            let want = len.min(backup_core::artifact::CHUNK_SIZE as u64) as usize;
            let n = self.payload_chunk(want).await?.len();
            self.consume(n);
            len -= n as u64;
        }
        Ok(())
    }

    /// Reads a key of `len` bytes, allocating only as its bytes arrive.
    async fn read_key(&mut self, len: u32) -> Result<Vec<u8>> {
        let len = u64::from(len);
        let mut key = Vec::new();
        while (key.len() as u64) < len {
            let step = (len - key.len() as u64).min(KEY_READ_STEP);
            let before = key.len();
            let n = (&mut self.inner)
                .take(step)
                .read_to_end(&mut key)
                .await
                .map_err(map_source_error)?;
            if n == 0 {
                return Err(truncated());
            }
            self.crc.update(&key[before..]);
        }
        Ok(key)
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
        if !(OLDEST_VERSION..=VERSION).contains(&version) {
            return Err(Error::new(
                ErrorKind::UnsupportedVersion,
                format!("redis logical export version {version} is not supported (this build reads versions {OLDEST_VERSION} to {VERSION})"),
            )
            .with_hint("import it with a newer version of this library"));
        }
        self.version = version;
        Ok(())
    }

    /// Reads the next record header. For [`Frame::Key`] the caller must consume exactly
    /// `payload_len` bytes before calling again.
    pub(crate) async fn next_frame(&mut self) -> Result<Frame> {
        if self.version == 0 {
            return Err(Error::integrity(
                "the redis logical export header was not read (a bug)",
            ));
        }
        let [tag] = self.exact::<1>().await?;
        match tag {
            TAG_FUNCTIONS => {
                if self.version < FUNCTIONS_VERSION
                    || self.functions_seen
                    || !self.databases.is_empty()
                {
                    return Err(Error::integrity(
                        "the redis logical export is corrupt: a functions record is out of place",
                    ));
                }
                self.functions_seen = true;
                let payload_len = u64::from_be_bytes(self.exact().await?);
                Ok(Frame::Functions { payload_len })
            }
            TAG_DB => {
                let db = u32::from_be_bytes(self.exact().await?);
                if self.databases.len() >= MAX_DATABASES && !self.databases.contains(&db) {
                    return Err(Error::integrity(format!(
                        "the redis logical export is corrupt: it names more than {MAX_DATABASES} databases"
                    )));
                }
                self.databases.insert(db);
                Ok(Frame::Db(db))
            }
            TAG_KEY => {
                if self.databases.is_empty() {
                    return Err(Error::integrity(
                        "the redis logical export is corrupt: a key comes before any database marker",
                    ));
                }
                let key_len = u32::from_be_bytes(self.exact().await?);
                if key_len > MAX_KEY {
                    return Err(Error::integrity(
                        "the redis logical export is corrupt: a key length is impossible",
                    ));
                }
                let key = self.read_key(key_len).await?;
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
