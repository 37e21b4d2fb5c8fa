//! Digests and fixtures for directory trees, used by the `directory` adapter's tests and
//! anywhere a test compares a restored tree with its source.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

/// A digest of everything the `directory` adapter promises to preserve below `root`
/// (not `root` itself): relative paths, types, permission bits, owners, mtimes
/// (seconds), link counts and contents of files, FIFOs and symlink targets.
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
            let owner = format!("{}:{}", meta.uid(), meta.gid());
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path)
                    .unwrap_or_else(|e| panic!("cannot read link {}: {e}", path.display()));
                lines.push(format!("L {relative} {owner} {}", target.display()));
            } else if meta.is_dir() {
                lines.push(format!("D {relative} {mode:o} {owner} {}", meta.mtime()));
                stack.push(path);
            } else if meta.file_type().is_fifo() {
                lines.push(format!("P {relative} {mode:o} {owner} {}", meta.mtime()));
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
                    "F {relative} {mode:o} {owner} {} {} {}",
                    meta.nlink(),
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

/// What `find ROOT -printf '%m %U %G %s %y %n %P %l'` prints, one sorted line per entry,
/// paths relative to `root` (the root itself is the line with an empty path). Directory
/// sizes are shown as `-`: they depend on the file system's history, not on the data.
///
/// # Panics
///
/// When `find` cannot run or fails.
pub fn find_listing(root: &Path) -> Vec<String> {
    let output = std::process::Command::new("find")
        .arg(root)
        .arg("-printf")
        .arg("%m %U %G %s %y %n %P %l\\0")
        .output()
        .unwrap_or_else(|e| panic!("find: {e}"));
    assert!(output.status.success(), "find failed on {}", root.display());
    let mut lines: Vec<String> = output
        .stdout
        .split(|b| *b == 0)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let text = String::from_utf8_lossy(line).into_owned();
            let fields: Vec<&str> = text.splitn(6, ' ').collect();
            match fields.as_slice() {
                [mode, uid, gid, _, "d", rest] => format!("{mode} {uid} {gid} - d {rest}"),
                _ => text,
            }
        })
        .collect();
    lines.sort();
    lines
}

/// Fills `root` with what real volumes hold: copies of system trees (time zones, docs,
/// part of Python's library, where present), files and directories of other owners, a
/// setuid and a setgid program of another owner, a sticky directory, hard links across
/// directories, a FIFO, non-UTF-8 names, dangling and absolute symlinks, and
/// `random_bytes` of pseudo-random data. `root` itself gets mode 0700 and owner
/// 70:70 (like a PostgreSQL data directory) when running as root.
///
/// # Panics
///
/// When the tree cannot be written.
pub fn write_real_volume_tree(root: &Path, random_bytes: usize) {
    std::fs::create_dir_all(root).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let run = |program: &str, args: &[&std::ffi::OsStr]| {
        let status = std::process::Command::new(program)
            .args(args)
            .status()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(status.success(), "{program} {args:?} failed");
    };
    let system = root.join("system");
    std::fs::create_dir_all(&system).unwrap_or_else(|e| panic!("mkdir: {e}"));
    for source in [
        "/usr/share/zoneinfo",
        "/usr/share/doc/bash",
        "/usr/share/doc/coreutils",
        "/usr/lib/python3.11/email",
        "/usr/lib/python3.11/json",
    ] {
        if Path::new(source).exists() {
            run("cp", &["-a".as_ref(), source.as_ref(), system.as_os_str()]);
        }
    }
    let owned = root.join("owned");
    std::fs::create_dir_all(owned.join("sub")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::write(owned.join("sub/app.db"), b"rows").unwrap_or_else(|e| panic!("write: {e}"));
    std::fs::write(owned.join("setuid-tool"), b"#!/bin/sh\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(owned.join("setgid-tool"), b"#!/bin/sh\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(owned.join("shared-tmp")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let as_root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    if as_root {
        run(
            "chown",
            &["-R".as_ref(), "1234:5678".as_ref(), owned.as_os_str()],
        );
        run(
            "chown",
            &["1001:1002".as_ref(), owned.join("setuid-tool").as_os_str()],
        );
        run("chown", &["70:70".as_ref(), root.as_os_str()]);
    }
    let chmod = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    };
    chmod(&owned.join("setuid-tool"), 0o4755);
    chmod(&owned.join("setgid-tool"), 0o2755);
    chmod(&owned.join("shared-tmp"), 0o1777);
    let links = root.join("links");
    std::fs::create_dir_all(links.join("a")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::create_dir_all(links.join("b")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::write(links.join("a/original"), b"linked content").unwrap_or_else(|e| panic!("{e}"));
    std::fs::hard_link(links.join("a/original"), links.join("b/second"))
        .unwrap_or_else(|e| panic!("link: {e}"));
    std::fs::hard_link(links.join("a/original"), links.join("third"))
        .unwrap_or_else(|e| panic!("link: {e}"));
    std::os::unix::fs::symlink("does/not/exist", links.join("dangling"))
        .unwrap_or_else(|e| panic!("symlink: {e}"));
    std::os::unix::fs::symlink("/usr/share", links.join("absolute"))
        .unwrap_or_else(|e| panic!("symlink: {e}"));
    run(
        "mkfifo",
        &[
            "-m".as_ref(),
            "0640".as_ref(),
            root.join("control.fifo").as_os_str(),
        ],
    );
    let odd = root.join(std::ffi::OsStr::from_bytes(b"latin1-caf\xe9"));
    std::fs::create_dir_all(&odd).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::write(
        odd.join(std::ffi::OsStr::from_bytes(b"na\xefve\xff.txt")),
        b"bytes",
    )
    .unwrap_or_else(|e| panic!("write: {e}"));
    let long = root.join("l".repeat(120)).join("o".repeat(120));
    std::fs::create_dir_all(&long).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::write(long.join("n".repeat(200)), b"long name").unwrap_or_else(|e| panic!("{e}"));
    let random = root.join("random");
    std::fs::create_dir_all(&random).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let mut generator = crate::data::PseudoRandom::new(0x5eed_0017);
    let mut left = random_bytes;
    let mut index = 0;
    while left > 0 {
        let size = left.min(8 << 20);
        let mut content = vec![0u8; size];
        generator.fill(&mut content);
        std::fs::write(random.join(format!("chunk-{index}.bin")), &content)
            .unwrap_or_else(|e| panic!("write: {e}"));
        left -= size;
        index += 1;
    }
    chmod(root, 0o700);
}
