//! A pass-through tar checker: it watches a tar stream chunk by chunk (never holding more
//! than one 512-byte header), validates every header's checksum, counts entries and file
//! bytes, and tells a complete archive (end-of-archive marker seen) from a truncated one.

use std::sync::{Arc, Mutex};

use backup_core::{ByteStream, Error, Result};
use bytes::Bytes;
use futures::StreamExt;

const BLOCK: usize = 512;

/// What a scanned archive held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TarSummary {
    /// Entries (files, directories, links, …), not counting long-name and pax headers.
    pub entries: u64,
    /// Bytes of regular file contents.
    pub file_bytes: u64,
    /// Whether the end-of-archive marker was seen.
    pub complete: bool,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Header,
    /// Inside an entry's data (or its padding to the block size).
    Data { remaining: u64 },
    /// After the end-of-archive marker: only padding may follow.
    Ended,
}

/// The incremental checker.
#[derive(Debug, Default)]
pub struct TarScan {
    header: Vec<u8>,
    state: State,
    zero_blocks: u8,
    summary: TarSummary,
}

impl TarScan {
    /// A checker at the start of an archive.
    pub fn new() -> Self {
        TarScan {
            header: Vec::with_capacity(BLOCK),
            ..TarScan::default()
        }
    }

    /// What was seen so far.
    pub fn summary(&self) -> TarSummary {
        self.summary
    }

    /// Feeds the next bytes.
    ///
    /// # Errors
    ///
    /// [`backup_core::ErrorKind::Integrity`] on a header with a bad checksum or size.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            match &mut self.state {
                State::Ended => return Ok(()),
                State::Data { remaining } => {
                    let take = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    *remaining -= take as u64;
                    data = &data[take..];
                    if *remaining == 0 {
                        self.state = State::Header;
                    }
                }
                State::Header => {
                    let take = (BLOCK - self.header.len()).min(data.len());
                    self.header.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.header.len() == BLOCK {
                        let block = std::mem::replace(&mut self.header, Vec::with_capacity(BLOCK));
                        self.header_block(&block)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn header_block(&mut self, block: &[u8]) -> Result<()> {
        if block.iter().all(|b| *b == 0) {
            self.zero_blocks += 1;
            if self.zero_blocks == 2 {
                self.summary.complete = true;
                self.state = State::Ended;
            }
            return Ok(());
        }
        if self.zero_blocks > 0 {
            return Err(Error::integrity(
                "the volume archive has a zero block in the middle: it is corrupt",
            ));
        }
        let stored = parse_number(&block[148..156])
            .ok_or_else(|| Error::integrity("a tar header has an unreadable checksum field"))?;
        let computed: u64 = block
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(*b)
                }
            })
            .sum();
        if stored != computed {
            return Err(Error::integrity(format!(
                "a tar header's checksum does not match (entry {} of the volume archive): the archive is corrupt",
                self.summary.entries + 1
            )));
        }
        let size = parse_number(&block[124..136])
            .ok_or_else(|| Error::integrity("a tar header has an unreadable size field"))?;
        let kind = block[156];
        // Hard links, symlinks, devices, directories and FIFOs carry no data.
        let data = match kind {
            b'1' | b'2' | b'3' | b'4' | b'5' | b'6' => 0,
            _ => size,
        };
        match kind {
            b'L' | b'K' | b'x' | b'g' => {}
            b'0' | 0 | b'7' => {
                self.summary.entries += 1;
                self.summary.file_bytes += size;
            }
            _ => self.summary.entries += 1,
        }
        let padded = data.div_ceil(BLOCK as u64) * BLOCK as u64;
        if padded > 0 {
            self.state = State::Data { remaining: padded };
        }
        Ok(())
    }

    /// Ends the archive.
    ///
    /// # Errors
    ///
    /// [`backup_core::ErrorKind::Integrity`] when the end-of-archive marker was not seen.
    pub fn finish(&self) -> Result<TarSummary> {
        if self.summary.complete {
            Ok(self.summary)
        } else {
            Err(Error::integrity(format!(
                "the volume archive ends after {} entries without its end-of-archive marker: it is truncated",
                self.summary.entries
            ))
            .with_hint("the archive was cut short (a full disk, an interrupted copy); use another backup"))
        }
    }
}

/// Parses a tar numeric field: octal text, or GNU base-256 for large values.
fn parse_number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut value: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(value);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| *b != 0 && *b != b' ')
        .collect();
    if text.is_empty() {
        return Some(0);
    }
    let mut value: u64 = 0;
    for b in text {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        value = value.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

/// Passes `stream` through a [`TarScan`]: a corrupt header or a missing end-of-archive
/// marker ends the stream with an error item. The summary is in `out` once it ended.
pub fn checked(stream: ByteStream, out: Arc<Mutex<TarSummary>>) -> ByteStream {
    struct St {
        inner: ByteStream,
        scan: TarScan,
        out: Arc<Mutex<TarSummary>>,
        done: bool,
    }
    let state = St {
        inner: stream,
        scan: TarScan::new(),
        out,
        done: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let item: std::io::Result<Bytes> = match st.inner.next().await {
            Some(Ok(chunk)) => match st.scan.feed(&chunk) {
                Ok(()) => Ok(chunk),
                Err(e) => {
                    st.done = true;
                    Err(e.into_io())
                }
            },
            Some(Err(e)) => {
                st.done = true;
                Err(e)
            }
            None => {
                st.done = true;
                match st.scan.finish() {
                    Ok(summary) => {
                        if let Ok(mut out) = st.out.lock() {
                            *out = summary;
                        }
                        return None;
                    }
                    Err(e) => Err(e.into_io()),
                }
            }
        };
        Some((item, st))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(1000);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "a/file", &[7u8; 1000][..])
            .unwrap_or_else(|e| panic!("{e}"));
        builder.into_inner().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_whole_archive_is_complete_in_any_chunking() {
        let bytes = archive();
        for size in [1, 7, 512, 4096] {
            let mut scan = TarScan::new();
            for chunk in bytes.chunks(size) {
                scan.feed(chunk).unwrap_or_else(|e| panic!("{e}"));
            }
            let summary = scan.finish().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((summary.entries, summary.file_bytes), (1, 1000));
        }
    }

    #[test]
    fn a_truncated_or_corrupt_archive_is_refused() {
        let bytes = archive();
        let mut scan = TarScan::new();
        scan.feed(&bytes[..bytes.len() / 2])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(scan.finish().is_err());
        let mut corrupt = bytes.clone();
        corrupt[10] ^= 1;
        assert!(TarScan::new().feed(&corrupt).is_err());
    }
}
