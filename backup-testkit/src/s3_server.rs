//! Real S3-compatible servers on a free loopback port, killed on drop: `moto_server`
//! (no signature checks) and `s3s-fs` (checks SigV4 signatures).
//!
//! ```no_run
//! let server = backup_testkit::s3_server::S3Server::moto();
//! server.create_bucket("b");
//! let _ = server.endpoint();
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::{free_port, require_binary};

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Flavor {
    /// `moto_server` (PyPI `moto[server]`).
    Moto,
    /// `s3s-fs` (`cargo install s3s-fs@0.14.1 --features binary --locked`).
    S3sFs,
}

/// An S3 server owned by one test.
#[derive(Debug)]
pub struct S3Server {
    flavor: S3Flavor,
    port: u16,
    child: Child,
    root: tempfile::TempDir,
}

/// Access key the servers accept.
pub const ACCESS_KEY: &str = "testkey";
/// Secret key the servers accept (s3s-fs checks signatures with it).
pub const SECRET_KEY: &str = "testsecret";

impl S3Server {
    /// Starts `moto_server -H 127.0.0.1 -p PORT`.
    ///
    /// # Panics
    ///
    /// When `moto_server` is missing (naming it and `scripts/test.sh`) or does not accept
    /// connections within 60 s.
    pub fn moto() -> S3Server {
        let binary = require_binary("moto_server", &[]);
        let port = free_port();
        let mut cmd = Command::new(binary);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        Self::spawn(S3Flavor::Moto, port, cmd)
    }

    /// Starts `s3s-fs` over a temporary directory (signatures checked with
    /// [`ACCESS_KEY`] / [`SECRET_KEY`]).
    ///
    /// # Panics
    ///
    /// When `s3s-fs` is missing or does not accept connections within 60 s.
    pub fn s3s_fs() -> S3Server {
        let home_bin = std::env::var("HOME")
            .map(|h| format!("{h}/.cargo/bin"))
            .unwrap_or_default();
        let binary = require_binary("s3s-fs", &[&home_bin]);
        let port = free_port();
        let mut cmd = Command::new(binary);
        cmd.args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            ACCESS_KEY,
            "--secret-key",
            SECRET_KEY,
        ]);
        Self::spawn(S3Flavor::S3sFs, port, cmd)
    }

    fn spawn(flavor: S3Flavor, port: u16, mut cmd: Command) -> S3Server {
        let root = tempfile::Builder::new()
            .prefix("s3-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for the S3 server: {e}"));
        if flavor == S3Flavor::S3sFs {
            cmd.arg(root.path());
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {flavor:?} S3 server: {e}"));
        let mut server = S3Server {
            flavor,
            port,
            child,
            root,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("the {flavor:?} S3 server exited at start: {status}");
            }
            if Instant::now() > deadline {
                panic!("the {flavor:?} S3 server did not accept connections within 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Which server this is.
    pub fn flavor(&self) -> S3Flavor {
        self.flavor
    }

    /// The data directory (s3s-fs keeps one directory per bucket there).
    pub fn root(&self) -> PathBuf {
        self.root.path().to_path_buf()
    }

    /// Creates a bucket.
    ///
    /// # Panics
    ///
    /// When the server refuses.
    pub fn create_bucket(&self, bucket: &str) {
        match self.flavor {
            S3Flavor::S3sFs => std::fs::create_dir_all(self.root.path().join(bucket))
                .unwrap_or_else(|e| panic!("cannot create bucket directory {bucket}: {e}")),
            S3Flavor::Moto => {
                let mut stream = TcpStream::connect(("127.0.0.1", self.port))
                    .unwrap_or_else(|e| panic!("cannot reach moto: {e}"));
                let request = format!(
                    "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\
                     Connection: close\r\n\r\n",
                    self.port
                );
                stream
                    .write_all(request.as_bytes())
                    .unwrap_or_else(|e| panic!("cannot send CreateBucket: {e}"));
                let mut response = String::new();
                let _ = stream.read_to_string(&mut response);
                assert!(
                    response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
                    "CreateBucket {bucket} refused: {response}"
                );
            }
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
