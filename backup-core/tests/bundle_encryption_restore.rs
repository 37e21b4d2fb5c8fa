//! Restoring an encrypted bundle: a missing or wrong key is a clear error before any
//! target is touched; the right key restores.

mod flow_support;

use std::path::Path;
use std::sync::Arc;

use backup_core::backup::{create_backup, BackupRequest};
use backup_core::bundle::{BundleOptions, Decryption, Encryption, Passphrase};
use backup_core::memory_host::InMemoryHost;
use backup_core::progress::{CollectedProgress, NoProgress, ProgressEvent};
use backup_core::restore::restore_backup;
use backup_core::{Error, ErrorKind};
use flow_support::{registry, restore_options, source_host, workspace};
use serde_json::json;

const PASSPHRASE: &str = "restore me";

async fn encrypted_backup(host: &InMemoryHost, dir: &Path) -> std::path::PathBuf {
    let path = dir.join("enc.backup.zip");
    let request = BackupRequest {
        bundle: BundleOptions::default().with_encryption(Encryption::Passphrase {
            passphrase: Passphrase::new(PASSPHRASE),
            work_factor: 10,
        }),
        ..BackupRequest::default()
    };
    create_backup(host, &registry(), &request, &path, Arc::new(NoProgress))
        .await
        .expect("encrypted backup");
    path
}

async fn restore_with(
    bundle: &Path,
    target: &InMemoryHost,
    root: &Path,
    decryption: Option<Decryption>,
) -> (backup_core::Result<()>, Vec<ProgressEvent>) {
    let mut options = restore_options(root);
    options.decryption = decryption;
    let progress = CollectedProgress::new();
    let result = restore_backup(
        bundle,
        target,
        &registry(),
        &options,
        Arc::new(progress.clone()),
    )
    .await
    .map(|_| ());
    (result, progress.events())
}

fn assert_nothing_touched(err: &Error, target: &InMemoryHost, root: &Path) {
    assert_eq!(err.kind(), ErrorKind::WrongKey, "{err}");
    assert!(
        err.hint()
            .unwrap_or_default()
            .contains("Decryption::Passphrase"),
        "{err}"
    );
    assert!(target.calls().is_empty(), "{:?}", target.calls());
    assert!(!root.exists(), "nothing may be written to the targets");
}

#[tokio::test]
async fn a_wrong_passphrase_restores_nothing_and_says_what_to_pass() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = source_host(&tmp.path().join("src"), json!({}));
    let bundle = encrypted_backup(&source, tmp.path()).await;
    let target = InMemoryHost::new(workspace("t"));
    let root = tmp.path().join("restored");
    let wrong = Decryption::Passphrase(Passphrase::new("not it"));
    let (result, events) = restore_with(&bundle, &target, &root, Some(wrong)).await;
    let err = result.expect_err("wrong passphrase");
    assert_nothing_touched(&err, &target, &root);
    assert!(!events
        .iter()
        .any(|e| matches!(e, ProgressEvent::PlanReady { .. })));
}

#[tokio::test]
async fn a_missing_key_restores_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = source_host(&tmp.path().join("src"), json!({}));
    let bundle = encrypted_backup(&source, tmp.path()).await;
    let target = InMemoryHost::new(workspace("t"));
    let root = tmp.path().join("restored");
    let (result, _) = restore_with(&bundle, &target, &root, None).await;
    assert_nothing_touched(&result.expect_err("no key"), &target, &root);
}

#[tokio::test]
async fn the_right_passphrase_restores_the_data() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = source_host(&tmp.path().join("src"), json!({}));
    let bundle = encrypted_backup(&source, tmp.path()).await;
    let target = InMemoryHost::new(workspace("t"));
    let root = tmp.path().join("restored");
    let key = Decryption::Passphrase(Passphrase::new(PASSPHRASE));
    let (result, _) = restore_with(&bundle, &target, &root, Some(key)).await;
    result.expect("restore with the key");
    let original = std::fs::read(tmp.path().join("src/files/sub/b.bin")).expect("source");
    let restored = std::fs::read(root.join("files/sub/b.bin")).expect("restored");
    assert!(original == restored, "restored bytes differ");
}
