//! Writing a directory tree as a tar stream.
//!
//! The first entry is `.`, the tree's root, so its mode and owner travel with the data.
//! Regular files are copied for exactly the length they had when opened, and the export
//! fails when a file's size or mtime changed while it was read: a live writer can never
//! produce an archive whose headers disagree with its contents. Hard links are written
//! as links to the first path of the same inode, FIFOs as FIFOs; device files are
//! refused and sockets skipped.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header, HeaderMode};

use super::sys;
use crate::{Error, ErrorKind, Result};

/// What an export found, for the manifest.
#[derive(Debug, Clone, Default)]
pub(super) struct TreeCounts {
    files: u64,
    directories: u64,
    symlinks: u64,
    hard_links: u64,
    fifos: u64,
    bytes: u64,
    skipped_sockets: u64,
}

impl TreeCounts {
    pub(super) fn into_metadata(self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        map.insert("files".into(), self.files.into());
        map.insert("directories".into(), self.directories.into());
        map.insert("symlinks".into(), self.symlinks.into());
        map.insert("fileBytes".into(), self.bytes.into());
        if self.hard_links > 0 {
            map.insert("hardLinks".into(), self.hard_links.into());
        }
        if self.fifos > 0 {
            map.insert("fifos".into(), self.fifos.into());
        }
        if self.skipped_sockets > 0 {
            map.insert("skippedSockets".into(), self.skipped_sockets.into());
        }
        map
    }
}

/// Streams the tree below `root` (and `root`'s own attributes) as a tar into `out`.
pub(super) fn write_tree(root: &Path, out: &mut dyn Write) -> Result<TreeCounts> {
    let mut writer = TreeWriter {
        builder: tar::Builder::new(out),
        root,
        counts: TreeCounts::default(),
        inodes: HashMap::new(),
    };
    let root_meta = std::fs::symlink_metadata(root)
        .map_err(|e| Error::io(format!("reading `{}`", root.display()), e))?;
    if !root_meta.is_dir() {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!("`{}` is not a directory", root.display()),
        ));
    }
    writer.append_empty(&root_meta, Path::new("."), root)?;
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let subdirs = writer.write_children(&relative)?;
        // Visit subdirectories in sorted order: push in reverse onto the stack.
        pending.extend(subdirs.into_iter().rev());
    }
    writer
        .builder
        .into_inner()
        .and_then(|w| w.flush())
        .map_err(|e| Error::io("finishing the tar stream", e))?;
    Ok(writer.counts)
}

struct TreeWriter<'a, W: Write> {
    builder: tar::Builder<W>,
    root: &'a Path,
    counts: TreeCounts,
    /// First archived path of every multiply-linked inode, by (device, inode).
    inodes: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> TreeWriter<'_, W> {
    /// Archives the children of `relative`; returns its subdirectories, sorted.
    fn write_children(&mut self, relative: &Path) -> Result<Vec<PathBuf>> {
        let dir = self.root.join(relative);
        let mut children: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(format!("listing `{}`", dir.display()), e))?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| Error::io(format!("listing `{}`", dir.display()), e))?;
        children.sort();
        let mut subdirs = Vec::new();
        for name in children {
            let rel = relative.join(&name);
            let full = self.root.join(&rel);
            let meta = std::fs::symlink_metadata(&full)
                .map_err(|e| Error::io(format!("reading `{}`", full.display()), e))?;
            let kind = meta.file_type();
            if kind.is_socket() {
                self.counts.skipped_sockets += 1;
            } else if kind.is_dir() {
                self.append_empty(&meta, &rel, &full)?;
                self.counts.directories += 1;
                subdirs.push(rel);
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&full)
                    .map_err(|e| Error::io(format!("reading link `{}`", full.display()), e))?;
                let mut header = header_for(&meta);
                self.builder
                    .append_link(&mut header, &rel, &target)
                    .map_err(|e| archiving(&full, e))?;
                self.counts.symlinks += 1;
            } else if kind.is_fifo() {
                self.append_empty(&meta, &rel, &full)?;
                self.counts.fifos += 1;
            } else if kind.is_block_device() || kind.is_char_device() {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("`{}` is a device file: it cannot be archived", full.display()),
                )
                .with_hint("device files belong to the system, not to a service's data; remove it from the directory"));
            } else if kind.is_file() {
                self.append_file(&meta, rel, &full)?;
            } else {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("`{}` has a file type tar cannot hold", full.display()),
                ));
            }
        }
        Ok(subdirs)
    }

    /// Appends an entry without data (directory, FIFO).
    fn append_empty(&mut self, meta: &Metadata, rel: &Path, full: &Path) -> Result<()> {
        let mut header = header_for(meta);
        header.set_size(0);
        self.builder
            .append_data(&mut header, rel, io::empty())
            .map_err(|e| archiving(full, e))
    }

    fn append_file(&mut self, meta: &Metadata, rel: PathBuf, full: &Path) -> Result<()> {
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.inodes.get(&key) {
                let mut header = header_for(meta);
                header.set_entry_type(EntryType::Link);
                header.set_size(0);
                self.builder
                    .append_link(&mut header, &rel, first)
                    .map_err(|e| archiving(full, e))?;
                self.counts.hard_links += 1;
                return Ok(());
            }
            self.inodes.insert(key, rel.clone());
        }
        let file = sys::open_file_nofollow(full)
            .map_err(|e| Error::io(format!("opening `{}`", full.display()), e))?;
        let opened = file
            .metadata()
            .map_err(|e| Error::io(format!("reading `{}`", full.display()), e))?;
        if !opened.is_file() || opened.ino() != meta.ino() || opened.dev() != meta.dev() {
            return Err(changed_while_read(full));
        }
        let mut header = header_for(&opened);
        header.set_size(opened.len());
        let mut reader = ExactReader {
            file,
            remaining: opened.len(),
            path: full,
        };
        self.builder
            .append_data(&mut header, &rel, &mut reader)
            .map_err(|e| archiving(full, e))?;
        let after = reader
            .file
            .metadata()
            .map_err(|e| Error::io(format!("reading `{}`", full.display()), e))?;
        if after.len() != opened.len()
            || after.mtime() != opened.mtime()
            || after.mtime_nsec() != opened.mtime_nsec()
        {
            return Err(changed_while_read(full));
        }
        self.counts.files += 1;
        self.counts.bytes += opened.len();
        Ok(())
    }
}

fn header_for(meta: &Metadata) -> Header {
    let mut header = Header::new_gnu();
    header.set_metadata_in_mode(meta, HeaderMode::Complete);
    header
}

fn archiving(path: &Path, error: io::Error) -> Error {
    Error::io(format!("archiving `{}`", path.display()), error)
}

fn changed_while_read(path: &Path) -> Error {
    Error::integrity(format!(
        "`{}` changed while it was read: the copy would not match any state of the file",
        path.display()
    ))
    .with_hint("stop the service that writes to the directory (the directory exporter requires it stopped), then back up again")
}

/// Reads exactly `remaining` bytes of a file: the length its header promises. A file that
/// shrank fails; bytes appended after the header was written are not read.
struct ExactReader<'a> {
    file: File,
    remaining: u64,
    path: &'a Path,
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let limit = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        let wanted = buf.len().min(limit);
        let n = self.file.read(&mut buf[..wanted])?;
        if n == 0 {
            return Err(changed_while_read(self.path).into_io());
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}
