//! Local mode: the SQLite library linked into this crate reads and writes the file directly.
//! Everything here blocks; callers run it on a blocking thread.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use backup_core::{Error, ErrorKind, Result};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use serde_json::{Map, Value};

use crate::metadata::{keys, quote_identifier, schema_hash, DatabaseSummary, Expected};
use crate::metadata::{SCHEMA_SQL, TABLES_SQL};

/// The suffixes of the files SQLite keeps beside a database.
pub(crate) const SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Maps a SQLite error to a library error naming `what` was done.
pub(crate) fn sql_error(what: &str, error: rusqlite::Error) -> Error {
    use rusqlite::ffi::ErrorCode;
    let code = error.sqlite_error_code();
    let message = format!("{what}: {error}");
    match code {
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            Error::new(ErrorKind::Unavailable, message)
                .with_hint("another process holds a lock on the database for too long: retry, or raise `busyTimeoutSecs`")
        }
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
            Error::integrity(message).with_hint("the file is not an intact SQLite database")
        }
        Some(ErrorCode::CannotOpen) => Error::new(ErrorKind::NotFound, message)
            .with_hint("check the service's path and that its volume is mounted"),
        Some(ErrorCode::PermissionDenied) | Some(ErrorCode::ReadOnly) => {
            Error::new(ErrorKind::PermissionDenied, message)
        }
        Some(ErrorCode::DiskFull) => Error::new(ErrorKind::ResourceExhausted, message),
        _ => Error::new(ErrorKind::Io, message),
    }
}

/// Opens an existing database; never creates one.
pub(crate) fn open_existing(path: &Path, read_only: bool, busy: Duration) -> Result<Connection> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!("`{}` is not a file", path.display()),
            ))
        }
        Err(e) => {
            return Err(Error::io(format!("reading `{}`", path.display()), e)
                .with_hint("check the service's path and that its volume is mounted"))
        }
    }
    let access = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    };
    let what = format!("opening `{}`", path.display());
    let conn = Connection::open_with_flags(path, access | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| sql_error(&what, e))?;
    conn.busy_timeout(busy).map_err(|e| sql_error(&what, e))?;
    // Reading the schema makes a file that is not a database fail here, by name.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| {
        row.get::<_, i64>(0)
    })
    .map_err(|e| sql_error(&what, e))?;
    Ok(conn)
}

/// Measures a database: version, pages, user_version, tables with row counts, schema hash.
pub(crate) fn summarize(conn: &Connection, journal_mode: &str) -> Result<DatabaseSummary> {
    let e = |e| sql_error("reading the database summary", e);
    let pragma = |name: &str| conn.pragma_query_value(None, name, |r| r.get::<_, i64>(0));
    let mut summary = DatabaseSummary {
        sqlite_version: rusqlite::version().to_string(),
        page_size: u64::try_from(pragma("page_size").map_err(e)?).unwrap_or(0),
        page_count: u64::try_from(pragma("page_count").map_err(e)?).unwrap_or(0),
        journal_mode: journal_mode.to_string(),
        user_version: pragma("user_version").map_err(e)?,
        ..DatabaseSummary::default()
    };
    let names: Vec<String> = {
        let mut stmt = conn.prepare(TABLES_SQL).map_err(e)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(e)?;
        rows.collect::<std::result::Result<_, _>>().map_err(e)?
    };
    for name in names {
        let sql = format!("SELECT count(*) FROM {}", quote_identifier(&name));
        let rows: i64 = conn.query_row(&sql, [], |r| r.get(0)).map_err(e)?;
        summary
            .tables
            .insert(name, u64::try_from(rows).unwrap_or(0));
    }
    let schema: Vec<String> = {
        let mut stmt = conn.prepare(SCHEMA_SQL).map_err(e)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(e)?;
        rows.collect::<std::result::Result<_, _>>().map_err(e)?
    };
    summary.schema_hash = schema_hash(&schema);
    Ok(summary)
}

/// Runs `PRAGMA integrity_check`.
///
/// # Errors
///
/// [`ErrorKind::Integrity`] with the first problems SQLite reported.
pub(crate) fn integrity_check(conn: &Connection, what: &str) -> Result<()> {
    let e = |e| sql_error(&format!("checking the integrity of {what}"), e);
    let mut stmt = conn.prepare("PRAGMA integrity_check(10)").map_err(e)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(e)?;
    let found: Vec<String> = rows.collect::<std::result::Result<_, _>>().map_err(e)?;
    if found.len() == 1 && found[0] == "ok" {
        Ok(())
    } else {
        Err(Error::integrity(format!(
            "{what} failed the integrity check: {}",
            found.join("; ")
        ))
        .with_hint("the data is damaged: restore from another backup"))
    }
}

