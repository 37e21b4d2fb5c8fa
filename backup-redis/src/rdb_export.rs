//! RDB export over the replication protocol, as `redis-cli --rdb` does it, streamed.
//!
//! `REPLCONF capa eof` + `REPLCONF rdb-only 1` (Redis ≥ 7; older servers ignore or refuse
//! it and we fall back), then `SYNC`. The server answers with newline keep-alives, maybe
//! `+FULLRESYNC`, then either `$<len>\r\n` and `len` bytes (disk-based) or
//! `$EOF:<40-byte mark>\r\n`, the payload and the mark again (diskless).

use backup_core::artifact::late_metadata_channel;

use backup_core::artifact::{ArtifactData, CHUNK_SIZE};
use backup_core::{Error, ErrorKind, Result};

use crate::chunks::{self, ChunkSink};
use crate::config::RedisConfig;
use crate::errors::reply_error;
use crate::rdb_check::RdbCheck;
use crate::rdb_delay;
use crate::resp::{Connection, Reply, RespReader, RespWriter};

/// Length of the diskless end mark.
const MARK_LEN: usize = 40;

type Metadata = serde_json::Map<String, serde_json::Value>;

/// The replication connection after the server announced the payload, and whether
/// `rdb-only` was accepted.
type Handshake = (RespReader, RespWriter, Transfer, bool);

/// How the payload is delimited.
#[derive(Debug, Clone)]
enum Transfer {
    /// `$<len>`: exactly this many bytes.
    Sized(u64),
    /// `$EOF:<mark>`: bytes until the mark.
    Diskless(Vec<u8>),
}

/// Starts an RDB export of the server of `config`.
pub(crate) async fn start(config: &RedisConfig) -> Result<ArtifactData> {
    // The handshake runs in its own task: if the caller gives up half-way, a lowered
    // `repl-diskless-sync-delay` is still put back.
    let config = config.clone();
    let (reader, writer, transfer, rdb_only) =
        tokio::spawn(handshake(config)).await.map_err(|e| {
            Error::new(
                ErrorKind::Cancelled,
                format!("the RDB handshake stopped: {e}"),
            )
        })??;
    let (mut sink, stream) = chunks::channel();
    let (meta_tx, late_metadata) = late_metadata_channel("the RDB export");
    tokio::spawn(async move {
        let mut reader = reader;
        let _writer = writer;
        match pump(&mut reader, &transfer, &mut sink).await {
            Ok(version) => {
                let mut meta = Metadata::new();
                meta.insert("rdbVersion".into(), version.into());
                meta.insert("size".into(), sink.total().into());
                let kind = match transfer {
                    Transfer::Sized(_) => "disk",
                    Transfer::Diskless(_) => "diskless",
                };
                meta.insert("transfer".into(), kind.into());
                meta.insert("rdbOnly".into(), rdb_only.into());
                let _ = meta_tx.send(Ok(meta));
            }
            Err(error) => {
                let _ = meta_tx.send(Err(Error::new(error.kind(), "the RDB export failed")));
                sink.fail(error).await;
            }
        }
    });
    Ok(ArtifactData {
        stream,
        late_metadata: Some(late_metadata),
    })
}

async fn handshake(config: RedisConfig) -> Result<Handshake> {
    let lowered = if config.lower_diskless_sync_delay {
        Some(rdb_delay::lower(&config).await?)
    } else {
        None
    };
    let result = sync(&config).await;
    if let Some(guard) = lowered {
        guard.release().await?;
    }
    result
}

fn sync_refused(reply: &str) -> Error {
    let hint = "use format `logical` (SCAN + DUMP), which needs no replication rights; or grant the user +sync +psync +replconf";
    if reply.starts_with("NOPERM") {
        Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "redis does not allow this user to replicate, which an RDB export needs: {reply}"
            ),
        )
        .with_hint(hint)
    } else if reply.to_ascii_lowercase().contains("unknown command") {
        Error::new(
            ErrorKind::Unsupported,
            format!("this redis does not offer replication, which an RDB export needs: {reply}"),
        )
        .with_hint(hint)
    } else {
        let inner = reply_error("SYNC", reply);
        let hint = inner
            .hint()
            .map(str::to_string)
            .unwrap_or_else(|| hint.to_string());
        inner.with_hint(hint)
    }
}

