//! Bridges between synchronous writers/readers (tar, zip) running on a blocking thread and
//! async [`ByteStream`]s, with bounded buffering so memory stays flat.

use std::io::{self, Write};

use bytes::{Bytes, BytesMut};
use futures::channel::mpsc;
use futures::SinkExt;

use crate::artifact::{ByteStream, CHUNK_SIZE};
use crate::{Error, Result};

/// How many chunks may wait between the blocking producer and the async consumer.
const CHANNEL_DEPTH: usize = 4;

/// A `std::io::Write` that sends what is written as chunks of a [`ByteStream`].
struct ChannelWriter {
    sender: mpsc::Sender<io::Result<Bytes>>,
    buffer: BytesMut,
}

impl ChannelWriter {
    fn send(&mut self, chunk: io::Result<Bytes>) -> io::Result<()> {
        futures::executor::block_on(self.sender.send(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the stream's reader went away"))
    }

    fn flush_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = self.buffer.split().freeze();
        self.send(Ok(chunk))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK_SIZE {
            self.flush_buffer()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `produce` on a blocking thread; what it writes becomes the returned stream.
///
/// If `produce` fails, the stream ends with its error, so a consumer never takes a partial
/// stream for a complete one. Dropping the stream makes further writes fail with
/// `BrokenPipe`, which stops the producer.
pub fn stream_from_blocking_writer<F>(produce: F) -> ByteStream
where
    F: FnOnce(&mut dyn Write) -> Result<()> + Send + 'static,
{
    let (sender, receiver) = mpsc::channel(CHANNEL_DEPTH);
    tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter {
            sender,
            buffer: BytesMut::with_capacity(CHUNK_SIZE),
        };
        let outcome =
            produce(&mut writer).and_then(|()| writer.flush_buffer().map_err(Error::from));
        if let Err(error) = outcome {
            let _ = writer.send(Err(error.into_io()));
        }
    });
    Box::pin(receiver)
}

/// Runs `consume` on a blocking thread with `stream` as a `std::io::Read`.
///
/// # Errors
///
/// Whatever `consume` returns; a stream error surfaces as an I/O error from `read`.
pub async fn consume_stream_blocking<T, F>(stream: ByteStream, consume: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut dyn io::Read) -> Result<T> + Send + 'static,
{
    let reader = tokio_util::io::StreamReader::new(stream);
    let mut bridge = tokio_util::io::SyncIoBridge::new(reader);
    tokio::task::spawn_blocking(move || consume(&mut bridge))
        .await
        .map_err(|join| {
            Error::new(
                crate::ErrorKind::Io,
                format!("blocking task failed: {join}"),
            )
        })?
}
