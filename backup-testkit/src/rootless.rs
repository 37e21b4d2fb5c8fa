//! Running a test as an unprivileged user, for rootless Podman.
//!
//! A normal (parent) test calls [`run_test_as_rootless_user`] with the name of an
//! `#[ignore]`d (child) test of the same binary. As root, the parent makes sure the user
//! [`USER`] exists with subordinate uid/gid ranges (creating it when missing), copies the
//! test binary into a directory that user owns (so nothing depends on the permissions of
//! the build directory), and runs `runuser -u USER -- env -i … BINARY CHILD --exact
//! --ignored` with its own `HOME`, `XDG_RUNTIME_DIR` and `TMPDIR`. It fails loudly, never
//! skips, when any of that is impossible, and when the child did not run and pass exactly
//! one test. Run by a user that is not root, the child runs as that user.
//!
//! ```no_run
//! #[test]
//! fn volume_round_trip_rootless() {
//!     backup_testkit::rootless::run_test_as_rootless_user("child_volume_round_trip");
//! }
//! ```

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;

use crate::ports::require_binary;

/// The unprivileged user rootless tests run as.
pub const USER: &str = "backup-rootless";

/// Size of the subordinate uid and gid ranges given to [`USER`].
const RANGE: u64 = 65536;

/// The system directories put first on the child's `PATH`.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The effective uid of this process (from `/proc/self/status`).
///
/// # Panics
///
/// When `/proc/self/status` cannot be read.
pub fn euid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_else(|e| panic!("cannot read /proc/self/status: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no effective uid in /proc/self/status"))
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    euid() == 0
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{program}`: {e}"))
}

fn check(program: &str, args: &[&str]) {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The end of the highest subordinate range in use in `/etc/subuid` or `/etc/subgid`
/// (at least 100000).
fn next_free_subordinate_id() -> u64 {
    let mut end = 100_000u64;
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if let [_, start, count] = fields.as_slice() {
                if let (Ok(start), Ok(count)) =
                    (start.trim().parse::<u64>(), count.trim().parse::<u64>())
                {
                    end = end.max(start + count);
                }
            }
        }
    }
    end
}

fn has_range(file: &str, user: &str) -> bool {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .any(|line| line.split(':').next() == Some(user))
}

/// An unprivileged user a child test runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestUser {
    /// Login name.
    pub name: &'static str,
    /// Whether it has subordinate uid/gid ranges (`/etc/subuid`, `/etc/subgid`); without,
    /// rootless podman maps only the user itself into its namespace.
    pub subordinate_ids: bool,
}

/// [`USER`], with subordinate uid/gid ranges: what rootless podman needs.
pub const ROOTLESS: TestUser = TestUser {
    name: USER,
    subordinate_ids: true,
};

/// A user without subordinate ranges (a misconfigured rootless setup).
pub const WITHOUT_SUBORDINATE_IDS: TestUser = TestUser {
    name: "backup-rootless-noids",
    subordinate_ids: false,
};

/// Creates `user` when missing and gives it subordinate uid/gid ranges, or takes them
/// away, as it asks (idempotent, also against another process creating it meanwhile);
/// returns its uid and gid.
///
/// # Panics
///
/// When not root, or `useradd` / `usermod` fail, or `newuidmap` / `newgidmap` are
/// missing (install `uidmap`; `scripts/test.sh` does).
pub fn ensure_user(user: TestUser) -> (u32, u32) {
    static DONE: Mutex<Vec<(TestUser, (u32, u32))>> = Mutex::new(Vec::new());
    let mut done = DONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, ids)) = done.iter().find(|(u, _)| *u == user) {
        return *ids;
    }
    let name = user.name;
    assert!(is_root(), "creating the user `{name}` needs root");
    require_binary("newuidmap", &["/usr/bin", "/usr/sbin"]);
    require_binary("newgidmap", &["/usr/bin", "/usr/sbin"]);
    if !run("getent", &["passwd", name]).status.success() {
        let out = run(
            "useradd",
            &["--create-home", "--user-group", "--shell", "/bin/sh", name],
        );
        // 9: the name is taken (another test process created it meanwhile).
        assert!(
            out.status.success() || out.status.code() == Some(9),
            "cannot create the user `{name}` for rootless tests (useradd): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let has_uids = has_range("/etc/subuid", name);
    let has_gids = has_range("/etc/subgid", name);
    if user.subordinate_ids {
        let start = next_free_subordinate_id();
        let range = format!("{start}-{}", start + RANGE - 1);
        if !has_uids {
            check("usermod", &["--add-subuids", &range, name]);
        }
        if !has_gids {
            check("usermod", &["--add-subgids", &range, name]);
        }
    } else if has_uids || has_gids {
        // useradd gives new users ranges by default.
        let all = "1-4294967294";
        check(
            "usermod",
            &["--del-subuids", all, "--del-subgids", all, name],
        );
    }
    let id = |flag: &str| -> u32 {
        let out = run("id", &[flag, name]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("`id {flag} {name}` printed no number"))
    };
    let ids = (id("-u"), id("-g"));
    done.push((user, ids));
    ids
}

/// Whether `dir` and each of its ancestors lets other users through (`o+x`).
fn traversable_by_others(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    dir.ancestors()
        .all(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

fn chown(path: &Path, ids: (u32, u32)) {
    std::os::unix::fs::chown(path, Some(ids.0), Some(ids.1))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

fn mkdir_owned(path: &Path, ids: (u32, u32), mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    chown(path, ids);
}

/// Ends the podman pause processes (`pause.pid` files) the child left under `dir`, when
/// they belong to `uid`.
fn end_pause_processes(dir: &Path, uid: u32) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(path);
            } else if entry.file_name() == "pause.pid" {
                let pid = std::fs::read_to_string(&path).unwrap_or_default();
                let pid = pid.trim();
                let owner = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix("Uid:"))
                            .and_then(|ids| ids.split_whitespace().next())
                            .and_then(|id| id.parse::<u32>().ok())
                    });
                if !pid.is_empty() && owner == Some(uid) {
                    let _ = run("kill", &[pid]);
                }
            }
        }
    }
}

/// Runs the `#[ignore]`d test `child` of this test binary as [`USER`] (as the current
/// user when that is not root) and returns its output.
///
/// # Panics
///
/// When the user cannot be prepared or the child cannot run, fails, or did not run
/// exactly one test; the message holds the child's whole output.
pub fn run_test_as_rootless_user(child: &str) -> String {
    run_test_as(ROOTLESS, child)
}

