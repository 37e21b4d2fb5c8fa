//! RDB import into a server whose data directory the host controls: the file is written
//! next to the live one while the server runs, then the server is stopped, the file
//! renamed into place, and the server started and waited for until it has loaded.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use backup_core::artifact::ByteStream;
use backup_core::{Error, ErrorKind, ImportMode, Result, ServiceTarget};

use crate::config::RedisConfig;
use crate::rdb_check::RdbCheck;
use crate::resp::Connection;
use crate::server::{ensure_empty, server_info, ServerInfo};

/// How long a restarted server may take to load its RDB.
const LOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the import waits for a save the server is already running.
const SAVE_BUSY_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a restarted server may not answer at all.
const UNREACHABLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the host does so the adapter can restore an RDB file into a server it runs.
///
/// The host knows where a service's data lives and how to stop and start it (a systemd
/// unit, a container, a pod); the adapter writes the file and waits for the load.
#[async_trait]
pub trait RedisServerControl: Send + Sync + Debug + 'static {
    /// The directory the server loads its RDB from (its `dir` setting), on a file system
    /// this process can write.
    ///
    /// # Errors
    ///
    /// When the service is not one the host controls.
    async fn data_dir(&self, service: &ServiceTarget) -> Result<PathBuf>;

    /// The RDB file name the server loads (its `dbfilename`); `dump.rdb` by default.
    fn rdb_file_name(&self, _service: &ServiceTarget) -> String {
        "dump.rdb".to_string()
    }

    /// Stops the server without letting it save over the data directory's RDB later
    /// (`SHUTDOWN NOSAVE`, or a stop after which the adapter's file is renamed in).
    ///
    /// # Errors
    ///
    /// When the server cannot be stopped.
    async fn stop(&self, service: &ServiceTarget) -> Result<()>;

    /// Starts the server again on the same data directory and address.
    ///
    /// # Errors
    ///
    /// When the server does not start (for example, it cannot load the RDB).
    async fn start(&self, service: &ServiceTarget) -> Result<()>;
}

/// Refuses an RDB of `version` that the server of `info` is known not to load.
///
/// Unknown versions on either side pass: the import then relies on putting the old RDB
/// back when the server cannot load the new one.
pub(crate) fn ensure_loadable(
    info: &ServerInfo,
    version: Option<u32>,
    endpoint: &str,
) -> Result<()> {
    let (Some(version), Some(max)) = (version, info.max_rdb_version()) else {
        return Ok(());
    };
    if version <= max {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::UnsupportedVersion,
        format!(
            "the RDB has format version {version}, but redis {} at {endpoint} loads at most version {max}",
            info.version
        ),
    )
    .with_hint("restore into a Redis at least as new as the source, or export the source with format `logical`"))
}

/// Restores an RDB stream through `control`.
///
/// Nothing is stopped before the file is written, checked, and known to be a version the
/// target loads. The server's current data is saved (`SAVE`) and its RDB moved aside
/// before the new one is renamed in; if the server cannot load the new file, the old one
/// is put back and the server restarted with its old data.
pub(crate) async fn import(
    control: &dyn RedisServerControl,
    service: &ServiceTarget,
    config: &RedisConfig,
    data: ByteStream,
    mode: ImportMode,
) -> Result<()> {
    let (info, endpoint) = {
        let mut conn = Connection::open(config).await?;
        let info = server_info(&mut conn).await?;
        let endpoint = conn.endpoint().to_string();
        ensure_empty(&info, &endpoint, mode.force)?;
        if info.aof_enabled {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "the target redis has appendonly on, so a restart would load its AOF, not the RDB",
            )
            .with_hint("turn appendonly off for the restore, or export with format `logical`"));
        }
        (info, endpoint)
    };
    let dir = control.data_dir(service).await?;
    let target = dir.join(control.rdb_file_name(service));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let unique = format!("{}-{nanos}", std::process::id());
    let temp = dir.join(format!(".backup-import-{unique}.rdb.tmp"));
    let aside = dir.join(format!(".backup-import-{unique}.rdb.old"));
    let version = match write_rdb(&temp, data).await {
        Ok(version) => version,
        Err(e) => {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(e);
        }
    };
    if let Err(e) = ensure_loadable(&info, Some(version), &endpoint) {
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(e);
    }
    // What the server holds now goes to its RDB, so putting that file back brings it back.
    if let Err(e) = save(config).await {
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(e);
    }
    if let Err(e) = control.stop(service).await {
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(e.context("stopping redis for the RDB restore"));
    }
    let had_old = match tokio::fs::rename(&target, &aside).await {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            let _ = tokio::fs::remove_file(&temp).await;
            let error = Error::io(format!("moving {} aside", target.display()), e);
            return Err(restart_after(control, service, error).await);
        }
    };
    if let Err(e) = tokio::fs::rename(&temp, &target).await {
        let _ = tokio::fs::remove_file(&temp).await;
        let error = Error::io(format!("moving the RDB to {}", target.display()), e);
        let error = put_back(&aside, &target, had_old, error).await;
        return Err(restart_after(control, service, error).await);
    }
    let loaded = match control.start(service).await {
        Ok(()) => wait_loaded(config).await,
        Err(e) => Err(e),
    };
    match loaded {
        Ok(()) => {
            if had_old {
                let _ = tokio::fs::remove_file(&aside).await;
            }
            Ok(())
        }
        Err(error) => {
            // The server would not load the file: put the old one back and restart.
            let _ = control.stop(service).await;
            let _ = tokio::fs::remove_file(&target).await;
            let error = Error::new(
                ErrorKind::Integrity,
                format!("redis could not load the restored RDB: {error}"),
            )
            .with_hint("the RDB may be damaged or from a newer Redis than the target; the server was restarted with the data it held before");
            let error = put_back(&aside, &target, had_old, error).await;
            Err(restart_after(control, service, error).await)
        }
    }
}

