//! Unpacking an untrusted tar stream into a private staging directory.
//!
//! Nothing here follows a symlink: every parent of an entry is checked with `lstat` to be
//! a real directory (an entry under a symlink is refused), files are created with
//! `O_EXCL | O_NOFOLLOW` after removing what was there, and modes, owners and mtimes are
//! applied through descriptors opened with `O_NOFOLLOW`. Directory attributes are applied
//! last, deepest first. Setuid and setgid bits of non-directories are dropped unless the
//! caller keeps them; owners are applied only when running as root.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use filetime::FileTime;
use tar::EntryType;

use super::sys;
use crate::{Error, ErrorKind, Result};

/// The most bytes of headers (long names, pax records) the tar reader may buffer for one
/// entry: the only part of an archive held in memory.
const MAX_ENTRY_METADATA: u64 = 1024 * 1024;

/// How entries' attributes are applied.
#[derive(Debug, Clone, Copy)]
pub(super) struct UnpackOptions {
    /// Keep setuid/setgid bits of files.
    pub(super) keep_setuid: bool,
    /// Apply the archived uid/gid (only possible as root).
    pub(super) preserve_owner: bool,
}

/// Mode, owner and mtime of one directory.
#[derive(Debug, Clone, Copy)]
pub(super) struct DirAttributes {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
}

impl DirAttributes {
    fn from_header(header: &tar::Header) -> Self {
        DirAttributes {
            mode: header.mode().unwrap_or(0o755),
            uid: header.uid().unwrap_or(0),
            gid: header.gid().unwrap_or(0),
            mtime: header.mtime().unwrap_or(0),
        }
    }

    /// What a directory the archive did not list gets.
    pub(super) fn implicit() -> Self {
        DirAttributes {
            mode: 0o755,
            uid: u64::from(sys::effective_uid()),
            gid: u64::from(sys::effective_gid()),
            mtime: now_seconds(),
        }
    }

    /// Applies these attributes to the directory `path` without following a symlink.
    pub(super) fn apply(&self, path: &Path, options: UnpackOptions) -> Result<()> {
        let dir = sys::open_dir_nofollow(path)
            .map_err(|e| Error::io(format!("opening directory `{}`", path.display()), e))?;
        set_owner_mode_mtime(
            &dir, path, self.uid, self.gid, self.mode, self.mtime, options,
        )
    }
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Checks one archive path: relative, no `..`, no root or drive prefix.
pub(super) fn safe_relative_path(path: &Path) -> Result<PathBuf> {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(Error::integrity(format!(
                    "archive entry `{}` escapes the target directory",
                    path.display()
                ))
                .with_hint("the archive is malicious or corrupt; it was not restored"));
            }
        }
    }
    Ok(clean)
}

/// Wraps the tar input to tell a clean end from a truncated one, to keep the original
/// error of the stream (the tar crate replaces it with its own message), and to bound
/// what the tar reader buffers while it reads an entry's headers.
struct WatchedReader<'a> {
    inner: &'a mut dyn Read,
    hit_eof: bool,
    failure: Option<io::Error>,
    /// Bytes the tar reader may still read for headers; `None` while entry data is read.
    header_budget: Rc<Cell<Option<u64>>>,
}

impl Read for WatchedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = buf;
        if let Some(budget) = self.header_budget.get() {
            if budget == 0 && !buf.is_empty() {
                let error = Error::integrity(format!(
                    "an archive entry has more than {MAX_ENTRY_METADATA} bytes of headers (long names, pax records)"
                ))
                .with_hint("the archive is malicious or corrupt; it was not restored");
                self.failure.get_or_insert(error.into_io());
                return Err(io::Error::other("archive headers too large"));
            }
            let limit = usize::try_from(budget).unwrap_or(usize::MAX);
            let len = buf.len().min(limit);
            buf = &mut buf[..len];
        }
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() => {
                self.hit_eof = true;
                Ok(0)
            }
            Ok(n) => {
                if let Some(budget) = self.header_budget.get() {
                    self.header_budget.set(Some(budget - n as u64));
                }
                Ok(n)
            }
            Err(error) => {
                let kind = error.kind();
                self.failure.get_or_insert(error);
                Err(io::Error::new(kind, "the archive stream failed"))
            }
        }
    }
}

