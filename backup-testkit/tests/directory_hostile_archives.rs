//! The directory importer treats archives as hostile: nothing outside the target is
//! created or changed through a symlink, entries under symlinks are refused, setuid and
//! setgid bits are dropped unless the config keeps them, device files are refused.

mod directory_common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use backup_core::ErrorKind;
use directory_common::{import_bytes, observe, ArchiveBuilder};
use serde_json::json;

/// A directory outside the target with a file in it, mode 0750.
fn outside_dir(root: &Path) -> std::path::PathBuf {
    let outside = root.join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("secret.txt"), b"do not touch").expect("write");
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    outside
}

#[tokio::test]
async fn a_symlink_then_a_directory_of_the_same_name_changes_nothing_outside_the_target() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let outside = outside_dir(tmp.path());
    let before = observe(&outside);
    let archive = ArchiveBuilder::new()
        .symlink("escape", &outside)
        .dir("escape", 0o777)
        .dir("escape/created", 0o777)
        .file("escape/created/file.txt", 0o644, b"data")
        .finish();
    let target = tmp.path().join("target");
    let result = import_bytes(&target, archive, json!({})).await;
    assert_eq!(before, observe(&outside), "the outside tree changed");
    assert!(!outside.join("created").exists());
    if result.is_ok() {
        let meta = std::fs::symlink_metadata(target.join("escape")).expect("escape");
        assert!(
            meta.is_dir(),
            "`escape` must be a real directory in the target"
        );
        assert!(target.join("escape/created/file.txt").is_file());
    }
}

/// A symlink `sub/link` to `outside`, then one entry of `kind` under it.
fn entry_under_symlink(kind: &str, outside: &Path) -> Vec<u8> {
    let base = ArchiveBuilder::new()
        .dir("sub", 0o755)
        .symlink("sub/link", outside);
    match kind {
        "directory" => base.dir("sub/link/newdir", 0o755),
        "file" => base.file("sub/link/pwned.txt", 0o644, b"evil"),
        "hard link" => base
            .file("plain", 0o644, b"x")
            .hard_link("sub/link/hard", "plain"),
        _ => base.special("sub/link/pipe", tar::EntryType::Fifo, 0o644),
    }
    .finish()
}

#[tokio::test]
async fn an_entry_under_a_symlink_is_refused_and_nothing_is_written() {
    for kind in ["directory", "file", "hard link", "fifo"] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let outside = outside_dir(tmp.path());
        let before = observe(&outside);
        let target = tmp.path().join("target");
        let err = import_bytes(&target, entry_under_symlink(kind, &outside), json!({}))
            .await
            .expect_err(kind);
        assert_eq!(err.kind(), ErrorKind::Integrity, "{kind}: {err}");
        assert!(err.message().contains("symlink"), "{kind}: {err}");
        assert_eq!(
            before,
            observe(&outside),
            "{kind}: the outside tree changed"
        );
        assert!(!target.exists(), "{kind}: the target was created");
    }
}

#[tokio::test]
async fn a_file_entry_replaces_a_symlink_instead_of_writing_through_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let outside = outside_dir(tmp.path());
    let before = observe(&outside);
    let archive = ArchiveBuilder::new()
        .symlink("secret.txt", &outside.join("secret.txt"))
        .file("secret.txt", 0o666, b"overwritten")
        .symlink("pipe", &outside.join("secret.txt"))
        .special("pipe", tar::EntryType::Fifo, 0o666)
        .finish();
    let target = tmp.path().join("target");
    import_bytes(&target, archive, json!({}))
        .await
        .expect("import");
    assert_eq!(before, observe(&outside), "the outside tree changed");
    let meta = std::fs::symlink_metadata(target.join("secret.txt")).expect("file");
    assert!(meta.is_file());
    assert_eq!(
        std::fs::read(target.join("secret.txt")).expect("read"),
        b"overwritten"
    );
}

#[tokio::test]
async fn a_hard_link_to_a_symlink_cannot_write_outside_the_target() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let outside = outside_dir(tmp.path());
    let before = observe(&outside);
    let archive = ArchiveBuilder::new()
        .symlink("link", &outside.join("secret.txt"))
        .hard_link("hard", "link")
        .file("hard", 0o644, b"evil")
        .dir("dirlink", 0o755)
        .finish();
    let target = tmp.path().join("target");
    let _ = import_bytes(&target, archive, json!({})).await;
    assert_eq!(before, observe(&outside), "the outside tree changed");

    let escaping = ArchiveBuilder::new()
        .file("inside", 0o644, b"x")
        .hard_link("hard", "../outside/secret.txt")
        .finish();
    let target = tmp.path().join("target2");
    let err = import_bytes(&target, escaping, json!({}))
        .await
        .expect_err("hard link out of the target");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert_eq!(before, observe(&outside));
    assert_eq!(
        std::fs::metadata(outside.join("secret.txt"))
            .expect("secret")
            .nlink(),
        1
    );
}

#[tokio::test]
async fn setuid_and_setgid_bits_are_dropped_unless_the_config_keeps_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let archive = || {
        ArchiveBuilder::new()
            .file("bin/suid", 0o4755, b"#!/bin/sh\n")
            .file("bin/sgid", 0o2711, b"#!/bin/sh\n")
            .dir("shared", 0o2775)
            .finish()
    };
    let mode = |path: &Path| std::fs::metadata(path).expect("stat").mode() & 0o7777;

    let stripped = tmp.path().join("stripped");
    import_bytes(&stripped, archive(), json!({}))
        .await
        .expect("import");
    assert_eq!(mode(&stripped.join("bin/suid")), 0o755);
    assert_eq!(mode(&stripped.join("bin/sgid")), 0o711);
    assert_eq!(
        mode(&stripped.join("shared")),
        0o2775,
        "a directory's setgid is kept"
    );

    let kept = tmp.path().join("kept");
    import_bytes(&kept, archive(), json!({ "keepSetuid": true }))
        .await
        .expect("import");
    assert_eq!(mode(&kept.join("bin/suid")), 0o4755);
    assert_eq!(mode(&kept.join("bin/sgid")), 0o2711);
}

#[tokio::test]
async fn a_device_entry_is_refused_by_name() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let archive = ArchiveBuilder::new()
        .file("ok.txt", 0o644, b"fine")
        .special("dev/sda", tar::EntryType::Block, 0o660)
        .finish();
    let target = tmp.path().join("target");
    let err = import_bytes(&target, archive, json!({}))
        .await
        .expect_err("device entry");
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.message().contains("dev/sda"), "{err}");
    assert!(err.hint().is_some());
    assert!(!target.exists());
}

#[tokio::test]
async fn archive_metadata_beyond_the_bound_is_refused() {
    // A GNU long-name entry of 8 MiB: the tar reader would hold it in memory.
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::GNULongName);
    let size = 8 * 1024 * 1024;
    header.set_size(size);
    header.set_path("././@LongLink").expect("name");
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    bytes.resize(bytes.len() + size as usize, b'a');
    bytes.extend(vec![0u8; 1024]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let target = tmp.path().join("target");
    let err = import_bytes(&target, bytes, json!({}))
        .await
        .expect_err("huge long name");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(err.message().contains("headers"), "{err}");
    assert!(!target.exists());
}
