//! Stream checks the importer applies before bytes reach a tool.

use backup_core::{ByteStream, Error};
use bytes::Bytes;
use futures::StreamExt;

/// The line pg_dump writes at the end of every complete plain dump.
const PLAIN_DUMP_TRAILER: &[u8] = b"-- PostgreSQL database dump complete";
/// How many trailing bytes are kept to find the trailer (it is followed only by an
/// `\unrestrict` line and blank lines).
const TAIL: usize = 4096;

/// Passes `input` through, but ends it with an integrity error instead of a clean end when
/// the plain dump lacks pg_dump's closing comment: a truncated script then never reaches
/// psql's end of input, so its single transaction is never committed.
pub(crate) fn require_plain_dump_trailer(input: ByteStream) -> ByteStream {
    let state = (input, Vec::<u8>::with_capacity(TAIL * 2), false);
    Box::pin(futures::stream::unfold(
        state,
        |(mut input, mut tail, done)| async move {
            if done {
                return None;
            }
            match input.next().await {
            Some(Ok(chunk)) => {
                remember_tail(&mut tail, &chunk);
                Some((Ok(chunk), (input, tail, false)))
            }
            Some(Err(e)) => Some((Err(e), (input, tail, true))),
            None if contains(&tail, PLAIN_DUMP_TRAILER) => None,
            None => Some((
                Err(Error::integrity(
                    "the plain SQL dump is truncated: it lacks pg_dump's closing line",
                )
                .with_hint("the dump is corrupt or truncated: verify the bundle, or restore another backup")
                .into_io()),
                (input, tail, true),
            )),
        }
        },
    ))
}

fn remember_tail(tail: &mut Vec<u8>, chunk: &Bytes) {
    tail.extend_from_slice(&chunk[chunk.len().saturating_sub(TAIL)..]);
    if tail.len() > TAIL {
        let cut = tail.len() - TAIL;
        tail.drain(..cut);
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn stream(parts: &[&'static [u8]]) -> ByteStream {
        let items: Vec<std::io::Result<Bytes>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Box::pin(futures::stream::iter(items))
    }

    #[tokio::test]
    async fn a_complete_dump_passes_unchanged() {
        let parts: [&'static [u8]; 2] = [
            b"SET x;\n--\n-- PostgreSQL database dump ",
            b"complete\n--\n\n\\unrestrict abc\n",
        ];
        let out: Vec<Bytes> = require_plain_dump_trailer(stream(&parts))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(out.concat(), parts.concat());
    }

    #[tokio::test]
    async fn a_truncated_dump_ends_with_an_integrity_error() {
        let result: std::io::Result<Vec<Bytes>> =
            require_plain_dump_trailer(stream(&[b"SET x;\nCOPY t FROM stdin;\n1\n"]))
                .try_collect()
                .await;
        let err = Error::io("restore", result.unwrap_err());
        assert_eq!(err.kind(), backup_core::ErrorKind::Integrity);
    }
}
