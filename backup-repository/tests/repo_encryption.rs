//! Encrypted repositories: config.json records how (never a secret), writes encrypt,
//! listing/info/checksums work without the key, reads decrypt with it.

mod repo_support;

use age::secrecy::ExposeSecret;
use backup_core::bundle::{
    BundleKind, Encryption, EncryptionMethod, Identities, Passphrase, ENCRYPTION_AGE,
};
use backup_core::progress::NoProgress;
use backup_core::ErrorKind;
use backup_repository::{BundleFilter, Repository, Storage};
use repo_support::write_bundle;

const PASSPHRASE: &str = "correct horse battery staple";

/// A passphrase repository at `root` (a low work factor keeps the tests fast).
async fn init_passphrase_repository(root: &std::path::Path) {
    let encryption = Encryption::Passphrase {
        passphrase: Passphrase::new(PASSPHRASE),
        work_factor: 10,
    };
    Repository::init_encrypted(Storage::Local(root.to_path_buf()), encryption)
        .await
        .expect("init");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrase_repository_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("repo");
    init_passphrase_repository(&root).await;
    let config = std::fs::read_to_string(root.join("config.json")).expect("config");
    assert!(
        !config.contains(PASSPHRASE),
        "never a secret in config.json"
    );

    let keyless = Repository::open(Storage::Local(root.clone()))
        .await
        .expect("open");
    let info = keyless.config().encryption.clone().expect("recorded");
    assert_eq!(info.method, EncryptionMethod::Passphrase);
    assert_eq!(info.work_factor, Some(10));
    let refused = keyless
        .begin(Default::default())
        .await
        .expect_err("no passphrase to write with");
    assert_eq!(refused.kind(), ErrorKind::WrongKey);
    assert!(refused.hint().unwrap_or("").contains("passphrase"));

    let repo = keyless.clone().with_passphrase(Passphrase::new(PASSPHRASE));
    let bundle = write_bundle(&repo, Some("enc"), BundleKind::Manual, "db", 300_000, 5).await;

    // Without the key: list, info and checksum verification work.
    let listed = keyless.list(&BundleFilter::default()).await.expect("list");
    assert_eq!(listed.len(), 1);
    let entry = keyless.info(&bundle.id).await.expect("info");
    assert!(entry
        .manifest
        .entries
        .iter()
        .all(|e| e.encryption == ENCRYPTION_AGE));
    let report = keyless
        .verify(&bundle.id, &NoProgress)
        .await
        .expect("verify");
    assert!(
        !report.not_decrypted.is_empty(),
        "checked by stored bytes only"
    );

    // With it: every entry decrypted.
    let report = repo.verify(&bundle.id, &NoProgress).await.expect("verify");
    assert!(report.not_decrypted.is_empty());

    // A wrong passphrase is a clear permission error.
    let wrong = keyless.clone().with_passphrase(Passphrase::new("wrong"));
    let err = wrong
        .verify(&bundle.id, &NoProgress)
        .await
        .expect_err("wrong passphrase");
    assert_eq!(err.kind(), ErrorKind::WrongKey, "{err}");
    assert!(!err.to_string().contains("wrong\""), "{err}");

    // A flipped byte in the encrypted entry is detected, with or without the key.
    let file = root
        .join("bundles")
        .join(format!("{}.backup.zip", bundle.name));
    let mut bytes = std::fs::read(&file).expect("read");
    bytes[150_000] ^= 0x01;
    std::fs::write(&file, &bytes).expect("write");
    for r in [&keyless, &repo] {
        let err = r
            .verify(&bundle.id, &NoProgress)
            .await
            .expect_err("tampered");
        assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_repository_writes_without_a_secret_and_reads_with_an_identity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("repo");
    let key = age::x25519::Identity::generate();
    let public = key.to_public().to_string();
    let encryption = Encryption::recipients([&public]).expect("recipients");
    Repository::init_encrypted(Storage::Local(root.clone()), encryption)
        .await
        .expect("init");
    let repo = Repository::open(Storage::Local(root.clone()))
        .await
        .expect("open");
    assert_eq!(
        repo.config()
            .encryption
            .as_ref()
            .map(|i| i.recipients.clone()),
        Some(vec![public])
    );
    let bundle = write_bundle(&repo, None, BundleKind::Automatic, "db", 100_000, 6).await;
    let keyless = repo.verify(&bundle.id, &NoProgress).await.expect("verify");
    assert!(!keyless.not_decrypted.is_empty());
    let identities =
        Identities::parse(&format!("{}\n", key.to_string().expose_secret())).expect("identity");
    let report = repo
        .clone()
        .with_identities(identities)
        .verify(&bundle.id, &NoProgress)
        .await
        .expect("verify with identity");
    assert!(report.not_decrypted.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_passphrase_is_refused_before_a_bundle_is_written_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("repo");
    init_passphrase_repository(&root).await;
    let config = std::fs::read_to_string(root.join("config.json")).expect("config");
    assert!(config.contains("\"keyCheck\""), "{config}");
    assert!(
        !config.contains(PASSPHRASE),
        "never a secret in config.json"
    );
    let keyless = Repository::open(Storage::Local(root.clone()))
        .await
        .expect("open");

    let wrong = keyless.clone().with_passphrase(Passphrase::new("wrong"));
    let err = wrong.check_key().await.expect_err("a wrong passphrase");
    assert_eq!(err.kind(), ErrorKind::WrongKey, "{err}");
    assert!(err.to_string().contains("wrong passphrase"), "{err}");
    let err = wrong
        .begin(Default::default())
        .await
        .expect_err("no bundle is started with a wrong passphrase");
    assert_eq!(err.kind(), ErrorKind::WrongKey, "{err}");
    let bundles = std::fs::read_dir(root.join("bundles"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(bundles, 0, "nothing written");
    assert!(keyless
        .list(&BundleFilter::default())
        .await
        .expect("list")
        .is_empty());

    let right = keyless.with_passphrase(Passphrase::new(PASSPHRASE));
    right
        .check_key()
        .await
        .expect("the right passphrase passes");
    write_bundle(&right, None, BundleKind::Manual, "db", 10_000, 7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_of_no_recipient_are_refused_by_check_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("repo");
    let key = age::x25519::Identity::generate();
    let encryption = Encryption::recipients([key.to_public().to_string()]).expect("recipients");
    let repo = Repository::init_encrypted(Storage::Local(root), encryption)
        .await
        .expect("init");
    let identities_of = |identity: &age::x25519::Identity| {
        Identities::parse(&format!("{}\n", identity.to_string().expose_secret())).expect("identity")
    };
    let stranger = age::x25519::Identity::generate();
    let err = repo
        .clone()
        .with_identities(identities_of(&stranger))
        .check_key()
        .await
        .expect_err("a stranger's identity");
    assert_eq!(err.kind(), ErrorKind::WrongKey, "{err}");
    assert!(
        err.hint()
            .unwrap_or("")
            .contains(&key.to_public().to_string()),
        "the hint names the recipients: {err:?}"
    );
    repo.with_identities(identities_of(&key))
        .check_key()
        .await
        .expect("the recipient's identity passes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrase_bundles_go_to_the_key_the_key_check_unlocks_and_open_with_the_passphrase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("repo");
    init_passphrase_repository(&root).await;
    let repo = Repository::open(Storage::Local(root.clone()))
        .await
        .expect("open")
        .with_passphrase(Passphrase::new(PASSPHRASE));
    let key_check = repo.config().key_check.clone().expect("a key check");
    let first = write_bundle(&repo, Some("one"), BundleKind::Manual, "db", 200_000, 1).await;
    let second = write_bundle(&repo, Some("two"), BundleKind::Manual, "db", 200_000, 2).await;
    for bundle in [&first, &second] {
        let entry = repo.info(&bundle.id).await.expect("info");
        // No scrypt run per bundle: the manifest carries the repository's key check as
        // its wrapped identity.
        assert_eq!(
            entry.manifest.wrapped_identity.as_deref(),
            Some(key_check.as_str()),
            "bundle {} is encrypted to the repository key",
            bundle.name
        );
    }
    // Self-contained: a process that knows only the passphrase decrypts every entry.
    let fresh = Repository::open(Storage::Local(root.clone()))
        .await
        .expect("open")
        .with_passphrase(Passphrase::new(PASSPHRASE));
    for bundle in [&first, &second] {
        let report = fresh.verify(&bundle.id, &NoProgress).await.expect("verify");
        assert!(report.not_decrypted.is_empty(), "every entry decrypted");
    }
    let wrong = Repository::open(Storage::Local(root))
        .await
        .expect("open")
        .with_passphrase(Passphrase::new("not it"));
    let err = wrong
        .verify(&first.id, &NoProgress)
        .await
        .expect_err("a wrong passphrase opens nothing");
    assert_eq!(err.kind(), ErrorKind::WrongKey, "{err}");
}