impl WatchedReader<'_> {
    /// The error to report for a failed unpack: the stream's own error first, then
    /// truncation, then what the tar reader said.
    fn explain(&mut self, fallback: Error) -> Error {
        if let Some(failure) = self.failure.take() {
            Error::io("reading the archive stream", failure)
        } else if self.hit_eof {
            Error::integrity("the tar stream ended early: it is truncated")
        } else {
            fallback
        }
    }
}

/// Unpacks the tar in `reader` below `staging` (an empty directory only this process
/// writes to); returns the attributes the archive gives the root (`.`), if any.
pub(super) fn unpack_tree(
    reader: &mut dyn Read,
    staging: &Path,
    options: UnpackOptions,
) -> Result<Option<DirAttributes>> {
    let budget = Rc::new(Cell::new(None));
    let mut watched = WatchedReader {
        inner: reader,
        hit_eof: false,
        failure: None,
        header_budget: Rc::clone(&budget),
    };
    let mut unpacker = Unpacker {
        staging,
        options,
        directories: BTreeMap::new(),
        root: None,
    };
    if let Err(error) = unpacker.unpack_entries(&mut watched, &budget) {
        return Err(watched.explain(error));
    }
    // A complete tar ends with a zero block, which stops the reader before the end of
    // the stream: reaching EOF while reading entries means the archive was cut short.
    if watched.hit_eof {
        return Err(watched.explain(Error::integrity(
            "the tar stream ended early: it is truncated",
        )));
    }
    // Drain what follows the end marker, so an error at the end of the stream (a
    // checksum mismatch reported by the bundle reader) is seen.
    if let Err(error) = io::copy(&mut watched, &mut io::sink()) {
        return Err(watched.explain(Error::io("reading the end of the archive", error)));
    }
    // Deepest first, so setting a parent's mtime comes after its children.
    for (relative, attributes) in unpacker.directories.iter().rev() {
        attributes.apply(&staging.join(relative), options)?;
    }
    Ok(unpacker.root)
}

struct Unpacker<'a> {
    staging: &'a Path,
    options: UnpackOptions,
    /// Directory attributes, applied last: writing files into a directory changes its
    /// mtime, and a read-only directory would refuse its own files.
    directories: BTreeMap<PathBuf, DirAttributes>,
    root: Option<DirAttributes>,
}