/// Copies a consistent snapshot of `source` into a private temporary file with the online
/// backup API (all pages in one step, so one read transaction), checks and measures it,
/// streams it into `out`, and removes it. Returns the artifact metadata.
pub(crate) fn export_snapshot(
    source: &Path,
    busy: Duration,
    out: &mut dyn Write,
) -> Result<Map<String, Value>> {
    let conn = open_existing(source, true, busy)?;
    let journal_mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .map_err(|e| sql_error("reading the journal mode", e))?;
    // A private directory (mode 0700) in TMPDIR, removed when dropped, on every path.
    let dir = tempfile::Builder::new()
        .prefix("backup-sqlite-")
        .tempdir()
        .map_err(|e| {
            Error::io("creating a temporary directory for the copy", e)
                .with_hint("check TMPDIR exists and has room for a copy of the database")
        })?;
    let copy_path = dir.path().join("snapshot.sqlite");
    {
        let mut dest = Connection::open(&copy_path)
            .map_err(|e| sql_error("creating the temporary copy", e))?;
        copy_all_pages(&conn, &mut dest, busy)?;
    }
    drop(conn);
    // The copy is checked and measured before it is streamed: a damaged source fails the
    // export by name instead of a later restore.
    let copy = open_existing(&copy_path, true, busy)?;
    integrity_check(&copy, "the database snapshot")?;
    let summary = summarize(&copy, &journal_mode)?;
    drop(copy);
    let mut file = std::fs::File::open(&copy_path)
        .map_err(|e| Error::io(format!("opening `{}`", copy_path.display()), e))?;
    let mut hashing = Hashing::new(out);
    let size = std::io::copy(&mut file, &mut hashing)
        .map_err(|e| Error::io("streaming the database copy", e))?;
    drop(file);
    let mut metadata = summary.to_metadata();
    metadata.insert(keys::SIZE.into(), Value::from(size));
    metadata.insert(keys::SHA256.into(), Value::from(hashing.finish()));
    drop(dir);
    Ok(metadata)
}

fn copy_all_pages(source: &Connection, dest: &mut Connection, busy: Duration) -> Result<()> {
    let backup =
        Backup::new(source, dest).map_err(|e| sql_error("starting the online backup", e))?;
    let deadline = Instant::now() + busy;
    loop {
        match backup
            .step(-1)
            .map_err(|e| sql_error("copying the database", e))?
        {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            _ => {
                if Instant::now() >= deadline {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        "the database stayed locked by another process during the backup",
                    )
                    .with_hint("retry when the app is less busy, or raise `busyTimeoutSecs`"));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Whether `target` holds no data: missing, zero bytes, or a database with no schema.
pub(crate) fn target_is_empty(target: &Path, busy: Duration) -> Result<bool> {
    match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(Error::io(format!("reading `{}`", target.display()), e)),
        Ok(meta) if !meta.is_file() => {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("`{}` exists and is not a regular file", target.display()),
            ))
        }
        Ok(meta) if meta.len() == 0 => return Ok(true),
        Ok(_) => {}
    }
    match open_existing(target, true, busy) {
        Ok(conn) => {
            let objects: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(|e| sql_error("reading the target's schema", e))?;
            Ok(objects == 0)
        }
        // Not a database: it holds something, so only `force` replaces it.
        Err(e) if e.kind() == ErrorKind::Integrity => Ok(false),
        Err(e) => Err(e),
    }
}

/// Checks the SQLite header of a received file: magic, and a length that matches the page
/// count the header records, so a truncated stream is caught by name.
fn check_header(path: &Path, expected_size: Option<u64>) -> Result<()> {
    let truncated = |detail: String| {
        Error::integrity(format!("the received database is incomplete: {detail}"))
            .with_hint("the artifact is truncated or corrupt: verify the bundle")
    };
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(format!("reading `{}`", path.display()), e))?
        .len();
    if let Some(size) = expected_size {
        if size != len {
            return Err(truncated(format!(
                "{len} bytes, the backup recorded {size}"
            )));
        }
    }
    if len == 0 {
        return Ok(());
    }
    let mut header = [0u8; 100];
    let mut file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("opening `{}`", path.display()), e))?;
    file.read_exact(&mut header)
        .map_err(|_| truncated(format!("{len} bytes, shorter than a SQLite header")))?;
    if &header[..16] != b"SQLite format 3\0" {
        return Err(
            Error::integrity("the received data is not a SQLite database")
                .with_hint("the artifact is corrupt or of another format"),
        );
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536u64,
        n => u64::from(n),
    };
    let word = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let (change_counter, pages, valid_for) = (word(24), u64::from(word(28)), word(92));
    if change_counter == valid_for && pages > 0 && pages * page_size != len {
        return Err(truncated(format!(
            "{len} bytes, the header records {pages} pages of {page_size} bytes"
        )));
    }
    Ok(())
}

