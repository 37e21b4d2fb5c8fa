//! Entries are encrypted by our own age v1 writer ([`AgeWriter`], ring's ChaCha20-Poly1305)
//! and read by an independent implementation: the age crate's reader and the stock `age`
//! CLI. Plaintext sizes around the 64 KiB STREAM chunk, several recipients, tampering,
//! and a fresh file key and nonce per file.

#[path = "bundle_support.rs"]
mod support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use age::secrecy::ExposeSecret;
use backup_core::bundle::AgeWriter;
use support::pseudo_random;

const CHUNK: usize = 64 * 1024;

/// Plaintext sizes at and around the chunk boundaries, and a few MiB.
const SIZES: [usize; 7] = [
    0,
    1,
    CHUNK - 1,
    CHUNK,
    CHUNK + 1,
    2 * CHUNK,
    3 * 1024 * 1024 + 12345,
];

fn identity() -> age::x25519::Identity {
    age::x25519::Identity::generate()
}

fn public(identity: &age::x25519::Identity) -> String {
    identity.to_public().to_string()
}

/// Encrypts `plain` with our writer to `keys`, handing it over in `piece`-byte writes.
fn encrypt(plain: &[u8], keys: &[String], piece: usize) -> Vec<u8> {
    let mut writer = AgeWriter::to_recipients(Vec::new(), keys).expect("start an age file");
    for part in plain.chunks(piece.max(1)) {
        writer.write_all(part).expect("write plaintext");
    }
    writer.finish().expect("finish the age file")
}

/// Decrypts `file` with the age crate's reader.
fn decrypt(file: &[u8], identity: &age::x25519::Identity) -> Result<Vec<u8>, String> {
    let decryptor = age::Decryptor::new(file).map_err(|e| e.to_string())?;
    let mut reader = decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Where the header's MAC line (`--- …`) starts.
fn mac_line(file: &[u8]) -> usize {
    file.windows(4)
        .position(|w| w == b"\n---")
        .expect("a header MAC line")
        + 1
}

/// Where the payload (after the header's MAC line and the 16-byte nonce) starts.
fn payload_start(file: &[u8]) -> usize {
    let mac = mac_line(file);
    let end = mac
        + file[mac..]
            .iter()
            .position(|b| *b == b'\n')
            .expect("MAC line end");
    end + 1 + 16
}

#[test]
fn our_age_files_decrypt_with_the_age_crate_at_every_chunk_boundary() {
    let key = identity();
    for size in SIZES {
        let plain = pseudo_random(size, size as u64 + 1);
        // Whole, odd-sized and tiny writes all frame the same payload.
        for piece in [size.max(1), 1000, 65_537] {
            let file = encrypt(&plain, &[public(&key)], piece);
            let chunks = size.div_ceil(CHUNK).max(1);
            assert_eq!(
                file.len() - payload_start(&file),
                size + 16 * chunks,
                "{size} bytes make {chunks} chunks, the last one flagged (no empty trailing chunk)"
            );
            assert_eq!(
                decrypt(&file, &key).expect("the age crate decrypts it"),
                plain,
                "{size} bytes in {piece}-byte writes"
            );
        }
    }
}

#[test]
fn every_one_of_several_recipients_decrypts_our_age_file() {
    let keys = [identity(), identity(), identity()];
    let publics: Vec<String> = keys.iter().map(public).collect();
    for size in [0, CHUNK, 2 * 1024 * 1024 + 7] {
        let plain = pseudo_random(size, 99);
        let file = encrypt(&plain, &publics, 128 * 1024);
        for key in &keys {
            assert_eq!(decrypt(&file, key).expect("each recipient decrypts"), plain);
        }
        assert!(
            decrypt(&file, &identity()).is_err(),
            "an identity that is no recipient does not"
        );
    }
}

#[test]
fn stanza_bodies_of_every_length_are_wrapped_as_age_reads_them() {
    // Each header ends with a random "grease" stanza of 0–100 body bytes (as the age crate
    // writes), so many small files cover empty, short, exactly-full and multi-line bodies.
    let key = identity();
    for round in 0..300u64 {
        let plain = pseudo_random((round % 7) as usize, round + 1);
        let file = encrypt(&plain, &[public(&key)], 1);
        assert_eq!(
            decrypt(&file, &key).expect("the age crate parses the header"),
            plain
        );
    }
}

#[test]
fn our_age_files_decrypt_with_the_age_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = identity();
    let key_path = dir.path().join("key.txt");
    std::fs::write(&key_path, format!("{}\n", key.to_string().expose_secret())).expect("key");
    for size in [0, CHUNK, CHUNK + 1, 3 * 1024 * 1024 + 1] {
        let plain = pseudo_random(size, 5);
        let file_path = dir.path().join("file.age");
        std::fs::write(&file_path, encrypt(&plain, &[public(&key)], 40_000)).expect("file");
        let out = Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&key_path)
            .arg(&file_path)
            .stdin(Stdio::null())
            .output()
            .expect("run age");
        assert!(
            out.status.success(),
            "age -d failed on {size} bytes: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, plain, "age -d gives back the {size} bytes");
    }
}

