//! Safe restore from an encrypted repository: every entry is decrypted and checked
//! before anything is touched; a missing or wrong key touches nothing.

mod restore_support;

use age::secrecy::ExposeSecret;
use backup_core::bundle::{Encryption, Identities};
use backup_core::ErrorKind;
use backup_repository::{Repository, SafeRestoreOptions, Storage};
use restore_support::{registry, Env};

fn identities(key: &age::x25519::Identity) -> Identities {
    Identities::parse(&format!("{}\n", key.to_string().expose_secret())).expect("identity")
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_bundle_is_decrypted_and_checked_before_anything_is_touched() {
    let mut env = Env::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = age::x25519::Identity::generate();
    let encryption = Encryption::recipients([key.to_public().to_string()]).expect("recipients");
    env.repo = Repository::init_encrypted(Storage::Local(dir.path().join("repo")), encryption)
        .await
        .expect("init");
    let bundle = env.backup("good").await;
    let backed_up = env.state();
    env.change(1);
    let changed = env.state();
    let keyed = env.repo.clone().with_identities(identities(&key));
    let options = SafeRestoreOptions::default();

    let error = env
        .restore(&bundle.id, &registry(), &options)
        .await
        .expect_err("no key");
    assert_eq!(error.kind(), ErrorKind::WrongKey, "{error:?}");
    let wrong = age::x25519::Identity::generate();
    env.repo = keyed.clone().with_identities(identities(&wrong));
    let error = env
        .restore(&bundle.id, &registry(), &options)
        .await
        .expect_err("wrong key");
    assert_eq!(error.kind(), ErrorKind::WrongKey, "{error:?}");
    assert_eq!(env.state(), changed, "nothing touched");
    assert_eq!(
        env.repo
            .list(&Default::default())
            .await
            .expect("list")
            .len(),
        1,
        "no safety bundle"
    );

    env.repo = keyed;
    let report = env
        .restore(&bundle.id, &registry(), &options)
        .await
        .expect("restore with the key");
    assert_eq!(env.state(), backed_up);
    assert!(
        report.safety_bundle.is_some(),
        "safety bundle encrypted to the same recipients"
    );
}
