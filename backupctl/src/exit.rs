//! Exit codes: defined here once, printed in `--help`, chosen from the error.

use backup_core::{Error, ErrorKind};

/// How `backupctl` ends. The numbers are part of its interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the command did what was asked.
    Ok,
    /// 1: any other error (message and hint on stderr, or the JSON error object).
    Error,
    /// 2: the command line or the configuration is not valid.
    Usage,
    /// 3: a bundle failed verification (checksum, size, structure).
    VerificationFailed,
    /// 4: a restore failed and was rolled back: the data is as it was before.
    RestoreRolledBack,
    /// 5: a restore failed and so did its rollback: check the services by hand.
    RollbackFailed,
    /// 6: the repository is locked by another live process.
    RepositoryLocked,
    /// 7: the passphrase or identity is missing or does not decrypt the bundle.
    WrongKey,
    /// 130: interrupted (Ctrl-C / SIGINT); the operation was cancelled cleanly.
    Interrupted,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Error => 1,
            Exit::Usage => 2,
            Exit::VerificationFailed => 3,
            Exit::RestoreRolledBack => 4,
            Exit::RollbackFailed => 5,
            Exit::RepositoryLocked => 6,
            Exit::WrongKey => 7,
            Exit::Interrupted => 130,
        }
    }

    /// The exit code an error ends the program with.
    pub fn for_error(error: &Error) -> Exit {
        match error.kind() {
            ErrorKind::Cancelled => Exit::Interrupted,
            ErrorKind::Integrity => Exit::VerificationFailed,
            ErrorKind::RestoreRolledBack => Exit::RestoreRolledBack,
            ErrorKind::RollbackFailed => Exit::RollbackFailed,
            ErrorKind::InvalidConfig if error.message().starts_with("the configuration") => {
                Exit::Usage
            }
            ErrorKind::Locked => Exit::RepositoryLocked,
            ErrorKind::WrongKey => Exit::WrongKey,
            _ => Exit::Error,
        }
    }
}

/// The table printed at the end of `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success
  1    error (message and hint on stderr; with --json, the error object on stdout)
  2    usage: invalid arguments or configuration
  3    verification failed: a bundle's checksum, size or structure does not match
  4    restore failed and was rolled back: the data is as it was before
  5    restore failed and its rollback failed too: check the services by hand
  6    the repository is locked by another running backupctl
  7    wrong key: the passphrase or identity is missing or does not decrypt
  130  interrupted (Ctrl-C): the operation was cancelled and cleaned up";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_failures_map_to_their_own_exit_codes() {
        let rolled_back = Error::new(
            ErrorKind::RestoreRolledBack,
            "import of `db` failed; rolled back: db",
        );
        assert_eq!(Exit::for_error(&rolled_back).code(), 4);
        let not_rolled_back = Error::new(ErrorKind::RollbackFailed, "`db` not rolled back");
        assert_eq!(Exit::for_error(&not_rolled_back).code(), 5);
        let interrupted = Error::new(ErrorKind::Cancelled, "interrupted");
        assert_eq!(Exit::for_error(&interrupted).code(), 130);
        let locked = Error::new(ErrorKind::Locked, "held by host `h` pid 1");
        assert_eq!(Exit::for_error(&locked).code(), 6);
        let wrong_key = Error::new(ErrorKind::WrongKey, "wrong passphrase");
        assert_eq!(Exit::for_error(&wrong_key).code(), 7);
        let denied = Error::new(ErrorKind::PermissionDenied, "S3 access denied");
        assert_eq!(Exit::for_error(&denied).code(), 1, "not a key problem");
    }

    #[test]
    fn every_exit_code_is_listed_in_the_help_text() {
        for exit in [
            Exit::Ok,
            Exit::Error,
            Exit::Usage,
            Exit::VerificationFailed,
            Exit::RestoreRolledBack,
            Exit::RollbackFailed,
            Exit::RepositoryLocked,
            Exit::WrongKey,
            Exit::Interrupted,
        ] {
            let line = format!("\n  {:<4} ", exit.code());
            assert!(EXIT_CODES_HELP.contains(&line), "{exit:?} missing");
        }
    }
}