impl Unpacker<'_> {
    fn unpack_entries(
        &mut self,
        reader: &mut dyn Read,
        budget: &Rc<Cell<Option<u64>>>,
    ) -> Result<()> {
        let mut archive = tar::Archive::new(reader);
        let mut entries = archive
            .entries()
            .map_err(|e| Error::io("reading the tar stream", e))?;
        loop {
            budget.set(Some(MAX_ENTRY_METADATA));
            let next = entries.next();
            budget.set(None);
            let Some(entry) = next else {
                return Ok(());
            };
            let mut entry = entry.map_err(|e| Error::io("reading the tar stream", e))?;
            self.unpack_entry(&mut entry)?;
            // Whatever the entry did not use is read here, outside the header budget.
            io::copy(&mut entry, &mut io::sink())
                .map_err(|e| Error::io("reading the tar stream", e))?;
        }
    }

    fn unpack_entry(&mut self, entry: &mut tar::Entry<'_, &mut dyn Read>) -> Result<()> {
        let raw = entry
            .path()
            .map_err(|e| Error::io("reading a tar entry name", e))?
            .into_owned();
        let relative = safe_relative_path(&raw)?;
        let kind = entry.header().entry_type();
        if relative.as_os_str().is_empty() {
            if kind.is_dir() {
                self.root = Some(DirAttributes::from_header(entry.header()));
            }
            return Ok(());
        }
        let path = self.prepare_parents(&relative)?;
        match kind {
            EntryType::Directory => {
                if !self.clear_for(&path, &relative, true)? {
                    create_private_dir(&path, &relative)?;
                }
                self.directories
                    .insert(relative, DirAttributes::from_header(entry.header()));
            }
            EntryType::Regular | EntryType::Continuous => {
                self.clear_for(&path, &relative, false)?;
                self.write_file(entry, &path, &relative)?;
            }
            EntryType::Symlink => {
                let target = link_name(entry, &relative)?;
                self.clear_for(&path, &relative, false)?;
                std::os::unix::fs::symlink(&target, &path).map_err(|e| {
                    Error::io(format!("creating symlink `{}`", relative.display()), e)
                })?;
                self.finish_special(entry.header(), &path, &relative, false)?;
            }
            EntryType::Link => {
                let target = safe_relative_path(&link_name(entry, &relative)?)?;
                let source = self.existing_link_target(&target, &relative)?;
                self.clear_for(&path, &relative, false)?;
                std::fs::hard_link(&source, &path).map_err(|e| {
                    Error::io(format!("creating hard link `{}`", relative.display()), e)
                })?;
            }
            EntryType::Fifo => {
                self.clear_for(&path, &relative, false)?;
                sys::make_fifo(&path, 0o600)
                    .map_err(|e| Error::io(format!("creating FIFO `{}`", relative.display()), e))?;
                self.finish_special(entry.header(), &path, &relative, true)?;
            }
            EntryType::Char | EntryType::Block => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "archive entry `{}` is a device file: device files are not restored",
                        relative.display()
                    ),
                )
                .with_hint(
                    "device files belong to the system; create it by hand if the service needs it",
                ));
            }
            EntryType::XGlobalHeader | EntryType::XHeader => {}
            other => {
                return Err(Error::integrity(format!(
                    "archive entry `{}` has an entry type this importer does not restore ({:?})",
                    relative.display(),
                    other
                )))
            }
        }
        Ok(())
    }

    /// Checks every parent of `relative` is a real directory below the staging root,
    /// creating missing ones; refuses a parent that is a symlink or not a directory.
    fn prepare_parents(&mut self, relative: &Path) -> Result<PathBuf> {
        let mut path = self.staging.to_path_buf();
        let mut parents = PathBuf::new();
        let components: Vec<_> = relative.components().collect();
        let Some((last, ancestors)) = components.split_last() else {
            return Ok(path);
        };
        for component in ancestors {
            path.push(component);
            parents.push(component);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(Error::integrity(format!(
                        "archive entry `{}` lies under the symlink `{}`: it would be written outside the target",
                        relative.display(),
                        parents.display()
                    ))
                    .with_hint("the archive is malicious or corrupt; it was not restored"));
                }
                Ok(_) => {
                    return Err(Error::integrity(format!(
                        "archive entry `{}` lies under `{}`, which is not a directory",
                        relative.display(),
                        parents.display()
                    )))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    create_private_dir(&path, &parents)?;
                    self.directories
                        .entry(parents.clone())
                        .or_insert_with(DirAttributes::implicit);
                }
                Err(e) => return Err(Error::io(format!("reading `{}`", parents.display()), e)),
            }
        }
        path.push(last);
        Ok(path)
    }

    /// Makes room at `path` for a new entry: removes a previous non-directory. Returns
    /// whether a directory is already there (kept only for a directory entry).
    fn clear_for(&mut self, path: &Path, relative: &Path, is_dir: bool) -> Result<bool> {
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(format!("reading `{}`", relative.display()), e)),
            Ok(meta) if meta.is_dir() => {
                if is_dir {
                    Ok(true)
                } else {
                    Err(Error::integrity(format!(
                        "archive entry `{}` would replace a directory",
                        relative.display()
                    )))
                }
            }
            Ok(_) => {
                std::fs::remove_file(path)
                    .map_err(|e| Error::io(format!("replacing `{}`", relative.display()), e))?;
                Ok(false)
            }
        }
    }

    /// The staging path of a hard link's target: it must exist, must not be a directory,
    /// and no parent of it may be a symlink.
    fn existing_link_target(&mut self, target: &Path, relative: &Path) -> Result<PathBuf> {
        let refuse = |why: &str| {
            Error::integrity(format!(
                "hard link `{}` points to `{}`, which {why}",
                relative.display(),
                target.display()
            ))
        };
        if target.as_os_str().is_empty() {
            return Err(refuse("is the root"));
        }
        let mut path = self.staging.to_path_buf();
        let components: Vec<_> = target.components().collect();
        for (index, component) in components.iter().enumerate() {
            path.push(component);
            let meta = std::fs::symlink_metadata(&path)
                .map_err(|_| refuse("is not in the archive before it"))?;
            let last = index + 1 == components.len();
            if !last && !meta.is_dir() {
                return Err(refuse("lies under a symlink or a file"));
            }
            if last && meta.is_dir() {
                return Err(refuse("is a directory"));
            }
        }
        Ok(path)
    }

    fn write_file(
        &mut self,
        entry: &mut tar::Entry<'_, &mut dyn Read>,
        path: &Path,
        relative: &Path,
    ) -> Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| Error::io(format!("creating `{}`", relative.display()), e))?;
        io::copy(entry, &mut file)
            .map_err(|e| Error::io(format!("unpacking `{}`", relative.display()), e))?;
        let header = entry.header();
        set_owner_mode_mtime(
            &file,
            relative,
            header.uid().unwrap_or(0),
            header.gid().unwrap_or(0),
            header.mode().unwrap_or(0o644),
            header.mtime().unwrap_or(0),
            self.options,
        )
    }

    /// Owner, mode and mtime of a symlink or FIFO just created at `path`.
    fn finish_special(
        &mut self,
        header: &tar::Header,
        path: &Path,
        relative: &Path,
        set_mode: bool,
    ) -> Result<()> {
        if self.options.preserve_owner {
            let (uid, gid) = owner_ids(
                header.uid().unwrap_or(0),
                header.gid().unwrap_or(0),
                relative,
            )?;
            std::os::unix::fs::lchown(path, Some(uid), Some(gid))
                .map_err(|e| Error::io(format!("setting owner of `{}`", relative.display()), e))?;
        }
        if set_mode {
            // The FIFO was just created by this process in its private staging directory,
            // and the check above (`lstat`) holds: the path is not a symlink.
            let mode = allowed_mode(header.mode().unwrap_or(0o644), false, self.options);
            std::fs::set_permissions(path, Permissions::from_mode(mode))
                .map_err(|e| Error::io(format!("setting mode of `{}`", relative.display()), e))?;
        }
        let time = mtime_of(header.mtime().unwrap_or(0));
        filetime::set_symlink_file_times(path, time, time)
            .map_err(|e| Error::io(format!("setting mtime of `{}`", relative.display()), e))
    }
}