/// Runs the `#[ignore]`d test `child` of this test binary as `user` (created as it asks
/// when missing); as [`run_test_as_rootless_user`], but a process that is not root can
/// run it only for [`ROOTLESS`], as itself.
///
/// # Panics
///
/// As [`run_test_as_rootless_user`]; when not root and `user` is not [`ROOTLESS`].
pub fn run_test_as(user: TestUser, child: &str) -> String {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let root = is_root();
    if root {
        require_binary("runuser", &["/usr/sbin", "/sbin"]);
    } else {
        assert_eq!(
            user, ROOTLESS,
            "the child test `{child}` must run as `{}`: run the test as root",
            user.name
        );
    }
    // The user must reach the directory: the temp dir when every ancestor lets others
    // through, else /tmp.
    let temp = std::env::temp_dir();
    let parent = if traversable_by_others(&temp) {
        temp
    } else {
        "/tmp".into()
    };
    let dir = tempfile::Builder::new()
        .prefix("rootless-test")
        .tempdir_in(&parent)
        .unwrap_or_else(|e| panic!("cannot create a temp dir for the rootless test: {e}"));
    let ids = if root { ensure_user(user) } else { (euid(), 0) };
    let base = dir.path();
    if root {
        mkdir_owned(base, ids, 0o755);
    }
    for (sub, mode) in [
        ("home", 0o700),
        ("xdg", 0o700),
        ("tmp", 0o700),
        ("bin", 0o755),
    ] {
        if root {
            mkdir_owned(&base.join(sub), ids, mode);
        } else {
            std::fs::create_dir_all(base.join(sub)).unwrap_or_else(|e| panic!("mkdir: {e}"));
        }
    }
    let copy = base
        .join("bin")
        .join(exe.file_name().unwrap_or_else(|| "test".as_ref()));
    std::fs::copy(&exe, &copy)
        .unwrap_or_else(|e| panic!("copy the test binary to {}: {e}", copy.display()));
    let path = format!(
        "{SYSTEM_PATH}:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", user.name, "--", "env", "-i"]);
        c
    } else {
        let mut c = Command::new("env");
        c.arg("-i");
        c
    };
    let env_var = |name: &str, value: &Path| format!("{name}={}", value.display());
    command
        .arg(env_var("HOME", &base.join("home")))
        .arg(env_var("XDG_RUNTIME_DIR", &base.join("xdg")))
        .arg(env_var("TMPDIR", &base.join("tmp")))
        .arg(format!("PATH={path}"))
        .arg("RUST_BACKTRACE=1")
        .arg(&copy)
        .args([
            child,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .current_dir(base);
    let out = command.output().unwrap_or_else(|e| {
        panic!(
            "cannot run the child test `{child}` as `{}`: {e}",
            user.name
        )
    });
    end_pause_processes(base, ids.0);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = format!("--- stdout of {child}:\n{stdout}\n--- stderr:\n{stderr}");
    assert!(
        out.status.success(),
        "the rootless child test `{child}` failed ({}):\n{report}",
        out.status
    );
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "the rootless child test `{child}` did not run exactly one passing test:\n{report}"
    );
    println!("{report}");
    report
}
