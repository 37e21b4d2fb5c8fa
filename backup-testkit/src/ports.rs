//! Free loopback ports and tool discovery for tests that start real servers.

use std::net::TcpListener;
use std::path::PathBuf;

/// A loopback port that was free a moment ago.
///
/// # Panics
///
/// When no port can be bound on 127.0.0.1: the machine cannot run live tests at all.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("cannot bind a loopback port for a test server: {e}"));
    match listener.local_addr() {
        Ok(addr) => addr.port(),
        Err(e) => panic!("cannot read the bound test port: {e}"),
    }
}

/// Finds `program` on PATH or in `extra_dirs`.
///
/// # Panics
///
/// When it is missing, with a message naming the binary and `scripts/test.sh`: a live
/// test that cannot start its server fails loudly instead of passing by skipping.
pub fn require_binary(program: &str, extra_dirs: &[&str]) -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let candidates = extra_dirs
        .iter()
        .map(PathBuf::from)
        .chain(path_dirs)
        .map(|dir| dir.join(program));
    for candidate in candidates {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{program}` is not installed, so this live test cannot start its server. \
         Run scripts/test.sh, which installs every server the tests need."
    )
}

/// Whether the user asked to skip live tests (`BACKUP_SKIP_LIVE_TESTS=1`).
///
/// A test that honours it must print that it skipped; CI never sets it.
pub fn live_tests_skipped() -> bool {
    std::env::var("BACKUP_SKIP_LIVE_TESTS").is_ok_and(|v| v == "1")
}
