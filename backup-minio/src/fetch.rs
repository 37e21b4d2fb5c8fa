//! Reading objects for the export, with a bounded read-ahead.
//!
//! The export lists keys in order and hands each listed object to a [`ReadAhead`]: small
//! objects (under [`SMALL_OBJECT`] bytes when listed) are fetched whole, with their tags
//! (asked for as the bucket's [`TagPolicy`] plans), by tasks that run while earlier
//! objects are written, at most `depth` objects queued and at most [`READ_AHEAD_BUDGET`]
//! listed bytes held; larger objects wait in the queue and are streamed in chunks when
//! their turn comes. The queue is first in, first out, so the archive's order is the
//! listing's whatever order the fetches finish in. Dropping the read-ahead (an export
//! that failed) aborts the fetches still running.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumMode;
use aws_sdk_s3::Client;
use backup_core::{Error, ErrorKind, Result};
use bytes::{Bytes, BytesMut};
use tokio::task::JoinHandle;

use crate::client::{not_implemented, s3_error};
use crate::layout::ObjectRecord;
use crate::tags::{SampleGuard, TagPlan, TagPolicy, Verdict};

/// Objects listed below this size are fetched ahead, whole.
pub const SMALL_OBJECT: u64 = 1024 * 1024;
/// At most this many listed bytes of small objects are fetched ahead at once.
pub const READ_AHEAD_BUDGET: u64 = 16 * 1024 * 1024;

/// Where objects are read from.
#[derive(Debug)]
pub struct Source {
    /// The client.
    pub client: Client,
    /// Endpoint, for error messages.
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// Every version is exported (a version that vanished is an error then).
    pub all_versions: bool,
    /// When objects' tags are asked for (`objectTags`).
    pub tags: TagPolicy,
}

/// One listed object version or delete marker.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The key.
    pub key: String,
    /// The version id (all-versions mode).
    pub version_id: Option<String>,
    /// Whether this is the latest version (all-versions mode).
    pub is_latest: Option<bool>,
    /// A delete marker rather than an object.
    pub delete_marker: bool,
    /// Last modified, seconds and nanoseconds (all-versions mode).
    pub modified: (i64, u32),
    /// Position in its listing (newest first within a key).
    pub rank: usize,
    /// Size as listed.
    pub size: u64,
}

/// An object's bytes: held whole, or still to be streamed.
#[derive(Debug)]
pub enum Body {
    /// The whole object, its length checked against the size the server announced.
    Whole(Bytes),
    /// The object's stream, to be read (and its length checked) by the writer.
    Stream(ByteStream),
}

/// An object read from the server: its record (without sequence number and path), its
/// last-modified time and its body.
#[derive(Debug)]
pub struct Fetched {
    /// The record.
    pub record: ObjectRecord,
    /// Last modified, seconds and nanoseconds.
    pub modified: (i64, u32),
    /// The bytes.
    pub body: Body,
}

/// What comes next in the archive.
#[derive(Debug)]
pub enum Next {
    /// A delete marker (nothing to read).
    Marker(Listed),
    /// An object, or `None` when it was deleted since it was listed.
    Object(Option<Box<Fetched>>),
}

#[derive(Debug)]
enum Pending {
    Marker(Listed),
    /// Fetched when its turn comes (large objects).
    Later(Listed, TagPlan),
    /// Being fetched whole; holds its listed size against the budget.
    Ahead(JoinHandle<Result<Option<Fetched>>>, u64),
}

/// A first-in first-out queue of listed objects whose small members are fetched ahead.
#[derive(Debug)]
pub struct ReadAhead {
    source: Arc<Source>,
    queue: VecDeque<Pending>,
    depth: usize,
    held: u64,
}

impl ReadAhead {
    /// A read-ahead of at most `depth` objects (at least 1).
    pub fn new(source: Arc<Source>, depth: usize) -> ReadAhead {
        ReadAhead {
            source,
            queue: VecDeque::new(),
            depth: depth.max(1),
            held: 0,
        }
    }

