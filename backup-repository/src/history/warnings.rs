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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(service: &str, metadata: Value) -> Value {
        json!({
            "path": format!("data/{service}/a.tar.zst"),
            "service": service,
            "artifact": {"name": "a.tar", "format": "tar", "contentType": "application/x-tar",
                         "metadata": metadata},
            "size": 1, "sha256": "00", "uncompressedSize": 1,
            "compression": "zstd", "encryption": "none"
        })
    }

    #[test]
    fn warnings_are_read_from_every_adapters_metadata() {
        let manifest: Manifest = serde_json::from_value(json!({
            "formatVersion": 1, "id": "x", "createdAt": "2026-11-30T00:00:00Z",
            "kind": "automatic", "tool": {"name": "t", "version": "1"},
            "includes": {"config": true, "services": ["files", "app", "db"]},
            "entries": [
                entry("files", json!({"skippedSockets": 2})),
                entry("app", json!({"skippedBindMounts": [
                    {"source": "/srv/cfg", "usedBy": ["app"], "reason": "the path is not absolute"}
                ]})),
                entry("db", json!({"warnings": ["table t skipped"], "skippedSockets": 0})),
            ]
        }))
        .expect("manifest");
        let got: Vec<(String, String)> = exporter_warnings(&manifest)
            .into_iter()
            .map(|w| (w.service, w.message))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "files".to_string(),
                    "a.tar: 2 socket(s) skipped (sockets cannot be archived)".to_string()
                ),
                (
                    "app".to_string(),
                    "bind mount `/srv/cfg` left out: the path is not absolute".to_string()
                ),
                ("db".to_string(), "table t skipped".to_string()),
            ]
        );
    }
}
