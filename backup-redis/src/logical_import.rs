//! Logical import: the framed format of [`crate::format`] replayed as pipelined
//! `RESTORE key ttl payload REPLACE [ABSTTL]`, with a bounded number of commands in flight.
//!
//! The whole export is first copied to a temporary file while it is checked (format,
//! framing, record count, checksum). Only a complete, intact export changes the target,
//! and only the databases it holds: with `force` each of them is emptied with `FLUSHDB`
//! (never `FLUSHALL`), other databases are left alone.

use std::collections::BTreeSet;
use std::io::SeekFrom;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use backup_core::artifact::{ByteStream, CHUNK_SIZE};
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
/// Order of work, so that a bad export or a refusing server changes nothing:
/// 1. the whole export is copied to a temporary file and checked (a damaged or
///    truncated export fails here, before the target is touched);
/// 2. every database it holds is `SELECT`ed once (a target with too few databases
///    fails here);
/// 3. with `force`, its function libraries are restored first (`FUNCTION RESTORE …
///    REPLACE`: libraries of the same name are replaced, others kept), then each
///    database the export holds is emptied with `FLUSHDB`;
/// 4. the keys are replayed from the file; without `force` the function libraries
///    come last (`FUNCTION RESTORE … APPEND`, which refuses a library name the target
///    already has).
///
/// If step 3 or 4 fails, the databases the export holds are flushed: an empty target is
/// left empty, and databases the export does not hold are never touched. With `force`,
/// the data those databases held before (and replaced libraries) is gone after such a
/// failure: the caller's safety backup covers that.
pub(crate) async fn import(
    config: &RedisConfig,
    data: ByteStream,
    mode: ImportMode,
) -> Result<ImportStats> {
    let mut conn = Connection::open(config).await?;
    let info = server_info(&mut conn).await?;
    ensure_empty(&info, &conn.endpoint().to_string(), mode.force)?;
    drop(conn);
    let spool = Spool::write_and_verify(data).await?;
    // Reading a large export may take longer than the server's idle `timeout`.
    let mut conn = Connection::open(config).await?;
    for db in &spool.databases {
        conn.call("SELECT", &[b"SELECT", db.to_string().as_bytes()])
            .await?;
    }
    let mut frames = spool.frames().await?;
    let mut first = frames.next_frame().await?;
    let mut functions_last = false;
    if let Frame::Functions { payload_len } = first {
        if mode.force {
            restore_functions(&mut conn, &mut frames, payload_len, b"REPLACE").await?;
        } else {
            frames.skip_payload(payload_len).await?;
            functions_last = true;
        }
        first = frames.next_frame().await?;
    }
    let replayed = async {
        if mode.force {
            flush_databases(&mut conn, &spool.databases).await?;
        }
        let clock = (server_time_ms(&mut conn).await?, Instant::now());
        let stats = restore(conn, frames, first, clock).await?;
        if functions_last {
            let mut conn = Connection::open(config).await?;
            let mut frames = spool.frames().await?;
            if let Frame::Functions { payload_len } = frames.next_frame().await? {
                restore_functions(&mut conn, &mut frames, payload_len, b"APPEND").await?;
            }
        }
        Ok(stats)
    }
    .await;
    match replayed {
        Ok(stats) => Ok(stats),
        Err(error) => {
            // Leave the databases the export holds empty; never touch the others.
            let flushed = async {
                let mut conn = Connection::open(config).await?;
                flush_databases(&mut conn, &spool.databases).await
            }
            .await;
            match flushed {
                Ok(()) => Err(error),
                Err(flush_error) => Err(error.context(format!(
                    "the import failed and the partly restored keys could not be removed ({flush_error})"
                ))),
            }
        }
    }
}

/// `SELECT` + `FLUSHDB` for each database in `databases`.
async fn flush_databases(conn: &mut Connection, databases: &BTreeSet<u32>) -> Result<()> {
    for db in databases {
        conn.call("SELECT", &[b"SELECT", db.to_string().as_bytes()])
            .await?;
        conn.call("FLUSHDB", &[b"FLUSHDB"]).await?;
    }
    Ok(())
}

/// `FUNCTION RESTORE <payload> <policy>`, the payload streamed from `frames`.
async fn restore_functions(
    conn: &mut Connection,
    frames: &mut FrameReader<tokio::fs::File>,
    payload_len: u64,
    policy: &[u8],
) -> Result<()> {
    let writer = &mut conn.writer;
    writer.array_header(4).await?;
    writer.bulk(b"FUNCTION").await?;
    writer.bulk(b"RESTORE").await?;
    writer.bulk_header(payload_len).await?;
    let mut remaining = payload_len;
    while remaining > 0 {
        let want = remaining.min(CHUNK_SIZE as u64) as usize;
        let buf = frames.payload_chunk(want).await?;
        let n = buf.len();
        writer.raw(buf).await?;
        frames.consume(n);
        remaining -= n as u64;
    }
    writer.raw(b"\r\n").await?;
    writer.bulk(policy).await?;
    writer.flush().await?;
    match conn
        .reader
        .read_reply()
        .await?
        .into_result("FUNCTION RESTORE")
    {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == ErrorKind::PermissionDenied => Err(error.with_hint(
            "the export carries function libraries: grant the user `+function|restore`",
        )),
        Err(error) if error.hint().is_none() => Err(error.with_hint(
            "the export carries Redis 7 function libraries: restore into Redis 7 or later; \
             without force, a library name the target already has is refused",
        )),
        Err(error) => Err(error),
    }
}

