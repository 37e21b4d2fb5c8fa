//! Helpers shared by the live tests: services on a real server, export to files the way a
//! bundle would (stream, then late metadata), import from files, and a many-object schema.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use backup_core::artifact::stream_from_reader;
use backup_core::backup::{write_bundle, ServiceExport};
use backup_core::bundle::BundleOptions;
use backup_core::progress::NoProgress;
use backup_core::{
    ArtifactDescriptor, DataExporter, DataImporter, Error, ImportMode, Result, ServiceTarget,
};
use backup_postgres::{PostgresExporter, PostgresImporter, RECIPE};
use backup_testkit::postgres_server::PostgresServer;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

/// A service for `db` on `server`, with extra config fields (format, scope, …) merged in.
pub(crate) fn service(
    server: &PostgresServer,
    db: &str,
    extra: serde_json::Value,
) -> ServiceTarget {
    let mut config = server.config_json(db);
    if let (Some(map), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            map.insert(k.clone(), v.clone());
        }
    }
    ServiceTarget::local(db, RECIPE, config)
}

/// One exported artifact on disk, with its descriptor (late metadata merged in).
#[derive(Debug, Clone)]
pub(crate) struct Exported {
    pub(crate) descriptor: ArtifactDescriptor,
    pub(crate) path: PathBuf,
}

/// Exports every artifact of `service` into `dir`, as a bundle writer would.
pub(crate) async fn export_all(service: &ServiceTarget, dir: &Path) -> Result<Vec<Exported>> {
    let exporter = PostgresExporter::new();
    let mut out = Vec::new();
    for mut descriptor in exporter.artifacts(service).await? {
        let data = exporter.export(service, &descriptor).await?;
        let path = dir.join(&descriptor.name);
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| Error::io("creating the dump file", e))?;
        let mut stream = data.stream;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    drop(file);
                    let _ = std::fs::remove_file(&path);
                    return Err(Error::io("export stream", e));
                }
            };
            file.write_all(&chunk)
                .await
                .map_err(|e| Error::io("writing the dump file", e))?;
        }
        file.flush().await.map_err(|e| Error::io("flushing", e))?;
        if let Some(late) = data.late_metadata {
            descriptor.metadata.extend(late.await?);
        }
        out.push(Exported { descriptor, path });
    }
    Ok(out)
}

/// Exports the one artifact of `service`.
pub(crate) async fn export_one(service: &ServiceTarget, dir: &Path) -> Result<Exported> {
    let mut all = export_all(service, dir).await?;
    assert_eq!(all.len(), 1, "expected one artifact");
    Ok(all.remove(0))
}

/// Checks, then imports one artifact from its file.
pub(crate) async fn import_file(
    service: &ServiceTarget,
    exported: &Exported,
    force: bool,
) -> Result<()> {
    import_path(service, &exported.descriptor, &exported.path, force).await
}

/// Writes a bundle at `path` holding `service`'s postgres artifacts, as `create_backup`
/// would.
pub(crate) async fn write_postgres_bundle(service: &ServiceTarget, path: &Path) -> Result<()> {
    let exports = [ServiceExport {
        target: service.clone(),
        exporter: Arc::new(PostgresExporter::new()),
    }];
    write_bundle(path, BundleOptions::default(), None, &exports, &NoProgress)
        .await
        .map(|_| ())
}

/// Checks, then imports `path` as `descriptor`.
pub(crate) async fn import_path(
    service: &ServiceTarget,
    descriptor: &ArtifactDescriptor,
    path: &Path,
    force: bool,
) -> Result<()> {
    let importer = PostgresImporter::new();
    let mode = ImportMode { force };
    importer
        .check(service, std::slice::from_ref(descriptor), mode)
        .await?;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::io("opening the dump file", e))?;
    importer
        .import(service, descriptor, stream_from_reader(file), mode)
        .await
}

