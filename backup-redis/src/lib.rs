//! The `redis` adapter for backup-core: RDB and logical export/import of a Redis server.
//!
//! ```no_run
//! # async fn demo() -> backup_core::Result<()> {
//! use backup_core::{DataExporter, RecipeRegistry, ServiceTarget};
//!
//! let mut registry = RecipeRegistry::new();
//! backup_redis::register(&mut registry)?;
//! let service = ServiceTarget::local(
//!     "cache",
//!     backup_redis::RECIPE,
//!     serde_json::json!({"host": "127.0.0.1", "port": 6379, "format": "logical"}),
//! );
//! let exporter = backup_redis::RedisExporter;
//! let artifacts = exporter.artifacts(&service).await?;
//! let data = exporter.export(&service, &artifacts[0]).await?;
//! // stream `data.stream` into a bundle ...
//! # drop(data);
//! # Ok(())
//! # }
//! ```
//!
//! The client speaks RESP itself over a TCP connection; bulk strings are streamed in both
//! directions, so a 100 MB value passes through in chunks of at most
//! [`backup_core::artifact::CHUNK_SIZE`] and is never held whole by the adapter.
//!
//! # Formats
//!
//! The default is the logical format, because the default [`recipe`] restores it into any
//! running server. RDB is opt-in: restoring it needs a [`RedisServerControl`] (see
//! [`recipe_with_server_control`]), and the default recipe's importer does not list
//! `redis/rdb` among its formats, so a restore of an RDB bundle with it is refused while
//! formats are checked, before any service is created or changed (also in a dry run).
//!
//! **RDB** (`redis/rdb`, config `"format": "rdb"`, opt-in): the server's own snapshot,
//! taken the way `redis-cli --rdb` does it — `REPLCONF capa eof`, `REPLCONF rdb-only 1`
//! (Redis ≥ 7; older servers fall back to a normal full sync, cut after the RDB), `SYNC`.
//! Nothing is written to disk on our side; with the server's default
//! `repl-diskless-sync yes` nothing is written on the server's disk either. Both
//! transfers are handled: `$<len>` and the diskless `$EOF:<40-byte mark>`. The stream
//! checks the `REDIS00xx` header, the EOF opcode and the RDB's CRC-64 before it ends; the manifest gets the server version and keys per
//! database (before) and the RDB version, size and transfer kind (late metadata). The
//! user needs the `SYNC` and `REPLCONF` permissions; a refusal suggests the logical
//! format.
//!
//! **Logical** (`redis/dump-restore`, `"format": "logical"`, the default): works wherever `SCAN`,
//! `DUMP` and `PEXPIRETIME` (or `PTTL` before Redis 7) are allowed. For each database
//! (every database with keys, or those in `databases`): `SELECT`, `SCAN … COUNT 1000`, then
//! per batch a pipelined `PEXPIRETIME key` + `DUMP key` for every key. A key deleted between
//! `SCAN` and `DUMP` is skipped. Redis 7 function libraries (`FUNCTION LOAD`) are carried
//! too, as one `FUNCTION DUMP` payload (only when the server has libraries, which
//! `INFO memory` tells; then the user needs `FUNCTION DUMP`). The stream is framed as
//! follows (integers big-endian):
//!
//! ```text
//! header    "RDSLOGI\n" (8 bytes)  u32 version (= 2; version 1 is still read)
//! functions 'F'  u64 payload-len  payload     version 2 only, at most once, before any
//!                                             database: the FUNCTION DUMP payload
//! database  'D'  u32 db-index                 following keys belong to this database
//! key       'K'  u32 key-len  key-bytes
//!                i64 expire-at (Unix ms, absolute; -1 = no expiry)
//!                u64 payload-len  payload     the DUMP payload, verbatim
//! end       'E'  u64 key-record-count
//!                u32 CRC-32 (IEEE) of every byte from the header up to and including
//!                    the record count
//! ```
//!
//! Nothing may follow the end record. A stream without it, with a wrong count or
//! checksum, an unknown record type, a key before any database record, or trailing bytes
//! is rejected with [`backup_core::ErrorKind::Integrity`]. Length fields never make the
//! reader allocate ahead of the bytes that actually arrive. The databases an export
//! *holds* are those named by its database records (every database with keys, or every
//! listed one, also when empty); the late metadata records them as `databases`.
//!
//! # Import
//!
//! **Logical**: the whole export is first copied to an unnamed temporary file (in
//! `TMPDIR`; it needs free space the size of the export) and checked completely —
//! framing, record count, checksum. A damaged or truncated export fails with `Integrity`
//! before the target is touched. Every database the export holds is then `SELECT`ed
//! once (a target with too few databases is refused, still untouched). Then the keys
//! are replayed from the file with `RESTORE key ttl payload REPLACE [ABSTTL]`, pipelined
//! with at most 8192 commands in flight, each database into its own index. The absolute
//! expiry captured at export is kept (`ABSTTL`); keys already expired at import time are
//! skipped.
//!
//! The target must hold no keys in any database, or `force` is set. **`force` replaces
//! only the databases the export holds** (`FLUSHDB` each, never `FLUSHALL`): a db-0
//! export leaves db 1 alone. Function libraries: with `force` they are restored first
//! with `FUNCTION RESTORE … REPLACE` (a library of the same name is replaced, others are
//! kept); without `force` they are restored last with `APPEND`, which refuses a library
//! name the target already has.
//!
//! If the import fails after it started changing the target, the databases the export
//! holds are flushed (never others): an empty target is left empty. **With `force`, the
//! data those databases held before (and replaced libraries) is gone after such a
//! failure** — the caller's safety backup covers that.
//!
//! **RDB**: only into a server whose data directory the host controls, through a
//! [`RedisServerControl`]. While the server runs, the file is written to a temporary name
//! in the data directory and checked (header, EOF opcode, CRC-64), and its RDB version is
//! compared with what the target's Redis version loads (Redis 2.6 to 7.4 are known; a
//! newer RDB is refused with `UnsupportedVersion` before anything is stopped — `check`
//! does the same from the manifest's `rdbVersion`, so a dry run refuses it too). Then the
//! server saves what it holds (`SAVE`), is stopped, its `dbfilename` is moved aside, the
//! new file renamed in, the server started, and the import waits until `INFO persistence`
//! says `loading:0`. If the server cannot load the new file, it is stopped, the old RDB is
//! put back and the server restarted **with the data it held before**; the error says so.
//! A server with `appendonly yes` is refused (it would load its AOF). The user needs the
//! `SAVE` permission. Without a control, an RDB import fails with
//! [`backup_core::ErrorKind::Unsupported`] and says to export with the logical format.
//!
//! # Redis Cluster
//!
//! A node with `cluster_enabled:1` holds only its own hash slots. Exports from it and
//! imports into it are refused with [`backup_core::ErrorKind::Unsupported`].
//!
//! # Hostile or stuck servers
//!
//! Replies are parsed without recursion and within bounds: arrays nest at most 32 deep,
//! one reply holds at most 2^20 elements and 64 MiB (bulk strings are allocated as their
//! bytes arrive, not from the announced length), a status line at most 64 KiB. Anything
//! beyond is an `Integrity` error naming the bound. Every network read and write (replies,
//! the replication stream, the wait for the server to prepare the RDB) fails with
//! `Unavailable` after `idleTimeoutSeconds` (default 60) without a byte moving.
//!
//! # Faster RDB exports: `lowerDisklessSyncDelay`
//!
//! A diskless full sync waits `repl-diskless-sync-delay` seconds (default 5) for more
//! replicas before it starts. With `"lowerDisklessSyncDelay": true` (an explicit opt-in;
//! the user needs `CONFIG` rights) the exporter reads the current value, sets it to 0, and
//! puts the original back as soon as the transfer has started — also when the handshake
//! fails, and even if the caller drops the export future (the handshake runs in its own
//! task). Concurrent exports of one server in this process (told apart by `run_id`) share
//! one lowering: the first sets 0, the last to start its transfer puts the original back.
//! A value someone else set meanwhile (anything but 0) is left alone. Exports from several
//! processes at once are not coordinated beyond that check. If the value cannot be put
//! back the export fails with a hint naming the command to run. Server settings are never
//! changed otherwise.
//!
//! # Errors users can act on
//!
//! Connection refused → `Unavailable`; `NOAUTH` / `WRONGPASS` → `PermissionDenied` with a
//! hint (the password is never quoted); `SYNC` not permitted (`NOPERM`) → `PermissionDenied`
//! suggesting the logical format; `OOM` on the target → `ResourceExhausted`; a value above
//! the target's `proto-max-bulk-len` → `ResourceExhausted` with a hint to raise it; a
//! connection lost mid-export → a stream error (`Unavailable`), so no bundle is written.

