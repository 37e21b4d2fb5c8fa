//! Putting an unpacked tree in place of the old one.
//!
//! Two ways, both durable before anything old is deleted (the caller has synced the new
//! data; the renames are fsynced here and an fsync error fails the restore and keeps the
//! old tree):
//! - **beside**: the tree was staged in a sibling directory; the target is renamed aside
//!   and the staging directory renamed in its place;
//! - **contents**: for a target that cannot be renamed (a mount point: a volume, a PVC),
//!   the tree was staged inside the target; the old entries move into a sibling-free
//!   holding directory inside the target, the new ones move up, then the holding
//!   directory is deleted. A failure moves everything back.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Fsyncs one directory; a parameter so tests can make it fail.
pub(super) type SyncDir<'a> = &'a dyn Fn(&Path) -> io::Result<()>;

/// A fresh hidden name beside `target`: `.<name>.<purpose>-<random>`.
pub(super) fn sibling(target: &Path, purpose: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "target".to_string());
    target.with_file_name(format!(".{name}.{purpose}-{}", unique()))
}

/// A fresh hidden name inside `target`: `.<purpose>-<random>`.
pub(super) fn inside(target: &Path, purpose: &str) -> PathBuf {
    target.join(format!(".{purpose}-{}", unique()))
}

fn unique() -> String {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    unique[..12].to_string()
}

/// Replaces `target` with `staging`, its sibling; on failure puts the old tree back.
pub(super) fn swap_beside(staging: &Path, target: &Path, sync_dir: SyncDir<'_>) -> Result<()> {
    let old = sibling(target, "old");
    let parent = target.parent().unwrap_or(Path::new("/"));
    let had_old = match std::fs::rename(target, &old) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => {
            let _ = std::fs::remove_dir_all(staging);
            let busy = e.raw_os_error() == Some(libc::EBUSY);
            let error = Error::io(format!("moving `{}` aside", target.display()), e);
            return Err(if busy {
                error.with_hint("the directory is a mount point: set `restoreInPlace: true` in the service's config to replace its contents instead")
            } else {
                error
            });
        }
    };
    if let Err(e) = std::fs::rename(staging, target) {
        if had_old {
            let _ = std::fs::rename(&old, target);
        }
        let _ = std::fs::remove_dir_all(staging);
        return Err(Error::io(
            format!("moving the restored tree to `{}`", target.display()),
            e,
        ));
    }
    sync_dir(parent).map_err(|e| {
        let error = Error::io(
            format!(
                "syncing `{}` after moving the restored tree in",
                parent.display()
            ),
            e,
        );
        if had_old {
            error.with_hint(format!(
                "the restored tree may not be durable; the previous tree is kept at `{}`",
                old.display()
            ))
        } else {
            error
        }
    })?;
    if had_old {
        std::fs::remove_dir_all(&old)
            .map_err(|e| Error::io(format!("removing the replaced tree `{}`", old.display()), e))?;
    }
    Ok(())
}

/// Replaces the entries of `target` with those of `staging`, a directory inside it; on
/// failure puts the old entries back. `target` itself is never renamed.
pub(super) fn swap_contents(staging: &Path, target: &Path, sync_dir: SyncDir<'_>) -> Result<()> {
    let holding = inside(target, "old");
    std::fs::create_dir(&holding)
        .map_err(|e| Error::io(format!("creating `{}`", holding.display()), e))?;
    let skip = [file_name(staging), file_name(&holding)];
    let old_names = list_except(target, &skip)?;
    if let Err(error) = move_all(&old_names, target, &holding) {
        restore_old(target, &holding);
        return Err(error.context("moving the old contents aside"));
    }
    let new_names = match list_except(staging, &[]) {
        Ok(names) => names,
        Err(error) => {
            restore_old(target, &holding);
            return Err(error);
        }
    };
    if let Err(error) = move_all(&new_names, staging, target) {
        let _ = move_all(&new_names, target, staging);
        restore_old(target, &holding);
        return Err(error.context("moving the restored contents in"));
    }
    let _ = std::fs::remove_dir(staging);
    let synced = sync_dir(target).and_then(|()| sync_dir(&holding));
    if let Err(e) = synced {
        return Err(Error::io(
            format!(
                "syncing `{}` after moving the restored contents in",
                target.display()
            ),
            e,
        )
        .with_hint(format!(
            "the restored contents may not be durable; the previous contents are kept at `{}`",
            holding.display()
        )));
    }
    std::fs::remove_dir_all(&holding).map_err(|e| {
        Error::io(
            format!("removing the replaced contents `{}`", holding.display()),
            e,
        )
    })
}

