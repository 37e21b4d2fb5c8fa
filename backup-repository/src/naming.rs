//! Bundle names a person can read, and the host identity used by locks.

use jiff::Timestamp;

/// `{UTC timestamp}_{label or kind}_{short id}`.
pub(crate) fn bundle_name(created: Timestamp, tag: &str, id: &str) -> String {
    let stamp = created.strftime("%Y%m%dT%H%M%SZ");
    let tag: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    let short: String = id.chars().filter(|c| *c != '-').take(8).collect();
    format!("{stamp}_{tag}_{short}")
}

/// This machine's host name (Linux `/proc`, else the `HOSTNAME` variable).
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Whether process `pid` exists on this machine. `true` when it cannot be told.
pub(crate) fn process_alive(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    if !proc.join("self").exists() {
        return true;
    }
    match std::fs::read_to_string(proc.join(pid.to_string()).join("stat")) {
        // A zombie has exited: it holds nothing.
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_has_timestamp_tag_and_short_id() {
        let t: Timestamp = "2026-11-30T02:15:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let name = bundle_name(t, "before upgrade/x", "1a2b3c4d-5e6f");
        assert_eq!(name, "20261130T021500Z_before-upgrade-x_1a2b3c4d");
    }

    #[test]
    fn own_process_is_alive_and_a_free_pid_is_not() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX - 1));
    }
}
