//! Helpers shared by the redis adapter's tests: services on real servers, a server control
//! for RDB restores, and piping an export straight into an import.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use backup_core::artifact::ByteStream;
use backup_core::{
    DataExporter, DataImporter, Error, ErrorKind, ImportMode, Result, ServiceTarget,
};
use backup_redis::{RedisExporter, RedisImporter, RedisServerControl};
use backup_testkit::redis_server::RedisServer;

/// A service on `server`, with `extra` config fields merged in.
pub fn service(server: &RedisServer, extra: serde_json::Value) -> ServiceTarget {
    let mut config = server.config_json();
    if let (Some(base), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    ServiceTarget::local(
        format!("redis-{}", server.port()),
        backup_redis::RECIPE,
        config,
    )
}

/// Runs the test servers for RDB restores, found by the port in the service config.
#[derive(Debug, Default, Clone)]
pub struct TestControl {
    servers: Arc<Mutex<Vec<Arc<RedisServer>>>>,
}

impl TestControl {
    pub fn add(&self, server: Arc<RedisServer>) {
        self.servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(server);
    }

    /// The server `service` points at, by port.
    pub fn find(&self, service: &ServiceTarget) -> Result<Arc<RedisServer>> {
        let port = service.config.get("port").and_then(|p| p.as_u64());
        self.servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|s| Some(u64::from(s.port())) == port)
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "not a server this test runs"))
    }
}

#[async_trait]
impl RedisServerControl for TestControl {
    async fn data_dir(&self, service: &ServiceTarget) -> Result<std::path::PathBuf> {
        Ok(self.find(service)?.dir().to_path_buf())
    }

    async fn stop(&self, service: &ServiceTarget) -> Result<()> {
        let server = self.find(service)?;
        tokio::task::spawn_blocking(move || server.stop())
            .await
            .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))
    }

    async fn start(&self, service: &ServiceTarget) -> Result<()> {
        let server = self.find(service)?;
        tokio::task::spawn_blocking(move || server.try_start())
            .await
            .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?
            .map_err(|e| Error::new(ErrorKind::Unavailable, e))
    }
}

/// An importer that restores RDB exports into servers `control` runs.
pub fn importer(control: &TestControl) -> RedisImporter {
    RedisImporter::with_server_control(Arc::new(control.clone()))
}

/// Exports `from` (in the format of its config) and imports the stream into `to` as it
/// arrives, without keeping it.
pub async fn pipe(
    from: &ServiceTarget,
    to: &ServiceTarget,
    importer: &RedisImporter,
    mode: ImportMode,
) -> Result<()> {
    let exporter = RedisExporter;
    let artifacts = exporter.artifacts(from).await?;
    importer.check(to, &artifacts, mode).await?;
    let data = exporter.export(from, &artifacts[0]).await?;
    importer
        .import(to, &artifacts[0], data.stream, mode)
        .await?;
    if let Some(late) = data.late_metadata {
        late.await?;
    }
    Ok(())
}

/// Exports `from` into memory (small data only).
pub async fn export_bytes(
    from: &ServiceTarget,
) -> Result<(backup_core::ArtifactDescriptor, Vec<u8>)> {
    let exporter = RedisExporter;
    let artifacts = exporter.artifacts(from).await?;
    let data = exporter.export(from, &artifacts[0]).await?;
    let mut out = Vec::new();
    let mut stream = data.stream;
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.map_err(|e| Error::io("export stream", e))?);
    }
    Ok((artifacts[0].clone(), out))
}

/// A stream of `bytes` in chunks of 64 KiB.
pub fn stream_of(bytes: Vec<u8>) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = bytes
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures::stream::iter(chunks))
}

/// Fills databases 0, 3 and 9 with every data type, small and large encodings.
pub fn fill_every_type(server: &RedisServer) {
    for db in ["0", "3", "9"] {
        let run = |args: &[&str]| {
            let mut all = vec!["-n", db];
            all.extend_from_slice(args);
            server.cli(&all)
        };
        run(&["SET", "string", &format!("hello from db {db}")]);
        run(&["SET", "counter", "42"]);
        run(&["SETBIT", "bitmap", "100000", "1"]);
        run(&["SETBIT", "bitmap", "7", "1"]);
        run(&["PFADD", "hll", "a", "b", "c", "d"]);
        run(&["RPUSH", "list", "a", "b", "c"]);
        run(&["SADD", "set", "x", "y", "z"]);
        run(&["SADD", "intset", "1", "2", "3"]);
        run(&["ZADD", "zset", "1", "a", "2.5", "b"]);
        run(&["HSET", "hash", "f1", "v1", "f2", "v2"]);
        run(&["XADD", "stream", "1-1", "f", "v1"]);
        run(&["XADD", "stream", "2-1", "f", "v2"]);
        run(&["XADD", "stream", "3-1", "f", "v3"]);
        run(&["XGROUP", "CREATE", "stream", "group1", "0"]);
        run(&["XGROUP", "CREATE", "stream", "group2", "$"]);
        run(&[
            "XREADGROUP",
            "GROUP",
            "group1",
            "consumer1",
            "COUNT",
            "2",
            "STREAMS",
            "stream",
            ">",
        ]);
        run(&["XACK", "stream", "group1", "1-1"]);
        // Large encodings: quicklist, hashtable, skiplist.
        run(&[
            "EVAL",
            "for i=1,2000 do redis.call('RPUSH', KEYS[1], 'item'..i); \
             redis.call('HSET', KEYS[2], 'field'..i, i); \
             redis.call('SADD', KEYS[3], 'member'..i); \
             redis.call('ZADD', KEYS[4], i * 1.5, 'm'..i); \
             redis.call('PFADD', KEYS[5], 'e'..i) end",
            "5",
            "biglist",
            "bighash",
            "bigset",
            "bigzset",
            "bighll",
        ]);
    }
}

/// `len` bytes that do not compress, so DUMP payloads stay as large as the value.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    backup_testkit::data::pseudo_random_bytes(len, seed)
}

/// Exports `source` in the logical format and imports it into `target` (plain importer,
/// default mode).
pub async fn logical_pipe(source: &RedisServer, target: &RedisServer) -> Result<()> {
    pipe(
        &service(source, serde_json::json!({"format": "logical"})),
        &service(target, serde_json::json!({})),
        &RedisImporter::new(),
        ImportMode::default(),
    )
    .await
}

/// Imports the logical export `bytes` into `target` with the plain importer.
pub async fn import_logical_bytes(
    target: &RedisServer,
    bytes: Vec<u8>,
    mode: ImportMode,
) -> Result<()> {
    let artifact = backup_core::ArtifactDescriptor::new(
        backup_redis::LOGICAL_ARTIFACT,
        backup_core::artifact::formats::REDIS_DUMP_RESTORE,
        "application/octet-stream",
    );
    RedisImporter::new()
        .import(
            &service(target, serde_json::json!({})),
            &artifact,
            stream_of(bytes),
            mode,
        )
        .await
}

/// A logical export of `source` in memory (small data only).
pub async fn logical_bytes(source: &RedisServer, extra: serde_json::Value) -> Vec<u8> {
    let mut config = serde_json::json!({"format": "logical"});
    if let (Some(base), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    match export_bytes(&service(source, config)).await {
        Ok((_, bytes)) => bytes,
        Err(e) => panic!("logical export failed: {e:?}"),
    }
}
