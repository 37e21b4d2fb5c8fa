//! The `psql` session that holds a `REPEATABLE READ, READ ONLY` transaction, exports its
//! snapshot for `pg_dump --snapshot`, and answers the metadata queries in that snapshot.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

use backup_core::command::{CommandRunner, CommandSpec, ToolFailure};
use backup_core::{Error, ErrorKind, Result};

use crate::config::PostgresConfig;
use crate::connection::psql;
use crate::metadata::{
    parse_partition_leaves, parse_row_counts, parse_summary, row_counts_sql, summary_sql,
    DatabaseSummary,
};

/// How long the snapshot-holding session may take to answer one step.
const SESSION_TIMEOUT: Duration = Duration::from_secs(600);

/// A `psql` session holding a `REPEATABLE READ` transaction whose snapshot is exported.
pub(crate) struct SnapshotSession {
    child: Child,
    spec: CommandSpec,
    pub(crate) snapshot: String,
}

/// The pipes of a [`SnapshotSession`].
pub(crate) struct SessionIo {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl SnapshotSession {
    pub(crate) async fn open(
        runner: &Arc<dyn CommandRunner>,
        config: &PostgresConfig,
        database: &str,
    ) -> Result<(Self, SessionIo)> {
        let spec = psql(config, database);
        let mut spawned = runner.spawn(&spec).await?;
        let missing = || Error::new(ErrorKind::Io, "the psql session's pipes were not piped");
        let stdin = spawned.child.stdin.take().ok_or_else(missing)?;
        let stdout = spawned.child.stdout.take().ok_or_else(missing)?;
        let mut io = SessionIo {
            stdin,
            stdout: BufReader::new(stdout),
        };
        let mut session = SnapshotSession {
            child: spawned.child,
            spec,
            snapshot: String::new(),
        };
        let script = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\n\
                      SELECT pg_catalog.pg_export_snapshot();\n";
        match io.exchange(script).await {
            Ok(Some(id)) if is_snapshot_id(&id) => {
                session.snapshot = id;
                Ok((session, io))
            }
            Ok(_) | Err(_) => {
                drop(io);
                Err(session.failure().await)
            }
        }
    }

    /// Commits the snapshot transaction and waits for psql to exit.
    pub(crate) async fn commit(mut self, mut io: SessionIo) -> Result<()> {
        let sent = io.stdin.write_all(b"COMMIT;\n").await;
        drop(io);
        if sent.is_err() {
            return Err(self.failure().await);
        }
        match tokio::time::timeout(SESSION_TIMEOUT, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            _ => Err(self.failure().await),
        }
    }

    /// The session's error, from its exit status and stderr (its pipes must be dropped).
    pub(crate) async fn failure(&mut self) -> Error {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        let exit_code = match status {
            Ok(Ok(status)) => status.code(),
            _ => {
                let _ = self.child.kill().await;
                None
            }
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let mut buf = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), pipe.read_to_end(&mut buf)).await;
            stderr = String::from_utf8_lossy(&buf).into_owned();
        }
        let failure = ToolFailure {
            command: self.spec.display(),
            exit_code,
            stderr,
        };
        match &self.spec.on_failure {
            Some(mapper) => mapper(failure),
            None => failure.into_error(),
        }
    }
}