/// Renames the old RDB back into place (when there was one); a failure is added to `error`.
async fn put_back(aside: &Path, target: &Path, had_old: bool, error: Error) -> Error {
    if !had_old {
        return error;
    }
    match tokio::fs::rename(aside, target).await {
        Ok(()) => error,
        Err(e) => error.context(format!(
            "and the old RDB could not be put back from {} ({e}): move it to {} by hand before restarting redis",
            aside.display(),
            target.display()
        )),
    }
}

/// Starts the server again after a failed restore; a failure is added to `error`.
async fn restart_after(
    control: &dyn RedisServerControl,
    service: &ServiceTarget,
    error: Error,
) -> Error {
    match control.start(service).await {
        Ok(()) => error,
        Err(start) => error.context(format!("and redis could not be restarted ({start})")),
    }
}

/// `SAVE`: writes what the server holds to its RDB file. A save already running (a
/// `BGSAVE`, or a replica's sync) is waited for, up to [`SAVE_BUSY_TIMEOUT`].
async fn save(config: &RedisConfig) -> Result<()> {
    let start = Instant::now();
    let mut conn = Connection::open(config).await?;
    loop {
        match conn.call("SAVE", &[b"SAVE"]).await {
            Ok(_) => return Ok(()),
            Err(e) if e.message().contains("in progress") && start.elapsed() < SAVE_BUSY_TIMEOUT => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                return Err(e
                    .context("saving the target's current data before the RDB restore")
                    .with_hint("the user needs the SAVE permission and the server a writable `dir`; nothing was changed"))
            }
        }
    }
}

/// Writes the stream to `path`, checking it as an RDB, and returns its version.
async fn write_rdb(path: &Path, mut data: ByteStream) -> Result<u32> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    let mut header = RdbCheck::default();
    while let Some(chunk) = data.next().await {
        let chunk = chunk.map_err(|e| Error::io("reading the RDB stream", e))?;
        header.feed(&chunk)?;
        file.write_all(&chunk)
            .await
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    let version = header.finish()?;
    file.sync_all()
        .await
        .map_err(|e| Error::io(format!("syncing {}", path.display()), e))?;
    Ok(version)
}

async fn wait_loaded(config: &RedisConfig) -> Result<()> {
    let start = Instant::now();
    loop {
        let last = match Connection::open(config).await {
            Ok(mut conn) => match server_info(&mut conn).await {
                Ok(info) if !info.loading => return Ok(()),
                Ok(_) => Error::new(ErrorKind::Unavailable, "still loading"),
                Err(e) => e,
            },
            Err(e) => e,
        };
        // Loading may take long; a server that does not answer at all has failed.
        let limit = if last.kind() == ErrorKind::Unavailable && last.message() != "still loading" {
            UNREACHABLE_TIMEOUT
        } else {
            LOAD_TIMEOUT
        };
        if start.elapsed() > limit {
            return Err(last.context("redis did not come back with the restored RDB in time"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
