//! Checks that each entry's local file header (and data descriptor) agrees with its
//! central directory record, as `unzip -t` does: a byte flipped in the zip structure
//! around an entry is caught, not only one flipped in its data.

use std::io::{self, Read, Seek, SeekFrom};

use super::central_dir::{extra_field, CentralRecord, ZIP64_EXTRA_ID};

/// Signature of a local file header.
const LOCAL_HEADER_SIGNATURE: u32 = 0x0403_4b50;
/// Optional signature of a data descriptor.
const DESCRIPTOR_SIGNATURE: u32 = 0x0807_4b50;
/// Fixed part of a local file header.
const LOCAL_HEADER_LEN: usize = 30;
/// General purpose flag: sizes and CRC follow the data in a data descriptor.
const FLAG_DESCRIPTOR: u16 = 1 << 3;

/// Where an entry's pieces are, by its local header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalLayout {
    /// First stored byte.
    pub(crate) data_start: u64,
    /// First byte after the entry (its data descriptor included).
    pub(crate) end: u64,
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Reads the local header (and data descriptor) of `record`, which must start before
/// `dir_start`, and says how it differs from the record, or where the entry's pieces are.
///
/// # Errors
///
/// `Ok(Err(problem))` for a header that disagrees with the central directory; I/O errors
/// as such (a header cut off by the end of the file is a problem, not an I/O error).
pub(crate) fn check<R: Read + Seek>(
    file: &mut R,
    record: &CentralRecord,
    dir_start: u64,
) -> io::Result<Result<LocalLayout, String>> {
    let offset = record.local_header_offset;
    if offset >= dir_start {
        return Ok(Err(format!(
            "its local header offset {offset} is not before the central directory"
        )));
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut header = [0u8; LOCAL_HEADER_LEN];
    if let Some(problem) = read_or_problem(file, &mut header, "the local header")? {
        return Ok(Err(problem));
    }
    if u32_at(&header, 0) != LOCAL_HEADER_SIGNATURE {
        return Ok(Err(format!("no local header signature at offset {offset}")));
    }
    let mut name = vec![0u8; usize::from(u16_at(&header, 26))];
    if let Some(problem) = read_or_problem(file, &mut name, "the local name")? {
        return Ok(Err(problem));
    }
    let mut extra = vec![0u8; usize::from(u16_at(&header, 28))];
    if let Some(problem) = read_or_problem(file, &mut extra, "the local extra field")? {
        return Ok(Err(problem));
    }
    if name != record.name {
        return Ok(Err(format!(
            "the local header names it {:?}",
            String::from_utf8_lossy(&name)
        )));
    }
    let flags = u16_at(&header, 6);
    if flags != record.flags {
        return Ok(Err(format!(
            "its flags are {flags:#06x} in the local header, {:#06x} in the central directory",
            record.flags
        )));
    }
    let method = u16_at(&header, 8);
    if method != record.method {
        return Ok(Err(format!(
            "its compression method is {method} in the local header, {} in the central directory",
            record.method
        )));
    }
    let zip64 = extra_field(&extra, ZIP64_EXTRA_ID);
    let local_crc = u32_at(&header, 14);
    let mut local_sizes = (
        u64::from(u32_at(&header, 18)),
        u64::from(u32_at(&header, 22)),
    );
    if let Some(field) = zip64.filter(|f| f.len() >= 16) {
        if local_sizes.0 == u64::from(u32::MAX) || local_sizes.1 == u64::from(u32::MAX) {
            local_sizes = (u64_at(field, 8), u64_at(field, 0));
        }
    }
    let central_sizes = (record.compressed_size, record.uncompressed_size);
    let local_matches = local_crc == record.crc32 && local_sizes == central_sizes;
    let local_zero = local_crc == 0 && local_sizes == (0, 0);
    if !(local_matches || (flags & FLAG_DESCRIPTOR != 0 && local_zero)) {
        return Ok(Err(
            "its CRC-32 or sizes differ between the local header and the central directory"
                .to_owned(),
        ));
    }
    let data_start = offset + (LOCAL_HEADER_LEN + name.len() + extra.len()) as u64;
    let Some(mut end) = data_start
        .checked_add(record.compressed_size)
        .filter(|end| *end <= dir_start)
    else {
        return Ok(Err(format!(
            "its {} stored bytes run into the central directory",
            record.compressed_size
        )));
    };
    if flags & FLAG_DESCRIPTOR != 0 {
        match descriptor(file, end, zip64.is_some())? {
            Err(problem) => return Ok(Err(problem)),
            Ok(Descriptor { crc32, sizes, len }) => {
                if crc32 != record.crc32 || sizes != central_sizes {
                    return Ok(Err(
                        "its data descriptor differs from the central directory".to_owned(),
                    ));
                }
                end += len;
            }
        }
    }
    Ok(Ok(LocalLayout { data_start, end }))
}

/// A data descriptor.
struct Descriptor {
    crc32: u32,
    /// (stored, uncompressed).
    sizes: (u64, u64),
    /// Its length in the file.
    len: u64,
}

/// Reads the data descriptor at `at`.
fn descriptor<R: Read + Seek>(
    file: &mut R,
    at: u64,
    zip64: bool,
) -> io::Result<Result<Descriptor, String>> {
    file.seek(SeekFrom::Start(at))?;
    let size_len = if zip64 { 8 } else { 4 };
    let mut bytes = vec![0u8; 4 + 4 + 2 * size_len];
    let unsigned_len = bytes.len() - 4;
    if let Some(problem) = read_or_problem(file, &mut bytes[..unsigned_len], "its data descriptor")?
    {
        return Ok(Err(problem));
    }
    let signed = u32_at(&bytes, 0) == DESCRIPTOR_SIGNATURE;
    if signed {
        let start = bytes.len() - 4;
        if let Some(problem) = read_or_problem(file, &mut bytes[start..], "its data descriptor")? {
            return Ok(Err(problem));
        }
    }
    let body = if signed {
        &bytes[4..]
    } else {
        &bytes[..bytes.len() - 4]
    };
    let crc = u32_at(body, 0);
    let sizes = if zip64 {
        (u64_at(body, 4), u64_at(body, 12))
    } else {
        (u64::from(u32_at(body, 4)), u64::from(u32_at(body, 8)))
    };
    let len = if signed { bytes.len() } else { bytes.len() - 4 };
    Ok(Ok(Descriptor {
        crc32: crc,
        sizes,
        len: len as u64,
    }))
}

/// Fills `buf`; a problem (not an error) when the file ends first.
fn read_or_problem<R: Read>(
    file: &mut R,
    buf: &mut [u8],
    what: &str,
) -> io::Result<Option<String>> {
    match file.read_exact(buf) {
        Ok(()) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Ok(Some(format!("{what} runs past the end of the file")))
        }
        Err(e) => Err(e),
    }
}
