//! age encryption per entry (a passphrase wraps one X25519 identity per bundle): round trips with a passphrase and with X25519 recipients,
//! listing and checksum verification without the key, wrong and missing keys, tampering
//! caught by sha256 and by age's authentication, the scrypt work-factor bound, and stock
//! `unzip -p | age -d | zstd -d`.

#[path = "bundle_support.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use age::secrecy::ExposeSecret;
use backup_core::bundle::{
    BundleOptions, BundleReader, BundleWriter, Compression, Decryption, Encryption,
    EncryptionMethod, Identities, Manifest, Passphrase, ENCRYPTION_AGE,
};
use backup_core::progress::NoProgress;
use backup_core::{ArtifactData, Error, ErrorKind};
use support::*;

/// Decodes age ASCII armor with stock `base64 -d` (which also checks it is standard).
fn dearmor(armored: &str) -> Vec<u8> {
    let body: String = armored
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("\n");
    run_with_input("base64 -d", body.as_bytes())
}

/// Armors `bytes` the way age does, with stock `base64 -w 64`.
fn armor(bytes: &[u8]) -> String {
    let body = String::from_utf8(run_with_input("base64 -w 64", bytes)).expect("base64 text");
    format!("-----BEGIN AGE ENCRYPTED FILE-----\n{body}-----END AGE ENCRYPTED FILE-----\n")
}

fn run_with_input(script: &str, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run bash ({e})"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    assert!(
        output.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A low work factor keeps the tests fast; the default is pinned separately.
const TEST_WORK_FACTOR: u8 = 10;
const PASSPHRASE: &str = "correct horse battery staple";

fn passphrase_encryption() -> Encryption {
    Encryption::Passphrase {
        passphrase: Passphrase::new(PASSPHRASE),
        work_factor: TEST_WORK_FACTOR,
    }
}

async fn write_encrypted(
    path: &Path,
    compression: Compression,
    encryption: Encryption,
) -> Manifest {
    let options = BundleOptions::default()
        .with_compression(compression)
        .with_encryption(encryption);
    let mut writer = BundleWriter::create(path, options).await.expect("create");
    writer.write_snapshot(&snapshot()).await.expect("snapshot");
    for (service, name, bytes) in sample_payloads() {
        writer
            .write_artifact(
                service,
                &descriptor(name),
                ArtifactData::from_stream(stream_of(&bytes, 64 * 1024)),
                &NoProgress,
            )
            .await
            .expect("write artifact");
    }
    writer.finish().await.expect("finish")
}

/// Reads every entry back and compares it with the payload written.
async fn assert_reads_back(reader: &BundleReader) {
    for (entry, (_, _, want)) in reader.manifest().entries.iter().zip(sample_payloads()) {
        let got = collect(reader.open_entry(entry).expect("open entry"))
            .await
            .expect("read entry");
        assert!(got == want, "entry {} differs after decryption", entry.path);
    }
}

fn identity() -> (age::x25519::Identity, String) {
    let identity = age::x25519::Identity::generate();
    let public = identity.to_public().to_string();
    (identity, public)
}

fn identity_text(identity: &age::x25519::Identity) -> String {
    format!("# test key\n{}\n", identity.to_string().expose_secret())
}

#[tokio::test]
async fn passphrase_round_trip_records_how_and_never_the_passphrase() {
    for compression in [Compression::Zstd, Compression::None] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("enc.zip");
        let manifest = write_encrypted(&path, compression, passphrase_encryption()).await;
        let info = manifest.encryption.clone().expect("manifest says how");
        assert_eq!(info.scheme, "age");
        assert_eq!(info.method, EncryptionMethod::Passphrase);
        assert_eq!(info.work_factor, Some(TEST_WORK_FACTOR));
        let wrapped = manifest.wrapped_identity.clone().expect("wrapped identity");
        assert!(
            wrapped.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"),
            "{wrapped}"
        );
        for entry in &manifest.entries {
            assert_eq!(entry.encryption, ENCRYPTION_AGE);
            assert!(entry.path.ends_with(".age"), "{}", entry.path);
        }
        // The passphrase is nowhere in the file (manifest, snapshot, entries).
        let bytes = std::fs::read(&path).expect("read");
        assert!(!bytes
            .windows(PASSPHRASE.len())
            .any(|w| w == PASSPHRASE.as_bytes()));
        let (ok, out) = unzip_test(&path);
        assert!(ok, "{out}");

        let reader = BundleReader::open(&path)
            .await
            .expect("open")
            .with_decryption(Decryption::Passphrase(Passphrase::new(PASSPHRASE)));
        let report = reader.verify(&NoProgress).await.expect("verify with key");
        assert!(report.not_decrypted.is_empty(), "{report:?}");
        assert_reads_back(&reader).await;
    }
}