fn file_name(path: &Path) -> OsString {
    path.file_name().map(OsString::from).unwrap_or_default()
}

fn list_except(dir: &Path, skip: &[OsString]) -> Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("listing `{}`", dir.display()), e))?
    {
        let name = entry
            .map_err(|e| Error::io(format!("listing `{}`", dir.display()), e))?
            .file_name();
        if !skip.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// Renames each of `names` from `from` to `to`, stopping at the first failure (the ones
/// moved stay moved; the caller moves them back).
fn move_all(names: &[OsString], from: &Path, to: &Path) -> Result<()> {
    for name in names {
        let source = from.join(name);
        std::fs::rename(&source, to.join(name)).map_err(|e| {
            Error::io(
                format!("moving `{}` into `{}`", source.display(), to.display()),
                e,
            )
        })?;
    }
    Ok(())
}

/// Best effort after a failure: every entry of `holding` goes back to `target`.
fn restore_old(target: &Path, holding: &Path) {
    if let Ok(names) = list_except(holding, &[]) {
        let _ = move_all(&names, holding, target);
    }
    let _ = std::fs::remove_dir(holding);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failing_sync(_: &Path) -> io::Result<()> {
        Err(io::Error::other("injected fsync failure"))
    }

    fn tree(dir: &Path, file: &str, content: &str) {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::write(dir.join(file), content).expect("write");
    }

    #[test]
    fn a_failed_directory_fsync_after_the_rename_fails_the_swap_and_keeps_the_old_tree() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let target = tmp.path().join("data");
        let staging = tmp.path().join(".data.restore-x");
        tree(&target, "old.txt", "old");
        tree(&staging, "new.txt", "new");
        let err = swap_beside(&staging, &target, &failing_sync).expect_err("fsync failure");
        assert!(err.message().contains("syncing"), "{err}");
        let hint = err.hint().expect("hint names the kept tree");
        let kept = std::fs::read_dir(tmp.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().starts_with(".data.old-"))
            .expect("old tree kept");
        assert!(hint.contains(&kept.path().display().to_string()), "{hint}");
        assert!(kept.path().join("old.txt").exists());
    }

    #[test]
    fn a_failed_directory_fsync_after_moving_contents_fails_and_keeps_the_old_contents() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let target = tmp.path().join("data");
        tree(&target, "old.txt", "old");
        let staging = inside(&target, "restore");
        tree(&staging, "new.txt", "new");
        let err = swap_contents(&staging, &target, &failing_sync).expect_err("fsync failure");
        assert!(err.message().contains("syncing"), "{err}");
        assert!(err.hint().is_some_and(|h| h.contains(".old-")), "{err}");
        assert!(target.join("new.txt").exists());
    }

    #[test]
    fn contents_swap_replaces_entries_without_renaming_the_target() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let target = tmp.path().join("data");
        tree(&target, "old.txt", "old");
        let staging = inside(&target, "restore");
        tree(&staging, "new.txt", "new");
        swap_contents(&staging, &target, &|_| Ok(())).expect("swap");
        let names: Vec<_> = std::fs::read_dir(&target)
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("new.txt")]);
    }
}
