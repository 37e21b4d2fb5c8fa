//! Free loopback ports and tool discovery for tests that start real servers.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

/// A loopback port that was free a moment ago, and never handed out before in this
/// process.
///
/// A server takes a while to bind the port it is given (moto about a second). Without
/// the record, a test starting its server in that window could be given the same port,
/// find the other test's server answering there, and lose it when that test ended.
///
/// # Panics
///
/// When no port can be bound on 127.0.0.1: the machine cannot run live tests at all.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    // Ports refused here stay bound until one is found, so the kernel offers another.
    let mut refused = Vec::new();
    loop {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind a loopback port for a test server: {e}"));
        let port = match listener.local_addr() {
            Ok(addr) => addr.port(),
            Err(e) => panic!("cannot read the bound test port: {e}"),
        };
        if handed_out.insert(port) {
            return port;
        }
        refused.push(listener);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_handed_out_once() {
        // Far more ports than needed for the kernel's picks to repeat (about 28,000
        // ephemeral ports: a repeat is near-certain among 1,000 random picks).
        let ports: Vec<u16> = (0..1000).map(|_| free_port()).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
    }
}
