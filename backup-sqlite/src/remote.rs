//! Command mode: the database is only reachable where the service's runner executes (a
//! container), so the `sqlite3` tool there makes the snapshot.
//!
//! `sqlite3 DB "PRAGMA journal_mode; VACUUM INTO '/tmp/backup-sqlite-<uuid>.sqlite'"` writes
//! a consistent snapshot in one read transaction (never restarted by concurrent writers, as
//! the CLI's stepwise `.backup` is), a few read-only queries measure the copy, `cat`
//! streams it out, and `rm -f` removes it, whether the stream finished, failed or was
//! dropped. A missing tool is reported by name with a hint.

use std::collections::BTreeMap;
use std::sync::Arc;

use backup_core::artifact::{ArtifactData, LateMetadata};
use backup_core::command::{CommandRunner, CommandRunnerExt, CommandSpec, ToolFailure};
use backup_core::{Error, ErrorKind, Result};
use futures::{SinkExt, StreamExt};
use serde_json::Value;

use crate::metadata::{keys, quote_identifier, schema_hash, DatabaseSummary};
use crate::metadata::{SCHEMA_SQL, TABLES_SQL};

/// A `sqlite3` tool reached through a runner.
#[derive(Debug, Clone)]
pub(crate) struct RemoteTool {
    pub(crate) runner: Arc<dyn CommandRunner>,
    pub(crate) program: String,
    pub(crate) temp_dir: String,
    pub(crate) database: String,
}

fn missing_tool_hint() -> &'static str {
    "the image has no `sqlite3` tool: install it in the image, set `tool` to its path, or back \
     up the data directory with the `directory` (or volume) adapter while the app is stopped"
}

impl RemoteTool {
    fn spec(&self, args: &[&str]) -> CommandSpec {
        let program = self.program.clone();
        CommandSpec::new(&self.program)
            .args(args.iter().copied())
            .on_failure(move |failure: ToolFailure| {
                // 127 is a shell's (and `podman exec`'s) "command not found".
                let not_found = failure.exit_code == Some(127)
                    || failure.stderr.contains("executable file not found")
                    || failure.stderr.contains("no such file or directory");
                if failure.stderr.contains("near \"INTO\"") {
                    return Error::new(
                        ErrorKind::UnsupportedVersion,
                        format!("`{program}` is too old for `VACUUM INTO` (SQLite 3.27 or later)"),
                    )
                    .with_hint(missing_tool_hint());
                }
                if not_found {
                    Error::new(
                        ErrorKind::Unavailable,
                        format!("`{program}` is not available where the service runs"),
                    )
                    .with_hint(missing_tool_hint())
                } else {
                    failure.into_error()
                }
            })
    }

