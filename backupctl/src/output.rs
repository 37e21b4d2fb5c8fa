//! What commands print: one result value, rendered as a table/text or as JSON.
//!
//! # The JSON schema (`--json`, every command)
//!
//! stdout holds exactly one JSON object and nothing else (progress and logs go to
//! stderr):
//!
//! ```json
//! {"command": "list", "ok": true, "result": …}
//! {"command": "verify", "ok": false, "exitCode": 3,
//!  "error": {"kind": "integrity", "message": "…", "hint": "…",
//!            "fieldErrors": [{"field": "services.db.config.port", "message": "…"}]}}
//! ```
//!
//! `result` is the command's own value (a bundle, a list of bundles, a report); its
//! fields are camelCase and documented with the command.

use std::io::Write;

use backup_core::Error;
use serde::Serialize;

use crate::exit::Exit;

/// Prints to stdout; a closed stdout (`backupctl list | head`) ends quietly.
pub(crate) fn line(text: &str) {
    if writeln!(std::io::stdout(), "{}", clean(text)).is_err() {
        std::process::exit(0);
    }
}

/// Replaces control characters (other than newline and tab) so names from a bundle or a
/// server cannot move the cursor or recolour the terminal.
pub(crate) fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// Prints the success envelope.
pub(crate) fn json_ok(command: &str, result: &impl Serialize) {
    let doc = crate::envelope::ok_envelope(command, result);
    line(&serde_json::to_string_pretty(&doc).unwrap_or_default());
}

/// Prints the error envelope.
pub(crate) fn json_error(command: &str, error: &Error, exit: Exit) {
    let doc = crate::envelope::error_envelope(command, error, exit);
    line(&serde_json::to_string_pretty(&doc).unwrap_or_default());
}

/// Prints an error for people on stderr: message, field errors, hint.
pub(crate) fn human_error(error: &Error) {
    let mut err = std::io::stderr();
    let _ = writeln!(err, "error: {}", clean(error.message()));
    for f in error.field_errors() {
        let _ = writeln!(err, "  {}: {}", clean(&f.pointer), clean(&f.message));
    }
    if let Some(hint) = error.hint() {
        let _ = writeln!(err, "hint: {}", clean(hint));
    }
}

pub(crate) use backup_core::narrate::human_bytes;

/// A plain-text table: columns padded to their widest cell.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let render = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    line(&render(header.to_vec()));
    for row in rows {
        line(&render(row.iter().map(String::as_str).collect()));
    }
}