mod adapter;
mod chunks;
mod config;
mod errors;
mod format;
mod held;
mod logical_export;
mod logical_import;
mod rdb_check;
mod rdb_delay;
mod rdb_export;
mod rdb_import;
mod resp;
mod server;

use std::sync::Arc;

use backup_core::secrets::SecretGenerator;
use backup_core::{Recipe, RecipeRegistry, Result};

pub use adapter::{RedisExporter, RedisImporter, LOGICAL_ARTIFACT, RDB_ARTIFACT};
pub use config::{ExportFormat, RedisConfig, DEFAULT_IDLE_TIMEOUT_SECONDS};
pub use rdb_import::RedisServerControl;

/// The recipe slug.
pub const RECIPE: &str = "redis";

/// JSON Schema of [`RedisConfig`].
pub fn config_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "host": {"type": "string", "minLength": 1},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "username": {"type": "string", "minLength": 1},
            "password": {"type": "string"},
            "format": {"enum": ["rdb", "logical"]},
            "databases": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0},
                "uniqueItems": true
            },
            "lowerDisklessSyncDelay": {"type": "boolean"},
            "idleTimeoutSeconds": {"type": "integer", "minimum": 1}
        }
    })
}

/// The `redis` recipe, whose importer restores logical exports (RDB imports need
/// [`recipe_with_server_control`]).
///
/// # Errors
///
/// Only if the built-in schema does not compile (a bug).
pub fn recipe() -> Result<Recipe> {
    build(RedisImporter::new())
}

/// The `redis` recipe with an importer that also restores RDB exports into servers
/// `control` runs.
///
/// # Errors
///
/// Only if the built-in schema does not compile (a bug).
pub fn recipe_with_server_control(control: Arc<dyn RedisServerControl>) -> Result<Recipe> {
    build(RedisImporter::with_server_control(control))
}

fn build(importer: RedisImporter) -> Result<Recipe> {
    Recipe::builder(RECIPE, config_schema())
        .description("Redis key-value store")
        .secret("password", SecretGenerator::password())
        .exporter(Arc::new(RedisExporter))
        .importer(Arc::new(importer))
        .data_export_description(
            "every database of the server: an RDB snapshot (format rdb) or DUMP payloads with expiry times (format logical)",
        )
        .build()
}

/// Registers the [`recipe`] in `registry`.
///
/// # Errors
///
/// Only if the built-in schema does not compile (a bug).
pub fn register(registry: &mut RecipeRegistry) -> Result<()> {
    registry.register(recipe()?);
    Ok(())
}
