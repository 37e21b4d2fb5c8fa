//! The `redis` recipe's service config.

use serde::{Deserialize, Serialize};

use backup_core::{Error, ErrorKind, Result, ServiceTarget};

/// Which artifact format an export produces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExportFormat {
    /// The server's own RDB snapshot, taken over the replication protocol
    /// ([`backup_core::artifact::formats::REDIS_RDB`]). Needs the `SYNC` permission.
    #[default]
    Rdb,
    /// Keys read with `SCAN` + `DUMP` into the framed format described in the crate docs
    /// ([`backup_core::artifact::formats::REDIS_DUMP_RESTORE`]). Works where replication
    /// is not allowed (managed Redis, ACL users without `SYNC`).
    Logical,
}

/// Connection and export settings of one Redis service (JSON camelCase).
///
/// `password` is a secret: it is never printed by `Debug`, never written to a manifest,
/// and never quoted in errors.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisConfig {
    /// Host name or address (default `127.0.0.1`).
    #[serde(default = "default_host")]
    pub host: String,
    /// TCP port (default 6379).
    #[serde(default = "default_port")]
    pub port: u16,
    /// ACL user; `None` authenticates as the default user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password (`requirepass` or the ACL user's); a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Export format (default `rdb`).
    #[serde(default)]
    pub format: ExportFormat,
    /// Database indexes a logical export includes (default: every database with keys).
    /// Not allowed with the `rdb` format, which always holds every database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub databases: Option<Vec<u32>>,
    /// Explicit opt-in: for an RDB export, set `repl-diskless-sync-delay` to 0 while the
    /// transfer starts (saving the server's default 5 s wait), then put the original value
    /// back, also on error. Off by default: server settings are never changed silently.
    #[serde(default)]
    pub lower_diskless_sync_delay: bool,
}

fn default_host() -> String {
    "127.0.0.1".to_string()
}

fn default_port() -> u16 {
    6379
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            host: default_host(),
            port: default_port(),
            username: None,
            password: None,
            format: ExportFormat::default(),
            databases: None,
            lower_diskless_sync_delay: false,
        }
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("format", &self.format)
            .field("databases", &self.databases)
            .field("lower_diskless_sync_delay", &self.lower_diskless_sync_delay)
            .finish()
    }
}

impl RedisConfig {
    /// Reads the config of `service`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] when the config does not match; the message names
    /// unknown or missing fields but never quotes a value (it may be the password).
    pub fn from_service(service: &ServiceTarget) -> Result<RedisConfig> {
        let config: RedisConfig = serde_json::from_value(service.config.clone()).map_err(|e| {
            let text = e.to_string();
            let detail = if text.starts_with("unknown field") || text.starts_with("missing field") {
                format!(": {text}")
            } else {
                String::new()
            };
            Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "config of redis service `{}` is invalid{detail}",
                    service.name
                ),
            )
            .with_hint("validate it against the `redis` recipe's schema to see each failing field")
        })?;
        if config.format == ExportFormat::Rdb && config.databases.is_some() {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "config of redis service `{}` lists `databases` with the `rdb` format",
                    service.name
                ),
            )
            .with_hint(
                "an RDB export always holds every database: use format `logical` to pick databases",
            ));
        }
        Ok(config)
    }
}
