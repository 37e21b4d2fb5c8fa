//! Artifacts: the named, typed byte streams a service's data is made of.

use std::pin::Pin;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::json_limits::{deserialize_bounded_map, map_problem, JsonLimits};
use crate::Result;

/// A stream of bytes that never lives whole in memory.
///
/// An error item ends the stream: a producer that fails (a tool exiting non-zero, a
/// dropped connection) yields an error instead of ending quietly, so a consumer never
/// mistakes a partial stream for a complete one.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Well-known artifact formats. Importers refuse formats they do not understand.
pub mod formats {
    /// `pg_dump -Fc` custom-format archive.
    pub const POSTGRES_CUSTOM: &str = "postgres/custom";
    /// `pg_dump` plain SQL script.
    pub const POSTGRES_SQL: &str = "postgres/sql";
    /// Redis RDB file as sent by replication.
    pub const REDIS_RDB: &str = "redis/rdb";
    /// Redis logical export: DUMP payloads with TTLs (see backup-redis docs).
    pub const REDIS_DUMP_RESTORE: &str = "redis/dump-restore";
    /// An S3 bucket as a tar stream of objects plus metadata.
    pub const S3_TAR: &str = "s3/tar";
    /// A POSIX tar stream of a directory tree.
    pub const TAR: &str = "tar";
    /// A SQLite database file.
    pub const SQLITE: &str = "sqlite";
}

/// Describes one artifact of a service: what it is and how to read it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArtifactDescriptor {
    /// Name unique within the service, safe as a file name (`app.dump`, `db0.rdb`).
    pub name: String,
    /// Format identifier, see [`formats`].
    pub format: String,
    /// MIME type of the raw bytes.
    pub content_type: String,
    /// Version of the source server or tool, when known (`PostgreSQL 15.18`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// Adapter-specific facts for the manifest (table counts, keys per database, …).
    /// Never secrets.
    ///
    /// Bounded: nested at most [`MAX_METADATA_DEPTH`] levels,
    /// at most [`MAX_METADATA_VALUES`] values and [`MAX_METADATA_TEXT_BYTES`] bytes of
    /// strings and keys. Deserializing refuses more while it reads (so hostile input
    /// cannot make it allocate more), and a bundle writer refuses to write more.
    #[serde(
        default,
        skip_serializing_if = "serde_json::Map::is_empty",
        deserialize_with = "deserialize_metadata"
    )]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// Deepest nesting of an artifact's metadata (its top-level object's values are level 1).
pub const MAX_METADATA_DEPTH: usize = 32;
/// Most JSON values (object keys included) in an artifact's metadata: room for the
/// schema summary of a database with tens of thousands of columns.
pub const MAX_METADATA_VALUES: usize = 1_000_000;
/// Most bytes of strings, keys and numbers in an artifact's metadata.
pub const MAX_METADATA_TEXT_BYTES: usize = 16 * 1024 * 1024;

/// The bounds on [`ArtifactDescriptor::metadata`].
pub(crate) const METADATA_LIMITS: JsonLimits = JsonLimits {
    max_depth: MAX_METADATA_DEPTH,
    max_values: MAX_METADATA_VALUES,
    max_text_bytes: MAX_METADATA_TEXT_BYTES,
};

fn deserialize_metadata<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<serde_json::Map<String, serde_json::Value>, D::Error> {
    deserialize_bounded_map(deserializer, METADATA_LIMITS, "artifact metadata")
}

impl ArtifactDescriptor {
    /// Says what bound of [`ArtifactDescriptor::metadata`] this descriptor's metadata
    /// exceeds, if any (a descriptor built in memory is not bounded until it is written).
    pub fn metadata_problem(&self) -> Option<String> {
        map_problem(&self.metadata, METADATA_LIMITS)
    }

    /// Creates a descriptor with no source version and no metadata.
    pub fn new(
        name: impl Into<String>,
        format: impl Into<String>,
        content_type: impl Into<String>,
    ) -> Self {
        ArtifactDescriptor {
            name: name.into(),
            format: format.into(),
            content_type: content_type.into(),
            source_version: None,
            metadata: serde_json::Map::new(),
        }
    }

    /// Sets the source version.
    pub fn with_source_version(mut self, version: impl Into<String>) -> Self {
        self.source_version = Some(version.into());
        self
    }

    /// Adds one metadata field.
    pub fn with_metadata(mut self, key: impl Into<String>, value: serde_json::Value) -> Self {
        self.metadata.insert(key.into(), value);
        self
    }
}

/// Metadata an exporter learns only once its stream has been fully read.
pub type LateMetadata = BoxFuture<'static, Result<serde_json::Map<String, serde_json::Value>>>;

/// An artifact being exported: its bytes, and metadata known only at the end.
pub struct ArtifactData {
    /// The bytes. An error item fails the export.
    pub stream: ByteStream,
    /// Awaited after `stream` ended without error; merged into the manifest entry.
    pub late_metadata: Option<LateMetadata>,
}

impl ArtifactData {
    /// Wraps a stream with no late metadata.
    pub fn from_stream(stream: ByteStream) -> Self {
        ArtifactData {
            stream,
            late_metadata: None,
        }
    }
}

impl std::fmt::Debug for ArtifactData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactData")
            .field("late_metadata", &self.late_metadata.is_some())
            .finish_non_exhaustive()
    }
}

/// Turns any `AsyncRead` into a [`ByteStream`] with bounded chunks.
pub fn stream_from_reader<R>(reader: R) -> ByteStream
where
    R: tokio::io::AsyncRead + Send + 'static,
{
    Box::pin(tokio_util::io::ReaderStream::with_capacity(
        reader, CHUNK_SIZE,
    ))
}

/// Turns a [`ByteStream`] into an `AsyncRead`, for adapters that feed a tool's stdin.
pub fn reader_from_stream(stream: ByteStream) -> Pin<Box<dyn tokio::io::AsyncRead + Send>> {
    Box::pin(tokio_util::io::StreamReader::new(stream))
}

/// The chunk size streams aim for: big enough to be fast, small enough to keep memory flat.
pub const CHUNK_SIZE: usize = 256 * 1024;

/// The sending half of [`late_metadata_channel`].
pub type LateMetadataSender =
    tokio::sync::oneshot::Sender<Result<serde_json::Map<String, serde_json::Value>>>;

/// A channel for metadata produced by a background task while (or after) it streams.
///
/// The task sends its result on the sender; the returned [`LateMetadata`] awaits it. If
/// the task ends without sending, the future fails with [`crate::ErrorKind::Cancelled`]
/// saying `what` ended early.
pub fn late_metadata_channel(what: &'static str) -> (LateMetadataSender, LateMetadata) {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let late: LateMetadata = Box::pin(async move {
        receiver.await.unwrap_or_else(|_| {
            Err(crate::Error::new(
                crate::ErrorKind::Cancelled,
                format!("{what} ended early"),
            ))
        })
    });
    (sender, late)
}