/// The export, copied to an unnamed temporary file (removed when dropped) and checked.
#[derive(Debug)]
struct Spool {
    file: std::fs::File,
    databases: BTreeSet<u32>,
}

impl Spool {
    /// Copies `data` to a temporary file while checking all of it.
    async fn write_and_verify(data: ByteStream) -> Result<Spool> {
        let file = tokio::task::spawn_blocking(tempfile::tempfile)
            .await
            .map_err(|e| Error::new(ErrorKind::Io, format!("creating a temporary file: {e}")))?
            .map_err(spool_error)?;
        let copy = tokio::fs::File::from_std(file.try_clone().map_err(spool_error)?);
        let write_failure = Arc::new(Mutex::new(None));
        let tee = tee(data, copy, write_failure.clone());
        let mut frames = FrameReader::new(tokio_util::io::StreamReader::new(Box::pin(tee)));
        let checked = async {
            frames.read_header().await?;
            frames.verify_to_end().await
        }
        .await;
        // A full disk is our problem, not a damaged export: say so.
        let failure = write_failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(e) = failure {
            return Err(spool_error(e));
        }
        checked?;
        Ok(Spool {
            file,
            databases: frames.databases().clone(),
        })
    }

    /// A reader of the copy, its header already read.
    async fn frames(&self) -> Result<FrameReader<tokio::fs::File>> {
        let mut file = tokio::fs::File::from_std(self.file.try_clone().map_err(spool_error)?);
        file.seek(SeekFrom::Start(0)).await.map_err(spool_error)?;
        let mut frames = FrameReader::new(file);
        frames.read_header().await?;
        Ok(frames)
    }
}

fn spool_error(e: std::io::Error) -> Error {
    let kind = if e.kind() == std::io::ErrorKind::StorageFull {
        ErrorKind::ResourceExhausted
    } else {
        ErrorKind::Io
    };
    Error::new(
        kind,
        format!("keeping a temporary copy of the redis logical export: {e}"),
    )
    .with_source(e)
    .with_hint(
        "the import checks the whole export before it changes the target: \
         free space the size of the export in the temporary directory (TMPDIR)",
    )
}

/// `data`, each chunk also written to `file`; the file is flushed at the end. A failed
/// write ends the stream with an error and is kept in `failure`.
fn tee(
    data: ByteStream,
    file: tokio::fs::File,
    failure: Arc<Mutex<Option<std::io::Error>>>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send {
    futures::stream::unfold(Some((data, file, failure)), |state| async move {
        let (mut data, mut file, failure) = state?;
        let written = match data.next().await {
            Some(Ok(chunk)) => file.write_all(&chunk).await.map(|()| Some(chunk)),
            Some(Err(e)) => return Some((Err(e), None)),
            None => file.flush().await.map(|()| None),
        };
        match written {
            Ok(Some(chunk)) => Some((Ok(chunk), Some((data, file, failure)))),
            Ok(None) => None,
            Err(e) => {
                let reported = std::io::Error::new(e.kind(), e.to_string());
                *failure
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(e);
                Some((Err(reported), None))
            }
        }
    })
}

async fn restore(
    conn: Connection,
    frames: FrameReader<tokio::fs::File>,
    first: Frame,
    clock: (i64, Instant),
) -> Result<ImportStats> {
    let Connection { reader, mut writer } = conn;
    let (tx, rx) = mpsc::channel::<&'static str>(MAX_IN_FLIGHT);
    let replies = tokio::spawn(read_replies(reader, rx));
    let sent = send_all(&mut writer, frames, first, &tx, clock).await;
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
    mut frames: FrameReader<tokio::fs::File>,
    first: Frame,
    tx: &mpsc::Sender<&'static str>,
    (server_ms, at): (i64, Instant),
) -> Result<ImportStats> {
    let mut stats = ImportStats::default();
    let mut next = Some(first);
    loop {
        let frame = match next.take() {
            Some(frame) => frame,
            None => frames.next_frame().await?,
        };
        match frame {
            // Restored (or deliberately deferred) before the keys.
            Frame::Functions { payload_len } => frames.skip_payload(payload_len).await?,
            Frame::Db(db) => {
                writer
                    .command(&[b"SELECT", db.to_string().as_bytes()])
                    .await?;
                in_flight(writer, tx, "SELECT").await?;
            }
            Frame::Key {
                key,
                expire_at_ms,
                payload_len,
            } => {
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
