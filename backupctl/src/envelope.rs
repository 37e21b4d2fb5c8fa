//! The JSON documents `backupctl --json` prints, for hosts that answer in the same shape
//! (the HTTP host example): `{"command", "ok": true, "result"}` and
//! `{"command", "ok": false, "exitCode", "error": {"kind", "message", "hint",
//! "fieldErrors"}}`.

use backup_core::Error;
use serde::Serialize;
use serde_json::{json, Value};

use crate::exit::Exit;

/// `{"command", "ok": true, "result"}`.
pub fn ok_envelope(command: &str, result: &impl Serialize) -> Value {
    let result = serde_json::to_value(result).unwrap_or(Value::Null);
    json!({"command": command, "ok": true, "result": result})
}

/// `{"command", "ok": false, "exitCode", "error"}` for `error`, ending with `exit`.
pub fn error_envelope(command: &str, error: &Error, exit: Exit) -> Value {
    json!({
        "command": command,
        "ok": false,
        "exitCode": exit.code(),
        "error": error_value(error),
    })
}

/// The `error` object: kind, message, hint, and field errors with their JSON pointers.
pub fn error_value(error: &Error) -> Value {
    let fields: Vec<Value> = error
        .field_errors()
        .iter()
        .map(|f| json!({"field": f.pointer, "message": f.message}))
        .collect();
    json!({
        "kind": error.kind(),
        "message": error.message(),
        "hint": error.hint(),
        "fieldErrors": fields,
    })
}
