//! age's ASCII armor (PEM-like: `-----BEGIN AGE ENCRYPTED FILE-----`, standard base64 in
//! 64-column lines, `-----END AGE ENCRYPTED FILE-----`), for the manifest's wrapped
//! identity. Small enough to keep here rather than enable age's `armor` feature.

const BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";
const END: &str = "-----END AGE ENCRYPTED FILE-----";
const COLUMNS: usize = 64;
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 of `bytes`, `=`-padded when `padded` (age's header uses no padding,
/// its armor pads).
pub(crate) fn base64(bytes: &[u8], padded: bool) -> String {
    let mut text = String::with_capacity(bytes.len() * 4 / 3 + 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else if padded {
                text.push('=');
            }
        }
    }
    text
}

/// Armors `bytes` as `age -a` would.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let text = base64(bytes, true);
    let mut out = String::from(BEGIN);
    out.push('\n');
    for line in text.as_bytes().chunks(COLUMNS) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    out
}

/// Reads armored text back into bytes; `None` for anything that is not well-formed armor.
pub(crate) fn decode(armored: &str) -> Option<Vec<u8>> {
    let mut lines = armored.trim().lines().map(|l| l.trim_end_matches('\r'));
    if lines.next()? != BEGIN {
        return None;
    }
    let mut text = Vec::new();
    let mut ended = false;
    for line in lines {
        if ended {
            return None;
        }
        if line == END {
            ended = true;
        } else if line.len() > COLUMNS {
            return None;
        } else {
            text.extend_from_slice(line.as_bytes());
        }
    }
    if !ended || text.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for (index, quad) in text.chunks(4).enumerate() {
        let last = index + 1 == text.len() / 4;
        let pad = quad.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for c in &quad[..4 - pad] {
            let value = ALPHABET.iter().position(|a| a == c)?;
            n = (n << 6) | value as u32;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}
