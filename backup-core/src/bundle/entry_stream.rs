//! Streams one bundle entry: a thread reads the stored bytes, hashes and counts them,
//! decompresses if needed, and sends chunks through a bounded channel. The stream ends
//! with an integrity error item if the bytes do not match the manifest.

use std::io::{self, Read};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::crypto::{EntryDecryptor, ENCRYPTION_AGE};
use super::manifest::{Compression, ManifestEntry};
use super::manifest_read::TAMPERED_HINT;
use super::reader::{Location, DAMAGED_HINT};
use super::source::{BundleSource, SourceReader, SOURCE_READ_SIZE};
use crate::artifact::CHUNK_SIZE;
use crate::blocking_io::panicked;
use crate::{ByteStream, Error, ErrorKind, Result};

/// Chunks in flight between the reading thread and the consumer.
const CHANNEL_CAPACITY: usize = 4;

/// The largest zstd window (as a power of two) an entry may ask the decoder for: 128 MiB,
/// what `zstd -d` accepts by default and the largest window the writer's levels (1–22)
/// use. A frame asking for more is refused instead of allocating it.
pub(crate) const MAX_ZSTD_WINDOW_LOG: u32 = 27;

/// Starts the reading thread for `entry` and returns its stream.
pub(crate) fn spawn(
    file: Arc<dyn BundleSource>,
    entry: ManifestEntry,
    location: Location,
    decryptor: Option<Arc<EntryDecryptor>>,
) -> Result<ByteStream> {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CAPACITY);
    std::thread::Builder::new()
        .name("bundle-reader".into())
        .spawn(move || {
            // A panic must end the stream with an error too, never quietly.
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                produce(file, &entry, location, decryptor.as_deref(), &mut |chunk| {
                    tx.blocking_send(Ok(chunk)).is_ok()
                })
            }))
            .unwrap_or_else(|panic| Err(panicked("reading the bundle entry", panic.as_ref())));
            if let Err(err) = outcome {
                let _ = tx.blocking_send(Err(err.into_io()));
            }
        })
        .map_err(|e| {
            Error::new(
                ErrorKind::ResourceExhausted,
                format!("cannot start a thread to read the bundle: {e}"),
            )
        })?;
    Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })))
}

/// Counts, hashes and CRCs every byte read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    crc: crc32fast::Hasher,
    count: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.crc.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Reads the whole entry as [`spawn`] does, checking everything, and drops the bytes:
/// what [`BundleReader::verify`](super::BundleReader::verify) runs for a data entry.
pub(crate) fn check(
    file: Arc<dyn BundleSource>,
    entry: &ManifestEntry,
    location: Location,
    decryptor: Option<&EntryDecryptor>,
) -> Result<()> {
    produce(file, entry, location, decryptor, &mut |_| true)
}

