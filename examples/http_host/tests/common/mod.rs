//! Shared helpers: a workspace of real services in a backupctl configuration, the built
//! server started on a free port, an authenticated HTTP client, an SSE reader.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use backup_testkit::postgres_server::PostgresServer;
use backup_testkit::redis_server::RedisServer;
use backup_testkit::toml_text::{path_with_postgres, toml_inline};
use futures::StreamExt;
use serde_json::Value;

/// The API token the tests start the server with; it must never appear in a response.
pub const TOKEN: &str = "test-token-9c2e7d41-never-shown";
/// The Redis password; it must never appear in a response either.
pub const REDIS_PASSWORD: &str = "planted-redis-secret-77ab";
const REDIS_PASSWORD_ENV: &str = "HTTP_HOST_TEST_REDIS_PASSWORD";

/// A temporary directory with a configuration: a `files` directory service, PostgreSQL
/// (`db`, a table of 500 rows) and Redis (`cache`) when asked.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub files: PathBuf,
    pub pg: Option<PostgresServer>,
    pub redis: Option<RedisServer>,
}

impl Workspace {
    pub fn new(postgres: bool, redis: bool) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files");
        std::fs::create_dir_all(&files).unwrap();
        std::fs::write(files.join("a.txt"), "alpha\n").unwrap();
        let mut text = format!(
            "[workspace]\nslug = \"shop\"\n\n[repository]\npath = \"{}\"\n\n\
             [services.files]\nrecipe = \"directory\"\nconfig = {{ path = \"{}\" }}\n\n",
            dir.path().join("repo").display(),
            files.display(),
        );
        let pg = postgres.then(|| {
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
        let redis = redis.then(|| {
            let redis = RedisServer::builder().password(REDIS_PASSWORD).start();
            redis.cli(&["SET", "greeting", "hello"]);
            text.push_str(&format!(
                "[services.cache]\nrecipe = \"redis\"\nconfig = {{ host = \"127.0.0.1\", port = {}, \
                 password = {{ env = \"{REDIS_PASSWORD_ENV}\" }} }}\n\n",
                redis.port()
            ));
            redis
        });
        let config = dir.path().join("backupctl.toml");
        std::fs::write(&config, text).unwrap();
        Workspace {
            dir,
            config,
            files,
            pg,
            redis,
        }
    }

    /// Starts the server over this workspace with extra flags.
    pub fn serve(&self, flags: &[&str]) -> Server {
        Server::start(&self.config, flags)
    }
}

/// The running example; killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub client: reqwest::Client,
}

impl Server {
    pub fn start(config: &Path, flags: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_http-host"))
            .arg("--config")
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .args(flags)
            .env("HTTP_HOST_TOKEN", TOKEN)
            .env(REDIS_PASSWORD_ENV, REDIS_PASSWORD)
            .env("PATH", path_with_postgres())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("server did not start: {line:?}"))
            .to_string();
        Server {
            child,
            base,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the bearer token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("authorization", format!("Bearer {TOKEN}"))
    }

    /// Sends a request with a JSON body (or none); returns the status and JSON body.
    pub async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert!(!text.contains(TOKEN), "the token leaked into a response");
        assert!(
            !text.contains(REDIS_PASSWORD),
            "a secret leaked into a response"
        );
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.json(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.json(reqwest::Method::POST, path, Some(body)).await
    }

    /// The server process's peak resident memory (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kb * 1024
    }

    /// Reads a job's SSE stream to its end: `(id, event, data)` of every event, and how
    /// many heartbeat comments came.
    pub async fn sse(&self, job: &str, last_event_id: Option<u64>) -> Vec<(u64, String, Value)> {
        let mut req = self.request(reqwest::Method::GET, &format!("/api/jobs/{job}/events"));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let mut body = resp.bytes_stream();
        let mut buffer = String::new();
        let mut events = Vec::new();
        while let Some(chunk) = body.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let (mut id, mut name, mut data) = (0, String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().unwrap();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !name.is_empty() {
                    events.push((id, name, serde_json::from_str(&data).unwrap()));
                }
            }
        }
        events
    }

    /// Uploads `data` as the multipart field `file` to the service's `import-data`
    /// (streamed: the body is produced as it is sent); the status and JSON body.
    pub async fn import_data(
        &self,
        service: &str,
        query: &str,
        content_type: &str,
        data: impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
    ) -> (u16, Value) {
        let boundary = "----http-host-test-boundary";
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"data\"\r\n\
             Content-Type: {content_type}\r\n\r\n"
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        let body = futures::stream::iter([Ok(bytes::Bytes::from(head))])
            .chain(data)
            .chain(futures::stream::iter([Ok(bytes::Bytes::from(tail))]));
        let path = format!("/api/workspaces/shop/deployments/{service}/import-data?{query}");
        let resp = self
            .request(reqwest::Method::POST, &path)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A job's SSE stream as raw text, to its end (heartbeat comments included).
    pub async fn sse_text(&self, job: &str) -> String {
        let resp = self
            .request(reqwest::Method::GET, &format!("/api/jobs/{job}/events"))
            .send()
            .await
            .unwrap();
        resp.text().await.unwrap()
    }

    /// Starts a job (expects 202) and reads its events to the final one; returns the
    /// events.
    pub async fn run_job(&self, path: &str, body: &Value) -> Vec<(u64, String, Value)> {
        let (status, started) = self.post(path, body).await;
        assert_eq!(status, 202, "{started}");
        let job = started["job"].as_str().unwrap().to_string();
        self.sse(&job, None).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The final event's envelope (asserting there is exactly one `result`, last).
pub fn final_result(events: &[(u64, String, Value)]) -> &Value {
    let (_, name, data) = events.last().expect("no events");
    assert_eq!(name, "result");
    assert_eq!(events.iter().filter(|e| e.1 == "result").count(), 1);
    data
}
