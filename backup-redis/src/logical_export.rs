//! Logical export: `SCAN` + pipelined `PEXPIRETIME`/`PTTL` + `DUMP`, per database,
//! streamed into the framed format of [`crate::format`].

use std::time::Instant;

use backup_core::artifact::late_metadata_channel;

use backup_core::artifact::{ArtifactData, CHUNK_SIZE};
use backup_core::{Error, ErrorKind, Result};

use crate::chunks::{self, ChunkSink};
use crate::config::RedisConfig;
use crate::format;
use crate::resp::{info_fields, BulkHeader, Connection, Reply};
use crate::server::{server_info, server_time_ms};

/// Keys asked for per `SCAN` (a hint to the server) and pipelined per round trip.
const SCAN_COUNT: &[u8] = b"1000";

type Metadata = serde_json::Map<String, serde_json::Value>;

/// Starts a logical export of the server of `config`.
pub(crate) async fn start(config: &RedisConfig) -> Result<ArtifactData> {
    let mut conn = Connection::open(config).await?;
    let info = server_info(&mut conn).await?;
    let databases: Vec<u32> = match &config.databases {
        Some(list) => {
            let mut list = list.clone();
            list.sort_unstable();
            list.dedup();
            list
        }
        None => info.keyspace.keys().copied().collect(),
    };
    // Redis 7 tells the absolute expiry; older servers give the remaining time, which we
    // turn into an absolute time with the server's clock.
    let clock = if info.major >= 7 {
        Expiry::Absolute
    } else {
        Expiry::Relative {
            server_ms: server_time_ms(&mut conn).await?,
            at: Instant::now(),
        }
    };
    let (mut sink, stream) = chunks::channel();
    let (meta_tx, late_metadata) = late_metadata_channel("the logical export");
    tokio::spawn(async move {
        let functions = info.major >= 7;
        match run(&mut conn, &databases, clock, functions, &mut sink).await {
            Ok(meta) => {
                let _ = meta_tx.send(Ok(meta));
            }
            Err(error) => {
                let _ = meta_tx.send(Err(Error::new(error.kind(), "the logical export failed")));
                sink.fail(error).await;
            }
        }
    });
    Ok(ArtifactData {
        stream,
        late_metadata: Some(late_metadata),
    })
}

#[derive(Debug, Clone, Copy)]
enum Expiry {
    /// `PEXPIRETIME` gives Unix ms.
    Absolute,
    /// `PTTL` gives remaining ms; `server_ms` was the server clock at `at`.
    Relative { server_ms: i64, at: Instant },
}

async fn run(
    conn: &mut Connection,
    databases: &[u32],
    clock: Expiry,
    functions: bool,
    sink: &mut ChunkSink,
) -> Result<Metadata> {
    sink.write(&format::header()).await?;
    let libraries = if functions {
        export_functions(conn, sink).await?
    } else {
        0
    };
    let expiry_command: &[u8] = match clock {
        Expiry::Absolute => b"PEXPIRETIME",
        Expiry::Relative { .. } => b"PTTL",
    };
    let mut records = 0u64;
    for &db in databases {
        conn.call("SELECT", &[b"SELECT", db.to_string().as_bytes()])
            .await?;
        sink.write(&format::db_record(db)).await?;
        let mut cursor = b"0".to_vec();
        loop {
            let reply = conn
                .call("SCAN", &[b"SCAN", &cursor, b"COUNT", SCAN_COUNT])
                .await?;
            let (next, keys) = parse_scan(reply)?;
            for key in &keys {
                conn.writer.command(&[expiry_command, key]).await?;
                conn.writer.command(&[b"DUMP", key]).await?;
            }
            conn.writer.flush().await?;
            for key in &keys {
                let ttl = conn.reader.read_integer("PEXPIRETIME/PTTL").await?;
                let len = match conn.reader.read_bulk_header("DUMP").await? {
                    // Deleted (or expired) between SCAN and DUMP: skipped, not an error.
                    BulkHeader::Nil => continue,
                    BulkHeader::Len(len) => len,
                };
                let expire_at_ms = match (ttl, clock) {
                    (t, _) if t < 0 => -1,
                    (t, Expiry::Absolute) => t,
                    (t, Expiry::Relative { server_ms, at }) => {
                        server_ms + at.elapsed().as_millis() as i64 + t
                    }
                };
                sink.write(&format::key_record_head(key, expire_at_ms, len))
                    .await?;
                copy_bulk(conn, sink, len).await?;
                records += 1;
            }
            if next == b"0" {
                break;
            }
            cursor = next;
        }
    }
    sink.write(&format::end_record_head(records)).await?;
    let crc = sink.crc();
    sink.write(&crc.to_be_bytes()).await?;
    sink.flush().await?;
    let mut meta = Metadata::new();
    meta.insert("records".into(), records.into());
    meta.insert("databases".into(), databases.to_vec().into());
    meta.insert("functionLibraries".into(), libraries.into());
    meta.insert("size".into(), sink.total().into());
    Ok(meta)
}

