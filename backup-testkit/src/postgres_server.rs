//! A real PostgreSQL server in a temporary directory on a free port, stopped on drop.
//!
//! ```no_run
//! let server = backup_testkit::postgres_server::PostgresServer::start();
//! server.create_database("app");
//! server.psql("app", "CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
//! let config = server.config_json("app"); // host, port, user, database
//! # drop(config);
//! ```
//!
//! `initdb`/`pg_ctl` run as the `postgres` user (through `runuser`) when the test runs as
//! root, directly otherwise. Local and loopback connections are trusted, except for roles
//! in the group `password_required` (see [`PostgresServer::create_password_role`]), which
//! must authenticate with SCRAM over TCP.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::ports::{free_port, require_binary};

/// Where Debian installs the PostgreSQL 15 server binaries.
pub const PG_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// The superuser every server is initialised with.
pub const SUPERUSER: &str = "postgres";

/// The group whose members must log in with a password over TCP.
pub const PASSWORD_GROUP: &str = "password_required";

/// A running PostgreSQL server, stopped (`pg_ctl stop -m immediate`) when dropped.
#[derive(Debug)]
pub struct PostgresServer {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
    as_root: bool,
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl PostgresServer {
    /// Initialises and starts a server on a free loopback port.
    ///
    /// # Panics
    ///
    /// When `initdb` or `pg_ctl` is missing (naming the binary and `scripts/test.sh`), or
    /// the server does not start within a minute (with its log).
    pub fn start() -> PostgresServer {
        let initdb = require_binary("initdb", &[PG_BIN_DIR]);
        let bin = initdb
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(PG_BIN_DIR));
        require_binary("pg_ctl", &[PG_BIN_DIR]);
        require_binary("psql", &[PG_BIN_DIR]);
        let as_root = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("pgtest")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for PostgreSQL: {e}"));
        if as_root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status();
            assert!(
                matches!(status, Ok(s) if s.success()),
                "cannot chown {} to the postgres user (does the user exist? scripts/test.sh installs postgresql)",
                dir.path().display()
            );
        }
        let mut server = PostgresServer {
            dir,
            port: 0,
            bin,
            as_root,
        };
        server.init_data_dir();
        let mut last_log = String::new();
        for _ in 0..3 {
            server.port = free_port();
            if server.pg_ctl_start() {
                server.psql(
                    "postgres",
                    &format!("CREATE ROLE {PASSWORD_GROUP} NOLOGIN;"),
                );
                return server;
            }
            last_log = std::fs::read_to_string(server.dir.path().join("log")).unwrap_or_default();
        }
        panic!("PostgreSQL did not start (pg_ctl start -w). Server log:\n{last_log}");
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn as_postgres(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_root {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    fn init_data_dir(&self) {
        let output = self
            .as_postgres("initdb")
            .arg("-D")
            .arg(self.data_dir())
            .args([
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .output();
        let output = must_succeed("initdb", output);
        drop(output);
        let hba = format!(
            "local all all trust\n\
             host all +{PASSWORD_GROUP} 127.0.0.1/32 scram-sha-256\n\
             host all +{PASSWORD_GROUP} ::1/128 scram-sha-256\n\
             host all all 127.0.0.1/32 trust\n\
             host all all ::1/128 trust\n"
        );
        let hba_path = self.data_dir().join("pg_hba.conf");
        std::fs::write(&hba_path, hba)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", hba_path.display()));
    }

    fn pg_ctl_start(&self) -> bool {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=60",
            self.port,
            self.dir.path().display()
        );
        self.as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-o")
            .arg(options)
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-w", "-t", "60", "start"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// The loopback address the server listens on.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A PostgreSQL client or server binary of the same installation (`pgbench`, `pg_dump`).
    pub fn binary(&self, name: &str) -> PathBuf {
        let local = self.bin.join(name);
        if local.is_file() {
            local
        } else {
            PathBuf::from(name)
        }
    }

    /// Creates a database.
    ///
    /// # Panics
    ///
    /// When psql fails.
    pub fn create_database(&self, name: &str) {
        self.psql(
            "postgres",
            &format!("CREATE DATABASE \"{}\";", name.replace('"', "\"\"")),
        );
    }

    /// Whether a database exists.
    pub fn database_exists(&self, name: &str) -> bool {
        self.psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_database WHERE datname = '{}';",
                name.replace('\'', "''")
            ),
        ) == "1"
    }

    /// Creates a login role that must use `password` over TCP; `superuser` gives it all
    /// rights.
    pub fn create_password_role(&self, name: &str, password: &str, superuser: bool) {
        let power = if superuser {
            "SUPERUSER"
        } else {
            "NOSUPERUSER"
        };
        self.psql(
            "postgres",
            &format!(
                "CREATE ROLE \"{name}\" LOGIN {power} PASSWORD '{}' IN ROLE {PASSWORD_GROUP};",
                password.replace('\'', "''")
            ),
        );
    }

    /// Runs `sql` in `db` as the superuser (stopping at the first error) and returns the
    /// trimmed, unaligned, tuples-only output.
    ///
    /// # Panics
    ///
    /// When psql fails, with its stderr.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        match self.try_psql(db, sql) {
            Ok(out) => out,
            Err(stderr) => panic!("psql in `{db}` failed: {stderr}\nSQL: {sql}"),
        }
    }