#[tokio::test]
async fn recipients_round_trip_with_a_generated_identity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("enc.zip");
    let (key, public) = identity();
    let (_, other_public) = identity();
    let encryption = Encryption::recipients([&public, &other_public]).expect("recipients");
    let manifest = write_encrypted(&path, Compression::Zstd, encryption).await;
    let info = manifest.encryption.expect("manifest says how");
    assert_eq!(info.method, EncryptionMethod::Recipients);
    assert_eq!(info.recipients, vec![public.clone(), other_public]);
    let secret = key.to_string();
    let bytes = std::fs::read(&path).expect("read");
    let secret = secret.expose_secret().as_bytes();
    assert!(!bytes.windows(secret.len()).any(|w| w == secret));

    let identities = Identities::parse(&identity_text(&key)).expect("identity");
    assert_eq!(identities.public_keys(), vec![public]);
    assert!(!format!("{identities:?}").contains("AGE-SECRET-KEY"));
    let reader = BundleReader::open(&path)
        .await
        .expect("open")
        .with_decryption(Decryption::Identities(identities));
    reader.verify(&NoProgress).await.expect("verify with key");
    assert_reads_back(&reader).await;
}

#[tokio::test]
async fn listing_and_checksum_verify_work_without_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("enc.zip");
    let written = write_encrypted(&path, Compression::Zstd, passphrase_encryption()).await;
    let reader = BundleReader::open(&path).await.expect("open without key");
    assert_eq!(reader.manifest(), &written);
    assert!(reader.is_encrypted());
    assert!(reader.snapshot().is_some(), "snapshot.json stays readable");
    let report = reader.verify(&NoProgress).await.expect("checksums verify");
    let mut not_decrypted = report.not_decrypted.clone();
    not_decrypted.sort();
    let mut all: Vec<String> = written.entries.iter().map(|e| e.path.clone()).collect();
    all.sort();
    assert_eq!(not_decrypted, all);
    assert_eq!(report.entries.len(), written.entries.len() + 1);

    let missing = reader.ensure_decryptable().expect_err("no key");
    assert_key_error(&missing);
    let entry = &written.entries[0];
    let err = match reader.open_entry(entry) {
        Ok(_) => panic!("an encrypted entry opened without a key"),
        Err(err) => err,
    };
    assert_key_error(&err);
}

fn assert_key_error(err: &Error) {
    assert_eq!(err.kind(), ErrorKind::WrongKey, "{err}");
    let hint = err.hint().unwrap_or_default();
    assert!(hint.contains("Decryption::Passphrase"), "{hint}");
    assert!(!err.to_string().contains(PASSPHRASE));
}

#[tokio::test]
async fn a_wrong_passphrase_or_identity_is_a_clear_wrong_key_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("enc.zip");
    write_encrypted(&path, Compression::Zstd, passphrase_encryption()).await;
    let wrong = BundleReader::open(&path)
        .await
        .expect("open")
        .with_decryption(Decryption::Passphrase(Passphrase::new("wrong")));
    let err = wrong
        .verify(&NoProgress)
        .await
        .expect_err("wrong passphrase");
    assert_key_error(&err);
    assert!(err.message().contains("data/db/app.dump.zst.age"), "{err}");
    let entry = wrong.manifest().entries[0].clone();
    let stream_err = collect(wrong.open_entry(&entry).expect("stream starts"))
        .await
        .expect_err("wrong passphrase while streaming");
    let stream_err = Error::io("reading", stream_err);
    assert_eq!(stream_err.kind(), ErrorKind::WrongKey, "{stream_err}");

    let (someone_else, _) = identity();
    let identities = Identities::parse(&identity_text(&someone_else)).expect("identity");
    let wrong = BundleReader::open(&path)
        .await
        .expect("open")
        .with_decryption(Decryption::Identities(identities));
    assert_key_error(&wrong.verify(&NoProgress).await.expect_err("wrong identity"));
}

