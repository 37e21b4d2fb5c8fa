//! Finds which entry a truncated bundle ends in, by scanning local file headers.
//!
//! A bundle cut short has lost its central directory (it is written last), so the zip
//! crate cannot open it. The local headers are still there: the last one found is the
//! entry whose bytes were cut, which lets the error name it.

use std::io::{self, BufReader, Read};

use super::entry_name::path_problem;

/// Signature of a local file header.
const LOCAL_HEADER_SIGNATURE: [u8; 4] = *b"PK\x03\x04";
/// Fixed part of a local file header.
const LOCAL_HEADER_LEN: usize = 30;
/// Read buffer of the scan.
const SCAN_BUFFER: usize = 1024 * 1024;

/// The name of the last plausible local file header in `reader`, if any.
///
/// Artifact bytes may contain something that looks like a header (a zip inside a tar);
/// only names that would pass the reader's name checks count, so the answer is a good
/// hint, not a proof.
pub(crate) fn last_entry_name<R: Read>(reader: R) -> io::Result<Option<String>> {
    let mut reader = BufReader::with_capacity(SCAN_BUFFER, reader);
    let mut window: Vec<u8> = Vec::with_capacity(2 * SCAN_BUFFER);
    let mut last = None;
    let mut chunk = vec![0u8; SCAN_BUFFER];
    loop {
        let n = reader.read(&mut chunk)?;
        let at_end = n == 0;
        window.extend_from_slice(&chunk[..n]);
        // A header with its name is at most 30 + 65535 bytes: until the end, keep a tail
        // that may hold an incomplete one for the next round.
        let limit = if at_end {
            window.len()
        } else {
            window
                .len()
                .saturating_sub(LOCAL_HEADER_LEN + usize::from(u16::MAX))
        };
        let mut i = 0;
        while let Some(offset) = window[i..limit].iter().position(|&b| b == b'P') {
            let at = i + offset;
            if window.len() - at >= LOCAL_HEADER_LEN && window[at..at + 4] == LOCAL_HEADER_SIGNATURE
            {
                if let Some(name) = header_name(&window[at..]) {
                    last = Some(name);
                }
            }
            i = at + 1;
        }
        if at_end {
            return Ok(last);
        }
        window.drain(..limit);
    }
}

/// The name of the local header at the start of `bytes`, if it looks like one of ours.
fn header_name(bytes: &[u8]) -> Option<String> {
    let name_len = usize::from(u16::from_le_bytes([bytes[26], bytes[27]]));
    let name = bytes.get(LOCAL_HEADER_LEN..LOCAL_HEADER_LEN + name_len)?;
    let name = std::str::from_utf8(name).ok()?;
    if path_problem(name).is_some() {
        return None;
    }
    Some(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str) -> Vec<u8> {
        let mut bytes = LOCAL_HEADER_SIGNATURE.to_vec();
        bytes.extend_from_slice(&[0u8; 22]);
        bytes.extend_from_slice(&(name.len() as u16).to_le_bytes());
        bytes.extend_from_slice(&0u16.to_le_bytes());
        bytes.extend_from_slice(name.as_bytes());
        bytes
    }

    #[test]
    fn finds_the_last_header_even_across_buffer_boundaries() {
        let mut file = header("snapshot.json");
        file.extend(std::iter::repeat_n(7u8, SCAN_BUFFER - 10));
        file.extend(header("data/db/app.dump"));
        file.extend(std::iter::repeat_n(9u8, 3 * SCAN_BUFFER));
        assert_eq!(
            last_entry_name(file.as_slice()).ok().flatten().as_deref(),
            Some("data/db/app.dump")
        );
    }

    #[test]
    fn ignores_implausible_headers() {
        let mut file = header("snapshot.json");
        file.extend(header("../evil"));
        assert_eq!(
            last_entry_name(file.as_slice()).ok().flatten().as_deref(),
            Some("snapshot.json")
        );
        assert_eq!(last_entry_name(&b"no zip here"[..]).ok().flatten(), None);
    }
}
