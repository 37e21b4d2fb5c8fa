//! Export of one bucket as an `s3/tar` stream (layout in [`crate::layout`]).
//!
//! A task lists the bucket in key order and writes each object's record and bytes into
//! a bounded channel in chunks of at most [`backup_core::artifact::CHUNK_SIZE`], in
//! listing order. Small objects are fetched ahead, whole, within a fixed byte budget;
//! large ones are streamed one at a time ([`crate::fetch`]), so memory does not grow with
//! object size or count. Any failure ends the stream with an error item; the closing
//! `end.json` entry is written only after every object was read in full.

use std::sync::Arc;

use aws_sdk_s3::primitives::DateTimeFormat;
use aws_sdk_s3::Client;
use backup_core::artifact::{late_metadata_channel, ArtifactData, CHUNK_SIZE};
use backup_core::{Error, ErrorKind, Result};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::client::s3_error;
use crate::config::ObjectTags;
use crate::fetch::{body_error, length_error, Body, Fetched, Listed, Next, ReadAhead, Source};
use crate::layout::{
    file_header, meta_entry, padding, ArchiveEnd, ArchiveHead, ObjectRecord, PathPlanner,
    END_ENTRY, HEAD_ENTRY, LAYOUT_VERSION,
};
use crate::settings::BucketSettings;
use crate::tags::{TagPolicy, HIDDEN_TAGS_WARNING};

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportJob {
    /// The client.
    pub client: Client,
    /// Endpoint, for error messages.
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// Key prefix.
    pub prefix: String,
    /// Every version and delete marker, or only the latest versions.
    pub all_versions: bool,
    /// The bucket's settings.
    pub settings: BucketSettings,
    /// When objects' tags are asked for.
    pub object_tags: ObjectTags,
    /// How many objects may be queued for read-ahead (small ones fetched meanwhile).
    pub read_ahead: usize,
}

/// Starts the export; the stream carries the tar, the late metadata its counts.
pub fn export_bucket(job: ExportJob) -> ArtifactData {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    let (sender, late) = late_metadata_channel("the S3 export");
    tokio::spawn(async move {
        let mut out = Out {
            tx,
            buf: BytesMut::new(),
        };
        match run(&job, &mut out).await {
            Ok((end, source)) => {
                let mut meta = serde_json::Map::new();
                meta.insert("records".into(), end.records.into());
                meta.insert("deleteMarkers".into(), end.delete_markers.into());
                meta.insert("bytes".into(), end.bytes.into());
                meta.insert("tagRequests".into(), source.tags.requests().into());
                if source.tags.switched() {
                    meta.insert("objectTags".into(), "always".into());
                    meta.insert("warnings".into(), vec![HIDDEN_TAGS_WARNING].into());
                }
                let _ = sender.send(Ok(meta));
            }
            Err(e) => {
                let _ = out.tx.send(Err(e.into_io())).await;
            }
        }
    });
    ArtifactData {
        stream: Box::pin(tokio_stream_from(rx)),
        late_metadata: Some(late),
    }
}

