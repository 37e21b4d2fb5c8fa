//! Checks an RDB file as it streams by: the `REDIS00xx` header, the EOF opcode, and the
//! CRC-64 (Jones, as Redis computes it) stored in its last 8 bytes.

use backup_core::{Error, Result};

/// Reflected form of the Jones polynomial 0xad93d23594c935a9 that Redis uses.
const POLY: u64 = 0x95ac_9329_ac4b_c9b5;
/// The RDB opcode that precedes the checksum.
const OPCODE_EOF: u8 = 0xff;

const fn table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static TABLE: [u64; 256] = table();

/// Continues a Redis CRC-64 over `data`.
pub(crate) fn crc64(mut crc: u64, data: &[u8]) -> u64 {
    for &byte in data {
        crc = TABLE[((crc ^ u64::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// Verifies a whole RDB file fed in pieces of any size.
#[derive(Debug, Default)]
pub(crate) struct RdbCheck {
    head: Vec<u8>,
    version: Option<u32>,
    crc: u64,
    /// The last (up to) 8 bytes seen: the candidate checksum, not yet in `crc`.
    held: Vec<u8>,
    last_covered: Option<u8>,
}

impl RdbCheck {
    /// Feeds the next bytes.
    ///
    /// # Errors
    ///
    /// An integrity error as soon as the header is known to be wrong.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<()> {
        self.check_header(bytes)?;
        if bytes.len() >= 8 {
            let held = std::mem::take(&mut self.held);
            self.cover(&held);
            let split = bytes.len() - 8;
            self.cover(&bytes[..split]);
            self.held.extend_from_slice(&bytes[split..]);
        } else {
            self.held.extend_from_slice(bytes);
            if self.held.len() > 8 {
                let extra = self.held.len() - 8;
                let covered: Vec<u8> = self.held.drain(..extra).collect();
                self.cover(&covered);
            }
        }
        Ok(())
    }

    fn cover(&mut self, bytes: &[u8]) {
        if let Some(&last) = bytes.last() {
            self.crc = crc64(self.crc, bytes);
            self.last_covered = Some(last);
        }
    }

    fn check_header(&mut self, bytes: &[u8]) -> Result<()> {
        if self.head.len() >= 9 {
            return Ok(());
        }
        let n = (9 - self.head.len()).min(bytes.len());
        self.head.extend_from_slice(&bytes[..n]);
        if self.head.len() == 9 {
            let version = self
                .head
                .strip_prefix(b"REDIS")
                .and_then(|v| std::str::from_utf8(v).ok())
                .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u32>().ok())
                .ok_or_else(|| Error::integrity("the data is not an RDB file (no REDIS header)"))?;
            self.version = Some(version);
        }
        Ok(())
    }

    /// Checks the end: EOF opcode and checksum (a stored 0 means checksums were off on
    /// the source). Returns the RDB version.
    ///
    /// # Errors
    ///
    /// An integrity error naming what is wrong.
    pub(crate) fn finish(&self) -> Result<u32> {
        let version = self
            .version
            .ok_or_else(|| Error::integrity("the RDB file is too short"))?;
        let stored: [u8; 8] = self
            .held
            .as_slice()
            .try_into()
            .map_err(|_| Error::integrity("the RDB file is too short"))?;
        if version < 5 {
            return Ok(version);
        }
        if self.last_covered != Some(OPCODE_EOF) {
            return Err(Error::integrity(
                "the RDB file is truncated: it does not end with the EOF opcode",
            ));
        }
        let stored = u64::from_le_bytes(stored);
        if stored != 0 && stored != self.crc {
            return Err(
                Error::integrity("the RDB file is corrupt: its CRC-64 does not match")
                    .with_hint("use an intact export"),
            );
        }
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_matches_the_redis_test_vector() {
        assert_eq!(crc64(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn feeding_in_any_piece_sizes_gives_the_same_result() {
        let mut rdb = b"REDIS0010".to_vec();
        rdb.extend_from_slice(b"\xfa\x05hello");
        rdb.push(OPCODE_EOF);
        let crc = crc64(0, &rdb);
        rdb.extend_from_slice(&crc.to_le_bytes());
        for piece in [1, 3, 7, 8, 9, 64] {
            let mut check = RdbCheck::default();
            for chunk in rdb.chunks(piece) {
                check.feed(chunk).expect("feed");
            }
            assert_eq!(check.finish().expect("valid"), 10);
        }
        let mut bad = rdb.clone();
        bad[11] ^= 1;
        let mut check = RdbCheck::default();
        check.feed(&bad).expect("feed");
        assert!(check.finish().is_err());
        let mut check = RdbCheck::default();
        check.feed(&rdb[..rdb.len() - 3]).expect("feed");
        assert!(check.finish().is_err());
    }
}
