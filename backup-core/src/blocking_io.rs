//! Bridges between synchronous writers/readers (tar, zip) running on a blocking thread and
//! async [`ByteStream`]s, with bounded buffering so memory stays flat.

use std::any::Any;
use std::io::{self, Write};
use std::panic::AssertUnwindSafe;

use bytes::{Bytes, BytesMut};
use futures::channel::mpsc;
use futures::SinkExt;

use crate::artifact::{ByteStream, CHUNK_SIZE};
use crate::{Error, ErrorKind, Result};

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
/// stream for a complete one; if it panics, the stream ends with an
/// [`ErrorKind::Io`] error saying so (never quietly). Dropping the
/// stream makes further writes fail with `BrokenPipe`, which stops the producer.
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
        let produced = std::panic::catch_unwind(AssertUnwindSafe(|| produce(&mut writer)))
            .unwrap_or_else(|panic| Err(panicked("the blocking producer", panic.as_ref())));
        let outcome = produced.and_then(|()| writer.flush_buffer().map_err(Error::from));
        if let Err(error) = outcome {
            let _ = writer.send(Err(error.into_io()));
        }
    });
    Box::pin(receiver)
}

/// The error for a thread that panicked: `what` and the panic message, when it has one.
pub(crate) fn panicked(what: &str, panic: &(dyn Any + Send)) -> Error {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    Error::new(ErrorKind::Io, format!("{what} panicked: {detail}"))
        .with_hint("this is a bug in the producer; the stream is incomplete and must not be used")
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
        .map_err(|join| Error::new(ErrorKind::Io, format!("blocking task failed: {join}")))?
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    /// Every item of `stream`: the bytes before the first error, and that error.
    async fn drain(mut stream: ByteStream) -> (Vec<u8>, Option<io::Error>) {
        let mut bytes = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(e) => return (bytes, Some(e)),
            }
        }
        (bytes, None)
    }

    #[tokio::test]
    async fn a_panicking_producer_ends_the_stream_with_an_error() {
        let stream = stream_from_blocking_writer(|out| {
            out.write_all(b"partial tar header")
                .map_err(|e| Error::io("writing", e))?;
            panic!("tar builder bug");
        });
        let (bytes, error) = drain(stream).await;
        let error = error.expect("a panic must end the stream with an error, not quietly");
        assert!(
            error.to_string().contains("panicked") && error.to_string().contains("tar builder bug"),
            "{error}"
        );
        // The buffered bytes are never sent as if they were complete.
        assert!(bytes.is_empty(), "{} bytes delivered", bytes.len());
    }

    #[tokio::test]
    async fn a_producer_that_finishes_delivers_everything_and_no_error() {
        let stream = stream_from_blocking_writer(|out| {
            out.write_all(&vec![7u8; CHUNK_SIZE + 5])
                .map_err(|e| Error::io("writing", e))
        });
        let (bytes, error) = drain(stream).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(bytes.len(), CHUNK_SIZE + 5);
    }
}