#[test]
fn a_flipped_payload_or_header_mac_byte_is_rejected_by_the_age_crate() {
    let key = identity();
    let plain = pseudo_random(3 * CHUNK + 10, 11);
    let file = encrypt(&plain, &[public(&key)], CHUNK);
    let payload = payload_start(&file);
    // A byte in the first chunk, the last chunk and a tag; then one in the MAC itself.
    let spots = [
        payload + 5,
        file.len() - 20,
        file.len() - 1,
        mac_line(&file) + 4 + 10,
    ];
    for spot in spots {
        let mut damaged = file.clone();
        damaged[spot] ^= 0x01;
        let read = decrypt(&damaged, &key);
        assert!(
            read.is_err(),
            "a flipped byte at {spot} of {} must be refused",
            file.len()
        );
    }
    // A MAC character swapped for another valid base64 one is refused too.
    let mut damaged = file.clone();
    let at = mac_line(&file) + 4;
    damaged[at] = if damaged[at] == b'A' { b'B' } else { b'A' };
    assert!(decrypt(&damaged, &key).is_err(), "a changed header MAC");
    assert_eq!(decrypt(&file, &key).expect("the intact file"), plain);
}

/// The file key of `file`'s first stanza, unwrapped with `key`.
fn file_key(file: &[u8], key: &age::x25519::Identity) -> [u8; 16] {
    use age::Identity as _;
    let first = file.iter().position(|b| *b == b'\n').expect("version line") + 1;
    let (_, stanza) = age_core::format::read::age_stanza(&file[first..]).expect("a stanza");
    let stanza = age_core::format::Stanza::from(stanza);
    let unwrapped = key
        .unwrap_stanza(&stanza)
        .expect("the stanza is for this key")
        .expect("it unwraps");
    *unwrapped.expose_secret()
}

#[test]
fn each_age_file_gets_a_fresh_file_key_and_nonce() {
    let key = identity();
    let plain = pseudo_random(100_000, 3);
    let one = encrypt(&plain, &[public(&key)], 100_000);
    let two = encrypt(&plain, &[public(&key)], 100_000);
    assert_ne!(file_key(&one, &key), file_key(&two, &key), "fresh file key");
    let nonce = |file: &[u8]| file[payload_start(file) - 16..payload_start(file)].to_vec();
    assert_ne!(nonce(&one), nonce(&two), "fresh payload nonce");
    assert_ne!(
        one[payload_start(&one)..],
        two[payload_start(&two)..],
        "the same plaintext encrypts differently"
    );
    assert_eq!(decrypt(&one, &key).expect("one"), plain);
    assert_eq!(decrypt(&two, &key).expect("two"), plain);
}

#[test]
fn a_writer_needs_a_valid_recipient() {
    let none: [&str; 0] = [];
    let err = AgeWriter::to_recipients(Vec::new(), none).expect_err("no recipient");
    assert_eq!(err.kind(), backup_core::ErrorKind::InvalidInput);
    let err = AgeWriter::to_recipients(Vec::new(), ["age1notakey"]).expect_err("a bad key");
    assert_eq!(err.kind(), backup_core::ErrorKind::InvalidInput);
}
