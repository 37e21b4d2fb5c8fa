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
use crate::server::{ensure_empty, server_info};

/// How long a restarted server may take to load its RDB.
const LOAD_TIMEOUT: Duration = Duration::from_secs(600);
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

/// Restores an RDB stream through `control`.
pub(crate) async fn import(
    control: &dyn RedisServerControl,
    service: &ServiceTarget,
    config: &RedisConfig,
    data: ByteStream,
    mode: ImportMode,
) -> Result<()> {
    {
        let mut conn = Connection::open(config).await?;
        let info = server_info(&mut conn).await?;
        ensure_empty(&info, &conn.endpoint().to_string(), mode.force)?;
        if info.aof_enabled {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "the target redis has appendonly on, so a restart would load its AOF, not the RDB",
            )
            .with_hint("turn appendonly off for the restore, or export with format `logical`"));
        }
    }
    let dir = control.data_dir(service).await?;
    let target = dir.join(control.rdb_file_name(service));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let temp = dir.join(format!(
        ".backup-import-{}-{nanos}.rdb.tmp",
        std::process::id()
    ));
    if let Err(e) = write_rdb(&temp, data).await {
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(e);
    }
    if let Err(e) = control.stop(service).await {
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(e.context("stopping redis for the RDB restore"));
    }
    if let Err(e) = tokio::fs::rename(&temp, &target).await {
        let _ = tokio::fs::remove_file(&temp).await;
        let restarted = control.start(service).await;
        let error = Error::io(format!("moving the RDB to {}", target.display()), e);
        return match restarted {
            Ok(()) => Err(error),
            Err(start) => Err(error.context(format!("redis could not be restarted ({start})"))),
        };
    }
    let loaded = match control.start(service).await {
        Ok(()) => wait_loaded(config).await,
        Err(e) => Err(e),
    };
    if let Err(error) = loaded {
        // The server would not load the file: put it back, empty, as it was.
        let _ = control.stop(service).await;
        let _ = tokio::fs::remove_file(&target).await;
        let restarted = control.start(service).await;
        let error = Error::new(
            ErrorKind::Integrity,
            format!("redis could not load the restored RDB: {error}"),
        )
        .with_hint("the RDB may be damaged or from a newer Redis than the target; the server was restarted empty");
        return match restarted {
            Ok(()) => Err(error),
            Err(start) => Err(error.context(format!("and redis could not be restarted ({start})"))),
        };
    }
    Ok(())
}

async fn write_rdb(path: &Path, mut data: ByteStream) -> Result<()> {
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
    header.finish()?;
    file.sync_all()
        .await
        .map_err(|e| Error::io(format!("syncing {}", path.display()), e))?;
    Ok(())
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
