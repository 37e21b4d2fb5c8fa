//! Errors users can act on, mapped from the stderr of psql, pg_dump and pg_restore.
//!
//! The hints follow what users of the Supabase snapshot workflow expect (seed 002): check
//! the server is running and test the connection, use a role with enough privileges,
//! dump with `--no-owner --no-privileges`, restore with `force` or a `--clean` dump, free
//! disk space or take a schema-only snapshot.

use backup_core::command::ToolFailure;
use backup_core::{Error, ErrorKind};

/// One recognised failure: stderr fragments (lowercase), the kind, and the hint.
struct Rule {
    needles: &'static [&'static str],
    kind: ErrorKind,
    hint: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        needles: &["password authentication failed", "no password supplied", "fe_sendauth"],
        kind: ErrorKind::PermissionDenied,
        hint: "check the user and password in the service config; test the connection with psql -h HOST -p PORT -U USER -c \"SELECT 1\"",
    },
    Rule {
        needles: &["no space left on device", "could not extend file", "disk full"],
        kind: ErrorKind::ResourceExhausted,
        hint: "free up disk space, use a schema-only snapshot (smaller), or delete old backups",
    },
    Rule {
        needles: &[
            "does not appear to be a valid archive",
            "could not read input file",
            "could not read from input file",
            "unexpected end of file",
            "could not uncompress data",
            "could not decompress",
            "corrupt",
            "invalid byte sequence",
            "unsupported version",
            "the dump is incomplete",
        ],
        kind: ErrorKind::Integrity,
        hint: "the dump is corrupt or truncated: verify the bundle, or restore another backup",
    },
    Rule {
        needles: &["invalid locale name", "does not match locale", "could not open collator"],
        kind: ErrorKind::Unsupported,
        hint: "the backed-up database used an encoding or locale this server does not have (see the artifact's `databaseProperties`): install the locale on the server (e.g. locale-gen), or create the database yourself with a locale the server has and restore into it while it is empty (it keeps its own locale)",
    },
    Rule {
        needles: &["role \""],
        kind: ErrorKind::NotFound,
        hint: "a role is missing on this server: check the user in the service config; a dump that references roles needs --no-owner --no-privileges (the default here), or create the role first",
    },
    Rule {
        needles: &["database \""],
        kind: ErrorKind::NotFound,
        hint: "check the database name in the service config; list databases with psql -l",
    },
    Rule {
        needles: &["must be owner of"],
        kind: ErrorKind::PermissionDenied,
        hint: "the dump contains ownership or privilege commands: export with --no-owner --no-privileges (the default here), or restore as the owner",
    },
    Rule {
        needles: &["permission denied"],
        kind: ErrorKind::PermissionDenied,
        hint: "use a role with enough privileges (the service's admin role), or grant them, e.g. GRANT ALL ON SCHEMA public TO the user",
    },
    Rule {
        needles: &["already exists"],
        kind: ErrorKind::AlreadyExists,
        hint: "the target already holds these objects: restore with force, or use a dump made with --clean --if-exists (the sql format does)",
    },
    Rule {
        needles: &[
            "connection refused",
            "could not connect",
            "connection to server",
            "could not translate host name",
            "timeout expired",
            "server closed the connection",
            "no such file or directory\n\tis the server running",
            "the database system is starting up",
            "the database system is shutting down",
        ],
        kind: ErrorKind::Unavailable,
        hint: "check the database is running and reachable at the configured host and port; test the connection with psql -h HOST -p PORT -U USER -c \"SELECT 1\"",
    },
];

const LOCK_TIMEOUT_HINT: &str = "another session holds a conflicting lock on a table (a migration, VACUUM FULL, ALTER TABLE, LOCK TABLE): find it with SELECT pid, state, query FROM pg_stat_activity WHERE pid IN (SELECT pid FROM pg_locks WHERE mode = 'AccessExclusiveLock'), retry when it is done, or raise `lockWaitTimeout` in the service config";

