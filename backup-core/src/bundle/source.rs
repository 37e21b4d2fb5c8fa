//! [`BundleSource`]: where a [`BundleReader`](super::BundleReader) reads a bundle's bytes
//! from — a local file, memory, or (in another crate) object storage with ranged reads.
//!
//! Every read the reader makes goes through [`BundleSource::read_at`], in large pieces:
//! exact ranges for spans it knows (an entry's stored bytes are read in chunks of
//! [`SOURCE_READ_SIZE`]), a buffered window of that size for the zip structure. Each call
//! may be one HTTP range request, so opening and verifying a bundle issues a number of
//! calls bounded by its entries and its size in MiB, not by its bytes.

use std::fmt::Debug;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The size of each read a [`BundleReader`](super::BundleReader) asks a source for
/// (1 MiB), unless the span it needs is smaller.
pub const SOURCE_READ_SIZE: usize = 1024 * 1024;

/// Random-access, blocking reads of one bundle's bytes.
///
/// The reader calls it only from blocking threads (`spawn_blocking` or its own reading
/// threads), never from an async task, so an implementation over an async client may use
/// `tokio::runtime::Handle::block_on` inside `read_at`. It must never be called from an
/// async context.
pub trait BundleSource: Send + Sync + Debug + 'static {
    /// The length of the bundle in bytes.
    fn len(&self) -> u64;

    /// Whether the bundle has no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads bytes starting at `offset` into `buf`; returns how many were read, `0` only
    /// at or past the end. May read fewer than `buf.len()` bytes (the reader then asks
    /// again for the rest).
    ///
    /// # Errors
    ///
    /// The I/O error, with its kind, when the bytes cannot be read.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// What the bundle is, for messages (a path, an object URL); never a secret.
    fn describe(&self) -> String;

    /// The local file this source reads, if it is one.
    fn local_path(&self) -> Option<&Path> {
        None
    }
}

/// A bundle in a local file.
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    file: File,
    len: u64,
}

impl FileSource {
    /// Opens the file at `path` and takes its length.
    ///
    /// # Errors
    ///
    /// The I/O error if the file cannot be opened or its length read.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            len,
        })
    }
}

impl BundleSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_at(&self.file, buf, offset)
        }
        #[cfg(windows)]
        {
            std::os::windows::fs::FileExt::seek_read(&self.file, buf, offset)
        }
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn local_path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

/// A bundle held in memory (tests, small bundles already downloaded).
#[derive(Debug, Clone)]
pub struct MemorySource {
    name: String,
    bytes: Arc<[u8]>,
}

impl MemorySource {
    /// A source over `bytes`, named `name` in messages.
    pub fn new(name: impl Into<String>, bytes: impl Into<Arc<[u8]>>) -> Self {
        Self {
            name: name.into(),
            bytes: bytes.into(),
        }
    }
}

impl BundleSource for MemorySource {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        let Some(rest) = self.bytes.get(start..) else {
            return Ok(0);
        };
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// Fills `buf` from `offset`, asking again after short reads; how many bytes were read
/// (fewer only at the end of the source).
pub(crate) fn read_full(
    source: &dyn BundleSource,
    offset: u64,
    buf: &mut [u8],
) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read_at(offset + filled as u64, &mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n.min(buf.len() - filled),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// [`Read`] + [`Seek`] over a span of a source, through a buffer: each miss reads one
/// window of up to the buffer's size (never past the span). Seeking costs nothing.
#[derive(Debug)]
pub(crate) struct SourceReader {
    source: Arc<dyn BundleSource>,
    /// First byte of the span.
    start: u64,
    /// First byte after the span.
    end: u64,
    /// Current position (absolute).
    pos: u64,
    buffer: Vec<u8>,
    /// Absolute offset of `buffer[0]`.
    buffer_start: u64,
    capacity: usize,
    /// On a miss near the end, read the last window of the span instead of the bytes from
    /// the position on (zip readers read the end of the file backwards).
    tail_windows: bool,
}

impl SourceReader {
    /// The whole source, reading windows of `capacity`; tail windows for a zip reader.
    pub(crate) fn whole(
        source: Arc<dyn BundleSource>,
        capacity: usize,
        tail_windows: bool,
    ) -> Self {
        let end = source.len();
        let mut reader = Self::span(source, 0, end, capacity);
        reader.tail_windows = tail_windows;
        reader
    }

    /// Bytes `offset..offset + size` of the source (clamped to its length), positioned at
    /// `offset`.
    pub(crate) fn span(
        source: Arc<dyn BundleSource>,
        offset: u64,
        size: u64,
        capacity: usize,
    ) -> Self {
        let len = source.len();
        let start = offset.min(len);
        let end = offset.saturating_add(size).min(len);
        Self {
            source,
            start,
            end,
            pos: start,
            buffer: Vec::new(),
            buffer_start: start,
            capacity: capacity.max(1),
            tail_windows: false,
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut window_start = self.pos;
        if self.tail_windows && self.pos + self.capacity as u64 > self.end {
            window_start = self
                .end
                .saturating_sub(self.capacity as u64)
                .max(self.start);
        }
        let want = usize::try_from(self.end - window_start)
            .unwrap_or(usize::MAX)
            .min(self.capacity);
        self.buffer.resize(want, 0);
        let got = read_full(self.source.as_ref(), window_start, &mut self.buffer)?;
        self.buffer.truncate(got);
        self.buffer_start = window_start;
        Ok(())
    }
}

impl Read for SourceReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.end || self.pos < self.start || buf.is_empty() {
            return Ok(0);
        }
        let buffered_end = self.buffer_start + self.buffer.len() as u64;
        if self.pos < self.buffer_start || self.pos >= buffered_end {
            // A read at least a window long at the position skips the buffer.
            let remaining = self.end - self.pos;
            if !self.tail_windows && buf.len() >= self.capacity {
                let want = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                let n = read_full(self.source.as_ref(), self.pos, &mut buf[..want])?;
                self.pos += n as u64;
                return Ok(n);
            }
            self.fill()?;
            let buffered_end = self.buffer_start + self.buffer.len() as u64;
            if self.pos < self.buffer_start || self.pos >= buffered_end {
                // The source ended early.
                return Ok(0);
            }
        }
        let at = (self.pos - self.buffer_start) as usize;
        let available = &self.buffer[at..];
        let limit = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let n = available.len().min(buf.len()).min(limit);
        buf[..n].copy_from_slice(&available[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SourceReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.end.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(n) => {
                self.pos = n;
                Ok(n)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )),
        }
    }
}
