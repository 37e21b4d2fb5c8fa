//! Maps Redis error replies to [`backup_core::Error`]s users can act on.

use backup_core::{Error, ErrorKind};

/// Turns the text of an error reply (without the leading `-`) into an error, for `context`.
///
/// Redis error replies never contain the password, so the text is kept.
pub(crate) fn reply_error(context: &str, reply: &str) -> Error {
    let code = reply.split_whitespace().next().unwrap_or("");
    let lower = reply.to_ascii_lowercase();
    let message = format!("redis refused {context}: {reply}");
    match code {
        "NOAUTH" => Error::new(ErrorKind::PermissionDenied, message)
            .with_hint("the server requires a password: set `password` (and `username` for an ACL user) in the service config"),
        "WRONGPASS" => Error::new(ErrorKind::PermissionDenied, message)
            .with_hint("check `username` and `password` in the service config"),
        "NOPERM" => Error::new(ErrorKind::PermissionDenied, message)
            .with_hint("grant the ACL user the missing permission, or use an account that has it"),
        "OOM" => Error::new(ErrorKind::ResourceExhausted, message)
            .with_hint("the target is out of memory: raise its `maxmemory` or free memory, then retry"),
        "LOADING" => Error::new(ErrorKind::Unavailable, message)
            .with_hint("the server is still loading its dataset: retry when it has finished"),
        "BUSY" | "MASTERDOWN" | "TRYAGAIN" | "CLUSTERDOWN" => {
            Error::new(ErrorKind::Unavailable, message).with_hint("retry later")
        }
        _ if lower.contains("db index is out of range") => Error::new(ErrorKind::InvalidInput, message)
            .with_hint("the target has fewer databases than the export uses: raise its `databases` setting"),
        _ if lower.contains("invalid password") => Error::new(ErrorKind::PermissionDenied, message)
            .with_hint("check `password` in the service config"),
        _ if lower.contains("invalid bulk length") || lower.contains("proto-max-bulk-len") => {
            Error::new(ErrorKind::ResourceExhausted, message).with_hint(
                "a value is larger than the target's `proto-max-bulk-len`: raise it (CONFIG SET proto-max-bulk-len <bytes>) above the largest value",
            )
        }
        _ if lower.contains("payload version or checksum are wrong")
            || lower.contains("bad data format") =>
        {
            Error::new(ErrorKind::Integrity, message).with_hint(
                "the export is damaged, or was made by a newer Redis than the target: restore an intact export into a Redis at least as new as the source",
            )
        }
        _ => Error::new(ErrorKind::ToolFailed, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_and_permission_replies_become_permission_denied_with_hints() {
        let e = reply_error(
            "AUTH",
            "WRONGPASS invalid username-password pair or user is disabled.",
        );
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(e.hint().is_some());
        let e = reply_error("PING", "NOAUTH Authentication required.");
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        let e = reply_error(
            "RESTORE",
            "OOM command not allowed when used memory > 'maxmemory'.",
        );
        assert_eq!(e.kind(), ErrorKind::ResourceExhausted);
        let e = reply_error("RESTORE", "ERR Protocol error: invalid bulk length");
        assert!(e.hint().is_some_and(|h| h.contains("proto-max-bulk-len")));
        let e = reply_error("RESTORE", "ERR DUMP payload version or checksum are wrong");
        assert_eq!(e.kind(), ErrorKind::Integrity);
    }
}