/// Whether (lowercase) stderr says a lock was not granted in time: pg_dump's
/// `--lock-wait-timeout` cancels its `LOCK TABLE` by statement timeout, a server
/// `lock_timeout` by lock timeout.
fn is_lock_timeout(lower: &str) -> bool {
    lower.contains("due to lock timeout")
        || (lower.contains("due to statement timeout") && lower.contains("lock table"))
}

/// Maps a failed tool run to an error with a kind and a hint.
///
/// `target` (`host:port`) is named in connection errors; `password`, when given, is
/// scrubbed from the stderr before it becomes part of the message.
pub(crate) fn map_failure(failure: ToolFailure, target: &str, password: Option<&str>) -> Error {
    let mut failure = failure;
    if let Some(password) = password.filter(|p| !p.is_empty()) {
        failure.stderr = failure.stderr.replace(password, "<redacted>");
    }
    let lower = failure.stderr.to_lowercase();
    if is_lock_timeout(&lower) {
        return Error::new(
            ErrorKind::Unavailable,
            format!(
                "a table stayed locked by another session longer than the lock wait timeout \
                 (`lockWaitTimeout`): {}",
                failure.into_error().message()
            ),
        )
        .with_hint(LOCK_TIMEOUT_HINT);
    }
    let matched = RULES.iter().find(|rule| {
        rule.needles.iter().any(|needle| {
            if *needle == "role \"" || *needle == "database \"" {
                lower.contains(needle) && lower.contains("does not exist")
            } else {
                lower.contains(needle)
            }
        })
    });
    let kind_hint = matched.map(|rule| (rule.kind, rule.hint));
    let base = failure.into_error();
    match kind_hint {
        Some((kind, hint)) => {
            let message = if kind == ErrorKind::Unavailable {
                format!("PostgreSQL at {target} is unreachable: {}", base.message())
            } else {
                base.message().to_string()
            };
            Error::new(kind, message).with_hint(hint)
        }
        None => base,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn failure(stderr: &str) -> ToolFailure {
        ToolFailure {
            command: "pg_dump -h db".into(),
            exit_code: Some(1),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn seed_errors_map_to_kinds_with_hints() {
        let cases = [
            ("pg_dump: error: connection to server at \"127.0.0.1\", port 1 failed: Connection refused", ErrorKind::Unavailable),
            ("FATAL:  password authentication failed for user \"app\"", ErrorKind::PermissionDenied),
            ("ERROR:  permission denied for schema public", ErrorKind::PermissionDenied),
            ("FATAL:  role \"bob\" does not exist", ErrorKind::NotFound),
            ("FATAL:  database \"nope\" does not exist", ErrorKind::NotFound),
            ("ERROR:  relation \"users\" already exists", ErrorKind::AlreadyExists),
            ("ERROR:  could not extend file: No space left on device", ErrorKind::ResourceExhausted),
            ("pg_restore: error: input file does not appear to be a valid archive", ErrorKind::Integrity),
            ("ERROR:  must be owner of extension uuid-ossp", ErrorKind::PermissionDenied),
            ("ERROR:  invalid locale name: \"xx_YY.UTF-8\"", ErrorKind::Unsupported),
            ("pg_dump: error: query failed: ERROR:  canceling statement due to statement timeout\npg_dump: detail: Query was: LOCK TABLE public.t IN ACCESS SHARE MODE", ErrorKind::Unavailable),
        ];
        for (stderr, kind) in cases {
            let err = map_failure(failure(stderr), "db:5432", None);
            assert_eq!(err.kind(), kind, "{stderr}");
            assert!(err.hint().is_some(), "{stderr}");
        }
    }

    #[test]
    fn the_password_is_scrubbed_from_stderr() {
        let err = map_failure(
            failure("weird: hunter2-xyz echoed"),
            "db:5432",
            Some("hunter2-xyz"),
        );
        assert!(!format!("{err} {err:?}").contains("hunter2-xyz"));
    }

    #[test]
    fn unknown_failures_stay_tool_failures() {
        let err = map_failure(failure("something odd"), "db:5432", None);
        assert_eq!(err.kind(), ErrorKind::ToolFailed);
    }
}
