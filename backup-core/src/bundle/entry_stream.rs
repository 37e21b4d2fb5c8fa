//! Streams one bundle entry: a thread reads the stored bytes, hashes and counts them,
//! decompresses if needed, and sends chunks through a bounded channel. The stream ends
//! with an integrity error item if the bytes do not match the manifest.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::manifest::{Compression, ManifestEntry};
use super::reader::{Location, DAMAGED_HINT};
use crate::artifact::CHUNK_SIZE;
use crate::blocking_io::panicked;
use crate::{ByteStream, Error, ErrorKind, Result};

/// Chunks in flight between the reading thread and the consumer.
const CHANNEL_CAPACITY: usize = 4;

/// Starts the reading thread for `entry` and returns its stream.
pub(crate) fn spawn(file: PathBuf, entry: ManifestEntry, location: Location) -> Result<ByteStream> {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CAPACITY);
    std::thread::Builder::new()
        .name("bundle-reader".into())
        .spawn(move || {
            // A panic must end the stream with an error too, never quietly.
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                produce(&file, &entry, location, &tx)
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

/// Counts and hashes every byte read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Sends the entry's bytes; `Ok` also when the consumer went away.
fn produce(
    file: &PathBuf,
    entry: &ManifestEntry,
    location: Location,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> Result<()> {
    let path = &entry.path;
    let reading = |e: io::Error| Error::io(format!("reading entry {path}"), e);
    let mut handle = File::open(file).map_err(reading)?;
    handle
        .seek(SeekFrom::Start(location.offset))
        .map_err(reading)?;
    let mut stored = HashingReader {
        inner: handle.take(location.size),
        hasher: Sha256::new(),
        count: 0,
    };
    let uncompressed = match entry.compression {
        Compression::None => match pump(&mut stored, tx).map_err(reading)? {
            Some(n) => n,
            None => return Ok(()),
        },
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::new(&mut stored).map_err(reading)?;
            let pumped = pump(&mut decoder, tx).map_err(|e| {
                // A damaged zstd stream usually shows here first; the hash check below
                // would have caught it too.
                Error::integrity(format!("entry {path} does not decompress: {e}"))
                    .with_hint(DAMAGED_HINT)
            })?;
            let Some(n) = pumped else { return Ok(()) };
            drop(decoder);
            // Bytes after the zstd frame still belong to the stored entry and its hash.
            io::copy(&mut stored, &mut io::sink()).map_err(reading)?;
            n
        }
    };

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
    if uncompressed != entry.uncompressed_size {
        return Err(Error::integrity(format!(
            "entry {path} decompresses to {uncompressed} bytes, the manifest says {}",
            entry.uncompressed_size
        ))
        .with_hint(DAMAGED_HINT));
    }
    Ok(())
}

/// Copies `reader` into the channel in chunks; `Some(bytes sent)` at end of input,
/// `None` if the consumer dropped the stream.
fn pump(reader: &mut impl Read, tx: &mpsc::Sender<io::Result<Bytes>>) -> io::Result<Option<u64>> {
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
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(Some(total));
        }
        buffer.truncate(filled);
        total += filled as u64;
        if tx.blocking_send(Ok(buffer.freeze())).is_err() {
            return Ok(None);
        }
    }
}
