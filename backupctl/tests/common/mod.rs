//! Shared helpers: a workspace of real servers, a configuration file, running the built
//! binary.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use backup_testkit::postgres_server::PostgresServer;
use backup_testkit::redis_server::RedisServer;
use backup_testkit::toml_text::{path_with_postgres, toml_inline};
use serde_json::Value;

/// The Redis password the tests plant; it must never appear in any output.
pub const REDIS_PASSWORD: &str = "planted-redis-secret-4f1c";
/// The environment variable the configuration reads it from.
pub const REDIS_PASSWORD_ENV: &str = "BACKUPCTL_TEST_REDIS_PASSWORD";

/// A temporary directory with a configuration file and a `files` directory service;
/// PostgreSQL and Redis only when asked.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub files: PathBuf,
    pub repo: PathBuf,
    pub pg: Option<PostgresServer>,
    pub redis: Option<RedisServer>,
    pub env: Vec<(String, String)>,
}

/// What the configuration holds besides the directory service.
#[derive(Default)]
pub struct Options {
    pub postgres: bool,
    pub redis: bool,
    /// Extra TOML appended to the file.
    pub extra: String,
    /// Extra keys of the `[services.files]` section (e.g. stop / start commands).
    pub files_section: String,
}

impl Workspace {
    pub fn new(options: Options) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files");
        std::fs::create_dir_all(files.join("sub")).unwrap();
        std::fs::write(files.join("a.txt"), "alpha\n").unwrap();
        std::fs::write(files.join("sub/b.bin"), vec![7u8; 100_000]).unwrap();
        let repo = dir.path().join("repo");
        let mut text = format!(
            "[workspace]\nslug = \"test\"\n\n[repository]\npath = \"{}\"\n\n\
             [services.files]\nrecipe = \"directory\"\nconfig = {{ path = \"{}\" }}\n{}\n",
            repo.display(),
            files.display(),
            options.files_section
        );
        let pg = options.postgres.then(|| {
            let pg = PostgresServer::start();
            pg.create_database("shop");
            pg.psql(
                "shop",
                "CREATE TABLE items (id int primary key, name text); \
                 INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g;",
            );
            text.push_str(&format!(
                "[services.db]\nrecipe = \"postgres\"\nconfig = {}\n\n",
                toml_inline(&pg.config_json("shop"))
            ));
            pg
        });
        let redis = options.redis.then(|| {
            let redis = RedisServer::builder().password(REDIS_PASSWORD).start();
            redis.cli(&["SET", "greeting", "hello"]);
            redis.cli(&["HSET", "h", "f", "v"]);
            text.push_str(&format!(
                "[services.cache]\nrecipe = \"redis\"\nconfig = {{ host = \"127.0.0.1\", port = {}, \
                 password = {{ env = \"{REDIS_PASSWORD_ENV}\" }} }}\n\n",
                redis.port()
            ));
            redis
        });
        text.push_str(&options.extra);
        let config = dir.path().join("backupctl.toml");
        std::fs::write(&config, text).unwrap();
        Workspace {
            dir,
            config,
            files,
            repo,
            pg,
            redis,
            env: vec![(REDIS_PASSWORD_ENV.into(), REDIS_PASSWORD.into())],
        }
    }

    /// The binary with this workspace's configuration and secrets in its environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_backupctl"));
        cmd.args(args)
            .env("BACKUPCTL_CONFIG", &self.config)
            .env("PATH", path_with_postgres())
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs the binary to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains(REDIS_PASSWORD), "a secret leaked: {all}");
        out
    }

    /// Runs with `--json`, expects exit code `code`, returns the parsed envelope.
    pub fn json(&self, args: &[&str], code: i32) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert_eq!(
            out.status.code(),
            Some(code),
            "backupctl {args:?}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let value: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout of {args:?} is not one JSON document ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        assert_eq!(value["ok"], Value::Bool(code == 0), "{value}");
        value
    }

    /// `--json` success: the `result`.
    pub fn ok(&self, args: &[&str]) -> Value {
        self.json(args, 0)["result"].clone()
    }

    /// The digest of the directory service's tree.
    pub fn files_digest(&self) -> String {
        backup_testkit::tree::tree_digest(&self.files)
    }

    pub fn lock_files(&self) -> Vec<PathBuf> {
        list_dir(&self.repo.join("locks"))
    }
}

pub fn list_dir(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
