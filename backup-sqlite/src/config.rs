//! The config of the `sqlite` recipe and its app presets, and its JSON Schema.

use std::path::PathBuf;

use backup_core::{Error, ErrorKind, Result, ServiceTarget};
use serde::Deserialize;
use serde_json::json;

/// The program run in [`Mode::Command`] when the config names none.
pub const DEFAULT_TOOL: &str = "sqlite3";
/// Where [`Mode::Command`] puts its temporary copy (inside the container) by default.
pub const DEFAULT_REMOTE_TEMP_DIR: &str = "/tmp";
/// How long a local export or import waits for a lock held by the app, by default.
pub const DEFAULT_BUSY_TIMEOUT_SECS: u64 = 30;

/// How the database file is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// The file is on this machine: the SQLite library linked into this crate copies it
    /// with the online backup API. The default.
    #[default]
    Local,
    /// The file is only reachable where the service's [`backup_core::CommandRunner`] runs
    /// (a container, a pod): the `sqlite3` tool there writes a `VACUUM INTO` snapshot to
    /// a temporary file, which is streamed out with `cat` and removed. Export only.
    Command,
}

/// Where the database is, for the `sqlite` recipe (`path`) or an app preset (`dataDir`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// Absolute path of the database file (`sqlite` recipe).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Absolute path of the app's data directory (presets `n8n`, `uptime-kuma`).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// How the file is reached: `local` (default) or `command`.
    #[serde(default)]
    pub runner: Mode,
    /// The `sqlite3` program for `command` mode (default `sqlite3`).
    #[serde(default)]
    pub tool: Option<String>,
    /// Directory for the temporary copy in `command` mode (default `/tmp`).
    #[serde(default)]
    pub temp_dir: Option<String>,
    /// Seconds a local export or import waits for a lock held by the app (default 30).
    #[serde(default)]
    pub busy_timeout_secs: Option<u64>,
}

/// Which file a recipe backs up: the `path` itself, or a fixed name inside `dataDir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The config's `path` is the database file.
    Path,
    /// The database is this file inside the config's `dataDir`.
    InDataDir(&'static str),
}

impl SqliteConfig {
    /// Reads and checks the config of `service` for a recipe with `layout`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] for unknown fields, a missing or relative path.
    pub fn from_service(service: &ServiceTarget) -> Result<Self> {
        serde_json::from_value(service.config.clone()).map_err(|e| {
            Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "config of service `{}` is not a sqlite config: {e}",
                    service.name
                ),
            )
        })
    }

    /// The database file this config names under `layout`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] when the field `layout` needs is missing or relative.
    pub fn database_path(&self, service: &str, layout: Layout) -> Result<PathBuf> {
        let (field, value, file) = match layout {
            Layout::Path => ("path", &self.path, None),
            Layout::InDataDir(file) => ("dataDir", &self.data_dir, Some(file)),
        };
        let Some(base) = value else {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!("service `{service}` has no `{field}`"),
            ));
        };
        if !base.is_absolute() {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!("`{field}` of service `{service}` must be an absolute path"),
            ));
        }
        Ok(match file {
            Some(file) => base.join(file),
            None => base.clone(),
        })
    }

    /// The program run in command mode.
    pub fn tool(&self) -> &str {
        self.tool.as_deref().unwrap_or(DEFAULT_TOOL)
    }

    /// The temporary directory used in command mode.
    pub fn remote_temp_dir(&self) -> &str {
        self.temp_dir.as_deref().unwrap_or(DEFAULT_REMOTE_TEMP_DIR)
    }

    /// How long to wait for the app's locks.
    pub fn busy_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.busy_timeout_secs.unwrap_or(DEFAULT_BUSY_TIMEOUT_SECS))
    }
}

/// The JSON Schema of a recipe's config: `path` for [`Layout::Path`], `dataDir` for a preset.
pub fn config_schema(layout: Layout) -> serde_json::Value {
    let location = match layout {
        Layout::Path => "path",
        Layout::InDataDir(_) => "dataDir",
    };
    json!({
        "type": "object",
        "properties": {
            location: { "type": "string", "minLength": 1, "pattern": "^/" },
            "runner": { "enum": ["local", "command"] },
            "tool": { "type": "string", "minLength": 1 },
            "tempDir": { "type": "string", "minLength": 1, "pattern": "^/" },
            "busyTimeoutSecs": { "type": "integer", "minimum": 0 }
        },
        "required": [location],
        "additionalProperties": false
    })
}