    async fn run(&self, args: &[&str]) -> Result<String> {
        let output = self.runner.output(&self.spec(args)).await.map_err(|e| {
            if e.kind() == ErrorKind::Unavailable {
                Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "`{}` is not available where the service runs: {e}",
                        self.program
                    ),
                )
                .with_hint(missing_tool_hint())
            } else {
                e
            }
        })?;
        Ok(output.stdout_text())
    }

    /// Checks the tool runs and the database opens (read-only, so nothing is created).
    pub(crate) async fn probe(&self) -> Result<String> {
        let version = self.run(&["-version"]).await?;
        self.run(&[
            "-readonly",
            &self.database,
            "SELECT count(*) FROM sqlite_master",
        ])
        .await
        .map_err(|e| e.context(format!("opening `{}`", self.database)))?;
        Ok(version
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string())
    }

    /// Snapshots, measures and streams the database; see the module docs.
    pub(crate) async fn export(&self) -> Result<ArtifactData> {
        self.probe().await?;
        let copy = format!(
            "{}/backup-sqlite-{}.sqlite",
            self.temp_dir.trim_end_matches('/'),
            uuid_like()
        );
        let made = self.snapshot_and_measure(&copy).await;
        let summary = match made {
            Ok(summary) => summary,
            Err(error) => {
                self.remove(&copy).await;
                return Err(error);
            }
        };
        let mut cat = match self.runner.stream_stdout(&self.spec_cat(&copy)).await {
            Ok(stream) => stream,
            Err(error) => {
                self.remove(&copy).await;
                return Err(error);
            }
        };
        let (mut tx, rx) = futures::channel::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        let (meta_tx, late) = backup_core::artifact::late_metadata_channel("the sqlite export");
        let tool = self.clone();
        tokio::spawn(async move {
            use sha2::Digest;
            let mut size = 0u64;
            let mut hasher = sha2::Sha256::new();
            let mut ok = true;
            while let Some(item) = cat.next().await {
                let failed = item.is_err();
                if let Ok(chunk) = &item {
                    size += chunk.len() as u64;
                    hasher.update(chunk);
                }
                if tx.send(item).await.is_err() || failed {
                    ok = false;
                    break;
                }
            }
            drop(cat);
            tool.remove(&copy).await;
            if ok {
                let mut metadata = summary.to_metadata();
                metadata.insert(keys::SIZE.into(), Value::from(size));
                metadata.insert(
                    keys::SHA256.into(),
                    Value::from(hex::encode(hasher.finalize())),
                );
                let _ = meta_tx.send(Ok(metadata));
            }
        });
        let late: LateMetadata = late;
        Ok(ArtifactData {
            stream: Box::pin(rx),
            late_metadata: Some(late),
        })
    }

    fn spec_cat(&self, copy: &str) -> CommandSpec {
        CommandSpec::new("cat").arg(copy).read_output_in_thread()
    }

    async fn remove(&self, copy: &str) {
        let _ = self
            .runner
            .output(&CommandSpec::new("rm").args(["-f", copy]))
            .await;
    }

    async fn snapshot_and_measure(&self, copy: &str) -> Result<DatabaseSummary> {
        let quoted = copy.replace('\'', "''");
        let sql = format!("PRAGMA journal_mode; VACUUM INTO '{quoted}';");
        let journal = self.run(&["-batch", &self.database, &sql]).await?;
        let query = |sql: String| {
            let copy = copy.to_string();
            async move {
                self.run(&["-readonly", "-batch", "-noheader", "-list", &copy, &sql])
                    .await
            }
        };
        let basics = query(
            "SELECT sqlite_version(); PRAGMA page_size; PRAGMA page_count; PRAGMA user_version;"
                .to_string(),
        )
        .await?;
        let mut lines = basics.lines();
        let mut next = || lines.next().unwrap_or_default().trim().to_string();
        let (version, page_size, page_count, user_version) = (next(), next(), next(), next());
        let bad = |what: &str| {
            Error::new(
                ErrorKind::ToolFailed,
                format!("`{}` printed an unexpected {what}", self.program),
            )
        };
        let tables_hex = query(format!("SELECT hex(name) FROM ({TABLES_SQL});")).await?;
        let names: Vec<String> = tables_hex
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| decode_hex(l.trim()).ok_or_else(|| bad("table name")))
            .collect::<Result<_>>()?;
        let mut tables = BTreeMap::new();
        for name in names {
            let counted =
                query(format!("SELECT count(*) FROM {};", quote_identifier(&name))).await?;
            let rows = counted
                .trim()
                .parse::<u64>()
                .map_err(|_| bad("row count"))?;
            tables.insert(name, rows);
        }
        let schema_hex = query(format!("SELECT hex(sql) FROM ({SCHEMA_SQL});")).await?;
        let schema: Vec<String> = schema_hex
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| decode_hex(l.trim()).ok_or_else(|| bad("schema")))
            .collect::<Result<_>>()?;
        Ok(DatabaseSummary {
            sqlite_version: version,
            page_size: page_size.parse().map_err(|_| bad("page size"))?,
            page_count: page_count.parse().map_err(|_| bad("page count"))?,
            journal_mode: journal
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
            user_version: user_version.parse().map_err(|_| bad("user_version"))?,
            tables,
            schema_hash: schema_hash(&schema),
        })
    }
}

fn decode_hex(text: &str) -> Option<String> {
    hex::decode(text)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

/// A name part unique to this export: a hash of the time, process id and a counter.
fn uuid_like() -> String {
    use sha2::{Digest, Sha256};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let counter = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = format!("{nanos}-{}-{counter}", std::process::id());
    hex::encode(&Sha256::digest(seed.as_bytes())[..12])
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
