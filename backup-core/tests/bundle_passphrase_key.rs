//! A passphrase key unlocked once (a repository's key check) encrypts any number of
//! bundles without a scrypt run each; every bundle still opens with the passphrase alone.

#[path = "bundle_support.rs"]
mod support;

use backup_core::bundle::{
    BundleOptions, BundleReader, BundleWriter, Compression, Decryption, Encryption,
    EncryptionMethod, Passphrase,
};
use backup_core::progress::NoProgress;
use backup_core::{ArtifactData, ErrorKind};
use support::*;

const WORK_FACTOR: u8 = 10;

async fn write_to_key(path: &std::path::Path, encryption: Encryption, payload: &[u8]) {
    let options = BundleOptions::default()
        .with_compression(Compression::Zstd)
        .with_encryption(encryption);
    let mut writer = BundleWriter::create(path, options).await.expect("create");
    writer
        .write_artifact(
            "db",
            &descriptor("app.dump"),
            ArtifactData::from_stream(stream_of(payload, 50_000)),
            &NoProgress,
        )
        .await
        .expect("artifact");
    writer.finish().await.expect("finish");
}

#[tokio::test]
async fn bundles_encrypted_to_an_unlocked_key_open_with_the_passphrase_alone() {
    let passphrase = Passphrase::new("correct horse");
    let key_check = passphrase.seal_key_check(WORK_FACTOR).expect("seal");
    let key = passphrase
        .unlock_key_check(&key_check, Some(WORK_FACTOR), "the test")
        .expect("the sealing passphrase unlocks it");
    assert!(
        !format!("{key:?}").contains("AGE-SECRET-KEY"),
        "Debug never shows the secret: {key:?}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let payload = pseudo_random(400_000, 4);
    let mut stored = Vec::new();
    for name in ["one.zip", "two.zip"] {
        let path = dir.path().join(name);
        write_to_key(&path, Encryption::PassphraseKey(key.clone()), &payload).await;
        let reader = BundleReader::open(&path)
            .await
            .expect("open")
            .with_decryption(Decryption::Passphrase(passphrase.clone()));
        let manifest = reader.manifest().clone();
        assert_eq!(
            manifest.wrapped_identity.as_deref(),
            Some(key_check.as_str())
        );
        let info = manifest.encryption.clone().expect("encryption recorded");
        assert_eq!(info.method, EncryptionMethod::Passphrase);
        assert_eq!(info.work_factor, Some(WORK_FACTOR));
        reader.verify(&NoProgress).await.expect("verify decrypts");
        let read = collect(reader.open_entry(&manifest.entries[0]).expect("entry"))
            .await
            .expect("read");
        assert_eq!(read, payload);
        stored.push(
            read_entries(&path)
                .into_iter()
                .find(|(name, _)| name == &manifest.entries[0].path)
                .expect("the stored entry")
                .1,
        );
    }
    assert_ne!(
        stored[0], stored[1],
        "one key, but every entry has its own age file key"
    );
}

#[tokio::test]
async fn a_wrong_passphrase_unlocks_no_key() {
    let key_check = Passphrase::new("right")
        .seal_key_check(WORK_FACTOR)
        .expect("seal");
    let err = Passphrase::new("wrong")
        .unlock_key_check(&key_check, Some(WORK_FACTOR), "the test repository")
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::WrongKey);
    assert!(err.to_string().contains("the test repository"), "{err}");
}