/// Rewrites the bundle with `change` applied to the stored bytes of `entry` and the
/// manifest's size and sha256 updated to match (so only age can notice).
fn rewrite_entry(path: &Path, entry: &str, change: impl FnOnce(&mut Vec<u8>)) {
    use sha2::{Digest, Sha256};
    let mut entries = read_entries(path);
    let (_, stored) = entries
        .iter_mut()
        .find(|(name, _)| name == entry)
        .expect("entry");
    change(stored);
    let (size, sha) = (stored.len(), hex::encode(Sha256::digest(&*stored)));
    let mut manifest = manifest_json(&entries);
    for e in manifest["entries"].as_array_mut().expect("entries") {
        if e["path"] == entry {
            e["size"] = serde_json::json!(size);
            e["sha256"] = serde_json::json!(sha);
        }
    }
    set_manifest(&mut entries, &manifest);
    write_raw_zip(path, &entries);
}

#[tokio::test]
async fn a_flipped_byte_in_an_encrypted_entry_is_caught_by_sha256_and_by_age() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("enc.zip");
    let manifest = write_encrypted(&path, Compression::Zstd, passphrase_encryption()).await;
    let entry = manifest.entries[0].path.clone();
    let key = || Decryption::Passphrase(Passphrase::new(PASSPHRASE));

    // A flipped byte in the payload, manifest unchanged: the sha256 (no key needed).
    let original = std::fs::read(&path).expect("read");
    let stored = read_entries(&path)
        .into_iter()
        .find(|(n, _)| *n == entry)
        .expect("entry")
        .1;
    let at = original
        .windows(64)
        .position(|w| w == &stored[stored.len() / 2..stored.len() / 2 + 64])
        .expect("payload in file");
    let mut damaged = original.clone();
    damaged[at] ^= 0x01;
    std::fs::write(&path, &damaged).expect("write");
    let reader = BundleReader::open(&path).await.expect("open");
    let err = reader.verify(&NoProgress).await.expect_err("sha256");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(
        err.message().contains(&entry) && err.message().contains("sha256"),
        "{err}"
    );

    // The same flip with the manifest rewritten to match: age's authentication.
    std::fs::write(&path, &original).expect("restore original");
    rewrite_entry(&path, &entry, |bytes| {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
    });
    let without_key = BundleReader::open(&path).await.expect("open");
    without_key
        .verify(&NoProgress)
        .await
        .expect("the stored bytes match the rewritten manifest");
    let reader = BundleReader::open(&path)
        .await
        .expect("open")
        .with_decryption(key());
    let err = reader.verify(&NoProgress).await.expect_err("age MAC");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(
        err.message().contains(&entry) && err.message().contains("decrypt"),
        "{err}"
    );
    let entry = reader.manifest().entry(&entry).expect("entry").clone();
    let stream_err = collect(reader.open_entry(&entry).expect("stream"))
        .await
        .expect_err("age MAC while streaming");
    let stream_err = Error::io("reading", stream_err);
    assert_eq!(stream_err.kind(), ErrorKind::Integrity, "{stream_err}");
}

