//! The blocking side of [`BundleWriter`](super::BundleWriter): a dedicated thread owns the
//! synchronous `ZipWriter` and is fed chunks through a bounded channel, so the async side
//! gets backpressure and memory stays flat however large an artifact is.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use zip::write::{SimpleFileOptions, StreamWriter};
use zip::{CompressionMethod, ZipWriter};

use super::age_frame::{AgeWriter, Framer};
use super::crypto::EntryEncryptor;

/// Chunks in flight between the async side and the zip thread.
pub(crate) const CHANNEL_CAPACITY: usize = 4;

/// Buffer in front of the sink: coalesces headers and small chunks into large writes.
const SINK_BUFFER: usize = 256 * 1024;

/// What the async side asks the zip thread to do, in order.
pub(crate) enum Command {
    /// Starts an entry; chunks follow, then [`Command::End`].
    Begin {
        /// Entry path.
        path: String,
        /// Whether the entry may exceed 4 GiB (ZIP64 sizes).
        large_file: bool,
        /// zstd level when the entry is compressed.
        zstd_level: Option<i32>,
        /// Encrypts the (compressed) bytes as one age file.
        encrypt: Option<Arc<EntryEncryptor>>,
    },
    /// Raw (uncompressed) bytes of the current entry.
    Chunk(Bytes),
    /// Ends the current entry and replies with what was stored.
    End(oneshot::Sender<EntryStats>),
    /// Writes the central directory and makes the output durable.
    Finish,
}

/// What one entry stored.
#[derive(Debug, Clone)]
pub(crate) struct EntryStats {
    /// Stored bytes (after compression).
    pub(crate) stored_size: u64,
    /// sha256 of the stored bytes, lower-case hex.
    pub(crate) sha256: String,
    /// Bytes given before compression.
    pub(crate) uncompressed_size: u64,
}

/// Where the zip bytes go.
pub(crate) enum Output {
    /// A temporary file, fsynced at the end.
    File(File),
    /// Any writer (stdout, a pipe, an upload body); flushed at the end.
    Stream(Box<dyn Write + Send>),
}

/// The sink the `ZipWriter` writes to. Once `discard` is set (the bundle was abandoned),
/// every write is silently dropped: the `ZipWriter`'s drop-time finalisation then cannot
/// put a complete-looking archive into a pipe.
struct GuardedSink {
    inner: BufWriter<Output>,
    discard: Arc<AtomicBool>,
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::File(f) => f.write(buf),
            Output::Stream(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::File(f) => f.flush(),
            Output::Stream(w) => w.flush(),
        }
    }
}

impl Write for GuardedSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.discard.load(Ordering::Acquire) {
            return Ok(buf.len());
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.discard.load(Ordering::Acquire) {
            return Ok(());
        }
        self.inner.flush()
    }
}

impl GuardedSink {
    /// Flushes everything and, for a file, fsyncs it.
    fn complete(self) -> io::Result<()> {
        let output = self.inner.into_inner().map_err(|e| e.into_error())?;
        match output {
            Output::File(file) => file.sync_all(),
            Output::Stream(mut w) => w.flush(),
        }
    }
}

/// Counts and hashes every byte written through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Starts the zip thread. Returns the command channel and a receiver that yields the
/// thread's outcome when it stops (an error explains why a send failed).
pub(crate) fn spawn(
    output: Output,
    discard: Arc<AtomicBool>,
) -> io::Result<(mpsc::Sender<Command>, oneshot::Receiver<io::Result<()>>)> {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (done_tx, done_rx) = oneshot::channel();
    let sink = GuardedSink {
        inner: BufWriter::with_capacity(SINK_BUFFER, output),
        discard: Arc::clone(&discard),
    };
    std::thread::Builder::new()
        .name("bundle-writer".into())
        .spawn(move || {
            let outcome = run(rx, sink, &discard);
            let _ = done_tx.send(outcome);
        })?;
    Ok((tx, done_rx))
}

