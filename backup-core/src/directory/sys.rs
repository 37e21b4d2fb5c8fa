//! The few system calls the directory adapter needs that `std` does not offer: FIFOs,
//! whole-filesystem sync, the effective user, and opening without following symlinks.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Whether this process may set any owner (it runs as root).
pub(super) fn is_root() -> bool {
    effective_uid() == 0
}

/// The effective user id of this process.
pub(super) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The effective group id of this process.
pub(super) fn effective_gid() -> u32 {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

/// Creates a FIFO at `path` with `mode` (before the umask).
pub(super) fn make_fifo(path: &Path, mode: u32) -> io::Result<()> {
    let name = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let status = unsafe { libc::mkfifo(name.as_ptr(), mode as libc::mode_t) };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Opens the directory `path` itself, failing when it is a symlink or not a directory.
pub(super) fn open_dir_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
}

/// Opens the regular file `path` for reading without following a symlink and without
/// blocking on a FIFO that replaced it.
pub(super) fn open_file_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

/// Flushes every written byte of the filesystem holding `dir` to stable storage, and
/// reports write-back errors.
#[cfg(target_os = "linux")]
pub(super) fn sync_filesystem(dir: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let handle = open_dir_nofollow(dir)?;
    // SAFETY: the descriptor is open for the duration of the call.
    let status = unsafe { libc::syncfs(handle.as_raw_fd()) };
    if status == 0 {
        handle.sync_all()
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Flushes `dir` to stable storage (without `syncfs`, files were synced one by one).
#[cfg(not(target_os = "linux"))]
pub(super) fn sync_filesystem(dir: &Path) -> io::Result<()> {
    open_dir_nofollow(dir)?.sync_all()
}

/// Fsyncs a directory so the renames in it are durable.
pub(super) fn fsync_dir(dir: &Path) -> io::Result<()> {
    open_dir_nofollow(dir)?.sync_all()
}

/// Whether `path` is the root of a mounted filesystem: it lives on another device than
/// its parent.
pub(super) fn is_mount_point(path: &Path) -> io::Result<bool> {
    let own = std::fs::symlink_metadata(path)?;
    let Some(parent) = path.parent() else {
        return Ok(true);
    };
    let parent = std::fs::metadata(parent)?;
    Ok(own.dev() != parent.dev() || own.ino() == parent.ino())
}
