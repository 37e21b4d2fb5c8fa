//! The shared conformance suite for postgres, in both dump formats: each service is a new
//! database on one shared test server.
#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use backup_core::{Error, ErrorKind, Recipe, Result, ServiceTarget};
use backup_testkit::conformance::{self, ConformanceFixture, DataSize};
use backup_testkit::postgres_server::PostgresServer;

/// pgbench scale for [`DataSize::Large`]: about 90 MiB of table data.
const LARGE_SCALE: u32 = 6;

/// About 70 MiB of pseudo-random bytes in 1 KiB rows.
const NOISE_SQL: &str = "CREATE TABLE noise (id int PRIMARY KEY, chunk bytea); \
    INSERT INTO noise SELECT g, (SELECT string_agg(decode(md5(random()::text || g || i), 'hex'), ''::bytea) \
    FROM generate_series(1, 64) i) FROM generate_series(1, 72000) g;";

struct PostgresFixture {
    server: Arc<PostgresServer>,
    next: AtomicU32,
    /// The `format` every service's config names.
    format: &'static str,
}

impl PostgresFixture {
    fn new(format: &'static str) -> Self {
        PostgresFixture {
            server: Arc::new(PostgresServer::start()),
            next: AtomicU32::new(0),
            format,
        }
    }

    fn database_name(&self, name: &str) -> String {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        format!("{safe}_{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    fn target(&self, name: &str, database: &str) -> ServiceTarget {
        let mut config = self.server.config_json(database);
        config["format"] = serde_json::json!(self.format);
        ServiceTarget::local(name, backup_postgres::RECIPE, config)
    }

    /// Runs blocking psql work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&PostgresServer) -> T + Send + 'static,
    ) -> Result<T> {
        let server = Arc::clone(&self.server);
        tokio::task::spawn_blocking(move || work(&server))
            .await
            .map_err(|e| Error::new(ErrorKind::Io, format!("test server work failed: {e}")))
    }
}

fn database_of(service: &ServiceTarget) -> Result<String> {
    service.config["database"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "the service names no database"))
}

const SMALL_SQL: &str = "
CREATE TYPE state AS ENUM ('new', 'paid');
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, tags text[], profile jsonb);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer int REFERENCES customers, state state,
                     total numeric(10,2), payload bytea);
INSERT INTO customers (name, tags, profile)
  SELECT 'Kundin ' || g || ' ñ', ARRAY['t' || g % 5], jsonb_build_object('g', g) FROM generate_series(1, 2000) g;
INSERT INTO orders (customer, state, total, payload)
  SELECT 1 + g % 2000, (ARRAY['new','paid'])[1 + g % 2]::state, g / 7.0, decode(md5(g::text), 'hex')
  FROM generate_series(1, 20000) g;
CREATE INDEX orders_customer ON orders (customer);
SELECT lo_from_bytea(0, 'a large object');
";

#[async_trait]
impl ConformanceFixture for PostgresFixture {
    fn recipe(&self) -> Recipe {
        match backup_postgres::recipe() {
            Ok(recipe) => recipe,
            Err(e) => panic!("the postgres recipe does not build: {e}"),
        }
    }

    async fn new_service(&self, name: &str) -> Result<ServiceTarget> {
        let database = self.database_name(name);
        let db = database.clone();
        self.blocking(move |server| server.create_database(&db))
            .await?;
        Ok(self.target(name, &database))
    }

    async fn fill(&self, service: &ServiceTarget, size: DataSize) -> Result<()> {
        let database = database_of(service)?;
        self.blocking(move |server| match size {
            DataSize::Empty => {}
            DataSize::Small => {
                server.psql(&database, SMALL_SQL);
            }
            DataSize::Large => {
                server.pgbench_init(&database, LARGE_SCALE);
                // pgbench rows compress ~50:1; add incompressible bytes so the dump itself
                // is large too.
                server.psql(&database, NOISE_SQL);
            }
        })
        .await
    }

    async fn digest(&self, service: &ServiceTarget) -> Result<String> {
        let database = database_of(service)?;
        self.blocking(move |server| {
            let tables = server.table_checksums(&database);
            let objects = server.psql(
                &database,
                "SELECT coalesce(string_agg(md5(lo_get(oid)), ',' ORDER BY oid), '') FROM pg_largeobject_metadata",
            );
            format!("{tables:?} lo:{objects}")
        })
        .await
    }

    async fn broken_service(&self, name: &str) -> Result<ServiceTarget> {
        Ok(self.target(name, "database_that_does_not_exist"))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_passes_the_conformance_suite() {
    let fixture = PostgresFixture::new("custom");
    assert_eq!(fixture.recipe().slug(), backup_postgres::RECIPE);
    conformance::run_all(&fixture).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_plain_sql_dumps_pass_the_conformance_suite() {
    conformance::run_all(&PostgresFixture::new("sql")).await;
}
