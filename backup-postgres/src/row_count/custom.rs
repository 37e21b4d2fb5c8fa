//! Counts the rows of each table in a `pg_dump --format=custom` archive as it streams.
//!
//! The archive (written by `pg_backup_archiver.c` / `pg_backup_custom.c`) is a header, a
//! table of contents (TOC) and then one data block per `TABLE DATA` entry. Integers are a
//! sign byte followed by `intSize` little-endian bytes; strings are an integer length
//! (`-1` for NULL) and the bytes. A data block is `BLK_DATA`, the entry's dump id, then
//! chunks (`length`, bytes) up to a zero length; the chunks concatenated are the table's
//! `COPY … TO STDOUT` text, raw or as one zlib stream, followed by pg_dump's `\\.`
//! terminator line and two empty lines. COPY text ends every row with a newline and
//! escapes newlines inside values, so the rows are the newlines before the terminator.
//!
//! Archive versions 1.12 to 1.16 (PostgreSQL 9.0 to 17) are read; anything else is
//! [`CountError::Unsupported`], and the caller counts with SQL instead.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use super::CountError;

/// Archive versions as `(major, minor)`.
const V1_11: (u8, u8) = (1, 11);
const V1_12: (u8, u8) = (1, 12);
const V1_14: (u8, u8) = (1, 14);
const V1_15: (u8, u8) = (1, 15);
const V1_16: (u8, u8) = (1, 16);

/// `archCustom` in pg_dump's `ArchiveFormat`.
const FORMAT_CUSTOM: u8 = 1;
/// Data block types.
const BLK_DATA: u8 = 1;
const BLK_BLOBS: u8 = 3;
/// Bytes read from the archive at a time when skipping or inflating.
const BUFFER: usize = 64 * 1024;

/// How the data blocks are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Zlib,
}

/// Reads a whole custom archive from `input` and returns the rows of each `TABLE DATA`
/// entry, keyed `schema.table`.
///
/// # Errors
///
/// [`CountError::Unsupported`] for an archive version or compression it does not read,
/// [`CountError::Malformed`] for bytes that are not a custom archive (or end early).
pub(crate) fn count_rows(input: impl Read) -> Result<BTreeMap<String, u64>, CountError> {
    let mut archive = Archive {
        input,
        int_size: 4,
        offset_size: 8,
        scratch: vec![0; BUFFER],
    };
    let (version, compression) = archive.header()?;
    let tables = archive.toc(version)?;
    let mut rows = BTreeMap::new();
    while let Some(block) = archive.byte_or_end()? {
        match block {
            BLK_DATA => {
                let dump_id = archive.int()?;
                let count = archive.data_rows(compression)?;
                if let Some(name) = tables.get(&dump_id) {
                    *rows.entry(name.clone()).or_insert(0) += count;
                }
            }
            BLK_BLOBS => {
                archive.int()?;
                archive.skip_blobs()?;
            }
            other => {
                return Err(CountError::Malformed(format!(
                    "unknown data block type {other}"
                )))
            }
        }
    }
    Ok(rows)
}

struct Archive<R> {
    input: R,
    int_size: usize,
    offset_size: usize,
    scratch: Vec<u8>,
}

impl<R: Read> Archive<R> {
    /// Reads the header; returns the version and the data compression.
    fn header(&mut self) -> Result<((u8, u8), Compression), CountError> {
        let mut magic = [0u8; 5];
        self.exact(&mut magic)?;
        if &magic != b"PGDMP" {
            return Err(CountError::Malformed(
                "the dump does not start with PGDMP".into(),
            ));
        }
        let version = (self.byte()?, self.byte()?);
        let _revision = self.byte()?;
        if !(V1_12..=V1_16).contains(&version) {
            return Err(CountError::Unsupported(format!(
                "custom archive version {}.{}",
                version.0, version.1
            )));
        }
        self.int_size = usize::from(self.byte()?);
        if !(1..=8).contains(&self.int_size) {
            return Err(CountError::Malformed(format!(
                "integer size {}",
                self.int_size
            )));
        }
        self.offset_size = usize::from(self.byte()?);
        if !(1..=16).contains(&self.offset_size) {
            return Err(CountError::Malformed(format!(
                "offset size {}",
                self.offset_size
            )));
        }
        let format = self.byte()?;
        if format != FORMAT_CUSTOM {
            return Err(CountError::Unsupported(format!("archive format {format}")));
        }
        let compression = if version >= V1_15 {
            match self.byte()? {
                0 => Compression::None,
                1 => Compression::Zlib,
                other => {
                    return Err(CountError::Unsupported(format!(
                        "compression algorithm {other}"
                    )))
                }
            }
        } else if self.int()? == 0 {
            Compression::None
        } else {
            Compression::Zlib
        };
        for _ in 0..7 {
            self.int()?; // creation time
        }
        for _ in 0..3 {
            self.skip_string()?; // database, server version, pg_dump version
        }
        Ok((version, compression))
    }

