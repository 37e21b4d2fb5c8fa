//! The `redis` recipe's service config.

use serde::{Deserialize, Serialize};

use backup_core::{Error, ErrorKind, Result, ServiceTarget};

/// Which artifact format an export produces.
///
/// The default is [`Logical`](ExportFormat::Logical): the default recipe ([`crate::recipe`])
/// restores it into any running server. [`Rdb`](ExportFormat::Rdb) is opt-in, because
/// restoring it needs a [`crate::RedisServerControl`] (the host stops and starts the
/// server around the file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExportFormat {
    /// The server's own RDB snapshot, taken over the replication protocol
    /// ([`backup_core::artifact::formats::REDIS_RDB`]). Needs the `SYNC` permission to
    /// export, and [`crate::recipe_with_server_control`] to import.
    Rdb,
    /// Keys read with `SCAN` + `DUMP` into the framed format described in the crate docs
    /// ([`backup_core::artifact::formats::REDIS_DUMP_RESTORE`]). Works where replication
    /// is not allowed (managed Redis, ACL users without `SYNC`), and restores into any
    /// running server.
    #[default]
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
    /// Export format (default `logical`).
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
    /// Seconds a network read or write may wait without any byte moving before the
    /// operation fails (default 60, at least 1). Covers every reply, the replication
    /// stream of an RDB export, and waits for the server to prepare the RDB (it sends a
    /// keep-alive every second).
    #[serde(default = "default_idle_timeout_seconds")]
    pub idle_timeout_seconds: u64,
}

/// Default of [`RedisConfig::idle_timeout_seconds`].
pub const DEFAULT_IDLE_TIMEOUT_SECONDS: u64 = 60;

fn default_idle_timeout_seconds() -> u64 {
    DEFAULT_IDLE_TIMEOUT_SECONDS
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
            idle_timeout_seconds: DEFAULT_IDLE_TIMEOUT_SECONDS,
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
            .field("idle_timeout_seconds", &self.idle_timeout_seconds)
            .finish()
    }
}

impl RedisConfig {
    /// [`idle_timeout_seconds`](Self::idle_timeout_seconds) as a duration (at least 1 s).
    pub fn idle_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.idle_timeout_seconds.max(1))
    }

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
        if config.idle_timeout_seconds == 0 {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "config of redis service `{}` sets idleTimeoutSeconds to 0",
                    service.name
                ),
            )
            .with_hint("use at least 1 second, or leave it out for the default of 60"));
        }
        Ok(config)
    }
}
