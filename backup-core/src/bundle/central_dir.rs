//! A raw walk over a zip's central directory.
//!
//! The `zip` crate keeps entries in a map by name, so a second entry with the same name
//! silently disappears from its view. Reading the names ourselves finds duplicates and
//! lets every error name the entry at fault.

use std::io::{self, BufReader, Read, Seek, SeekFrom};

/// Signature of a central directory file header.
const CENTRAL_HEADER_SIGNATURE: u32 = 0x0201_4b50;
/// Fixed part of a central directory file header.
const CENTRAL_HEADER_LEN: usize = 46;
/// More entries than any bundle holds; stops a hostile archive from exhausting memory.
const MAX_ENTRIES: usize = 1_000_000;

/// The raw names of every central directory record starting at `dir_start`, in order,
/// duplicates included.
///
/// # Errors
///
/// I/O errors, and `InvalidData` for a directory with more than a million records.
pub(crate) fn raw_names<R: Read + Seek>(reader: R, dir_start: u64) -> io::Result<Vec<Vec<u8>>> {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    reader.seek(SeekFrom::Start(dir_start))?;
    let mut names = Vec::new();
    let mut header = [0u8; CENTRAL_HEADER_LEN];
    loop {
        if let Err(e) = reader.read_exact(&mut header) {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                return Ok(names);
            }
            return Err(e);
        }
        let signature = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        if signature != CENTRAL_HEADER_SIGNATURE {
            return Ok(names);
        }
        if names.len() >= MAX_ENTRIES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the zip central directory has more than a million entries",
            ));
        }
        let name_len = usize::from(u16::from_le_bytes([header[28], header[29]]));
        let extra_len = i64::from(u16::from_le_bytes([header[30], header[31]]));
        let comment_len = i64::from(u16::from_le_bytes([header[32], header[33]]));
        let mut name = vec![0u8; name_len];
        reader.read_exact(&mut name)?;
        reader.seek_relative(extra_len + comment_len)?;
        names.push(name);
    }
}