impl SessionIo {
    /// Sends `script` and reads one output line (`None` when psql ended).
    async fn exchange(&mut self, script: &str) -> Result<Option<String>> {
        self.stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| Error::io("writing to the psql session", e))?;
        self.stdin
            .flush()
            .await
            .map_err(|e| Error::io("writing to the psql session", e))?;
        self.read_line().await
    }

    /// Reads one line (`None` when psql ended).
    async fn read_line(&mut self) -> Result<Option<String>> {
        let mut line = String::new();
        let read = tokio::time::timeout(SESSION_TIMEOUT, self.stdout.read_line(&mut line))
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Unavailable,
                    "the PostgreSQL server did not answer the snapshot session in time",
                )
            })?
            .map_err(|e| Error::io("reading from the psql session", e))?;
        Ok((read > 0).then(|| line.trim().to_string()))
    }

    /// Runs the summary query (schema and partitions, no row counts) in the session's
    /// snapshot, inside a savepoint so that a failing query keeps the transaction, and
    /// with it the exported snapshot pg_dump may still be importing, alive. Gives the
    /// pipes back with the summary and the leaf partitions of each partitioned table, or
    /// `None` when the query failed (its error is on psql's stderr).
    pub(crate) async fn summary(mut self) -> Result<(SessionIo, Option<SnapshotSummary>)> {
        let sql = summary_sql(false);
        let line = self.query_line(&sql).await?;
        let summary = match line {
            Some(line) => Some((parse_summary(&line, false)?, parse_partition_leaves(&line)?)),
            None => None,
        };
        Ok((self, summary))
    }

    /// Counts every summarised table's rows exactly, in the session's snapshot (for
    /// dumps the stream counter does not read); `None` when the query failed.
    pub(crate) async fn exact_row_counts(&mut self) -> Result<Option<BTreeMap<String, i64>>> {
        let sql = format!(
            "SET LOCAL max_parallel_workers_per_gather = 0;\n{}",
            row_counts_sql()
        );
        match self.query_line(&sql).await? {
            Some(line) => Ok(Some(parse_row_counts(&line)?)),
            None => Ok(None),
        }
    }

    /// Runs `sql` (one query that prints one line) in a savepoint; returns its line, or
    /// `None` when it failed (the savepoint is rolled back, the transaction lives on).
    async fn query_line(&mut self, sql: &str) -> Result<Option<String>> {
        let sql = sql.replace('\n', " ");
        let script = format!(
            "\\set ON_ERROR_STOP 0\nSAVEPOINT backup_summary;\n{sql}\n\\echo {SUMMARY_END}\n"
        );
        let mut answer = None;
        match self.exchange(&script).await? {
            Some(first) if first == SUMMARY_END => {}
            Some(first) => {
                answer = Some(first);
                while let Some(line) = self.read_line().await? {
                    if line == SUMMARY_END {
                        break;
                    }
                }
            }
            None => {
                return Err(Error::new(
                    ErrorKind::ToolFailed,
                    "the psql snapshot session ended before answering a query",
                ))
            }
        }
        let undo: &[u8] = if answer.is_some() {
            b"RELEASE SAVEPOINT backup_summary;\n"
        } else {
            b"ROLLBACK TO SAVEPOINT backup_summary;\n"
        };
        self.stdin
            .write_all(undo)
            .await
            .map_err(|e| Error::io("writing to the psql session", e))?;
        Ok(answer)
    }
}

/// A summary with the leaf partitions of each partitioned table.
pub(crate) type SnapshotSummary = (DatabaseSummary, BTreeMap<String, Vec<String>>);

/// The line psql echoes after the summary query.
const SUMMARY_END: &str = "__backup_postgres_summary_end__";

fn is_snapshot_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The fallback a dump the counter cannot read takes: count(*) inside the session's
    /// exported snapshot, which sees the data as of the snapshot, not later writes.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_sql_fallback_counts_rows_in_the_dump_snapshot() {
        let server = backup_testkit::postgres_server::PostgresServer::start();
        server.create_database("fallback");
        server.psql(
            "fallback",
            "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 30); \
             CREATE TABLE p (id int) PARTITION BY RANGE (id); \
             CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10); \
             CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (10) TO (100); \
             INSERT INTO p SELECT generate_series(1, 20);",
        );
        let config = PostgresConfig::from_json(&server.config_json("fallback")).unwrap();
        let runner: Arc<dyn CommandRunner> = Arc::new(backup_core::command::LocalRunner::new());
        let (session, mut io) = SnapshotSession::open(&runner, &config, "fallback")
            .await
            .unwrap();
        server.psql("fallback", "INSERT INTO t SELECT generate_series(31, 40);");
        let rows = io.exact_row_counts().await.unwrap().unwrap();
        assert_eq!(rows["public.t"], 30, "{rows:?}");
        assert_eq!(rows["public.p"], 20, "{rows:?}");
        assert_eq!(rows["public.p2"], 11, "{rows:?}");
        session.commit(io).await.unwrap();
    }
}
