//! Writes age v1 files (<https://age-encryption.org/v1>) with `ring`: the header's MAC,
//! the key derivations and the payload's ChaCha20-Poly1305 run on ring's assembly, about
//! twice as fast as the age crate's portable implementation, which matters because an
//! encrypted bundle write is CPU-bound. Only the framing is written here; the recipient
//! stanzas (X25519) come from the age crate itself ([`age::Recipient::wrap_file_key`]),
//! and everything written is read back by the age crate and by stock `age -d`.
//!
//! The file: `age-encryption.org/v1\n`, one `-> tag args…\n` + base64 body per stanza,
//! `--- ` + the base64 HMAC-SHA256 of the header up to `---` under
//! HKDF-SHA256(file key, salt empty, info `header`), then a random 16-byte nonce and the
//! STREAM payload: 64 KiB plaintext chunks, each sealed with ChaCha20-Poly1305 under
//! HKDF-SHA256(file key, salt nonce, info `payload`) with the 12-byte nonce
//! `11-byte big-endian counter || last flag`.
//!
//! The file key lives in age's [`FileKey`] (zeroized on drop) only while the header is
//! built; the derived keys live inside ring's key types and are never exposed.

use std::io;

use age::secrecy::ExposeSecret;
use age_core::format::{FileKey, Stanza};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{aead, hkdf, hmac};

use super::armor::base64;

/// Plaintext bytes per STREAM chunk.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Poly1305 tag bytes after each chunk.
pub(crate) const TAG: usize = aead::MAX_TAG_LEN;

/// A sealed full chunk: its plaintext's bytes, then its tag.
pub(crate) const FRAME: usize = CHUNK + TAG;

/// Columns of a stanza body line.
const BODY_COLUMNS: usize = 64;

/// Starts an age file to `recipients` with a fresh random file key and nonce: returns the
/// header and nonce (the file's first bytes) and the sealer of its payload.
pub(crate) fn start(recipients: &[age::x25519::Recipient]) -> io::Result<(Vec<u8>, PayloadSealer)> {
    let rng = SystemRandom::new();
    let file_key = FileKey::try_init_with_mut(|key| rng.fill(key)).map_err(|_| no_random())?;
    let mut header = header_minus_mac(&stanzas(recipients, &file_key)?);
    let mac_key: hmac::Key = derive(&[], &[b"header"], &file_key, hmac::HMAC_SHA256)?;
    let mac = hmac::sign(&mac_key, &header);
    header.push(b' ');
    header.extend_from_slice(base64(mac.as_ref(), false).as_bytes());
    header.push(b'\n');
    let mut nonce = [0u8; 16];
    rng.fill(&mut nonce).map_err(|_| no_random())?;
    header.extend_from_slice(&nonce);
    let payload_key: aead::UnboundKey =
        derive(&nonce, &[b"payload"], &file_key, &aead::CHACHA20_POLY1305)?;
    let sealer = PayloadSealer {
        key: aead::LessSafeKey::new(payload_key),
        counter: 0,
        ended: false,
    };
    Ok((header, sealer))
}

/// HKDF-SHA256 of the file key into a ring key of type `K` (the derived bytes never
/// leave ring).
fn derive<L, K>(salt: &[u8], info: &[&[u8]], file_key: &FileKey, key_type: L) -> io::Result<K>
where
    L: hkdf::KeyType,
    K: for<'a> From<hkdf::Okm<'a, L>>,
{
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(file_key.expose_secret());
    // Only a length over 255 hash blocks fails, which no age key has.
    let okm = prk
        .expand(info, key_type)
        .map_err(|_| io::Error::other("deriving an age key failed"))?;
    Ok(K::from(okm))
}

/// The recipients' stanzas for `file_key`, plus one random "grease" stanza as the age
/// crate adds to every header without a passphrase.
fn stanzas(recipients: &[age::x25519::Recipient], file_key: &FileKey) -> io::Result<Vec<Stanza>> {
    use age::Recipient as _;
    if recipients.is_empty() {
        return Err(io::Error::other("an age file needs at least one recipient"));
    }
    let mut stanzas = Vec::with_capacity(recipients.len() + 1);
    for recipient in recipients {
        // X25519 recipients carry no labels, so any set of them combines.
        let (mut wrapped, _labels) = recipient
            .wrap_file_key(file_key)
            .map_err(|e| io::Error::other(format!("wrapping an age file key: {e}")))?;
        stanzas.append(&mut wrapped);
    }
    stanzas.push(age_core::format::grease_the_joint());
    Ok(stanzas)
}

/// The header text up to and including `---` (what the MAC covers).
fn header_minus_mac(stanzas: &[Stanza]) -> Vec<u8> {
    let mut out = b"age-encryption.org/v1\n".to_vec();
    for stanza in stanzas {
        out.extend_from_slice(b"-> ");
        out.extend_from_slice(stanza.tag.as_bytes());
        for arg in &stanza.args {
            out.push(b' ');
            out.extend_from_slice(arg.as_bytes());
        }
        out.push(b'\n');
        let body = base64(&stanza.body, false);
        let mut lines = body.as_bytes().chunks_exact(BODY_COLUMNS);
        for line in lines.by_ref() {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        // The last line is always short: empty when the body fills whole lines.
        out.extend_from_slice(lines.remainder());
        out.push(b'\n');
    }
    out.extend_from_slice(b"---");
    out
}

fn no_random() -> io::Error {
    io::Error::other("the system random number generator failed")
}

/// Seals an age payload's chunks in order, in place.
pub(crate) struct PayloadSealer {
    key: aead::LessSafeKey,
    counter: u64,
    ended: bool,
}

impl PayloadSealer {
    /// Seals the frames of `batch` in place: each [`FRAME`] bytes (the last one possibly
    /// shorter) is a chunk's plaintext followed by [`TAG`] bytes of room for its tag.
    /// Only the final batch (`last`) may end with a short chunk, and its last chunk is
    /// flagged as the final one; no batch may follow it.
    ///
    /// # Errors
    ///
    /// A batch that breaks that layout (a bug in the caller, never written as a file).
    pub(crate) fn seal_frames(&mut self, batch: &mut [u8], last: bool) -> io::Result<()> {
        let frames = batch.len().div_ceil(FRAME);
        for (index, frame) in batch.chunks_mut(FRAME).enumerate() {
            self.seal(frame, last && index + 1 == frames)?;
        }
        if last && frames == 0 {
            return Err(layout_error("the final batch holds no chunk"));
        }
        Ok(())
    }

    /// Seals one chunk (plaintext, then room for the tag).
    fn seal(&mut self, frame: &mut [u8], last: bool) -> io::Result<()> {
        let plain = frame
            .len()
            .checked_sub(TAG)
            .ok_or_else(|| layout_error("a frame is shorter than its tag"))?;
        if self.ended {
            return Err(layout_error("a chunk after the final one"));
        }
        if plain > CHUNK || (!last && plain != CHUNK) || (plain == 0 && self.counter > 0) {
            return Err(layout_error("a chunk of the wrong size"));
        }
        let mut nonce = [0u8; aead::NONCE_LEN];
        nonce[3..11].copy_from_slice(&self.counter.to_be_bytes());
        nonce[11] = u8::from(last);
        let (text, room) = frame.split_at_mut(plain);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::empty(),
                text,
            )
            .map_err(|_| io::Error::other("sealing an age chunk failed"))?;
        room.copy_from_slice(tag.as_ref());
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| layout_error("too many chunks"))?;
        self.ended = last;
        Ok(())
    }
}

fn layout_error(what: &str) -> io::Error {
    io::Error::other(format!("age payload framing error: {what}"))
}