    /// Reads the TOC; returns `schema.table` by dump id for the `TABLE DATA` entries.
    fn toc(&mut self, version: (u8, u8)) -> Result<HashMap<i64, String>, CountError> {
        let count = self.int()?;
        let mut tables = HashMap::new();
        for _ in 0..count {
            let dump_id = self.int()?;
            self.int()?; // had dumper
            self.skip_string()?; // table oid
            self.skip_string()?; // oid
            let tag = self.string()?;
            let desc = self.string()?;
            if version >= V1_11 {
                self.int()?; // section
            }
            self.skip_string()?; // defn
            self.skip_string()?; // drop statement
            let copy = self.string()?;
            let namespace = self.string()?;
            self.skip_string()?; // tablespace
            if version >= V1_14 {
                self.skip_string()?; // table access method
            }
            if version >= V1_16 {
                self.int()?; // relkind
            }
            self.skip_string()?; // owner
            self.skip_string()?; // "false" (with OIDs)
            while self.string()?.is_some() {} // dependencies
            self.skip(1 + self.offset_size)?; // data offset flag and value
            if desc.as_deref() == Some("TABLE DATA") {
                let copies = copy.as_deref().is_some_and(|c| c.starts_with("COPY "));
                if !copies {
                    return Err(CountError::Unsupported(
                        "table data not in COPY format".into(),
                    ));
                }
                let name = format!(
                    "{}.{}",
                    namespace.unwrap_or_default(),
                    tag.unwrap_or_default()
                );
                tables.insert(dump_id, name);
            }
        }
        Ok(tables)
    }

    /// Counts the rows of one data block's chunks, inflating them when compressed.
    fn data_rows(&mut self, compression: Compression) -> Result<u64, CountError> {
        let mut lines = Lines::default();
        let mut inflater = match compression {
            Compression::None => None,
            Compression::Zlib => Some(Inflater::new()),
        };
        self.chunks(|piece| match inflater.as_mut() {
            None => {
                lines.feed(piece);
                Ok(())
            }
            Some(inflater) => inflater.inflate(piece, &mut lines),
        })?;
        lines.rows()
    }

    /// Skips the large objects of a `BLK_BLOBS` block: each an OID and its chunks, up to a
    /// zero OID.
    fn skip_blobs(&mut self) -> Result<(), CountError> {
        while self.int()? != 0 {
            self.chunks(|_| Ok(()))?;
        }
        Ok(())
    }

    /// Reads one run of chunks (`length`, bytes) up to a zero length, handing the bytes to
    /// `each` piece by piece.
    fn chunks(
        &mut self,
        mut each: impl FnMut(&[u8]) -> Result<(), CountError>,
    ) -> Result<(), CountError> {
        loop {
            let length = self.int()?;
            if length == 0 {
                return Ok(());
            }
            let length = usize::try_from(length)
                .map_err(|_| CountError::Malformed(format!("chunk length {length}")))?;
            self.read_pieces(length, &mut each)?;
        }
    }

    fn int(&mut self) -> Result<i64, CountError> {
        let negative = self.byte()? != 0;
        let mut value: i64 = 0;
        for shift in 0..self.int_size {
            let byte = i64::from(self.byte()?);
            if shift < 8 {
                value |= byte << (8 * shift);
            }
        }
        Ok(if negative { -value } else { value })
    }

    fn string(&mut self) -> Result<Option<String>, CountError> {
        let length = self.int()?;
        if length < 0 {
            return Ok(None);
        }
        let length = usize::try_from(length)
            .map_err(|_| CountError::Malformed(format!("string length {length}")))?;
        let mut bytes = Vec::new();
        (&mut self.input)
            .take(length as u64)
            .read_to_end(&mut bytes)
            .map_err(CountError::Read)?;
        if bytes.len() != length {
            return Err(CountError::Malformed(
                "the dump ends inside a string".into(),
            ));
        }
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    fn skip_string(&mut self) -> Result<(), CountError> {
        let length = self.int()?;
        if length > 0 {
            let length = usize::try_from(length)
                .map_err(|_| CountError::Malformed(format!("string length {length}")))?;
            self.skip(length)?;
        }
        Ok(())
    }

    fn skip(&mut self, length: usize) -> Result<(), CountError> {
        self.read_pieces(length, |_| Ok(()))
    }

    /// Reads `length` bytes in pieces of at most [`BUFFER`] bytes, handing each to `each`.
    fn read_pieces(
        &mut self,
        mut length: usize,
        mut each: impl FnMut(&[u8]) -> Result<(), CountError>,
    ) -> Result<(), CountError> {
        while length > 0 {
            let piece = &mut self.scratch[..length.min(BUFFER)];
            read_exact(&mut self.input, piece)?;
            each(piece)?;
            length -= piece.len();
        }
        Ok(())
    }

    fn byte(&mut self) -> Result<u8, CountError> {
        let mut byte = [0u8; 1];
        self.exact(&mut byte)?;
        Ok(byte[0])
    }

    /// The next byte, or `None` at a clean end of the archive.
    fn byte_or_end(&mut self) -> Result<Option<u8>, CountError> {
        let mut byte = [0u8; 1];
        loop {
            match self.input.read(&mut byte) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(byte[0])),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CountError::Read(e)),
            }
        }
    }

    fn exact(&mut self, buf: &mut [u8]) -> Result<(), CountError> {
        read_exact(&mut self.input, buf)
    }
}

