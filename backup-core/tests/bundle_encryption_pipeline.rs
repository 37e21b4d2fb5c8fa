//! An encrypted, compressed entry runs through three stages (zstd, age, hash and write),
//! each on its own thread: whichever stage fails, the entry fails with that stage's own
//! error, nothing hangs, and nothing that looks like a bundle is left.

#[path = "bundle_support.rs"]
mod support;

use std::io::Write;

use backup_core::bundle::{
    BundleOptions, BundleReader, BundleWriter, Compression, Decryption, Encryption, Identities,
    Passphrase,
};
use backup_core::progress::NoProgress;
use backup_core::ArtifactData;
use support::*;

/// A sink that accepts `room` bytes and then fails like a full disk.
struct FullDisk {
    room: usize,
}

impl Write for FullDisk {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.room {
            return Err(std::io::Error::other("no space left on the test sink"));
        }
        self.room -= buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn encrypted_options() -> (BundleOptions, Identities) {
    let identity = age::x25519::Identity::generate();
    let secret = age::secrecy::ExposeSecret::expose_secret(&identity.to_string()).to_owned();
    let encryption =
        Encryption::recipients([identity.to_public().to_string()]).expect("a valid recipient");
    let options = BundleOptions::default()
        .with_compression(Compression::Zstd)
        .with_encryption(encryption);
    (options, Identities::parse(&secret).expect("identity"))
}

#[tokio::test]
async fn a_sink_failing_under_an_encrypted_entry_fails_it_with_the_sinks_error() {
    let (options, _) = encrypted_options();
    let mut writer = BundleWriter::to_writer(FullDisk { room: 1024 * 1024 }, options);
    let err = writer
        .write_artifact(
            "db",
            &descriptor("app.dump"),
            ArtifactData::from_stream(stream_of(&pseudo_random(8 * 1024 * 1024, 7), 64 * 1024)),
            &NoProgress,
        )
        .await
        .expect_err("a full sink fails the entry");
    assert!(
        err.to_string().contains("no space left on the test sink"),
        "the sink's own error is reported, not a closed pipe between stages: {err}"
    );
    let finish = writer.finish().await.expect_err("finish refuses");
    assert!(finish.message().contains("failed earlier"), "{finish}");
}

#[tokio::test]
async fn a_stream_failing_under_an_encrypted_entry_fails_it_and_leaves_no_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bundle.zip");
    let (options, _) = encrypted_options();
    let mut writer = BundleWriter::create(&path, options).await.expect("create");
    let err = writer
        .write_artifact(
            "db",
            &descriptor("app.dump"),
            ArtifactData::from_stream(failing_stream(&pseudo_random(4 * 1024 * 1024, 8))),
            &NoProgress,
        )
        .await
        .expect_err("a failing stream fails the entry");
    assert!(err.message().contains("pg_dump exited"), "{err}");
    assert!(
        writer.finish().await.is_err(),
        "a bundle whose entry failed cannot be finished"
    );
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[tokio::test]
async fn entries_written_through_the_three_stages_read_back_byte_equal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bundle.zip");
    let (options, identities) = encrypted_options();
    let mut writer = BundleWriter::create(&path, options).await.expect("create");
    // Several entries through the same writer: each gets its own stage threads.
    let payloads = [
        pseudo_random(3 * 1024 * 1024, 9),
        text(5 * 1024 * 1024),
        Vec::new(),
    ];
    for (i, payload) in payloads.iter().enumerate() {
        writer
            .write_artifact(
                "db",
                &descriptor(&format!("part{i}.bin")),
                ArtifactData::from_stream(stream_of(payload, 100_000)),
                &NoProgress,
            )
            .await
            .expect("artifact");
    }
    let manifest = writer.finish().await.expect("finish");
    let reader = BundleReader::open(&path)
        .await
        .expect("open")
        .with_decryption(Decryption::Identities(identities));
    reader.verify(&NoProgress).await.expect("verify");
    for (entry, payload) in manifest.entries.iter().zip(&payloads) {
        let read = collect(reader.open_entry(entry).expect("entry"))
            .await
            .expect("read");
        assert_eq!(&read, payload, "{}", entry.path);
    }
}

#[tokio::test]
async fn a_passphrase_bundle_finished_before_its_key_wrapping_ends_opens_with_the_passphrase() {
    // The scrypt run that wraps the bundle key runs while entries stream; a tiny bundle
    // finishes long before it, so `finish` must wait for it.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bundle.zip");
    let passphrase = Passphrase::new("correct horse");
    let options =
        BundleOptions::default().with_encryption(Encryption::passphrase(passphrase.clone()));
    let mut writer = BundleWriter::create(&path, options).await.expect("create");
    writer
        .write_artifact(
            "db",
            &descriptor("tiny"),
            ArtifactData::from_stream(stream_of(b"four", 4)),
            &NoProgress,
        )
        .await
        .expect("artifact");
    let manifest = writer.finish().await.expect("finish");
    assert!(
        manifest.wrapped_identity.is_some(),
        "the manifest holds the wrapped key"
    );
    let reader = BundleReader::open(&path)
        .await
        .expect("open")
        .with_decryption(Decryption::Passphrase(passphrase));
    let read = collect(reader.open_entry(&manifest.entries[0]).expect("entry"))
        .await
        .expect("read");
    assert_eq!(read, b"four");
}