/// Gives the entry's decompressed bytes to `send` (which says whether the consumer is
/// still there); `Ok` also when it went away. Checks the stored bytes' size, sha256 and
/// CRC-32, and that they decompress to exactly `uncompressedSize` bytes, never passing
/// on more.
fn produce(
    file: Arc<dyn BundleSource>,
    entry: &ManifestEntry,
    location: Location,
    decryptor: Option<&EntryDecryptor>,
    send: &mut dyn FnMut(Bytes) -> bool,
) -> Result<()> {
    let path = &entry.path;
    let reading = |e: io::Error| Error::io(format!("reading entry {path}"), e);
    // Stored bytes are read in windows of SOURCE_READ_SIZE, never past the entry.
    let mut stored = HashingReader {
        inner: SourceReader::span(file, location.offset, location.size, SOURCE_READ_SIZE),
        hasher: Sha256::new(),
        crc: crc32fast::Hasher::new(),
        count: 0,
    };
    let pumped = {
        // Decrypt (when encrypted), then decompress; a key that does not fit is reported
        // only once the stored bytes are known to be intact.
        let plain: Result<Box<dyn Read + '_>> = if entry.encryption == ENCRYPTION_AGE {
            match decryptor {
                Some(decryptor) => decryptor
                    .open(&mut stored, path)
                    .map(|r| Box::new(r) as Box<dyn Read + '_>),
                None => Err(super::crypto::missing_key(path)),
            }
        } else {
            Ok(Box::new(&mut stored))
        };
        match plain {
            Err(e) => Err(PumpError::Key(e)),
            Ok(mut plain) => match entry.compression {
                Compression::None => pump(&mut plain, send, entry.uncompressed_size),
                Compression::Zstd => {
                    let mut decoder =
                        zstd::stream::read::Decoder::new(&mut plain).map_err(reading)?;
                    decoder
                        .window_log_max(MAX_ZSTD_WINDOW_LOG)
                        .map_err(reading)?;
                    pump(&mut decoder, send, entry.uncompressed_size)
                }
            },
        }
    };
    if let Ok(Pumped::Dropped) = pumped {
        return Ok(());
    }
    // Bytes after the zstd frame, or not read because decompression failed, still belong
    // to the stored entry: damaged stored bytes are reported as such first.
    io::copy(&mut stored, &mut io::sink()).map_err(reading)?;
    let sha256 = hex::encode(stored.hasher.finalize());
    if stored.count != entry.size {
        return Err(Error::integrity(format!(
            "entry {path} is truncated: {} of {} bytes present",
            stored.count, entry.size
        ))
        .with_hint(DAMAGED_HINT));
    }
    if !sha256.eq_ignore_ascii_case(&entry.sha256) {
        return Err(Error::integrity(format!(
            "entry {path} is corrupt: its sha256 is {sha256}, the manifest says {}",
            entry.sha256
        ))
        .with_hint(DAMAGED_HINT));
    }
    let crc = stored.crc.finalize();
    if crc != location.crc32 {
        return Err(Error::integrity(format!(
            "entry {path}: its CRC-32 in the zip directory is {:08x} but its bytes have {crc:08x} (the zip structure is damaged)",
            location.crc32
        ))
        .with_hint(DAMAGED_HINT));
    }
    let uncompressed = match pumped {
        Ok(Pumped::Done(n)) => n,
        Ok(Pumped::Dropped) => return Ok(()),
        Err(PumpError::TooLarge) => {
            return Err(Error::integrity(format!(
                "entry {path} decompresses to more than the {} bytes the manifest says (uncompressedSize); stopped before passing the excess on",
                entry.uncompressed_size
            ))
            .with_hint(TAMPERED_HINT))
        }
        Err(PumpError::Key(e)) => return Err(e),
        Err(PumpError::Read(e)) => {
            let what = if entry.encryption == ENCRYPTION_AGE {
                "decrypt (age authentication failed) or decompress"
            } else {
                "decompress"
            };
            return Err(
                Error::integrity(format!("entry {path} does not {what}: {e}"))
                    .with_hint(TAMPERED_HINT),
            );
        }
    };
    if uncompressed != entry.uncompressed_size {
        return Err(Error::integrity(format!(
            "entry {path} decompresses to {uncompressed} bytes, the manifest says {}",
            entry.uncompressed_size
        ))
        .with_hint(TAMPERED_HINT));
    }
    Ok(())
}

/// How [`pump`] ended.
enum Pumped {
    /// End of input after this many bytes.
    Done(u64),
    /// The consumer dropped the stream.
    Dropped,
}

/// Why [`pump`] failed.
enum PumpError {
    /// Reading (or decompressing) failed.
    Read(io::Error),
    /// The output would exceed the limit; nothing past the limit was sent.
    TooLarge,
    /// The entry could not be decrypted (no key, wrong key, bad age header).
    Key(Error),
}

/// Copies `reader` to `send` in chunks, never sending more than `limit` bytes in all: a
/// chunk that would cross the limit fails the copy before it is sent, so a
/// decompression bomb delivers at most `limit` bytes.
fn pump(
    reader: &mut dyn Read,
    send: &mut dyn FnMut(Bytes) -> bool,
    limit: u64,
) -> std::result::Result<Pumped, PumpError> {
    let mut total: u64 = 0;
    loop {
        let mut buffer = BytesMut::zeroed(CHUNK_SIZE);
        let mut filled = 0;
        // Fill whole chunks: fewer, larger messages.
        while filled < buffer.len() {
            match reader.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(PumpError::Read(e)),
            }
        }
        if filled == 0 {
            return Ok(Pumped::Done(total));
        }
        total += filled as u64;
        if total > limit {
            return Err(PumpError::TooLarge);
        }
        buffer.truncate(filled);
        if !send(buffer.freeze()) {
            return Ok(Pumped::Dropped);
        }
    }
}
