//! PostgreSQL benchmark: the adapter's export and restore against `pg_dump -Fc > file` and
//! `pg_restore`, on the same pgbench database, at two sizes, with the adapter's peak memory.
//!
//! `cargo bench -p backup-benches --bench postgres`. Environment:
//! - `PG_BENCH_SCALE` (default 7, about 100 MB of table data),
//! - `PG_BENCH_LARGE_SCALE` (default 70, about 1 GB),
//! - `PG_BENCH_QUICK=1` skips the large size.
//!
//! Each side runs three times and the fastest run counts. Native and adapter runs use
//! the same flags (`--no-owner --no-privileges`, custom
//! format, one transaction on restore) and include creating the target database.

use std::path::Path;
use std::time::Duration;

use backup_benches::{measure, print_report, time_shell, Row};
use backup_core::artifact::stream_from_reader;
use backup_core::{DataExporter, DataImporter, ImportMode, ServiceTarget};
use backup_postgres::{PostgresExporter, PostgresImporter, RECIPE};
use backup_testkit::postgres_server::PostgresServer;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

fn env_scale(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How often each side is timed; the fastest run counts (less noise from other work).
const RUNS: usize = 5;

/// Times the native tool and ours alternately, [`RUNS`] times each, with `prepare` (a
/// checkpoint, dropping restore targets) before every run, so that background work and
/// cache state fall on both sides alike. Returns the native tool's fastest time and our
/// fastest run (with the largest peak RSS seen in any of our runs).
fn side_by_side<T>(
    mut prepare: impl FnMut(),
    mut native: impl FnMut() -> Duration,
    mut ours: impl FnMut() -> (T, Duration, u64),
) -> (Duration, (T, Duration, u64)) {
    let mut native_best = Duration::MAX;
    let mut ours_best: Option<(T, Duration, u64)> = None;
    let mut peak = 0;
    for run in 0..RUNS {
        // Alternate which side goes first.
        let native_first = run % 2 == 0;
        for side in 0..2 {
            prepare();
            if (side == 0) == native_first {
                native_best = native_best.min(native());
            } else {
                let (out, elapsed, run_peak) = ours();
                peak = peak.max(run_peak);
                if ours_best
                    .as_ref()
                    .is_none_or(|(_, best, _)| elapsed < *best)
                {
                    ours_best = Some((out, elapsed, run_peak));
                }
            }
        }
    }
    match ours_best {
        Some((out, elapsed, _)) => (native_best, (out, elapsed, peak)),
        None => unreachable!("RUNS is at least one"),
    }
}

/// Exports `db` with the adapter into `path`; returns the bytes written.
async fn adapter_export(server: &PostgresServer, db: &str, path: &Path) -> u64 {
    let service = ServiceTarget::local(db, RECIPE, server.config_json(db));
    let exporter = PostgresExporter::new();
    let artifacts = exporter.artifacts(&service).await.expect("artifacts");
    let data = exporter
        .export(&service, &artifacts[0])
        .await
        .expect("export starts");
    let mut file = tokio::fs::File::create(path)
        .await
        .expect("create dump file");
    let mut stream = data.stream;
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("export stream");
        bytes += chunk.len() as u64;
        file.write_all(&chunk).await.expect("write dump file");
    }
    file.flush().await.expect("flush");
    if let Some(late) = data.late_metadata {
        late.await.expect("late metadata");
    }
    bytes
}

/// Restores `path` with the adapter into the new database `db`.
async fn adapter_restore(server: &PostgresServer, db: &str, path: &Path) {
    let service = ServiceTarget::local(db, RECIPE, server.config_json(db));
    let descriptor = backup_core::ArtifactDescriptor::new(
        format!("{db}.dump"),
        backup_core::artifact::formats::POSTGRES_CUSTOM,
        "application/octet-stream",
    );
    let importer = PostgresImporter::new();
    let mode = ImportMode::default();
    importer
        .check(&service, std::slice::from_ref(&descriptor), mode)
        .await
        .expect("check");
    let file = tokio::fs::File::open(path).await.expect("open dump");
    importer
        .import(&service, &descriptor, stream_from_reader(file), mode)
        .await
        .expect("import");
}