/// Removes the `-wal`, `-shm` and `-journal` files beside `path`.
pub(crate) fn remove_sidecars(path: &Path) -> Result<()> {
    for suffix in SIDECARS {
        let sidecar = sidecar(path, suffix);
        match std::fs::remove_file(&sidecar) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(format!("removing `{}`", sidecar.display()), e))
            }
            _ => {}
        }
    }
    Ok(())
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Opens a database and checks it against what the artifact promised.
pub(crate) fn verify(
    path: &Path,
    expected: &Expected,
    what: &str,
    read_only: bool,
    busy: Duration,
) -> Result<()> {
    let conn = open_existing(path, read_only, busy)?;
    integrity_check(&conn, what)?;
    let summary = summarize(&conn, "")?;
    expected.check(what, &summary)
}

/// Streams `reader` into a temporary file beside `target`, checks it, and renames it over
/// `target` (removing the old file's `-wal`/`-shm`/`-journal`). On any failure before the
/// rename the target is untouched and the temporary file removed.
pub(crate) fn import_file(
    reader: &mut dyn Read,
    target: &Path,
    expected: &Expected,
    busy: Duration,
) -> Result<()> {
    let parent = target.parent().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidConfig,
            "the database path has no parent directory",
        )
    })?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::create_dir_all(parent)
        .map_err(|e| Error::io(format!("creating `{}`", parent.display()), e))?;
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}.restore-"))
        .tempfile_in(parent)
        .map_err(|e| {
            Error::io(
                format!("creating a temporary file in `{}`", parent.display()),
                e,
            )
        })?;
    let outcome = receive_and_check(reader, &mut temp, expected, busy);
    let cleaned = remove_sidecars(temp.path());
    outcome?;
    cleaned?;
    if let Ok(old) = std::fs::metadata(target) {
        keep_owner_and_mode(temp.path(), &old)?;
    }
    ensure_not_in_use(target)?;
    remove_sidecars(target)?;
    temp.persist(target).map_err(|e| {
        Error::io(
            format!("renaming the restored database over `{}`", target.display()),
            e.error,
        )
    })?;
    std::fs::File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| Error::io(format!("syncing `{}`", parent.display()), e))
}

/// Refuses to replace a database another process has open (WAL mode: any open
/// connection; rollback-journal mode: an open transaction). It takes the exclusive lock a
/// writer in exclusive locking mode takes, without waiting; closing the connection
/// checkpoints a leftover WAL into the old file, which is replaced next.
fn ensure_not_in_use(target: &Path) -> Result<()> {
    let conn = match open_existing(target, false, Duration::from_millis(200)) {
        Ok(conn) => conn,
        // Missing, empty or not a database: nothing can be using it as one.
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::Integrity | ErrorKind::NotFound | ErrorKind::Io
            ) =>
        {
            return Ok(())
        }
        Err(e) => return Err(in_use(target, e)),
    };
    conn.execute_batch(
        "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; SELECT count(*) FROM sqlite_master; ROLLBACK;",
    )
    .map_err(|e| in_use(target, sql_error("locking the database to replace it", e)))
}

fn in_use(target: &Path, error: Error) -> Error {
    if error.kind() == ErrorKind::Unavailable {
        Error::new(
            ErrorKind::Unavailable,
            format!("`{}` is in use by another process", target.display()),
        )
        .with_hint("stop the app before restoring its database; nothing was changed")
    } else {
        error
    }
}

fn receive_and_check(
    reader: &mut dyn Read,
    temp: &mut tempfile::NamedTempFile,
    expected: &Expected,
    busy: Duration,
) -> Result<()> {
    let mut hashing = Hashing::new(temp.as_file_mut());
    std::io::copy(reader, &mut hashing).map_err(|e| Error::io("receiving the database", e))?;
    let received = hashing.finish();
    if let Some(sha256) = &expected.sha256 {
        if &received != sha256 {
            return Err(Error::integrity(
                "the received database's sha256 differs from the one the backup recorded",
            )
            .with_hint("the artifact is corrupt: verify the bundle"));
        }
    }
    temp.as_file()
        .sync_all()
        .map_err(|e| Error::io("syncing the received database", e))?;
    check_header(temp.path(), expected.size)?;
    if std::fs::metadata(temp.path()).map(|m| m.len()).unwrap_or(0) == 0 {
        return Ok(());
    }
    verify(temp.path(), expected, "the received database", true, busy)
}

fn keep_owner_and_mode(path: &Path, old: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    std::fs::set_permissions(path, old.permissions())
        .map_err(|e| Error::io(format!("setting the mode of `{}`", path.display()), e))?;
    let mine = std::fs::metadata(path)
        .map_err(|e| Error::io(format!("reading `{}`", path.display()), e))?;
    if mine.uid() != old.uid() || mine.gid() != old.gid() {
        // Only root can give a file away; others keep the file as their own.
        let _ = std::os::unix::fs::chown(path, Some(old.uid()), Some(old.gid()));
    }
    Ok(())
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: sha2::Sha256,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        use sha2::Digest;
        Hashing {
            inner,
            hasher: sha2::Sha256::new(),
        }
    }

    fn finish(self) -> String {
        use sha2::Digest;
        hex::encode(self.hasher.finalize())
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        let written = self.inner.write(data)?;
        self.hasher.update(&data[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