/// Writes the functions record (`FUNCTION DUMP`) when the server has function libraries
/// (Redis 7 and later); returns how many it has. A server without libraries needs no
/// `FUNCTION` permission: `INFO memory` tells the count.
async fn export_functions(conn: &mut Connection, sink: &mut ChunkSink) -> Result<usize> {
    let memory = conn
        .call("INFO", &[b"INFO", b"memory"])
        .await?
        .text()
        .unwrap_or_default();
    let counted = info_fields(&memory)
        .find(|(key, _)| *key == "number_of_libraries")
        .and_then(|(_, value)| value.parse::<usize>().ok());
    let libraries = match counted {
        Some(n) => n,
        None => match conn
            .call("FUNCTION LIST", &[b"FUNCTION", b"LIST"])
            .await
            .map_err(function_permission_hint)?
        {
            Reply::Array(Some(libraries)) => libraries.len(),
            _ => {
                return Err(Error::new(
                    ErrorKind::Integrity,
                    "redis sent an unexpected FUNCTION LIST reply",
                ))
            }
        },
    };
    if libraries == 0 {
        return Ok(0);
    }
    conn.writer.command(&[b"FUNCTION", b"DUMP"]).await?;
    conn.writer.flush().await?;
    let len = match conn
        .reader
        .read_bulk_header("FUNCTION DUMP")
        .await
        .map_err(function_permission_hint)?
    {
        BulkHeader::Len(len) => len,
        BulkHeader::Nil => {
            return Err(Error::new(
                ErrorKind::Integrity,
                "redis sent no FUNCTION DUMP payload although it lists function libraries",
            ))
        }
    };
    sink.write(&format::functions_record_head(len)).await?;
    copy_bulk(conn, sink, len).await?;
    Ok(libraries)
}

fn function_permission_hint(error: Error) -> Error {
    if error.kind() == ErrorKind::PermissionDenied {
        error.with_hint(
            "the server has function libraries, which the export carries: grant the user `+function|dump`",
        )
    } else {
        error
    }
}

/// Streams `len` bytes of a bulk reply, and its closing CRLF, into `sink`.
async fn copy_bulk(conn: &mut Connection, sink: &mut ChunkSink, len: u64) -> Result<()> {
    let mut remaining = len;
    while remaining > 0 {
        let want = remaining.min(CHUNK_SIZE as u64) as usize;
        let buf = conn.reader.read_some(want).await?;
        if buf.is_empty() {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "redis at {} closed the connection in the middle of a value",
                    conn.endpoint()
                ),
            )
            .with_hint("check that the server is still running, then retry"));
        }
        let n = buf.len();
        sink.write(buf).await?;
        conn.reader.consume(n);
        remaining -= n as u64;
    }
    conn.reader.read_crlf().await
}

fn parse_scan(reply: Reply) -> Result<(Vec<u8>, Vec<Vec<u8>>)> {
    let bad = || Error::new(ErrorKind::Integrity, "redis sent an unexpected SCAN reply");
    let Reply::Array(Some(mut items)) = reply else {
        return Err(bad());
    };
    if items.len() != 2 {
        return Err(bad());
    }
    let keys = match items.pop() {
        Some(Reply::Array(Some(keys))) => keys
            .into_iter()
            .map(|k| match k {
                Reply::Bulk(Some(b)) => Ok(b.to_vec()),
                _ => Err(bad()),
            })
            .collect::<Result<Vec<_>>>()?,
        _ => return Err(bad()),
    };
    let cursor = match items.pop() {
        Some(Reply::Bulk(Some(c))) => c.to_vec(),
        _ => return Err(bad()),
    };
    Ok((cursor, keys))
}