async fn sync(config: &RedisConfig) -> Result<Handshake> {
    let mut conn = Connection::open(config).await?;
    // Diskless capability: the server streams the RDB without writing it to its disk.
    if let Reply::Error(e) = conn.command(&[b"REPLCONF", b"capa", b"eof"]).await? {
        if e.starts_with("NOPERM") {
            return Err(sync_refused(&e));
        }
    }
    // Redis ≥ 7: send only the RDB, then close. Older servers refuse it: fall back.
    let rdb_only = match conn.command(&[b"REPLCONF", b"rdb-only", b"1"]).await? {
        Reply::Error(e) if e.starts_with("NOPERM") => return Err(sync_refused(&e)),
        Reply::Error(_) => false,
        _ => true,
    };
    conn.writer.command(&[b"SYNC"]).await?;
    conn.writer.flush().await?;
    // Keep the writing half open: dropping it sends a FIN, and the server then drops us.
    let Connection { mut reader, writer } = conn;
    loop {
        // The server sends a newline every second while it prepares the RDB, so the
        // connection's idle timeout applies.
        let line = reader.read_line().await?;
        if line.is_empty() || line.starts_with(b"+") {
            // Keep-alive newline, or +FULLRESYNC / +CONTINUE.
            continue;
        }
        if let Some(rest) = line.strip_prefix(b"-") {
            return Err(sync_refused(&String::from_utf8_lossy(rest)));
        }
        if let Some(mark) = line.strip_prefix(b"$EOF:") {
            if mark.len() != MARK_LEN {
                return Err(Error::integrity("redis sent a malformed diskless end mark"));
            }
            return Ok((reader, writer, Transfer::Diskless(mark.to_vec()), rdb_only));
        }
        if let Some(len) = line.strip_prefix(b"$") {
            let len = std::str::from_utf8(len)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| Error::integrity("redis sent a malformed RDB length"))?;
            return Ok((reader, writer, Transfer::Sized(len), rdb_only));
        }
        return Err(Error::integrity(format!(
            "redis answered SYNC with something unexpected ({} bytes)",
            line.len()
        )));
    }
}

fn lost(reader: &RespReader, done: u64) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "redis at {} closed the connection after {done} bytes of the RDB",
            reader.endpoint()
        ),
    )
    .with_hint("the server stopped or dropped the replica connection (see its log); retry")
}

async fn pump(reader: &mut RespReader, transfer: &Transfer, sink: &mut ChunkSink) -> Result<u32> {
    let mut header = RdbCheck::default();
    match transfer {
        Transfer::Sized(len) => {
            let mut remaining = *len;
            while remaining > 0 {
                let want = remaining.min(CHUNK_SIZE as u64) as usize;
                let buf = reader.read_some(want).await?;
                if buf.is_empty() {
                    return Err(lost(reader, len - remaining));
                }
                let n = buf.len();
                header.feed(buf)?;
                sink.write(buf).await?;
                reader.consume(n);
                remaining -= n as u64;
            }
        }
        Transfer::Diskless(mark) => {
            // Hold back the last MARK_LEN bytes: they may be the end mark.
            let mut pending: Vec<u8> = Vec::with_capacity(CHUNK_SIZE + MARK_LEN);
            loop {
                let buf = reader.read_some(CHUNK_SIZE).await?;
                if buf.is_empty() {
                    return Err(lost(reader, sink.total()));
                }
                let n = buf.len();
                pending.extend_from_slice(buf);
                reader.consume(n);
                let at_end = pending.len() >= MARK_LEN && pending.ends_with(mark);
                let keep = if at_end {
                    0
                } else {
                    MARK_LEN.min(pending.len())
                };
                let emit = if at_end {
                    pending.len() - MARK_LEN
                } else {
                    pending.len() - keep
                };
                header.feed(&pending[..emit])?;
                sink.write(&pending[..emit]).await?;
                if at_end {
                    break;
                }
                pending.drain(..emit);
            }
        }
    }
    let version = header.finish()?;
    sink.flush().await?;
    Ok(version)
}