/// Every kind of object the round trip must preserve: jsonb, arrays, bytea, large
/// objects, enums, domains, sequences, views, materialized views, functions, triggers,
/// partitioned tables (two levels), inheritance, contrib extensions, non-ASCII identifiers and data.
pub(crate) const MANY_OBJECTS_SQL: &str = r#"
CREATE EXTENSION hstore;
CREATE EXTENSION pg_trgm;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0);
CREATE SEQUENCE invoice_seq START 1000;
SELECT setval('invoice_seq', 4242);
CREATE TABLE "Kunden_ü" (
  id serial PRIMARY KEY,
  "näme" text NOT NULL,
  mood mood,
  attrs hstore,
  doc jsonb,
  tags text[],
  matrix int[][],
  blob bytea,
  qty positive_int,
  created timestamptz DEFAULT now()
);
INSERT INTO "Kunden_ü" ("näme", mood, attrs, doc, tags, matrix, blob, qty)
SELECT 'Zoë ' || g || ' 日本語 ✓', (ARRAY['sad','ok','happy'])[1 + g % 3]::mood,
       hstore('k', g::text), jsonb_build_object('n', g, 'nested', jsonb_build_array(g, 'x', null)),
       ARRAY['a' || g, 'b"q', NULL], ARRAY[[g, 1], [2, 3]], decode(md5(g::text) || '00ff', 'hex'), g
FROM generate_series(1, 500) g;
CREATE INDEX kunden_trgm ON "Kunden_ü" USING gin ("näme" gin_trgm_ops);
CREATE INDEX kunden_doc ON "Kunden_ü" USING gin (doc);
CREATE TABLE audit (id bigserial PRIMARY KEY, msg text);
CREATE FUNCTION log_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit (msg) VALUES ('insert ' || NEW.id); RETURN NEW; END $$;
CREATE TRIGGER kunden_audit AFTER INSERT ON "Kunden_ü" FOR EACH ROW EXECUTE FUNCTION log_insert();
INSERT INTO "Kunden_ü" ("näme", qty) VALUES ('after trigger', 1), ('second', 2);
CREATE FUNCTION add_tax(numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 1.19';
CREATE VIEW happy_kunden AS SELECT id, "näme" FROM "Kunden_ü" WHERE mood = 'happy';
CREATE MATERIALIZED VIEW mood_counts AS SELECT mood, count(*) AS n FROM "Kunden_ü" GROUP BY mood;
CREATE TABLE measurements (id int, at date NOT NULL, value numeric) PARTITION BY RANGE (at);
CREATE TABLE measurements_2024 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')
  PARTITION BY RANGE (id);
CREATE TABLE measurements_2025_low PARTITION OF measurements_2025 FOR VALUES FROM (MINVALUE) TO (300);
CREATE TABLE measurements_2025_high PARTITION OF measurements_2025 FOR VALUES FROM (300) TO (MAXVALUE);
INSERT INTO measurements SELECT g, date '2024-06-01' + g, g * 1.5 FROM generate_series(1, 400) g;
CREATE TABLE animals (name text);
CREATE TABLE cats (lives int) INHERITS (animals);
INSERT INTO animals VALUES ('generic');
INSERT INTO cats VALUES ('tom', 9), ('felix', 7);
CREATE TABLE docs (id int PRIMARY KEY, content oid);
INSERT INTO docs SELECT 1, lo_from_bytea(0, convert_to(repeat('large object data ü ', 20000), 'UTF8'));
CREATE SCHEMA "schéma";
CREATE TABLE "schéma"."tâble" (k text PRIMARY KEY, v numeric);
INSERT INTO "schéma"."tâble" VALUES ('ключ', 1.5), ('鍵', 2.5), ('emoji 🐘', 3.5);
"#;

/// Facts about a many-object database that a plain dump does not show as values.
pub(crate) fn many_object_facts(server: &PostgresServer, db: &str) -> Vec<String> {
    [
        "SELECT last_value FROM invoice_seq",
        "SELECT last_value FROM \"Kunden_ü_id_seq\"",
        "SELECT md5(lo_get(content)) FROM docs",
        "SELECT string_agg(extname || ' ' || extversion, ',' ORDER BY extname) FROM pg_extension",
        "SELECT sum(n) FROM mood_counts",
        "SELECT count(*) FROM happy_kunden",
        "SELECT add_tax(100)",
        "SELECT count(*) FROM measurements",
    ]
    .iter()
    .map(|sql| format!("{sql} => {}", server.psql(db, sql)))
    .collect()
}