#[tokio::test]
async fn a_passphrase_work_factor_over_the_bound_is_refused_before_any_scrypt_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("enc.zip");
    let manifest = write_encrypted(&path, Compression::Zstd, passphrase_encryption()).await;
    let entry = manifest.entries[0].path.clone();
    // Claim 2^40 in the wrapped identity's age header (what a hostile bundle would do to
    // exhaust a reader): refused from the header, before any scrypt work.
    let mut entries = read_entries(&path);
    let mut json = manifest_json(&entries);
    let wrapped = json["wrappedIdentity"].as_str().expect("wrapped identity");
    let mut bytes = dearmor(wrapped);
    let header_end = bytes
        .windows(4)
        .position(|w| w == b"\n---")
        .expect("age header");
    let header = String::from_utf8(bytes[..header_end].to_vec()).expect("header text");
    let claimed = header.replace(&format!(" {TEST_WORK_FACTOR}\n"), " 40\n");
    assert_ne!(claimed, header, "the stanza names the work factor");
    let mut out = claimed.into_bytes();
    out.extend_from_slice(&bytes[header_end..]);
    bytes = out;
    json["wrappedIdentity"] = serde_json::json!(armor(&bytes));
    set_manifest(&mut entries, &json);
    write_raw_zip(&path, &entries);
    let reader = BundleReader::open(&path)
        .await
        .expect("open")
        .with_decryption(Decryption::Passphrase(Passphrase::new(PASSPHRASE)));
    let started = std::time::Instant::now();
    let err = reader
        .verify(&NoProgress)
        .await
        .expect_err("excessive work");
    assert!(started.elapsed().as_secs() < 5, "no scrypt work was done");
    assert_eq!(err.kind(), ErrorKind::ResourceExhausted, "{err}");
    assert!(err.message().contains("work factor 40"), "{err}");
    assert!(err.message().contains(&entry), "{err}");

    // The manifest's own workFactor over the bound is refused too, before age is asked.
    json["encryption"]["workFactor"] = serde_json::json!(41);
    set_manifest(&mut entries, &json);
    write_raw_zip(&path, &entries);
    let reader = BundleReader::open(&path)
        .await
        .expect("open")
        .with_decryption(Decryption::Passphrase(Passphrase::new(PASSPHRASE)));
    let err = reader
        .verify(&NoProgress)
        .await
        .expect_err("excessive work");
    assert_eq!(err.kind(), ErrorKind::ResourceExhausted, "{err}");
    assert!(err.message().contains("work factor 41"), "{err}");

    // A writer refuses to make what readers refuse.
    let options = BundleOptions::default().with_encryption(Encryption::Passphrase {
        passphrase: Passphrase::new(PASSPHRASE),
        work_factor: 21,
    });
    let err = BundleWriter::create(&dir.path().join("too-slow.zip"), options)
        .await
        .expect_err("work factor over the bound");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

#[test]
fn the_default_work_factor_is_pinned_and_secrets_never_print() {
    let encryption = Encryption::passphrase(Passphrase::new(PASSPHRASE));
    match &encryption {
        Encryption::Passphrase { work_factor, .. } => assert_eq!(*work_factor, 18),
        other => panic!("{other:?}"),
    }
    let shown = format!(
        "{encryption:?} {:?}",
        BundleOptions::default().with_encryption(encryption.clone())
    );
    assert!(!shown.contains(PASSPHRASE), "{shown}");
    let err = Encryption::recipients(["not-a-key"]).expect_err("bad recipient");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(Identities::parse("# nothing\n").is_err());
}

#[tokio::test]
async fn an_encrypted_entry_opens_with_stock_unzip_age_and_zstd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("enc.zip");
    let (key, public) = identity();
    let key_file = dir.path().join("key.txt");
    std::fs::write(&key_file, identity_text(&key)).expect("key file");
    let encryption = Encryption::recipients([&public]).expect("recipient");
    let manifest = write_encrypted(&path, Compression::Zstd, encryption).await;
    for (entry, (_, _, want)) in manifest.entries.iter().zip(sample_payloads()) {
        let script = format!(
            "set -o pipefail; unzip -p '{}' '{}' | age -d -i '{}' | zstd -d",
            path.display(),
            entry.path,
            key_file.display()
        );
        let output = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run bash ({e})"));
        assert!(
            output.status.success(),
            "{script}: {} (install unzip, age and zstd: scripts/test.sh)",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.stdout == want,
            "{} differs through stock tools",
            entry.path
        );
    }
}

