//! Turns bytes produced by an export task into a bounded [`ByteStream`].

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use backup_core::artifact::{ByteStream, CHUNK_SIZE};
use backup_core::{Error, ErrorKind, Result};

/// How many finished chunks may wait for the consumer: memory stays at a few MiB.
const QUEUED_CHUNKS: usize = 4;

/// Collects written bytes into chunks of at most [`CHUNK_SIZE`] and hands them to the
/// consumer of the paired stream, waiting when it is slow.
#[derive(Debug)]
pub(crate) struct ChunkSink {
    buf: BytesMut,
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    crc: crc32fast::Hasher,
    total: u64,
}

/// A sink and the stream its chunks come out of.
pub(crate) fn channel() -> (ChunkSink, ByteStream) {
    let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
    let sink = ChunkSink {
        buf: BytesMut::with_capacity(CHUNK_SIZE),
        tx,
        crc: crc32fast::Hasher::new(),
        total: 0,
    };
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (sink, Box::pin(stream))
}

impl ChunkSink {
    /// Appends bytes, sending each full chunk.
    pub(crate) async fn write(&mut self, mut data: &[u8]) -> Result<()> {
        self.crc.update(data);
        self.total += data.len() as u64;
        while !data.is_empty() {
            let room = CHUNK_SIZE - self.buf.len();
            let n = room.min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() >= CHUNK_SIZE {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Sends what is buffered as one chunk.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.buf.reserve(CHUNK_SIZE);
        self.tx.send(Ok(chunk)).await.map_err(|_| {
            Error::new(
                ErrorKind::Cancelled,
                "the consumer of the export stream went away",
            )
        })
    }

    /// CRC-32 of every byte written so far.
    pub(crate) fn crc(&self) -> u32 {
        self.crc.clone().finalize()
    }

    /// Bytes written so far.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Ends the stream with `error` (so the consumer never takes it for complete).
    pub(crate) async fn fail(self, error: Error) {
        // Whatever is buffered is dropped: the stream is broken anyway.
        let _ = self.tx.send(Err(error.into_io())).await;
    }
}