    /// Like [`psql`](Self::psql), returning stderr on failure.
    ///
    /// # Errors
    ///
    /// psql's stderr when it exits non-zero.
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        self.try_psql_as(SUPERUSER, db, sql)
    }

    /// Like [`try_psql`](Self::try_psql), connected as `user` (a role without a password:
    /// loopback connections are trusted).
    ///
    /// # Errors
    ///
    /// psql's stderr when it exits non-zero.
    pub fn try_psql_as(&self, user: &str, db: &str, sql: &str) -> Result<String, String> {
        let output = Command::new(self.binary("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.host())
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", user, "-d", db, "-c", sql])
            .output()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// Runs a client tool (`pgbench`, `pg_dump`, …) against the server as the superuser;
    /// `-h`/`-p`/`-U` are added before `args`.
    ///
    /// # Panics
    ///
    /// When it exits non-zero.
    pub fn run_tool(&self, tool: &str, args: &[&str]) -> Vec<u8> {
        let output = Command::new(self.binary(tool))
            .arg("-h")
            .arg(self.host())
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", SUPERUSER])
            .args(args)
            .output();
        must_succeed(tool, output).stdout
    }

    /// Fills `db` with `pgbench -i -s scale` data (100 000 `pgbench_accounts` rows per scale).
    pub fn pgbench_init(&self, db: &str, scale: u32) {
        let scale = scale.to_string();
        self.run_tool("pgbench", &["-i", "-q", "-s", &scale, db]);
    }

    /// The adapter config for `db` as the superuser: host, port, user, database.
    ///
    /// `binDir` names the directory of the server's own client tools when they are there
    /// (the same binaries the native-tool benchmarks call), so no wrapper script or other
    /// version on `PATH` is picked up.
    pub fn config_json(&self, db: &str) -> serde_json::Value {
        let mut config = serde_json::json!({
            "host": self.host(),
            "port": self.port,
            "user": SUPERUSER,
            "database": db,
        });
        if self.bin.join("pg_dump").is_file() {
            config["binDir"] = serde_json::json!(self.bin.display().to_string());
        }
        config
    }

    /// A checksum per table (`schema.table` → `rows:sum-of-row-hashes`), independent of
    /// physical row order. Equal maps mean equal table contents.
    pub fn table_checksums(&self, db: &str) -> BTreeMap<String, String> {
        let tables = self.psql(
            db,
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname !~ '^pg_(toast|temp)' ORDER BY 1",
        );
        let mut sums = BTreeMap::new();
        for table in tables.lines().filter(|l| !l.is_empty()) {
            let sum = self.psql(
                db,
                &format!(
                    "SELECT count(*) || ':' || coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0) \
                     FROM ONLY {table} t"
                ),
            );
            sums.insert(table.to_string(), sum);
        }
        sums
    }

    /// A plain `pg_dump --no-owner --no-privileges` of `db`, normalised for comparison:
    /// comments, blank lines and the random `\restrict` key lines removed.
    pub fn normalized_dump(&self, db: &str) -> String {
        let raw = self.run_tool("pg_dump", &["--no-owner", "--no-privileges", db]);
        String::from_utf8_lossy(&raw)
            .lines()
            .filter(|l| {
                !l.starts_with("--")
                    && !l.trim().is_empty()
                    && !l.starts_with("\\restrict")
                    && !l.starts_with("\\unrestrict")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A `psql` session holding an `ACCESS EXCLUSIVE` lock on a table until dropped; see
/// [`PostgresServer::lock_table`].
#[derive(Debug)]
pub struct HeldLock {
    child: std::process::Child,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PostgresServer {
    /// Opens a superuser session in `db` that takes `ACCESS EXCLUSIVE` on `table` (an SQL
    /// name, quoted as needed) and keeps its transaction open until the returned guard is
    /// dropped. Returns once the lock is held.
    ///
    /// # Panics
    ///
    /// When psql cannot start or the lock is not granted.
    pub fn lock_table(&self, db: &str, table: &str) -> HeldLock {
        use std::io::{BufRead, Write};
        let mut child = Command::new(self.binary("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.host())
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", SUPERUSER, "-d", db])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
        let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("psql stdin"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("psql stdout"));
        writeln!(
            stdin,
            "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT 'locked';"
        )
        .unwrap_or_else(|e| panic!("cannot write to psql: {e}"));
        stdin
            .flush()
            .unwrap_or_else(|e| panic!("cannot write to psql: {e}"));
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        assert_eq!(line.trim(), "locked", "the lock on {table} was not granted");
        // The open stdin keeps the session, and its transaction, alive.
        child.stdin = Some(stdin);
        HeldLock { child }
    }
}

fn must_succeed(what: &str, output: std::io::Result<Output>) -> Output {
    match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => panic!(
            "`{what}` failed with {}: {}{}",
            o.status,
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        ),
        Err(e) => panic!("cannot run `{what}` ({e}); run scripts/test.sh to install PostgreSQL"),
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "-t", "30", "stop"])
            .output();
    }
}
