//! The shared conformance fixture for the redis adapter: every service is its own real
//! redis-server; RDB restores go through a server control the fixture implements.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use backup_core::{Error, ErrorKind, Recipe, Result, ServiceTarget};
use backup_testkit::conformance::{self, ConformanceFixture, DataSize};
use backup_testkit::redis_server::RedisServer;
use common::{fill_every_type, random_bytes, TestControl};
use serde_json::json;

/// Runs the redis adapter under the conformance suite, in one export format. Its servers
/// are the ones its [`TestControl`] knows.
#[derive(Debug)]
struct RedisFixture {
    format: &'static str,
    control: TestControl,
}

impl RedisFixture {
    fn new(format: &'static str) -> Self {
        RedisFixture {
            format,
            control: TestControl::default(),
        }
    }

    fn server(&self, service: &ServiceTarget) -> Result<Arc<RedisServer>> {
        self.control.find(service)
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::new(ErrorKind::Io, format!("test helper failed: {e}")))
}

#[async_trait]
impl ConformanceFixture for RedisFixture {
    fn recipe(&self) -> Recipe {
        backup_redis::recipe_with_server_control(Arc::new(self.control.clone()))
            .unwrap_or_else(|e| panic!("the redis recipe must build: {e}"))
    }

    async fn new_service(&self, name: &str) -> Result<ServiceTarget> {
        let server = Arc::new(blocking(RedisServer::start).await?);
        self.control.add(server.clone());
        let mut config = server.config_json();
        config["format"] = json!(self.format);
        config["lowerDisklessSyncDelay"] = json!(true);
        Ok(ServiceTarget::local(name, backup_redis::RECIPE, config))
    }

    async fn fill(&self, service: &ServiceTarget, size: DataSize) -> Result<()> {
        let server = self.server(service)?;
        blocking(move || match size {
            DataSize::Empty => {}
            DataSize::Small => fill_every_type(&server),
            DataSize::Large => {
                fill_every_type(&server);
                server.cli(&["DEBUG", "POPULATE", "200000", "key", "64"]);
                for i in 0..72u64 {
                    server.command(&[b"APPEND", b"large", &random_bytes(1024 * 1024, i + 1)]);
                }
            }
        })
        .await
    }

    async fn digest(&self, service: &ServiceTarget) -> Result<String> {
        let server = self.server(service)?;
        blocking(move || server.digest()).await
    }

    async fn broken_service(&self, name: &str) -> Result<ServiceTarget> {
        // A free port with nothing listening.
        let port = backup_testkit::ports::free_port();
        Ok(ServiceTarget::local(
            name,
            backup_redis::RECIPE,
            json!({"host": "127.0.0.1", "port": port, "format": self.format}),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rdb_format_passes_the_conformance_suite() {
    conformance::run_all(&RedisFixture::new("rdb")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_logical_format_passes_the_conformance_suite() {
    conformance::run_all(&RedisFixture::new("logical")).await;
}
