//! Exact per-table row counts read from the dump itself as it streams.
//!
//! Counting the dump's own COPY data gives the rows of exactly the snapshot pg_dump
//! read, without a second scan of every table competing with pg_dump for the server.
//! The export stream is passed through [`tee`]; a blocking thread parses a copy of every
//! chunk ([`custom`] or [`plain`]) and returns the counts when the stream has ended.
//! When the dump is one the parser does not read, the exporter counts with SQL in the
//! dump's snapshot instead.

mod custom;
mod plain;

use std::collections::BTreeMap;
use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::PollSender;

use backup_core::blocking_io::consume_stream_blocking;
use backup_core::ByteStream;

use crate::config::DumpFormat;

/// Chunks buffered between the stream and the counting task (memory stays bounded).
const QUEUE: usize = 32;

/// Why the dump's rows could not be counted from the stream.
#[derive(Debug)]
pub(crate) enum CountError {
    /// A dump this parser does not read (archive version, compression, INSERT data).
    Unsupported(String),
    /// Bytes that are not the dump they claim to be, or a dump that ends early.
    Malformed(String),
    /// The stream failed or was dropped before its end.
    Read(std::io::Error),
}

impl std::fmt::Display for CountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CountError::Unsupported(what) => write!(f, "unsupported dump: {what}"),
            CountError::Malformed(what) => write!(f, "malformed dump: {what}"),
            CountError::Read(e) => write!(f, "reading the dump: {e}"),
        }
    }
}

/// Rows by `schema.table`, or why there are none.
pub(crate) type Counted = Result<BTreeMap<String, u64>, CountError>;

/// Passes `stream` through and counts the rows of the dump it carries on a blocking
/// thread ([`consume_stream_blocking`]); the handle yields the counts once the stream
/// ended (an error if it failed or was dropped first).
pub(crate) fn tee(
    stream: ByteStream,
    format: DumpFormat,
) -> (ByteStream, JoinHandle<backup_core::Result<Counted>>) {
    let (tx, rx) = mpsc::channel::<Message>(QUEUE);
    let copy = copies_until_end(rx);
    let counting = tokio::spawn(consume_stream_blocking(copy, move |reader| {
        Ok(match format {
            DumpFormat::Custom => custom::count_rows(reader),
            DumpFormat::Sql => count_plain(reader),
        })
    }));
    let tee = Tee {
        inner: stream,
        tx: Some(PollSender::new(tx)),
    };
    (Box::pin(tee), counting)
}

/// Counts a plain dump read from `reader`.
fn count_plain(reader: &mut dyn Read) -> Counted {
    let mut counter = plain::PlainCounter::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return counter.finish(),
            Ok(n) => counter.feed(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(CountError::Read(e)),
        }
    }
}

/// The copies the [`Tee`] sends, as a stream: it ends cleanly only after `End`; a channel
/// closed without it (the dump stream failed or was dropped) ends with an error.
fn copies_until_end(rx: mpsc::Receiver<Message>) -> ByteStream {
    Box::pin(futures::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Some(Message::Chunk(chunk)) => Some((Ok(chunk), Some(rx))),
            Some(Message::End) => None,
            None => Some((
                Err(std::io::Error::other(
                    "the dump stream failed or was dropped",
                )),
                None,
            )),
        }
    }))
}

/// What the [`Tee`] sends: the chunks, then `End` if the stream ended cleanly (a stream
/// error or drop closes the channel without it).
enum Message {
    Chunk(Bytes),
    End,
}

/// Rolls leaf partition counts up into their partitioned parents: `leaves` maps each
/// partitioned table to its leaf partitions.
pub(crate) fn roll_up_partitions(
    rows: &mut BTreeMap<String, u64>,
    leaves: &BTreeMap<String, Vec<String>>,
) {
    for (parent, parts) in leaves {
        let total = parts.iter().filter_map(|leaf| rows.get(leaf)).sum();
        rows.insert(parent.clone(), total);
    }
}

/// The stream half of [`tee`]: forwards every chunk to the counting task before passing
/// it on, and closes the channel when the stream ends.
struct Tee {
    inner: ByteStream,
    tx: Option<PollSender<Message>>,
}

impl Stream for Tee {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Reserve room first, so a chunk taken from the inner stream can always be sent.
        if let Some(tx) = self.tx.as_mut() {
            match tx.poll_reserve(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {}
                // The counter stopped (a dump it does not read): pass the stream on alone.
                Poll::Ready(Err(_)) => self.tx = None,
            }
        }
        let polled = self.inner.as_mut().poll_next(cx);
        let message = match &polled {
            Poll::Ready(Some(Ok(chunk))) => Some(Message::Chunk(chunk.clone())),
            Poll::Ready(None) => Some(Message::End),
            // A failed stream: dropping the sender without `End` fails the count.
            Poll::Ready(Some(Err(_))) => {
                self.tx = None;
                None
            }
            Poll::Pending => None,
        };
        if let (Some(message), Some(tx)) = (message, self.tx.as_mut()) {
            let end = matches!(message, Message::End);
            if tx.send_item(message).is_err() || end {
                self.tx = None;
            }
        }
        polled
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::StreamExt;

    const PLAIN: &[u8] = b"--\n-- Data for Name: t; Type: TABLE DATA; Schema: s; Owner: -\n--\n\n\
COPY s.t (a) FROM stdin;\n1\n2\n\\.\n";

    fn chunks(items: Vec<std::io::Result<Bytes>>) -> ByteStream {
        Box::pin(futures::stream::iter(items))
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_tee_passes_every_chunk_on_and_counts_them() {
        let (half, rest) = PLAIN.split_at(40);
        let input = chunks(vec![
            Ok(Bytes::from_static(half)),
            Ok(Bytes::from_static(rest)),
        ]);
        let (stream, counting) = tee(input, DumpFormat::Sql);
        let passed: Vec<Bytes> = stream.map(|c| c.unwrap()).collect().await;
        assert_eq!(passed.concat(), PLAIN);
        let rows = counting.await.unwrap().unwrap().unwrap();
        assert_eq!(rows.get("s.t"), Some(&2));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_or_dropped_stream_fails_the_count() {
        let failing = chunks(vec![
            Ok(Bytes::from_static(PLAIN)),
            Err(std::io::Error::other("pg_dump died")),
        ]);
        let (stream, counting) = tee(failing, DumpFormat::Sql);
        let _: Vec<_> = stream.collect().await;
        let counted = counting.await.unwrap().unwrap();
        assert!(matches!(counted, Err(CountError::Read(_))), "{counted:?}");

        let (stream, counting) = tee(chunks(vec![Ok(Bytes::from_static(PLAIN))]), DumpFormat::Sql);
        drop(stream);
        let counted = counting.await.unwrap().unwrap();
        assert!(matches!(counted, Err(CountError::Read(_))), "{counted:?}");
    }
}
