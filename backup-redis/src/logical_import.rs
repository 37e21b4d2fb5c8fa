//! Logical import: the framed format of [`crate::format`] replayed as pipelined
//! `RESTORE key ttl payload REPLACE [ABSTTL]`, with a bounded number of commands in flight.

use std::time::Instant;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use backup_core::artifact::{reader_from_stream, ByteStream, CHUNK_SIZE};
use backup_core::{Error, ErrorKind, ImportMode, Result};

use crate::config::RedisConfig;
use crate::errors::reply_error;
use crate::format::{Frame, FrameReader};
use crate::resp::{Connection, Reply, RespReader, RespWriter};
use crate::server::{ensure_empty, server_info, server_time_ms};

/// Commands sent but not yet answered, at most.
const MAX_IN_FLIGHT: usize = 8192;
/// How long to wait for the server's last word after our sending failed.
const PARTING_WORDS: std::time::Duration = std::time::Duration::from_secs(2);

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ImportStats {
    /// Keys restored.
    pub(crate) restored: u64,
    /// Keys skipped because they had expired by import time.
    pub(crate) expired: u64,
}

/// Imports a logical export into the server of `config`.
///
/// On failure the server is flushed, so an empty target is left empty (with `force` the
/// data it held before is gone either way: it was flushed first).
pub(crate) async fn import(
    config: &RedisConfig,
    data: ByteStream,
    mode: ImportMode,
) -> Result<ImportStats> {
    let mut conn = Connection::open(config).await?;
    let info = server_info(&mut conn).await?;
    ensure_empty(&info, &conn.endpoint().to_string(), mode.force)?;
    if mode.force {
        conn.call("FLUSHALL", &[b"FLUSHALL"]).await?;
    }
    let clock = (server_time_ms(&mut conn).await?, Instant::now());
    match restore(conn, data, clock).await {
        Ok(stats) => Ok(stats),
        Err(error) => {
            // Leave the target as it was: empty.
            let flushed = async {
                let mut conn = Connection::open(config).await?;
                conn.call("FLUSHALL", &[b"FLUSHALL"]).await
            }
            .await;
            match flushed {
                Ok(_) => Err(error),
                Err(flush_error) => Err(error.context(format!(
                    "the import failed and the partly restored keys could not be removed ({flush_error})"
                ))),
            }
        }
    }
}

async fn restore(conn: Connection, data: ByteStream, clock: (i64, Instant)) -> Result<ImportStats> {
    let Connection { reader, mut writer } = conn;
    let (tx, rx) = mpsc::channel::<&'static str>(MAX_IN_FLIGHT);
    let replies = tokio::spawn(read_replies(reader, rx));
    let sent = send_all(&mut writer, data, &tx, clock).await;
    if sent.is_err() {
        // Let complete commands be answered; a half-sent one has no reply to wait for.
        let _ = writer.flush().await;
    }
    drop(tx);
    let replied = tokio::time::timeout(std::time::Duration::from_secs(30), replies).await;
    let replied = match replied {
        Ok(Ok(Ok(mut reader))) => match &sent {
            // A command we could not finish sending may have been refused by the server
            // with a parting error (bulk too long) before it closed the connection.
            Err(_) => match tokio::time::timeout(PARTING_WORDS, reader.read_reply()).await {
                Ok(Ok(Reply::Error(message))) => Err(reply_error("RESTORE", &message)),
                _ => Ok(()),
            },
            Ok(_) => Ok(()),
        },
        Ok(Ok(Err(error))) => Err(error),
        Ok(Err(join)) => Err(Error::new(
            ErrorKind::Cancelled,
            format!("reading RESTORE replies stopped: {join}"),
        )),
        Err(_) if sent.is_err() => Ok(()),
        Err(_) => Err(Error::new(
            ErrorKind::Unavailable,
            "redis did not answer the last RESTORE commands within 30 s",
        )),
    };
    // The server's own reason (OOM, bulk too long, bad payload) explains a broken pipe
    // on our side, so it comes first.
    match (sent, replied) {
        (_, Err(server)) => Err(server),
        (Err(ours), Ok(())) => Err(ours),
        (Ok(stats), Ok(())) => Ok(stats),
    }
}

async fn read_replies(
    mut reader: RespReader,
    mut rx: mpsc::Receiver<&'static str>,
) -> Result<RespReader> {
    while let Some(context) = rx.recv().await {
        reader.read_reply().await?.into_result(context)?;
    }
    Ok(reader)
}

fn replies_stopped() -> Error {
    Error::new(
        ErrorKind::Unavailable,
        "redis stopped answering RESTORE commands",
    )
}

async fn in_flight(
    writer: &mut RespWriter,
    tx: &mpsc::Sender<&'static str>,
    context: &'static str,
) -> Result<()> {
    match tx.try_send(context) {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(context)) => {
            // Wait for answers, but first send what is buffered or none will come.
            writer.flush().await?;
            tx.send(context).await.map_err(|_| replies_stopped())
        }
        Err(TrySendError::Closed(_)) => Err(replies_stopped()),
    }
}

async fn send_all(
    writer: &mut RespWriter,
    data: ByteStream,
    tx: &mpsc::Sender<&'static str>,
    (server_ms, at): (i64, Instant),
) -> Result<ImportStats> {
    let mut frames = FrameReader::new(reader_from_stream(data));
    frames.read_header().await?;
    let mut stats = ImportStats::default();
    let mut selected = false;
    loop {
        match frames.next_frame().await? {
            Frame::Db(db) => {
                writer
                    .command(&[b"SELECT", db.to_string().as_bytes()])
                    .await?;
                in_flight(writer, tx, "SELECT").await?;
                selected = true;
            }
            Frame::Key {
                key,
                expire_at_ms,
                payload_len,
            } => {
                if !selected {
                    return Err(Error::integrity(
                        "the redis logical export is corrupt: a key comes before any database marker",
                    ));
                }
                let now = server_ms + at.elapsed().as_millis() as i64;
                let expired = expire_at_ms >= 0 && expire_at_ms <= now;
                if !expired {
                    let ttl = expire_at_ms.max(0).to_string();
                    let absolute = expire_at_ms >= 0;
                    writer.array_header(if absolute { 6 } else { 5 }).await?;
                    writer.bulk(b"RESTORE").await?;
                    writer.bulk(&key).await?;
                    writer.bulk(ttl.as_bytes()).await?;
                    writer.bulk_header(payload_len).await?;
                }
                let mut remaining = payload_len;
                while remaining > 0 {
                    let want = remaining.min(CHUNK_SIZE as u64) as usize;
                    let buf = frames.payload_chunk(want).await?;
                    let n = buf.len();
                    if !expired {
                        writer.raw(buf).await?;
                    }
                    frames.consume(n);
                    remaining -= n as u64;
                }
                if expired {
                    stats.expired += 1;
                    continue;
                }
                writer.raw(b"\r\n").await?;
                writer.bulk(b"REPLACE").await?;
                if expire_at_ms >= 0 {
                    writer.bulk(b"ABSTTL").await?;
                }
                in_flight(writer, tx, "RESTORE").await?;
                stats.restored += 1;
            }
            Frame::End { .. } => break,
        }
    }
    writer.flush().await?;
    Ok(stats)
}
