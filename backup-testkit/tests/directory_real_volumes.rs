//! The directory adapter on trees like real volumes: system files, other owners, setuid,
//! hard links, a FIFO, non-UTF-8 names, a root directory with mode 0700, device files,
//! and targets that are mount points.

mod directory_common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use backup_core::ErrorKind;
use backup_testkit::tree::{find_listing, tree_digest, write_real_volume_tree};
use directory_common::{export_bytes, import_bytes, observe};
use serde_json::json;

/// Random data in the real-volume tree; `DIRECTORY_TEST_RANDOM_MB` makes it bigger.
fn random_bytes() -> usize {
    let megabytes = std::env::var("DIRECTORY_TEST_RANDOM_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(24);
    megabytes << 20
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

#[tokio::test]
async fn a_real_volume_tree_round_trips_as_find_sees_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = tmp.path().join("source");
    write_real_volume_tree(&source, random_bytes());
    let bytes = export_bytes(&source).await.expect("export");
    let target = tmp.path().join("restored");
    import_bytes(&target, bytes, json!({ "keepSetuid": true }))
        .await
        .expect("import");
    let (before, after) = (find_listing(&source), find_listing(&target));
    // The fixture holds what it claims: a FIFO, hard links, non-UTF-8 names, many files.
    assert!(
        before.iter().any(|l| l.contains(" p 1 control.fifo")),
        "{before:?}"
    );
    assert!(before.iter().any(|l| l.contains(" f 3 links/third")));
    assert!(before.iter().any(|l| l.contains('\u{fffd}')));
    assert!(before.len() > 100, "{} entries", before.len());
    if is_root() {
        assert!(before.iter().any(|l| l.starts_with("4755 1001 1002 ")));
        assert!(before.iter().any(|l| l.starts_with("1777 1234 5678 ")));
        assert!(before.iter().any(|l| l.starts_with("700 70 70 - d")));
    }
    if before != after {
        let missing: Vec<_> = before.iter().filter(|l| !after.contains(l)).collect();
        let extra: Vec<_> = after.iter().filter(|l| !before.contains(l)).collect();
        panic!("find listings differ:\nonly before: {missing:#?}\nonly after: {extra:#?}");
    }
    assert_eq!(tree_digest(&source), tree_digest(&target));
    let root = std::fs::metadata(&target).expect("root");
    assert_eq!(root.mode() & 0o7777, 0o700, "the root's own mode");
    if is_root() {
        assert_eq!((root.uid(), root.gid()), (70, 70), "the root's own owner");
        let suid = std::fs::metadata(target.join("owned/setuid-tool")).expect("suid");
        assert_eq!((suid.uid(), suid.mode() & 0o7777), (1001, 0o4755));
    }
    let original = std::fs::metadata(target.join("links/a/original")).expect("link");
    let second = std::fs::metadata(target.join("links/b/second")).expect("link");
    assert_eq!(original.ino(), second.ino(), "hard links stay hard links");
    assert_eq!(original.nlink(), 3);
    let fifo = std::fs::symlink_metadata(target.join("control.fifo")).expect("fifo");
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fifo.file_type()));
}

#[tokio::test]
async fn a_device_file_fails_the_export_naming_it_with_a_hint() {
    if !is_root() {
        eprintln!("skipped: creating a device node needs root");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = tmp.path().join("source");
    std::fs::create_dir_all(&source).expect("mkdir");
    std::fs::write(source.join("a.txt"), b"a").expect("write");
    let status = std::process::Command::new("mknod")
        .arg(source.join("null-device"))
        .args(["c", "1", "3"])
        .status()
        .expect("mknod");
    assert!(status.success());
    let err = export_bytes(&source).await.expect_err("device file");
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.message().contains("null-device"), "{err}");
    assert!(err.message().contains("device file"), "{err}");
    assert!(err.hint().is_some());
}

/// A tmpfs mounted at a path, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(path: &Path) -> Option<Self> {
        std::fs::create_dir_all(path).expect("mkdir");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256m", "tmpfs"])
            .arg(path)
            .status()
            .ok()?;
        status.success().then(|| Mount(path.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn hidden_entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect()
}

async fn sample_export(dir: &Path) -> (PathBuf, Vec<u8>) {
    let source = dir.join("source");
    write_real_volume_tree(&source, 1 << 20);
    let bytes = export_bytes(&source).await.expect("export");
    (source, bytes)
}

#[tokio::test]
async fn a_mount_point_target_is_restored_in_place_without_renaming_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (source, bytes) = sample_export(tmp.path()).await;
    let target = tmp.path().join("volume");
    let Some(_mount) = Mount::tmpfs(&target) else {
        // Without mount privileges the same code path is covered by
        // `restore_in_place_replaces_the_contents_of_the_same_directory`.
        eprintln!("skipped: `mount -t tmpfs` is not permitted here");
        return;
    };
    std::fs::write(target.join("old.txt"), b"old data").expect("write");
    let device = std::fs::metadata(&target).expect("stat").dev();
    assert_ne!(device, std::fs::metadata(tmp.path()).expect("stat").dev());
    import_bytes(&target, bytes, json!({ "keepSetuid": true }))
        .await
        .expect("import onto a mount point");
    assert_eq!(
        std::fs::metadata(&target).expect("stat").dev(),
        device,
        "the mount point was replaced"
    );
    assert!(!target.join("old.txt").exists());
    assert_eq!(observe(&source), observe(&target));
    assert!(
        hidden_entries(&target).is_empty(),
        "{:?}",
        hidden_entries(&target)
    );
    assert!(hidden_entries(tmp.path()).is_empty());
}

#[tokio::test]
async fn restore_in_place_replaces_the_contents_of_the_same_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (source, bytes) = sample_export(tmp.path()).await;
    let target = tmp.path().join("data");
    std::fs::create_dir_all(target.join("old-dir")).expect("mkdir");
    std::fs::write(target.join("old-dir/old.txt"), b"old").expect("write");
    let inode = std::fs::metadata(&target).expect("stat").ino();
    import_bytes(
        &target,
        bytes,
        json!({ "keepSetuid": true, "restoreInPlace": true }),
    )
    .await
    .expect("import in place");
    assert_eq!(std::fs::metadata(&target).expect("stat").ino(), inode);
    assert!(!target.join("old-dir").exists());
    assert_eq!(observe(&source), observe(&target));
    assert!(hidden_entries(&target).is_empty());
    assert!(hidden_entries(tmp.path()).is_empty());
}

#[tokio::test]
async fn a_failed_in_place_restore_leaves_the_contents_as_they_were() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_, bytes) = sample_export(tmp.path()).await;
    let target = tmp.path().join("data");
    std::fs::create_dir_all(&target).expect("mkdir");
    std::fs::write(target.join("precious.txt"), b"keep me").expect("write");
    let before = observe(&target);
    let truncated = bytes[..bytes.len() / 2].to_vec();
    let err = import_bytes(&target, truncated, json!({ "restoreInPlace": true }))
        .await
        .expect_err("truncated");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert_eq!(before, observe(&target));
    assert!(hidden_entries(&target).is_empty());
}