    /// Whether `listed` must wait until the front of the queue is taken.
    pub fn is_full_for(&self, listed: &Listed) -> bool {
        !self.queue.is_empty()
            && (self.queue.len() >= self.depth
                || (is_small(listed) && self.held + listed.size > READ_AHEAD_BUDGET))
    }

    /// Queues `listed` (call [`ReadAhead::is_full_for`] first); a small object starts
    /// being fetched now.
    pub fn push(&mut self, listed: Listed) {
        let pending = if listed.delete_marker {
            Pending::Marker(listed)
        } else if is_small(&listed) {
            let source = self.source.clone();
            let size = listed.size;
            let plan = source.tags.plan();
            self.held += size;
            Pending::Ahead(
                tokio::spawn(async move { fetch(&source, &listed, plan, SMALL_OBJECT).await }),
                size,
            )
        } else {
            Pending::Later(listed, self.source.tags.plan())
        };
        self.queue.push_back(pending);
    }

    /// Whether the front of the queue would make the caller wait on the server.
    pub fn front_is_waiting(&self) -> bool {
        match self.queue.front() {
            Some(Pending::Ahead(handle, _)) => !handle.is_finished(),
            Some(Pending::Later(..)) => true,
            _ => false,
        }
    }

    /// The front of the queue, fetched; `None` when the queue is empty.
    ///
    /// # Errors
    ///
    /// When reading the object or its tags failed.
    pub async fn next(&mut self) -> Result<Option<Next>> {
        let Some(pending) = self.queue.pop_front() else {
            return Ok(None);
        };
        let next = match pending {
            Pending::Marker(listed) => Next::Marker(listed),
            Pending::Later(listed, plan) => {
                Next::Object(fetch(&self.source, &listed, plan, 0).await?.map(Box::new))
            }
            Pending::Ahead(handle, size) => {
                self.held -= size;
                let fetched = handle.await.map_err(|e| {
                    Error::new(ErrorKind::Io, format!("an object read task failed: {e}"))
                })??;
                Next::Object(fetched.map(Box::new))
            }
        };
        Ok(Some(next))
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        for pending in &self.queue {
            if let Pending::Ahead(handle, _) = pending {
                handle.abort();
            }
        }
    }
}

fn is_small(listed: &Listed) -> bool {
    !listed.delete_marker && listed.size < SMALL_OBJECT
}

fn reading(source: &Source, listed: &Listed) -> String {
    format!(
        "reading object `{}` of bucket `{}`",
        listed.key, source.bucket
    )
}

/// The error of a body that failed mid-read.
pub fn body_error(what: String, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unavailable, format!("{what}: {e}"))
        .with_hint("the server or the connection failed while the object was read")
}

/// The error of a body whose length is not the announced size.
pub fn length_error(what: String, read: u64, size: u64) -> Error {
    Error::integrity(format!(
        "{what}: the server sent {read} bytes for an object of {size} bytes"
    ))
}

/// Reads `listed`'s object and tags (as `plan` says); the body is read whole when the
/// server announces at most `whole_up_to` bytes, else left to stream. `None` when the
/// object was deleted since it was listed (latest-versions mode: a live bucket changes,
/// nothing is lost).
async fn fetch(
    source: &Source,
    listed: &Listed,
    plan: TagPlan,
    whole_up_to: u64,
) -> Result<Option<Fetched>> {
    let sample = SampleGuard::new(&source.tags, plan);
    let get = source
        .client
        .get_object()
        .bucket(&source.bucket)
        .key(&listed.key)
        .set_version_id(listed.version_id.clone())
        .checksum_mode(ChecksumMode::Enabled)
        .send();
    // Tags and the object in one round trip's time, where the tags are asked for anyway.
    let (tags, got) = if plan == TagPlan::Advertised {
        (None, get.await)
    } else {
        let (tags, got) = tokio::join!(object_tags(source, listed), get);
        (Some(tags), got)
    };
    let object = match got {
        Ok(object) => object,
        Err(e)
            if !source.all_versions && e.as_service_error().is_some_and(|s| s.is_no_such_key()) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(s3_error(e, reading(source, listed), &source.endpoint)),
    };
    let advertised = object.tag_count();
    let tags = match tags {
        Some(tags) => tags?,
        None => advertised_tags(source, listed, advertised).await?,
    };
    sample.report(advertised, &tags);
    let mut record = ObjectRecord {
        key: listed.key.clone(),
        version_id: listed.version_id.clone(),
        is_latest: listed.is_latest,
        tags,
        ..ObjectRecord::default()
    };
    let modified = describe(&mut record, &object);
    let body = if record.size <= whole_up_to {
        Body::Whole(read_whole(source, listed, object.body, record.size).await?)
    } else {
        Body::Stream(object.body)
    };
    Ok(Some(Fetched {
        record,
        modified,
        body,
    }))
}

