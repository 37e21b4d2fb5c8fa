//! Digests and fixtures for directory trees, used by the `directory` adapter's tests and
//! anywhere a test compares a restored tree with its source.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

/// A digest of everything the `directory` adapter promises to preserve below `root`
/// (not `root` itself): relative paths, types, permission bits, mtimes (seconds), file
/// contents and symlink targets.
///
/// # Panics
///
/// When the tree cannot be read: a test helper, failing loudly.
pub fn tree_digest(root: &Path) -> String {
    let mut hasher = Sha256::new();
    let mut stack = vec![root.to_path_buf()];
    let mut lines = Vec::new();
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .map(|e| {
                e.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
                    .path()
            })
            .collect();
        entries.sort();
        for path in entries {
            let meta = std::fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("cannot stat {}: {e}", path.display()));
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path)
                    .unwrap_or_else(|e| panic!("cannot read link {}: {e}", path.display()));
                lines.push(format!("L {relative} {}", target.display()));
            } else if meta.is_dir() {
                lines.push(format!("D {relative} {mode:o} {}", meta.mtime()));
                stack.push(path);
            } else {
                let mut file = std::fs::File::open(&path)
                    .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
                let mut content = Sha256::new();
                let mut buffer = vec![0u8; 1 << 20];
                loop {
                    let n = file
                        .read(&mut buffer)
                        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                    if n == 0 {
                        break;
                    }
                    content.update(&buffer[..n]);
                }
                lines.push(format!(
                    "F {relative} {mode:o} {} {}",
                    meta.mtime(),
                    hex::encode(content.finalize())
                ));
            }
        }
    }
    lines.sort();
    for line in lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

/// Fills `root` with a small tree exercising everything the adapter preserves: nested
/// directories, an empty directory, odd modes, old mtimes, a symlink, non-ASCII names.
///
/// # Panics
///
/// When the tree cannot be written.
pub fn write_sample_tree(root: &Path) {
    let write = |rel: &str, content: &[u8], mode: u32, mtime: i64| {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir: {e}"));
        }
        std::fs::write(&path, content).unwrap_or_else(|e| panic!("write {rel}: {e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {rel}: {e}"));
        filetime_set(&path, mtime);
    };
    write(
        "config/app.toml",
        b"name = \"demo\"\n",
        0o640,
        1_600_000_000,
    );
    write("config/secrets/.keep", b"", 0o600, 1_600_000_100);
    write("bin/run.sh", b"#!/bin/sh\necho hi\n", 0o755, 1_600_000_200);
    write(
        "données/résumé.txt",
        "héllo wörld ✓\n".as_bytes(),
        0o644,
        1_600_000_300,
    );
    let big: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    write("data/blob.bin", &big, 0o644, 1_600_000_400);
    std::fs::create_dir_all(root.join("empty/nested")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::os::unix::fs::symlink("../config/app.toml", root.join("bin/app.toml"))
        .unwrap_or_else(|e| panic!("symlink: {e}"));
    std::os::unix::fs::symlink("/etc/hostname", root.join("absolute-link"))
        .unwrap_or_else(|e| panic!("symlink: {e}"));
    for dir in [
        "config",
        "bin",
        "données",
        "data",
        "empty",
        "empty/nested",
        "config/secrets",
    ] {
        filetime_set(&root.join(dir), 1_500_000_000);
    }
}

fn filetime_set(path: &Path, seconds: i64) {
    let status = std::process::Command::new("touch")
        .arg("-h")
        .arg("-d")
        .arg(format!("@{seconds}"))
        .arg(path)
        .status()
        .unwrap_or_else(|e| panic!("touch: {e}"));
    assert!(status.success(), "touch failed on {}", path.display());
}

/// Writes `count` files of `size_each` pseudo-random bytes under `root/bulk/`.
///
/// # Panics
///
/// When the files cannot be written.
pub fn write_bulk_files(root: &Path, count: usize, size_each: usize) {
    let dir = root.join("bulk");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let mut generator = crate::data::PseudoRandom::new(0x9E37_79B9_7F4A_7C15);
    for i in 0..count {
        let mut content = vec![0u8; size_each];
        generator.fill(&mut content);
        std::fs::write(dir.join(format!("file-{i:04}.bin")), &content)
            .unwrap_or_else(|e| panic!("write bulk file: {e}"));
    }
}
