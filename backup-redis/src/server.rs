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
    /// Minor version, 0 when unknown.
    pub(crate) minor: u32,
    /// `run_id`: changes with every start of the server process.
    pub(crate) run_id: String,
    /// Set when the server is not Redis itself (`server_name`, e.g. `valkey`), whose
    /// `redis_version` says little about its RDB versions.
    pub(crate) other_server: bool,
    /// Whether the server is a Redis Cluster node (`cluster_enabled:1`).
    pub(crate) cluster_enabled: bool,
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

/// Reads `INFO server`, `INFO keyspace`, `INFO persistence` and `INFO cluster`.
pub(crate) async fn server_info(conn: &mut Connection) -> Result<ServerInfo> {
    let mut info = ServerInfo::default();
    for section in ["server", "keyspace", "persistence", "cluster"] {
        let reply = conn
            .call("INFO", &[b"INFO", section.as_bytes()])
            .await?
            .text()
            .unwrap_or_default();
        for (key, value) in info_fields(&reply) {
            match key {
                "redis_version" => {
                    info.version = value.to_string();
                    let mut parts = value.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
                    info.major = parts.next().unwrap_or(0);
                    info.minor = parts.next().unwrap_or(0);
                }
                "run_id" => info.run_id = value.to_string(),
                "server_name" | "valkey_version" => {
                    info.other_server |= key == "valkey_version" || value != "redis";
                }
                "cluster_enabled" => info.cluster_enabled = value == "1",
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

impl ServerInfo {
    /// The newest RDB version this server loads, when its version is one we know
    /// (Redis 2.6 to 7.4); `None` for newer or other servers, whose limit we cannot tell.
    pub(crate) fn max_rdb_version(&self) -> Option<u32> {
        if self.other_server {
            return None;
        }
        let rdb = match (self.major, self.minor) {
            (2, 6..) | (3, 0..=1) => 6,
            (3, _) => 7,
            (4, _) => 8,
            (5 | 6, _) => 9,
            (7, 0..=1) => 10,
            (7, 2..=3) => 11,
            (7, 4) => 12,
            _ => return None,
        };
        Some(rdb)
    }
}

/// Refuses a Redis Cluster node: it holds only its own hash slots, so a backup of it is
/// not the dataset, and keys restored into it may belong to other nodes.
pub(crate) fn ensure_not_cluster(info: &ServerInfo, endpoint: &str) -> Result<()> {
    if !info.cluster_enabled {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Unsupported,
        format!(
            "redis at {endpoint} is a Redis Cluster node (cluster_enabled:1): it holds only its own hash slots, not the whole dataset"
        ),
    )
    .with_hint("Redis Cluster is not supported: back up each shard with the cluster's own tooling, or point the service at a standalone server"))
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
    .with_hint(
        "import into an empty server, or set force: a logical import then empties only the \
         databases the export holds, an RDB import replaces the whole dataset",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(version: &str, other_server: bool) -> ServerInfo {
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        ServerInfo {
            version: version.to_string(),
            major: parts.next().unwrap_or(0),
            minor: parts.next().unwrap_or(0),
            other_server,
            ..ServerInfo::default()
        }
    }

    #[test]
    fn the_newest_loadable_rdb_version_is_known_only_for_known_redis_versions() {
        assert_eq!(info("5.0.14", false).max_rdb_version(), Some(9));
        assert_eq!(info("6.2.14", false).max_rdb_version(), Some(9));
        assert_eq!(info("7.0.15", false).max_rdb_version(), Some(10));
        assert_eq!(info("7.2.4", false).max_rdb_version(), Some(11));
        assert_eq!(info("7.4.1", false).max_rdb_version(), Some(12));
        assert_eq!(info("8.0.0", false).max_rdb_version(), None);
        assert_eq!(info("7.2.4", true).max_rdb_version(), None);
        assert_eq!(info("", false).max_rdb_version(), None);
    }
}