async fn read_whole(
    source: &Source,
    listed: &Listed,
    mut body: ByteStream,
    size: u64,
) -> Result<Bytes> {
    let mut buf = BytesMut::with_capacity(size as usize);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| body_error(reading(source, listed), e))?;
        if (buf.len() + chunk.len()) as u64 > size {
            return Err(length_error(
                reading(source, listed),
                (buf.len() + chunk.len()) as u64,
                size,
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    if buf.len() as u64 != size {
        return Err(length_error(
            reading(source, listed),
            buf.len() as u64,
            size,
        ));
    }
    Ok(buf.freeze())
}

/// Fills `record` from the GET answer; returns the last-modified time.
fn describe(record: &mut ObjectRecord, object: &GetObjectOutput) -> (i64, u32) {
    record.size = u64::try_from(object.content_length().unwrap_or(0)).unwrap_or(0);
    record.etag = object.e_tag().map(str::to_string);
    let modified = crate::export::when(object.last_modified());
    record.last_modified = crate::export::format_time(modified);
    record.content_type = object.content_type().map(str::to_string);
    record.cache_control = object.cache_control().map(str::to_string);
    record.content_encoding = object.content_encoding().map(str::to_string);
    record.content_disposition = object.content_disposition().map(str::to_string);
    record.content_language = object.content_language().map(str::to_string);
    record.expires = object.expires_string().map(str::to_string);
    record.storage_class = object.storage_class().map(|s| s.as_str().to_string());
    record.metadata = object
        .metadata()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    record.checksums = checksums(object);
    modified
}

fn checksums(object: &GetObjectOutput) -> BTreeMap<String, String> {
    [
        ("CRC32", object.checksum_crc32()),
        ("CRC32C", object.checksum_crc32_c()),
        ("CRC64NVME", object.checksum_crc64_nvme()),
        ("SHA1", object.checksum_sha1()),
        ("SHA256", object.checksum_sha256()),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| (name.to_string(), v.to_string())))
    .collect()
}

/// The tags of an object read under [`TagPlan::Advertised`]: asked for when its GET
/// advertised a count above zero, or when the bucket's sample found a server hiding
/// tags; otherwise none (the sample trusted the count).
async fn advertised_tags(
    source: &Source,
    listed: &Listed,
    advertised: Option<i32>,
) -> Result<BTreeMap<String, String>> {
    if advertised.unwrap_or(0) > 0 || source.tags.verdict().await == Verdict::Always {
        object_tags(source, listed).await
    } else {
        Ok(BTreeMap::new())
    }
}

async fn object_tags(source: &Source, listed: &Listed) -> Result<BTreeMap<String, String>> {
    source.tags.count_request();
    let result = source
        .client
        .get_object_tagging()
        .bucket(&source.bucket)
        .key(&listed.key)
        .set_version_id(listed.version_id.clone())
        .send()
        .await;
    match result {
        Ok(out) => Ok(out
            .tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect()),
        Err(e) if not_implemented(&e) => Ok(BTreeMap::new()),
        Err(e) => Err(s3_error(
            e,
            format!(
                "reading the tags of `{}` in bucket `{}`",
                listed.key, source.bucket
            ),
            &source.endpoint,
        )),
    }
}
