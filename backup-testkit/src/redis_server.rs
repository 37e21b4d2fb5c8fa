//! A real redis-server in a temporary directory on a free port, killed on drop.
//!
//! ```no_run
//! let server = backup_testkit::redis_server::RedisServer::start();
//! server.cli(&["SET", "k", "v"]);
//! let digest = server.digest();
//! # drop(digest);
//! ```

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ports::{free_port, require_binary};

/// How long a server may take to answer PING after a start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Options for [`RedisServer::builder`].
#[derive(Debug, Clone, Default)]
pub struct RedisServerBuilder {
    password: Option<String>,
    args: Vec<String>,
}

impl RedisServerBuilder {
    /// Requires this password (`requirepass`).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Defines an ACL user, one rule per item, e.g.
    /// `&["backup", "on", ">pw", "~*", "&*", "+@all", "-sync", "-psync"]`.
    pub fn acl_user(mut self, rules: &[&str]) -> Self {
        self.args.push("--user".to_string());
        self.args.extend(rules.iter().map(|r| r.to_string()));
        self
    }

    /// Adds a `--name value` server option.
    pub fn arg(mut self, name: &str, value: &str) -> Self {
        self.args.push(format!("--{name}"));
        self.args.push(value.to_string());
        self
    }

    /// Starts the server.
    ///
    /// # Panics
    ///
    /// When `redis-server` is missing (naming it and `scripts/test.sh`) or does not answer
    /// PING within 30 s.
    pub fn start(self) -> RedisServer {
        let binary = require_binary("redis-server", &[]);
        require_binary("redis-cli", &[]);
        let dir = tempfile::Builder::new()
            .prefix("redis-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for redis-server: {e}"));
        let server = RedisServer {
            binary,
            dir,
            port: free_port(),
            password: self.password,
            args: self.args,
            child: Mutex::new(None),
        };
        server.start_again();
        server
    }
}

/// A redis-server owned by one test.
#[derive(Debug)]
pub struct RedisServer {
    binary: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    password: Option<String>,
    args: Vec<String>,
    child: Mutex<Option<Child>>,
}

impl RedisServer {
    /// Starts a server with no password.
    ///
    /// # Panics
    ///
    /// See [`RedisServerBuilder::start`].
    pub fn start() -> RedisServer {
        Self::builder().start()
    }

    /// Options for a server (password, extra settings).
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its data directory (`dir`); the RDB file is `dump.rdb` in it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The password it requires, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// A `redis` recipe config reaching it: host, port and password.
    pub fn config_json(&self) -> serde_json::Value {
        let mut config = serde_json::json!({"host": "127.0.0.1", "port": self.port});
        if let Some(password) = &self.password {
            config["password"] = serde_json::Value::from(password.clone());
        }
        config
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        let mut guard = self.lock();
        match guard.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the server (SIGKILL: nothing is saved) and waits for it to exit.
    pub fn stop(&self) {
        if let Some(mut child) = self.lock().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same directory and port, and waits until it
    /// answers PING and has loaded its data.
    ///
    /// # Panics
    ///
    /// When it cannot start or exits before answering; the message has its log's tail.
    pub fn start_again(&self) {
        if let Err(message) = self.try_start() {
            panic!("{message}");
        }
    }

    /// Like [`start_again`](Self::start_again), but returns why it failed (for example,
    /// the server could not load its RDB) instead of panicking.
    ///
    /// # Errors
    ///
    /// A message with the tail of the server's log.
    pub fn try_start(&self) -> Result<(), String> {
        self.stop();
        let log = self.dir().join("redis.log");
        let mut command = Command::new(&self.binary);
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir())
            .args(["--daemonize", "no", "--enable-debug-command", "yes"])
            .arg("--logfile")
            .arg(&log)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = &self.password {
            command.arg("--requirepass").arg(password);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start redis-server: {e} (run scripts/test.sh)"))?;
        *self.lock() = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if !self.is_running() {
                self.stop();
                return Err(format!(
                    "redis-server exited while starting; log tail:\n{}",
                    self.log_tail()
                ));
            }
            if let Ok(reply) = self.try_command(&[b"PING"]) {
                if reply.starts_with(b"+PONG") {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "redis-server did not answer PING within 30 s; log tail:\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        match self.child.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir().join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Runs `redis-cli` with `args` against the server and returns its trimmed output.
    ///
    /// # Panics
    ///
    /// When redis-cli cannot run or exits non-zero.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new("redis-cli");
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(password) = &self.password {
            command.env("REDISCLI_AUTH", password);
        }
        let output = command
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli (run scripts/test.sh): {e}"));
        assert!(
            output.status.success(),
            "redis-cli {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// `DEBUG DIGEST`: one hash of the whole dataset.
    pub fn digest(&self) -> String {
        self.cli(&["DEBUG", "DIGEST"])
    }

    /// Keys over all databases (from `INFO keyspace`).
    pub fn total_keys(&self) -> u64 {
        self.cli(&["INFO", "keyspace"])
            .lines()
            .filter(|line| line.starts_with("db"))
            .filter_map(|line| {
                line.split([':', ','])
                    .find_map(|kv| kv.strip_prefix("keys="))
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
            .sum()
    }

    /// Sends one binary-safe command (authenticating first when a password is set) and
    /// returns the raw reply bytes.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached or replies with an error.
    pub fn command(&self, args: &[&[u8]]) -> Vec<u8> {
        match self.try_command(args) {
            Ok(reply) if !reply.starts_with(b"-") => reply,
            Ok(reply) => panic!("redis replied {}", String::from_utf8_lossy(&reply)),
            Err(e) => panic!("cannot reach redis-server on port {}: {e}", self.port),
        }
    }

    fn try_command(&self, args: &[&[u8]]) -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut request = Vec::new();
        let mut replies = 1;
        if let Some(password) = &self.password {
            encode(&mut request, &[b"AUTH", password.as_bytes()]);
            replies += 1;
        }
        encode(&mut request, args);
        stream.write_all(&request)?;
        let mut reader = std::io::BufReader::new(stream);
        let mut last = Vec::new();
        for _ in 0..replies {
            last = read_raw_reply(&mut reader)?;
            if last.starts_with(b"-") {
                return Ok(last);
            }
        }
        Ok(last)
    }
}

fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Reads one reply and returns its raw bytes (nested arrays included).
fn read_raw_reply(reader: &mut impl std::io::BufRead) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let number = || -> i64 {
        String::from_utf8_lossy(&line[1..])
            .trim()
            .parse()
            .unwrap_or(-1)
    };
    let mut out = line.clone();
    match line.first() {
        Some(b'$') if number() >= 0 => {
            let mut body = vec![0u8; number() as usize + 2];
            reader.read_exact(&mut body)?;
            out.extend_from_slice(&body);
        }
        Some(b'*') if number() >= 0 => {
            for _ in 0..number() {
                out.extend_from_slice(&read_raw_reply(reader)?);
            }
        }
        _ => {}
    }
    Ok(out)
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
