//! Exporters' warnings, read from a published bundle's manifest.
//!
//! Exporters report what they left out without failing in their artifact's metadata:
//! the directory adapter's `skippedSockets` (a count), the Podman adapter's
//! `skippedBindMounts` (`[{source, usedBy, reason}]`), and, for any adapter, a
//! `warnings` array of strings (the convention for new adapters).

use backup_core::Manifest;
use serde_json::Value;

use super::record::RunWarning;

/// The warnings a bundle's exporters reported, in manifest order.
pub fn exporter_warnings(manifest: &Manifest) -> Vec<RunWarning> {
    let mut out = Vec::new();
    for entry in &manifest.entries {
        let meta = &entry.artifact.metadata;
        let mut push = |message: String| {
            out.push(RunWarning {
                service: entry.service.clone(),
                message,
            })
        };
        if let Some(Value::Array(items)) = meta.get("warnings") {
            for item in items {
                match item {
                    Value::String(s) => push(s.clone()),
                    other => push(other.to_string()),
                }
            }
        }
        if let Some(n) = meta.get("skippedSockets").and_then(Value::as_u64) {
            if n > 0 {
                push(format!(
                    "{}: {n} socket(s) skipped (sockets cannot be archived)",
                    entry.artifact.name
                ));
            }
        }
        if let Some(Value::Array(items)) = meta.get("skippedBindMounts") {
            for item in items {
                let field = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or("?");
                push(format!(
                    "bind mount `{}` left out: {}",
                    field("source"),
                    field("reason")
                ));
            }
        }
    }
    out
}
