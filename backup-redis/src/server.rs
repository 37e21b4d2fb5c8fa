//! Facts read from a running server: version, keys per database, persistence state.

use std::collections::BTreeMap;

use backup_core::{Error, ErrorKind, Result};

use crate::resp::{info_fields, Connection, Reply};

/// What `INFO` says about a server.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerInfo {
    /// `redis_version`, e.g. `7.0.15`.
    pub(crate) version: String,
    /// Major version, 0 when unknown.
    pub(crate) major: u32,
    /// Keys per database index, only databases that hold keys.
    pub(crate) keyspace: BTreeMap<u32, u64>,
    /// Whether the append-only file is on (then the RDB is not what a restart loads).
    pub(crate) aof_enabled: bool,
    /// Whether the server is still loading its dataset.
    pub(crate) loading: bool,
}

impl ServerInfo {
    /// Total keys over all databases.
    pub(crate) fn total_keys(&self) -> u64 {
        self.keyspace.values().sum()
    }

    /// Keys per database as JSON (`{"0": 12, "3": 4}`), for the manifest.
    pub(crate) fn keyspace_json(&self) -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> = self
            .keyspace
            .iter()
            .map(|(db, keys)| (db.to_string(), serde_json::Value::from(*keys)))
            .collect();
        serde_json::Value::Object(map)
    }
}

/// Reads `INFO server`, `INFO keyspace` and `INFO persistence`.
pub(crate) async fn server_info(conn: &mut Connection) -> Result<ServerInfo> {
    let mut info = ServerInfo::default();
    for section in ["server", "keyspace", "persistence"] {
        let reply = conn
            .call("INFO", &[b"INFO", section.as_bytes()])
            .await?
            .text()
            .unwrap_or_default();
        for (key, value) in info_fields(&reply) {
            match key {
                "redis_version" => {
                    info.version = value.to_string();
                    info.major = value
                        .split('.')
                        .next()
                        .and_then(|m| m.parse().ok())
                        .unwrap_or(0);
                }
                "aof_enabled" => info.aof_enabled = value == "1",
                "loading" => info.loading = value == "1",
                db if db.starts_with("db") => {
                    let index = db[2..].parse::<u32>().ok();
                    let keys = value
                        .split(',')
                        .find_map(|kv| kv.strip_prefix("keys="))
                        .and_then(|n| n.parse::<u64>().ok());
                    if let (Some(index), Some(keys)) = (index, keys) {
                        if keys > 0 {
                            info.keyspace.insert(index, keys);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(info)
}

/// The server's clock in Unix milliseconds (`TIME`).
pub(crate) async fn server_time_ms(conn: &mut Connection) -> Result<i64> {
    let reply = conn.call("TIME", &[b"TIME"]).await?;
    if let Reply::Array(Some(items)) = reply {
        let parts: Vec<i64> = items
            .iter()
            .filter_map(|i| i.text().and_then(|t| t.parse().ok()))
            .collect();
        if let [secs, micros] = parts[..] {
            return Ok(secs * 1000 + micros / 1000);
        }
    }
    Err(Error::new(
        ErrorKind::Integrity,
        "redis sent an unexpected TIME reply",
    ))
}

/// Refuses a server that holds keys unless `force` is set.
pub(crate) fn ensure_empty(info: &ServerInfo, endpoint: &str, force: bool) -> Result<()> {
    if force || info.total_keys() == 0 {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::AlreadyExists,
        format!(
            "redis at {endpoint} already holds {} keys in {} databases",
            info.total_keys(),
            info.keyspace.len()
        ),
    )
    .with_hint("import into an empty server, or set force to replace its data (FLUSHALL first)"))
}