#[tokio::test]
async fn a_passphrase_bundle_wraps_one_identity_and_its_entries_are_x25519_age_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("enc.zip");
    let manifest = write_encrypted(&path, Compression::Zstd, passphrase_encryption()).await;
    assert!(manifest.entries.len() >= 2, "several entries");
    // Exactly one scrypt stanza in the whole bundle: the wrapped identity's.
    let wrapped = dearmor(
        manifest
            .wrapped_identity
            .as_deref()
            .expect("wrapped identity"),
    );
    assert!(wrapped.starts_with(b"age-encryption.org/v1\n-> scrypt "));
    let json = std::str::from_utf8(
        &read_entries(&path)
            .into_iter()
            .find(|(n, _)| n == "manifest.json")
            .expect("manifest")
            .1,
    )
    .expect("utf-8")
    .to_owned();
    assert_eq!(
        json.matches("BEGIN AGE ENCRYPTED FILE").count(),
        1,
        "{json}"
    );
    for (name, bytes) in read_entries(&path) {
        if !name.starts_with("data/") {
            continue;
        }
        let header_end = bytes
            .windows(4)
            .position(|w| w == b"\n---")
            .expect("age header");
        let header = String::from_utf8_lossy(&bytes[..header_end]);
        assert!(header.contains("\n-> X25519 "), "{name}: {header}");
        assert!(!header.contains("scrypt"), "{name}: {header}");
    }
    // Two bundles with the same passphrase get different identities.
    let other = dir.path().join("other.zip");
    let second = write_encrypted(&other, Compression::Zstd, passphrase_encryption()).await;
    assert_ne!(second.wrapped_identity, manifest.wrapped_identity);
}

#[tokio::test]
async fn a_passphrase_entry_opens_by_hand_with_the_unwrapped_identity_and_stock_age() {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("enc.zip");
    let manifest = write_encrypted(&path, Compression::Zstd, passphrase_encryption()).await;
    // `jq -r .wrappedIdentity | age -d` prompts for the passphrase on a terminal; the
    // age crate stands in for that step.
    let wrapped = dearmor(
        manifest
            .wrapped_identity
            .as_deref()
            .expect("wrapped identity"),
    );
    let identity = age::scrypt::Identity::new(PASSPHRASE.to_owned().into());
    let mut key = String::new();
    age::Decryptor::new(&wrapped[..])
        .expect("age file")
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .expect("the passphrase unlocks the wrapped identity")
        .read_to_string(&mut key)
        .expect("identity text");
    assert!(key.starts_with("AGE-SECRET-KEY-1"), "an age identity");
    // Stock `age -d` reads a passphrase only from a terminal, and CI machines may have
    // none, so the unwrapped identity above (the same age scrypt file format) is written
    // out and the entry is opened with stock tools from there.
    let key_file = dir.path().join("key.txt");
    std::fs::write(&key_file, &key).expect("write key.txt");
    let (entry, (_, _, want)) = manifest
        .entries
        .iter()
        .zip(sample_payloads())
        .next()
        .expect("an entry");
    let script = format!(
        "set -o pipefail; unzip -p '{}' '{}' | age -d -i '{}' | zstd -d",
        path.display(),
        entry.path,
        key_file.display()
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash ({e})"));
    assert!(
        output.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout == want, "{} differs", entry.path);
}

#[tokio::test]
async fn an_oversized_or_damaged_wrapped_identity_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("enc.zip");
    write_encrypted(&path, Compression::Zstd, passphrase_encryption()).await;
    let mut entries = read_entries(&path);
    let mut json = manifest_json(&entries);
    let wrapped = json["wrappedIdentity"]
        .as_str()
        .expect("wrapped")
        .to_owned();

    json["wrappedIdentity"] = serde_json::json!(format!("{wrapped}{}", "A".repeat(5000)));
    set_manifest(&mut entries, &json);
    write_raw_zip(&path, &entries);
    let err = BundleReader::open(&path).await.expect_err("oversized");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(err.message().contains("wrappedIdentity"), "{err}");

    let mut bytes = dearmor(&wrapped);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    json["wrappedIdentity"] = serde_json::json!(armor(&bytes));
    set_manifest(&mut entries, &json);
    write_raw_zip(&path, &entries);
    let reader = BundleReader::open(&path)
        .await
        .expect("open")
        .with_decryption(Decryption::Passphrase(Passphrase::new(PASSPHRASE)));
    let err = reader.verify(&NoProgress).await.expect_err("damaged");
    assert!(
        matches!(err.kind(), ErrorKind::Integrity | ErrorKind::WrongKey),
        "{err}"
    );
    assert!(!err.to_string().contains(PASSPHRASE));
}
