//! Reading exact spans of a bundle through its source: whole small entries, and the
//! stored bytes of an entry hashed in large reads.

use std::io;

use sha2::{Digest, Sha256};

use super::manifest::EntryChecksum;
use super::reader::{Location, DAMAGED_HINT};
use super::source::{read_full, BundleSource, SOURCE_READ_SIZE};
use crate::{Error, Result};

/// Read size for verification.
const VERIFY_BUFFER: usize = SOURCE_READ_SIZE;

pub(crate) fn check_checksum(want: &EntryChecksum, size: u64, sha256: &str) -> Result<()> {
    if size != want.size {
        return Err(Error::integrity(format!(
            "entry {} is truncated: {size} of {} bytes present",
            want.path, want.size
        ))
        .with_hint(DAMAGED_HINT));
    }
    if !sha256.eq_ignore_ascii_case(&want.sha256) {
        return Err(Error::integrity(format!(
            "entry {} is corrupt: its sha256 is {sha256}, the manifest says {}",
            want.path, want.sha256
        ))
        .with_hint(DAMAGED_HINT));
    }
    Ok(())
}

/// Reads an uncompressed entry once and checks its size, sha256 and CRC-32.
pub(crate) fn check_stored(
    file: &dyn BundleSource,
    want: &EntryChecksum,
    location: Location,
) -> Result<()> {
    let (size, sha256, crc32) = hash_range(file, &want.path, location)?;
    check_checksum(want, size, &sha256)?;
    if crc32 != location.crc32 {
        return Err(Error::integrity(format!(
            "entry {}: its CRC-32 in the zip directory is {:08x} but its bytes have {crc32:08x} (the zip structure is damaged)",
            want.path, location.crc32
        ))
        .with_hint(DAMAGED_HINT));
    }
    Ok(())
}

/// Reads `location` of `file` once, in exact reads of up to [`VERIFY_BUFFER`] bytes:
/// (bytes present, hex sha256, CRC-32).
fn hash_range(
    file: &dyn BundleSource,
    entry: &str,
    location: Location,
) -> Result<(u64, String, u32)> {
    let reading = |e: io::Error| Error::io(format!("reading entry {entry}"), e);
    let mut hasher = Sha256::new();
    let mut crc = crc32fast::Hasher::new();
    let first = location.size.min(VERIFY_BUFFER as u64) as usize;
    let mut buffer = vec![0u8; first];
    let mut total: u64 = 0;
    while total < location.size {
        let want = (location.size - total).min(buffer.len() as u64) as usize;
        let n = read_full(file, location.offset + total, &mut buffer[..want]).map_err(reading)?;
        hasher.update(&buffer[..n]);
        crc.update(&buffer[..n]);
        total += n as u64;
        if n < want {
            break;
        }
    }
    Ok((total, hex::encode(hasher.finalize()), crc.finalize()))
}

/// Reads a whole (small, bounded by the caller) entry in one exact read.
pub(crate) fn read_range(
    file: &dyn BundleSource,
    entry: &str,
    location: Location,
) -> Result<Vec<u8>> {
    let reading = |e: io::Error| Error::io(format!("reading entry {entry}"), e);
    let size = usize::try_from(location.size)
        .map_err(|_| Error::integrity(format!("entry {entry} is too large to read into memory")))?;
    let mut bytes = vec![0u8; size];
    let n = read_full(file, location.offset, &mut bytes).map_err(reading)?;
    bytes.truncate(n);
    Ok(bytes)
}
