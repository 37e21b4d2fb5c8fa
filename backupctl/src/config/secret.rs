//! Secrets named in the configuration: `{ env = "NAME" }` or `{ file = "/path" }`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use backup_core::{Error, ErrorKind, Result};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Issues;

/// Where a secret is read from: an environment variable or a file (its content, one
/// trailing newline removed). Never the command line, never the configuration itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretSource {
    /// Environment variable name.
    #[serde(default)]
    pub env: Option<String>,
    /// File path.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl SecretSource {
    /// Reads the secret.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] naming the variable or file (never the value) when it
    /// is unset, unreadable or empty, or when both or neither of `env` / `file` are given.
    pub fn read(&self) -> Result<String> {
        let value = match (&self.env, &self.file) {
            (Some(name), None) => std::env::var(name).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidConfig,
                    format!("environment variable {name} is not set"),
                )
                .with_hint(format!("export {name}=… before running backupctl"))
            })?,
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidConfig,
                    format!("cannot read the secret file {}: {e}", path.display()),
                )
            })?,
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    "a secret needs exactly one of `env` or `file`",
                ))
            }
        };
        let value = value
            .strip_suffix('\n')
            .map(|v| v.strip_suffix('\r').unwrap_or(v))
            .unwrap_or(&value)
            .to_string();
        if value.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!("the secret from {} is empty", self.describe()),
            ));
        }
        Ok(value)
    }

    fn describe(&self) -> String {
        match (&self.env, &self.file) {
            (Some(name), _) => format!("environment variable {name}"),
            (_, Some(path)) => format!("file {}", path.display()),
            _ => "nowhere".into(),
        }
    }
}

/// A service's TOML config as JSON, with its secret fields read from their sources.
/// Problems go to `issues` under `field.<key>`; a secret that cannot be read is left out
/// (so the schema check still runs on the rest).
pub(super) fn resolve_config(
    table: &toml::Table,
    secrets: &BTreeSet<&str>,
    field: &str,
    issues: &mut Issues,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in table {
        let at = format!("{field}.{key}");
        if secrets.contains(key.as_str()) {
            let source: std::result::Result<SecretSource, _> = value.clone().try_into();
            match source {
                Ok(source) => match source.read() {
                    Ok(secret) => {
                        out.insert(key.clone(), Value::String(secret));
                    }
                    Err(e) => issues.add(at, e.to_string()),
                },
                Err(_) => issues.add(
                    at,
                    "a secret: write it as { env = \"NAME\" } or { file = \"/path\" }, never \
                     in the configuration itself",
                ),
            }
            continue;
        }
        match serde_json::to_value(value) {
            Ok(json) => {
                out.insert(key.clone(), json);
            }
            Err(e) => issues.add(at, format!("cannot be used as JSON: {e}")),
        }
    }
    out
}