fn link_name(entry: &tar::Entry<'_, &mut dyn Read>, relative: &Path) -> Result<PathBuf> {
    entry
        .link_name()
        .map_err(|e| Error::io("reading a link target", e))?
        .map(|name| name.into_owned())
        .ok_or_else(|| {
            Error::integrity(format!("link entry `{}` has no target", relative.display()))
        })
}

fn create_private_dir(path: &Path, relative: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .map_err(|e| Error::io(format!("creating `{}`", relative.display()), e))
}

/// The mode bits to apply: no file type bits, and no setuid/setgid on non-directories
/// unless the caller keeps them (a directory's setgid only picks the group of new files).
fn allowed_mode(mode: u32, is_dir: bool, options: UnpackOptions) -> u32 {
    let mode = mode & 0o7777;
    if is_dir || options.keep_setuid {
        mode
    } else {
        mode & !0o6000
    }
}

fn owner_ids(uid: u64, gid: u64, relative: &Path) -> Result<(u32, u32)> {
    match (u32::try_from(uid), u32::try_from(gid)) {
        (Ok(uid), Ok(gid)) => Ok((uid, gid)),
        _ => Err(Error::integrity(format!(
            "archive entry `{}` has an owner id out of range",
            relative.display()
        ))),
    }
}

fn mtime_of(seconds: u64) -> FileTime {
    FileTime::from_unix_time(i64::try_from(seconds).unwrap_or(0), 0)
}

/// Owner first (changing the owner clears setuid bits), then mode, then mtime, all
/// through the open descriptor.
fn set_owner_mode_mtime(
    handle: &File,
    relative: &Path,
    uid: u64,
    gid: u64,
    mode: u32,
    mtime: u64,
    options: UnpackOptions,
) -> Result<()> {
    let is_dir = handle
        .metadata()
        .map_err(|e| Error::io(format!("reading `{}`", relative.display()), e))?
        .is_dir();
    if options.preserve_owner {
        let (uid, gid) = owner_ids(uid, gid, relative)?;
        std::os::unix::fs::fchown(handle, Some(uid), Some(gid))
            .map_err(|e| Error::io(format!("setting owner of `{}`", relative.display()), e))?;
    }
    handle
        .set_permissions(Permissions::from_mode(allowed_mode(mode, is_dir, options)))
        .map_err(|e| Error::io(format!("setting mode of `{}`", relative.display()), e))?;
    filetime::set_file_handle_times(handle, None, Some(mtime_of(mtime)))
        .map_err(|e| Error::io(format!("setting mtime of `{}`", relative.display()), e))
}
