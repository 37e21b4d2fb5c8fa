//! A raw walk over a zip's central directory.
//!
//! The `zip` crate keeps entries in a map by name, so a second entry with the same name
//! silently disappears from its view. Reading the records ourselves finds duplicates,
//! lets every error name the entry at fault, and gives what the local headers are
//! checked against (see [`super::local_header`]).

use std::io::{self, BufReader, Read, Seek, SeekFrom};

/// Signature of a central directory file header.
const CENTRAL_HEADER_SIGNATURE: u32 = 0x0201_4b50;
/// Fixed part of a central directory file header.
const CENTRAL_HEADER_LEN: usize = 46;
/// More entries than any bundle holds; stops a hostile archive from exhausting memory.
const MAX_ENTRIES: usize = 1_000_000;
/// Signature of the end of central directory record.
const END_SIGNATURE: u32 = 0x0605_4b50;
/// Signature of the ZIP64 end of central directory record.
const ZIP64_END_SIGNATURE: u32 = 0x0606_4b50;
/// The part of a ZIP64 end of central directory record read (through its size field).
const ZIP64_END_LEN: usize = 48;
/// Header id of the ZIP64 extended information extra field.
pub(crate) const ZIP64_EXTRA_ID: u16 = 0x0001;
/// A 32-bit size or offset that is really in the ZIP64 extra field.
const ZIP64_MARKER: u32 = u32::MAX;

/// One central directory record, sizes and offset resolved through ZIP64 fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CentralRecord {
    /// The raw name.
    pub(crate) name: Vec<u8>,
    /// General purpose bit flags.
    pub(crate) flags: u16,
    /// Compression method.
    pub(crate) method: u16,
    /// CRC-32 of the stored bytes.
    pub(crate) crc32: u32,
    /// Stored bytes.
    pub(crate) compressed_size: u64,
    /// Bytes after decompression (the same for STORE).
    pub(crate) uncompressed_size: u64,
    /// Where the entry's local header starts.
    pub(crate) local_header_offset: u64,
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Every central directory record starting at `dir_start`, in order, duplicates
/// included, checked to fill the directory exactly as its end record describes it.
///
/// # Errors
///
/// I/O errors, and `InvalidData` for a directory with more than a million records, a
/// ZIP64 field missing from its extra data, or records that do not end where the end of
/// central directory record begins, or disagree with its count, size or offset.
pub(crate) fn raw_records<R: Read + Seek>(
    reader: R,
    dir_start: u64,
) -> io::Result<Vec<CentralRecord>> {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    reader.seek(SeekFrom::Start(dir_start))?;
    let mut records = Vec::new();
    let mut header = [0u8; ZIP64_END_LEN];
    let mut end = dir_start;
    loop {
        let got = read_up_to(&mut reader, &mut header)?;
        if got < 4 || u32_at(&header, 0) != CENTRAL_HEADER_SIGNATURE {
            check_end(&header[..got], dir_start, end, records.len())?;
            return Ok(records);
        }
        if got < ZIP64_END_LEN {
            return Err(invalid(
                "the zip central directory runs past the end of the file",
            ));
        }
        // Only the fixed part belongs to this record.
        reader.seek_relative(CENTRAL_HEADER_LEN as i64 - ZIP64_END_LEN as i64)?;
        if records.len() >= MAX_ENTRIES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the zip central directory has more than a million entries",
            ));
        }
        let name_len = usize::from(u16_at(&header, 28));
        let extra_len = usize::from(u16_at(&header, 30));
        let comment_len = i64::from(u16_at(&header, 32));
        let mut name = vec![0u8; name_len];
        reader.read_exact(&mut name)?;
        let mut extra = vec![0u8; extra_len];
        reader.read_exact(&mut extra)?;
        reader.seek_relative(comment_len)?;
        end += (CENTRAL_HEADER_LEN + name_len + extra_len) as u64 + comment_len.unsigned_abs();
        let mut record = CentralRecord {
            name,
            flags: u16_at(&header, 8),
            method: u16_at(&header, 10),
            crc32: u32_at(&header, 16),
            compressed_size: u64::from(u32_at(&header, 20)),
            uncompressed_size: u64::from(u32_at(&header, 24)),
            local_header_offset: u64::from(u32_at(&header, 42)),
        };
        resolve_zip64(&mut record, &header, &extra)?;
        records.push(record);
    }
}

/// Reads until `buf` is full or the input ends; how many bytes were read.
fn read_up_to<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

/// Checks the (ZIP64) end of central directory record found right after the last
/// record (`bytes` are its first 46 bytes) against the records read.
fn check_end(bytes: &[u8], dir_start: u64, end: u64, count: usize) -> io::Result<()> {
    let (entries, size, offset) = match u32_at(bytes, 0) {
        // The ZIP64 record's offset field lies past the bytes read; the zip reader found
        // the directory through it.
        ZIP64_END_SIGNATURE if bytes.len() >= 48 => (u64_at(bytes, 32), u64_at(bytes, 40), None),
        END_SIGNATURE if bytes.len() >= 20 => (
            u64::from(u16_at(bytes, 10)),
            u64::from(u32_at(bytes, 12)),
            Some(u64::from(u32_at(bytes, 16))),
        ),
        _ => {
            return Err(invalid(
                "the zip central directory does not end where its end record begins",
            ))
        }
    };
    if entries != count as u64 || size != end - dir_start || offset.is_some_and(|o| o != dir_start)
    {
        return Err(invalid(
            "the zip end of central directory record disagrees with the directory (entry count, size or offset)",
        ));
    }
    Ok(())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Replaces the 32-bit fields set to the ZIP64 marker by their values from the extra
/// field, in the order the format defines.
fn resolve_zip64(record: &mut CentralRecord, header: &[u8], extra: &[u8]) -> io::Result<()> {
    let wanted = [
        u32_at(header, 24) == ZIP64_MARKER,
        u32_at(header, 20) == ZIP64_MARKER,
        u32_at(header, 42) == ZIP64_MARKER,
    ];
    if !wanted.contains(&true) {
        return Ok(());
    }
    let missing = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "a ZIP64 size or offset is missing from the central directory",
        )
    };
    let field = extra_field(extra, ZIP64_EXTRA_ID).ok_or_else(missing)?;
    let mut values = field
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
    let slots: [&mut u64; 3] = [
        &mut record.uncompressed_size,
        &mut record.compressed_size,
        &mut record.local_header_offset,
    ];
    for (slot, wanted) in slots.into_iter().zip(wanted) {
        if wanted {
            *slot = values.next().ok_or_else(missing)?;
        }
    }
    Ok(())
}

/// The data of the first extra field with header `id`, if any.
pub(crate) fn extra_field(extra: &[u8], id: u16) -> Option<&[u8]> {
    let mut at = 0;
    while at + 4 <= extra.len() {
        let this = u16_at(extra, at);
        let len = usize::from(u16_at(extra, at + 2));
        let data = extra.get(at + 4..at + 4 + len)?;
        if this == id {
            return Some(data);
        }
        at += 4 + len;
    }
    None
}