fn run(mut rx: mpsc::Receiver<Command>, sink: GuardedSink, discard: &AtomicBool) -> io::Result<()> {
    let mut zip = ZipWriter::new_stream(sink);
    match write_entries(&mut zip, &mut rx) {
        Ok(()) => {
            let sink = zip.finish().map_err(io::Error::other)?.into_inner();
            sink.complete()
        }
        Err(e) => {
            // Dropping a `ZipWriter` writes a central directory: make sure a failed bundle
            // never ends as a well-formed zip.
            discard.store(true, Ordering::Release);
            drop(zip);
            Err(e)
        }
    }
}

/// Writes entries until [`Command::Finish`].
fn write_entries(
    zip: &mut ZipWriter<StreamWriter<GuardedSink>>,
    rx: &mut mpsc::Receiver<Command>,
) -> io::Result<()> {
    let base = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .unix_permissions(0o644)
        .last_modified_time(now_dos());
    loop {
        let Some(command) = rx.blocking_recv() else {
            return Err(io::Error::other("the bundle was abandoned"));
        };
        match command {
            Command::Begin {
                path,
                large_file,
                zstd_level,
                encrypt,
            } => {
                zip.start_file(path, base.large_file(large_file))
                    .map_err(io::Error::other)?;
                write_entry(zip, rx, zstd_level, encrypt.as_deref())?;
            }
            Command::Finish => return Ok(()),
            Command::Chunk(_) | Command::End(_) => {
                return Err(io::Error::other(
                    "bundle writer protocol error: data outside an entry",
                ));
            }
        }
    }
}

/// Writes the chunks of one entry, through zstd and then age when asked, hashing the
/// stored bytes. zstd runs on its own (scoped) thread, pipelined with encryption and
/// hashing (on a thread of their own when both run) and writing on this one.
fn write_entry(
    zip: &mut ZipWriter<StreamWriter<GuardedSink>>,
    rx: &mut mpsc::Receiver<Command>,
    zstd_level: Option<i32>,
    encrypt: Option<&EntryEncryptor>,
) -> io::Result<()> {
    let hashing = HashingWriter {
        inner: zip,
        hasher: Sha256::new(),
        count: 0,
    };
    // Compressed entries are compressed and encrypted on the pipelined thread.
    let mut body = match (encrypt, zstd_level) {
        (Some(age), None) => Body::Age(Box::new(age.wrap(hashing)?)),
        _ => Body::Plain(hashing),
    };
    let (uncompressed, reply) = match zstd_level {
        None => receive_entry(rx, &mut |chunk| body.write_all(chunk))?,
        Some(level) => compress_pipelined(rx, level, encrypt, &mut body)?,
    };
    let hashing = body.finish()?;
    let stats = EntryStats {
        stored_size: hashing.count,
        sha256: hex::encode(hashing.hasher.finalize()),
        uncompressed_size: uncompressed,
    };
    // The async side may have gone away meanwhile; the next receive notices.
    let _ = reply.send(stats);
    Ok(())
}

