//! Building tool invocations (psql, pg_dump, pg_restore) for a config, and small queries.
//!
//! Every command carries the connection as arguments (`-h -p -U -d`) and the password only
//! in `PGPASSWORD`, and never prompts (`-w`). Failures are mapped by [`crate::errors`].

use std::sync::Arc;

use backup_core::command::{CommandRunner, CommandRunnerExt, CommandSpec};
use backup_core::{ByteStream, Result};
use bytes::Bytes;

use crate::config::PostgresConfig;
use crate::errors::map_failure;

/// The database used for server-level work (listing, creating, renaming databases).
pub(crate) const MAINTENANCE_DB: &str = "postgres";

/// Seconds libpq waits for a connection before giving up.
const CONNECT_TIMEOUT_SECS: &str = "10";

/// A tool invocation against `database` of the server in `config`.
pub(crate) fn tool(config: &PostgresConfig, program: &str, database: &str) -> CommandSpec {
    let target = format!("{}:{}", config.host, config.port);
    let password = config.password.clone();
    let mut spec = CommandSpec::new(config.program(program))
        .arg("-h")
        .arg(config.host.clone())
        .arg("-p")
        .arg(config.port.to_string())
        .arg("-U")
        .arg(config.user.clone())
        .arg("-w")
        .arg(format!("--dbname={}", conninfo_dbname(database)))
        .secret_env("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_SECS)
        .secret_env("PGAPPNAME", "backup-postgres")
        .on_failure(move |failure| map_failure(failure, &target, password.as_deref()));
    if let Some(password) = &config.password {
        spec = spec.secret_env("PGPASSWORD", password.clone());
    }
    if let Some(mode) = config.sslmode {
        spec = spec.secret_env("PGSSLMODE", mode.as_str());
    }
    spec
}

/// `dbname=...` in conninfo syntax, so a name with `=` or spaces is never misread.
fn conninfo_dbname(database: &str) -> String {
    let escaped = database.replace('\\', "\\\\").replace('\'', "\\'");
    format!("dbname='{escaped}'")
}

/// `psql` that reads a script from stdin, stops at the first error, and prints bare
/// unaligned tuples.
pub(crate) fn psql(config: &PostgresConfig, database: &str) -> CommandSpec {
    tool(config, "psql", database).args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
}

/// Runs `sql` in `database` through `runner` and returns the trimmed output.
pub(crate) async fn query(
    runner: &Arc<dyn CommandRunner>,
    config: &PostgresConfig,
    database: &str,
    sql: &str,
) -> Result<String> {
    let script: ByteStream = Box::pin(futures::stream::once(futures::future::ready(Ok(
        Bytes::from(sql.to_string()),
    ))));
    let output = runner
        .run_with_stdin(&psql(config, database), script)
        .await?;
    Ok(output.stdout_text().trim().to_string())
}

/// `name` as an SQL identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `value` as an SQL string literal, whatever `standard_conforming_strings` says: a value
/// with a backslash is written as an escape string (`E'…'`) with the backslash doubled.
pub(crate) fn literal(value: &str) -> String {
    let quoted = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_password_travels_only_in_the_environment() {
        let config = PostgresConfig::new("db", 5432, "app").with_password("pl4nted-Secret");
        let spec = tool(&config, "pg_dump", "app");
        assert!(!spec.display().contains("pl4nted-Secret"));
        assert!(!format!("{spec:?}").contains("pl4nted-Secret"));
        assert!(spec
            .env
            .iter()
            .any(|(k, v)| k == "PGPASSWORD" && v == "pl4nted-Secret"));
    }

    #[test]
    fn names_are_quoted() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("a\\'b"), "E'a\\\\''b'");
        assert_eq!(conninfo_dbname("a b'c"), "dbname='a b\\'c'");
    }
}