/// `read_exact`, an early end being a malformed dump.
fn read_exact(input: &mut impl Read, buf: &mut [u8]) -> Result<(), CountError> {
    input.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            CountError::Malformed("the dump ends early".into())
        } else {
            CountError::Read(e)
        }
    })
}

/// The end of every table's data in the archive: pg_dump's `\\.` line, two empty lines.
const DATA_END: &[u8] = b"\\.\n\n\n";

/// Newlines of one data block, and its last bytes to check the terminator.
#[derive(Default)]
struct Lines {
    newlines: u64,
    tail: Vec<u8>,
}

impl Lines {
    fn feed(&mut self, bytes: &[u8]) {
        self.newlines += memchr::memchr_iter(b'\n', bytes).count() as u64;
        self.tail
            .extend_from_slice(&bytes[bytes.len().saturating_sub(DATA_END.len() + 1)..]);
        let excess = self.tail.len().saturating_sub(DATA_END.len() + 1);
        self.tail.drain(..excess);
    }

    /// The rows: newlines before the terminator, which must end the data.
    fn rows(&self) -> Result<u64, CountError> {
        let whole = self.tail.len() == DATA_END.len() && self.tail == DATA_END;
        let after_rows = self.tail.len() == DATA_END.len() + 1
            && self.tail[0] == b'\n'
            && self.tail[1..] == *DATA_END;
        if whole || after_rows {
            Ok(self.newlines - 3)
        } else {
            Err(CountError::Malformed(
                "table data does not end with pg_dump's terminator".into(),
            ))
        }
    }
}

/// One zlib stream inflated piecewise, counting newlines of the output.
struct Inflater {
    state: flate2::Decompress,
    out: Vec<u8>,
}

impl Inflater {
    fn new() -> Self {
        Inflater {
            state: flate2::Decompress::new(true),
            out: vec![0; 4 * BUFFER],
        }
    }

    fn inflate(&mut self, mut input: &[u8], lines: &mut Lines) -> Result<(), CountError> {
        loop {
            let before_in = self.state.total_in();
            let before_out = self.state.total_out();
            let status = self
                .state
                .decompress(input, &mut self.out, flate2::FlushDecompress::None)
                .map_err(|e| CountError::Malformed(format!("compressed table data: {e}")))?;
            let consumed = (self.state.total_in() - before_in) as usize;
            let produced = (self.state.total_out() - before_out) as usize;
            lines.feed(&self.out[..produced]);
            input = &input[consumed..];
            let stuck = consumed == 0 && produced == 0;
            if status == flate2::Status::StreamEnd
                || (input.is_empty() && produced < self.out.len())
            {
                return Ok(());
            }
            if stuck {
                return Err(CountError::Malformed(
                    "compressed table data does not inflate".into(),
                ));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_are_not_an_archive_are_malformed() {
        let err = count_rows(&b"SET statement_timeout = 0;\n"[..]).unwrap_err();
        assert!(matches!(err, CountError::Malformed(_)), "{err}");
    }

    #[test]
    fn an_archive_version_it_does_not_read_is_unsupported() {
        let err = count_rows(&b"PGDMP\x01\x09\x00\x04\x08\x01"[..]).unwrap_err();
        assert!(matches!(err, CountError::Unsupported(_)), "{err}");
    }

    #[test]
    fn an_archive_cut_in_its_header_is_malformed() {
        let err = count_rows(&b"PGDMP\x01\x0e\x00\x04\x08\x01\x00\x01"[..]).unwrap_err();
        assert!(matches!(err, CountError::Malformed(_)), "{err}");
    }

    #[test]
    fn table_data_must_end_with_the_terminator() {
        let mut lines = Lines::default();
        lines.feed(b"1\tx\n2\ty\n\\.\n\n\n");
        assert_eq!(lines.rows().unwrap(), 2);
        let mut empty = Lines::default();
        empty.feed(b"\\.\n\n\n");
        assert_eq!(empty.rows().unwrap(), 0);
        let mut cut = Lines::default();
        cut.feed(b"1\tx\n2\t");
        assert!(cut.rows().is_err());
    }
}