/// Gives each chunk of the current entry to `write` until [`Command::End`]; returns the
/// bytes received and the reply channel.
fn receive_entry(
    rx: &mut mpsc::Receiver<Command>,
    write: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<(u64, oneshot::Sender<EntryStats>)> {
    let mut received: u64 = 0;
    loop {
        match rx.blocking_recv() {
            Some(Command::Chunk(chunk)) => {
                received += chunk.len() as u64;
                write(&chunk)?;
            }
            Some(Command::End(reply)) => return Ok((received, reply)),
            Some(Command::Begin { .. } | Command::Finish) => {
                return Err(io::Error::other(
                    "bundle writer protocol error: entry not ended",
                ));
            }
            None => return Err(io::Error::other("the bundle was abandoned")),
        }
    }
}

/// Batches in flight between two pipeline stages.
const COMPRESSED_IN_FLIGHT: usize = 8;

/// What a stage collects before handing it on: one hand-over per batch, not per write
/// (zstd and age write in 64–128 KiB pieces; each hand-over wakes a thread).
const BATCH: usize = 512 * 1024;

/// Sends what a stage writes to the next one in batches; fails once it has gone.
/// [`ChunkSender::finish`] sends the last batch: a sender dropped without it loses
/// what it holds, which only happens on a failure the entry reports anyway.
struct ChunkSender {
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
    stop: Arc<AtomicBool>,
    layout: Layout,
}

/// How a [`ChunkSender`] collects what is written.
enum Layout {
    /// Bytes as written, handed on every [`BATCH`] bytes.
    Plain(Vec<u8>),
    /// Laid out as age frames, for the encrypting stage to seal in place.
    Framed(Framer),
}

/// Hands `batch` to the next stage, unless it has gone or the entry stopped.
fn send(
    tx: &std::sync::mpsc::SyncSender<Vec<u8>>,
    stop: &AtomicBool,
    batch: Vec<u8>,
) -> io::Result<()> {
    if stop.load(Ordering::Acquire) || tx.send(batch).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "the bundle writer stopped",
        ));
    }
    Ok(())
}

impl ChunkSender {
    /// Sends the plain bytes collected so far, if any.
    fn send_batch(&mut self) -> io::Result<()> {
        let Layout::Plain(batch) = &mut self.layout else {
            return Ok(());
        };
        if batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(batch, Vec::with_capacity(BATCH));
        send(&self.tx, &self.stop, batch)
    }

    /// Sends `batch` as it is, after anything written before.
    fn send_whole(&mut self, batch: Vec<u8>) -> io::Result<()> {
        self.send_batch()?;
        send(&self.tx, &self.stop, batch)
    }

    /// Sends what is left.
    fn finish(self) -> io::Result<()> {
        match self.layout {
            Layout::Framed(framer) => send(&self.tx, &self.stop, framer.finish()),
            Layout::Plain(batch) if batch.is_empty() => Ok(()),
            Layout::Plain(batch) => send(&self.tx, &self.stop, batch),
        }
    }
}