fn tokio_stream_from(
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Buffers writes into chunks of about [`CHUNK_SIZE`].
struct Out {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: BytesMut,
}

impl Out {
    async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_SIZE {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.tx
            .send(Ok(chunk))
            .await
            .map_err(|_| Error::new(ErrorKind::Cancelled, "the S3 export stream was dropped"))
    }

    async fn entry(&mut self, name: &str, body: &[u8], mtime: u64) -> Result<()> {
        let header = file_header(name, body.len() as u64, mtime)
            .map_err(|e| Error::io(format!("tar header of `{name}`"), e))?;
        self.write(&header).await?;
        self.write(body).await?;
        self.write(&[0u8; 512][..padding(body.len() as u64)]).await
    }

    async fn json_entry<T: serde::Serialize>(&mut self, name: &str, value: &T) -> Result<()> {
        let body = serde_json::to_vec_pretty(value)
            .map_err(|e| Error::new(ErrorKind::Io, format!("encoding `{name}`: {e}")))?;
        self.entry(name, &body, now()).await
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

struct State<'a> {
    job: &'a ExportJob,
    out: &'a mut Out,
    planner: PathPlanner,
    end: ArchiveEnd,
    ahead: ReadAhead,
}

/// Writes the archive; returns its end record and the bucket's tag policy (how many tag
/// requests were made, whether it switched to asking every object's, see [`crate::tags`]).
async fn run(job: &ExportJob, out: &mut Out) -> Result<(ArchiveEnd, Arc<Source>)> {
    let head = ArchiveHead {
        layout_version: LAYOUT_VERSION,
        bucket: job.bucket.clone(),
        prefix: job.prefix.clone(),
        all_versions: job.all_versions,
        settings: job.settings.clone(),
    };
    out.json_entry(HEAD_ENTRY, &head).await?;
    out.flush().await?;
    let source = Arc::new(Source {
        client: job.client.clone(),
        endpoint: job.endpoint.clone(),
        bucket: job.bucket.clone(),
        all_versions: job.all_versions,
        tags: TagPolicy::new(job.object_tags),
    });
    let mut state = State {
        job,
        out,
        planner: PathPlanner::default(),
        end: ArchiveEnd::default(),
        ahead: ReadAhead::new(source.clone(), job.read_ahead),
    };
    if job.all_versions {
        list_versions(&mut state).await?;
    } else {
        list_latest(&mut state).await?;
    }
    while write_next(&mut state).await? {}
    let end = state.end.clone();
    drop(state);
    out.json_entry(END_ENTRY, &end).await?;
    out.write(&[0u8; 1024]).await?;
    out.flush().await?;
    Ok((end, source))
}

fn prefix(job: &ExportJob) -> Option<String> {
    (!job.prefix.is_empty()).then(|| job.prefix.clone())
}

async fn list_latest(state: &mut State<'_>) -> Result<()> {
    let job = state.job;
    let mut token: Option<String> = None;
    loop {
        let page = job
            .client
            .list_objects_v2()
            .bucket(&job.bucket)
            .set_prefix(prefix(job))
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| s3_error(e, format!("listing bucket `{}`", job.bucket), &job.endpoint))?;
        for object in page.contents() {
            let Some(key) = object.key() else { continue };
            let listed = Listed {
                key: key.to_string(),
                version_id: None,
                is_latest: None,
                delete_marker: false,
                modified: (0, 0),
                rank: 0,
                size: object
                    .size()
                    .and_then(|s| u64::try_from(s).ok())
                    .unwrap_or(0),
            };
            emit(state, listed).await?;
        }
        match (page.is_truncated(), page.next_continuation_token()) {
            (Some(true), Some(next)) => token = Some(next.to_string()),
            _ => return Ok(()),
        }
    }
}

pub(crate) fn when(t: Option<&aws_sdk_s3::primitives::DateTime>) -> (i64, u32) {
    t.map(|t| (t.secs(), t.subsec_nanos())).unwrap_or((0, 0))
}

async fn list_versions(state: &mut State<'_>) -> Result<()> {
    let job = state.job;
    let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
    let mut pending: Vec<Listed> = Vec::new();
    loop {
        let page = job
            .client
            .list_object_versions()
            .bucket(&job.bucket)
            .set_prefix(prefix(job))
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .map_err(|e| {
                s3_error(
                    e,
                    format!("listing versions in bucket `{}`", job.bucket),
                    &job.endpoint,
                )
            })?;
        let versions = page.versions().iter().enumerate().map(|(rank, v)| Listed {
            key: v.key().unwrap_or_default().to_string(),
            version_id: v.version_id().map(str::to_string),
            is_latest: v.is_latest(),
            delete_marker: false,
            modified: when(v.last_modified()),
            rank,
            size: v.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
        });
        let markers = page
            .delete_markers()
            .iter()
            .enumerate()
            .map(|(rank, m)| Listed {
                key: m.key().unwrap_or_default().to_string(),
                version_id: m.version_id().map(str::to_string),
                is_latest: m.is_latest(),
                delete_marker: true,
                modified: when(m.last_modified()),
                rank,
                size: 0,
            });
        let mut listed: Vec<Listed> = versions.chain(markers).collect();
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        for entry in listed {
            if pending.first().is_some_and(|p| p.key != entry.key) {
                emit_key(state, std::mem::take(&mut pending)).await?;
            }
            pending.push(entry);
        }
        if page.is_truncated() == Some(true) {
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
            if key_marker.is_none() {
                break;
            }
        } else {
            break;
        }
    }
    emit_key(state, pending).await
}

/// Emits one key's versions oldest first: by time, the latest last among equal times,
/// otherwise in reverse listing order (S3 lists newest first).
async fn emit_key(state: &mut State<'_>, mut versions: Vec<Listed>) -> Result<()> {
    versions.sort_by(|a, b| {
        a.modified
            .cmp(&b.modified)
            .then(
                a.is_latest
                    .unwrap_or(false)
                    .cmp(&b.is_latest.unwrap_or(false)),
            )
            .then(b.rank.cmp(&a.rank))
    });
    for v in versions {
        emit(state, v).await?;
    }
    Ok(())
}

/// Queues `listed`, first writing out what is ahead of it while the queue is full.
async fn emit(state: &mut State<'_>, listed: Listed) -> Result<()> {
    while state.ahead.is_full_for(&listed) {
        write_next(state).await?;
    }
    state.ahead.push(listed);
    Ok(())
}

/// Writes the front of the read-ahead queue; `false` when the queue was empty.
async fn write_next(state: &mut State<'_>) -> Result<bool> {
    if state.ahead.front_is_waiting() {
        // What is ready goes out before this waits on the server.
        state.out.flush().await?;
    }
    match state.ahead.next().await? {
        None => Ok(false),
        Some(Next::Marker(listed)) => {
            write_marker(state, &listed).await?;
            Ok(true)
        }
        Some(Next::Object(Some(fetched))) => {
            write_object(state, fetched).await?;
            Ok(true)
        }
        // Deleted since it was listed.
        Some(Next::Object(None)) => Ok(true),
    }
}

async fn write_marker(state: &mut State<'_>, listed: &Listed) -> Result<()> {
    let seq = state.end.records + 1;
    let record = ObjectRecord {
        seq,
        key: listed.key.clone(),
        version_id: listed.version_id.clone(),
        is_latest: listed.is_latest,
        delete_marker: true,
        last_modified: format_time(listed.modified),
        ..ObjectRecord::default()
    };
    state.out.json_entry(&meta_entry(seq), &record).await?;
    state.end.records = seq;
    state.end.delete_markers += 1;
    Ok(())
}

async fn write_object(state: &mut State<'_>, fetched: Box<Fetched>) -> Result<()> {
    let Fetched {
        mut record,
        modified,
        body,
    } = *fetched;
    let seq = state.end.records + 1;
    let size = record.size;
    let (job, key) = (state.job, record.key.clone());
    let what = || format!("reading object `{key}` of bucket `{}`", job.bucket);
    let path = state.planner.path_for(&record.key, seq);
    record.seq = seq;
    record.path = Some(path.clone());
    state.out.json_entry(&meta_entry(seq), &record).await?;
    let header = file_header(&path, size, u64::try_from(modified.0).unwrap_or(0))
        .map_err(|e| Error::io(format!("tar header of `{path}`"), e))?;
    state.out.write(&header).await?;
    match body {
        Body::Whole(bytes) => state.out.write(&bytes).await?,
        Body::Stream(mut body) => {
            let mut read = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| body_error(what(), e))?;
                read += chunk.len() as u64;
                if read > size {
                    break;
                }
                state.out.write(&chunk).await?;
            }
            if read != size {
                return Err(length_error(what(), read, size));
            }
        }
    }
    state.out.write(&[0u8; 512][..padding(size)]).await?;
    state.end.records = seq;
    state.end.bytes += size;
    Ok(())
}

pub(crate) fn format_time((secs, nanos): (i64, u32)) -> Option<String> {
    aws_sdk_s3::primitives::DateTime::from_secs_and_nanos(secs, nanos)
        .fmt(DateTimeFormat::DateTime)
        .ok()
}