fn connection(server: &PostgresServer) -> String {
    format!("-h {} -p {} -U postgres", server.host(), server.port())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut scales = vec![env_scale("PG_BENCH_SCALE", 7)];
    if std::env::var("PG_BENCH_QUICK").is_ok_and(|v| v == "1") {
        println!("PG_BENCH_QUICK=1: skipping the large size");
    } else {
        scales.push(env_scale("PG_BENCH_LARGE_SCALE", 70));
    }
    let server = PostgresServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let conn = connection(&server);
    let pg_dump = server.binary("pg_dump").display().to_string();
    let pg_restore = server.binary("pg_restore").display().to_string();
    let createdb = server.binary("createdb").display().to_string();

    let mut export_rows = Vec::new();
    let mut restore_rows = Vec::new();
    let mut peaks = Vec::new();
    for scale in scales {
        let db = format!("bench_s{scale}");
        server.create_database(&db);
        server.pgbench_init(&db, scale);
        server.psql(&db, "VACUUM ANALYZE;");
        let data_mib: f64 = server
            .psql(
                &db,
                "SELECT pg_database_size(current_database()) / 1048576.0",
            )
            .parse()
            .unwrap_or(0.0);
        println!("scale {scale}: database {data_mib:.0} MiB");

        let native_file = dir.path().join(format!("{db}.native.dump"));
        let ours_file = dir.path().join(format!("{db}.ours.dump"));
        // Warm the cache once so neither side pays for the first read.
        time_shell(&format!(
            "{pg_dump} {conn} -Fc --no-owner --no-privileges {db} > /dev/null"
        ));
        let checkpoint = || {
            server.psql("postgres", "CHECKPOINT");
        };
        let (native_export, (bytes, ours_export, export_peak)) = side_by_side(
            checkpoint,
            || {
                time_shell(&format!(
                    "{pg_dump} {conn} -Fc --no-owner --no-privileges {db} > {}",
                    native_file.display()
                ))
            },
            || measure(|| runtime.block_on(adapter_export(&server, &db, &ours_file))),
        );
        export_rows.push(Row {
            name: format!("export scale {scale} ({data_mib:.0} MiB db)"),
            bytes,
            ours: ours_export,
            native: native_export,
            peak_kib: export_peak,
        });

        let native_db = format!("{db}_native");
        let ours_db = format!("{db}_ours");
        let drop_db =
            |name: &str| server.psql("postgres", &format!("DROP DATABASE IF EXISTS \"{name}\""));
        let (native_restore, ((), ours_restore, restore_peak)) = side_by_side(
            || {
                drop_db(&native_db);
                drop_db(&ours_db);
                checkpoint();
            },
            || {
                time_shell(&format!(
                    "{createdb} {conn} -T template0 {native_db} && {pg_restore} {conn} \
                     --single-transaction --exit-on-error --no-owner --no-privileges -d {native_db} {}",
                    native_file.display()
                ))
            },
            || measure(|| runtime.block_on(adapter_restore(&server, &ours_db, &ours_file))),
        );
        restore_rows.push(Row {
            name: format!("restore scale {scale}"),
            bytes,
            ours: ours_restore,
            native: native_restore,
            peak_kib: restore_peak,
        });
        let rows = server.psql(&ours_db, "SELECT count(*) FROM pgbench_accounts");
        assert_eq!(
            rows,
            (u64::from(scale) * 100_000).to_string(),
            "restored rows"
        );
        peaks.push((scale, export_peak.max(restore_peak)));
        for name in [native_db, ours_db, db] {
            server.psql("postgres", &format!("DROP DATABASE IF EXISTS \"{name}\""));
        }
        let _ = std::fs::remove_file(&native_file);
        let _ = std::fs::remove_file(&ours_file);
    }

    print_report(
        "PostgreSQL export (custom format)",
        "pg_dump s",
        &export_rows,
    );
    print_report(
        "PostgreSQL restore (custom format)",
        "pg_restore s",
        &restore_rows,
    );
    println!("\nratio = adapter time / native time; target <= 1.05");
    if let [(small_scale, small), .., (large_scale, large)] = peaks.as_slice() {
        let flat = *large <= small + small / 2 + 8 * 1024;
        println!(
            "peak RSS: scale {small_scale} {:.1} MiB, scale {large_scale} {:.1} MiB -> memory {}",
            *small as f64 / 1024.0,
            *large as f64 / 1024.0,
            if flat {
                "stayed flat"
            } else {
                "GREW with the data"
            }
        );
    }
}