impl Write for ChunkSender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.layout {
            Layout::Framed(framer) => {
                let (tx, stop) = (&self.tx, &self.stop);
                framer.write(buf, &mut |batch| send(tx, stop, batch))?;
            }
            Layout::Plain(batch) => {
                batch.extend_from_slice(buf);
                if batch.len() >= BATCH {
                    self.send_batch()?;
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Receives the entry on a scoped thread that zstd-compresses it and, when asked, a second
/// one that age-encrypts what zstd wrote, while this thread hashes and writes the stored
/// bytes into `body`. zstd writes its output as age frames, which the encrypting stage
/// seals in place (no copy), hashes and hands on, so this thread only writes: two busy
/// stages of about equal cost, which two cores run side by side.
fn compress_pipelined<W: Write>(
    rx: &mut mpsc::Receiver<Command>,
    level: i32,
    encrypt: Option<&EntryEncryptor>,
    body: &mut Body<W>,
) -> io::Result<(u64, oneshot::Sender<EntryStats>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let framer = encrypt.map(|_| Framer::new(BATCH));
    let (compressed_tx, compressed) = chunk_channel(&stop, framer);
    std::thread::scope(|scope| {
        let compressor = std::thread::Builder::new()
            .name("bundle-zstd".into())
            .spawn_scoped(scope, move || {
                let mut encoder = zstd::stream::write::Encoder::new(compressed_tx, level)?;
                let received = receive_entry(rx, &mut |chunk| encoder.write_all(chunk))?;
                encoder.finish()?.finish()?;
                Ok::<_, io::Error>(received)
            })?;
        let (stored, encrypter) = match encrypt {
            None => (compressed, None),
            Some(age) => {
                let (mut encrypted_tx, encrypted) = chunk_channel(&stop, None);
                let encrypter = std::thread::Builder::new()
                    .name("bundle-age".into())
                    .spawn_scoped(scope, move || {
                        let (mut hasher, mut count) = (Sha256::new(), 0u64);
                        age.encrypt_batches(&compressed, &mut |sealed| {
                            hasher.update(&sealed);
                            count += sealed.len() as u64;
                            encrypted_tx.send_whole(sealed)
                        })?;
                        Ok::<_, io::Error>((hasher, count))
                    })?;
                (encrypted, Some(encrypter))
            }
        };
        let hashed_before = encrypter.is_some();
        let mut written = Ok(());
        for chunk in &stored {
            if let Err(e) = body.write_stored(&chunk, hashed_before) {
                written = Err(e);
                stop.store(true, Ordering::Release);
                break;
            }
        }
        drop(stored);
        let encrypted = match encrypter {
            Some(handle) => handle
                .join()
                .map_err(|_| io::Error::other("the bundle encryption thread panicked"))?
                .map(Some),
            None => Ok(None),
        };
        let received = compressor
            .join()
            .map_err(|_| io::Error::other("the bundle compression thread panicked"))?;
        // The first stage to fail names the cause; the stages after it only saw a pipe
        // close (the compressor's error comes last: when it stops early, the encrypter
        // ends its file normally and only the compressor knows why).
        written?;
        if let Some((hasher, count)) = encrypted? {
            body.adopt_digest(hasher, count);
        }
        received
    })
}

/// A bounded channel of stored chunks between two pipeline stages (laid out by `framer`
/// when given); its sender fails once the receiving stage has gone or `stop` is set.
fn chunk_channel(
    stop: &Arc<AtomicBool>,
    framer: Option<Framer>,
) -> (ChunkSender, std::sync::mpsc::Receiver<Vec<u8>>) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(COMPRESSED_IN_FLIGHT);
    let layout = match framer {
        Some(framer) => Layout::Framed(framer),
        None => Layout::Plain(Vec::with_capacity(BATCH)),
    };
    let sender = ChunkSender {
        tx,
        stop: Arc::clone(stop),
        layout,
    };
    (sender, rx)
}

enum Body<W: Write> {
    Plain(HashingWriter<W>),
    /// An age file being written over the hashing writer (boxed: ring's key is large).
    Age(Box<AgeWriter<HashingWriter<W>>>),
}

impl<W: Write> Body<W> {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Body::Plain(w) => w.write_all(buf),
            Body::Age(w) => w.write_all(buf),
        }
    }

    /// Writes stored bytes; `hashed_before` when the stage that produced them hashed them
    /// already (see [`Body::adopt_digest`]).
    fn write_stored(&mut self, buf: &[u8], hashed_before: bool) -> io::Result<()> {
        match self {
            Body::Plain(w) if hashed_before => w.inner.write_all(buf),
            _ => self.write_all(buf),
        }
    }

    /// Takes the count and digest of the stored bytes from the stage that hashed them.
    fn adopt_digest(&mut self, hasher: Sha256, count: u64) {
        if let Body::Plain(w) = self {
            w.hasher = hasher;
            w.count = count;
        }
    }

    fn finish(self) -> io::Result<HashingWriter<W>> {
        match self {
            Body::Plain(w) => Ok(w),
            Body::Age(w) => w.finish(),
        }
    }
}

/// The current UTC time as a zip (DOS) timestamp; 1980-01-01 if out of range.
fn now_dos() -> zip::DateTime {
    let now = time::OffsetDateTime::now_utc();
    u16::try_from(now.year())
        .ok()
        .and_then(|year| {
            zip::DateTime::from_date_and_time(
                year,
                u8::from(now.month()),
                now.day(),
                now.hour(),
                now.minute(),
                now.second(),
            )
            .ok()
        })
        .unwrap_or_default()
}
