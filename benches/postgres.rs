//! PostgreSQL benchmark: the adapter's export and restore against `pg_dump -Fc > file` and
//! `pg_restore` (and its plain SQL export against `pg_dump --format=plain`), on the same pgbench database, at two sizes, with the adapter's peak memory.
//!
//! `cargo bench -p backup-benches --bench postgres`. Environment:
//! - `PG_BENCH_SCALE` (default 7, about 100 MB of table data),
//! - `PG_BENCH_LARGE_SCALE` (default 70, about 1 GB),
//! - `PG_BENCH_QUICK=1` skips the large size,
//! - `PG_BENCH_RUNS` (default 5) rounds per side.
//!
//! Each side runs five times (`PG_BENCH_RUNS`), alternating, and the fastest run counts. Export is
//! compared with `pg_dump -Fc` as an operator would run it (zlib's default level) and
//! with `pg_dump -Fc -Z1` (the adapter's default level); the dump sizes are printed too.
//! The adapter and pg_dump use the same binaries (`binDir`) and flags (`--no-owner
//! --no-privileges`); restores run in one transaction and include creating the target
//! database. The adapter's export also counts every table's rows in the stream and
//! gathers the schema summary in the dump's snapshot; pg_dump does neither.

use std::path::Path;
use std::time::Duration;

use backup_benches::{measure, print_report, time_shell, Row};
use backup_core::artifact::stream_from_reader;
use backup_core::{DataExporter, DataImporter, ImportMode, ServiceTarget};
use backup_postgres::{PostgresExporter, PostgresImporter, DEFAULT_COMPRESSION_LEVEL, RECIPE};
use backup_testkit::postgres_server::PostgresServer;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

fn env_scale(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How often each side is timed unless `PG_BENCH_RUNS` says otherwise; the fastest run
/// counts (less noise from other work).
const RUNS: usize = 5;

fn runs() -> usize {
    std::env::var("PG_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(RUNS)
}

/// Times each native command and ours in turn, [`runs`] rounds, with `prepare` (a
/// checkpoint, dropping restore targets) before every run and the order rotating each
/// round, so that background work and cache state fall on every side alike. Returns each
/// native command's fastest time and our fastest run (with the largest peak RSS seen in
/// any of our runs).
fn side_by_side<T>(
    mut prepare: impl FnMut(),
    natives: &mut [&mut dyn FnMut() -> Duration],
    mut ours: impl FnMut() -> (T, Duration, u64),
) -> (Vec<Duration>, (T, Duration, u64)) {
    let mut native_best = vec![Duration::MAX; natives.len()];
    let mut ours_best: Option<(T, Duration, u64)> = None;
    let mut peak = 0;
    let sides = natives.len() + 1;
    for run in 0..runs() {
        for step in 0..sides {
            prepare();
            // Side `natives.len()` is ours; rotate who goes first.
            let side = (step + run) % sides;
            if side < natives.len() {
                native_best[side] = native_best[side].min(natives[side]());
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
        None => unreachable!("runs() is at least one"),
    }
}

/// Exports `db` with the adapter into `path` in `format` (`custom` or `sql`); returns
/// the bytes written.
async fn adapter_export(server: &PostgresServer, db: &str, format: &str, path: &Path) -> u64 {
    let mut config = server.config_json(db);
    config["format"] = serde_json::json!(format);
    let service = ServiceTarget::local(db, RECIPE, config);
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
    let mut same_level_rows = Vec::new();
    let mut sizes = Vec::new();
    let mut same_dump_restore_rows = Vec::new();
    let mut plain_rows = Vec::new();
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
        let native_z1_file = dir.path().join(format!("{db}.native-z1.dump"));
        let ours_file = dir.path().join(format!("{db}.ours.dump"));
        // Warm the cache once so neither side pays for the first read.
        time_shell(&format!(
            "{pg_dump} {conn} -Fc --no-owner --no-privileges {db} > /dev/null"
        ));
        let checkpoint = || {
            server.psql("postgres", "CHECKPOINT");
        };
        let mut native_default = || {
            time_shell(&format!(
                "{pg_dump} {conn} -Fc --no-owner --no-privileges {db} > {}",
                native_file.display()
            ))
        };
        let mut native_same_level = || {
            time_shell(&format!(
                "{pg_dump} {conn} -Fc -Z{DEFAULT_COMPRESSION_LEVEL} --no-owner --no-privileges {db} > {}",
                native_z1_file.display()
            ))
        };
        let (natives, (bytes, ours_export, export_peak)) = side_by_side(
            checkpoint,
            &mut [&mut native_default, &mut native_same_level],
            || measure(|| runtime.block_on(adapter_export(&server, &db, "custom", &ours_file))),
        );
        let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        sizes.push(format!(
            "scale {scale}: ours {:.1} MiB, pg_dump -Fc {:.1} MiB, pg_dump -Fc -Z{DEFAULT_COMPRESSION_LEVEL} {:.1} MiB",
            bytes as f64 / 1048576.0,
            size(&native_file) as f64 / 1048576.0,
            size(&native_z1_file) as f64 / 1048576.0,
        ));
        export_rows.push(Row {
            name: format!("export scale {scale} ({data_mib:.0} MiB db)"),
            bytes,
            ours: ours_export,
            native: natives[0],
            peak_kib: export_peak,
        });
        same_level_rows.push(Row {
            name: format!("export scale {scale}, same -Z{DEFAULT_COMPRESSION_LEVEL}"),
            bytes,
            ours: ours_export,
            native: natives[1],
            peak_kib: export_peak,
        });

        // Plain SQL: the adapter also counts rows in the script as it streams.
        let native_sql_file = dir.path().join(format!("{db}.native.sql"));
        let ours_sql_file = dir.path().join(format!("{db}.ours.sql"));
        let mut native_plain = || {
            time_shell(&format!(
                "{pg_dump} {conn} --format=plain --clean --if-exists --no-owner --no-privileges {db} > {}",
                native_sql_file.display()
            ))
        };
        let (native_sql, (sql_bytes, ours_sql, sql_peak)) =
            side_by_side(checkpoint, &mut [&mut native_plain], || {
                measure(|| runtime.block_on(adapter_export(&server, &db, "sql", &ours_sql_file)))
            });
        plain_rows.push(Row {
            name: format!("plain export scale {scale}"),
            bytes: sql_bytes,
            ours: ours_sql,
            native: native_sql[0],
            peak_kib: sql_peak,
        });
        let _ = std::fs::remove_file(&native_sql_file);
        let _ = std::fs::remove_file(&ours_sql_file);

        let native_db = format!("{db}_native");
        let ours_db = format!("{db}_ours");
        let drop_db =
            |name: &str| server.psql("postgres", &format!("DROP DATABASE IF EXISTS \"{name}\""));
        let native_restore_of = |file: &Path, target: &str| {
            time_shell(&format!(
                "{createdb} {conn} -T template0 {target} && {pg_restore} {conn} \
                 --single-transaction --exit-on-error --no-owner --no-privileges -d {target} {}",
                file.display()
            ))
        };
        // pg_restore of its own dump, and of the adapter's dump (same data, the adapter's
        // compression level): the second separates the dump's effect from the adapter's.
        let native_of_ours_db = format!("{db}_native_of_ours");
        let mut native_restore = || native_restore_of(&native_file, &native_db);
        let mut native_restore_of_ours = || native_restore_of(&ours_file, &native_of_ours_db);
        let (native_restore, ((), ours_restore, restore_peak)) = side_by_side(
            || {
                drop_db(&native_db);
                drop_db(&native_of_ours_db);
                drop_db(&ours_db);
                checkpoint();
            },
            &mut [&mut native_restore, &mut native_restore_of_ours],
            || {
                let timed =
                    measure(|| runtime.block_on(adapter_restore(&server, &ours_db, &ours_file)));
                // Checked after every run, outside the timing (the next run drops it).
                let rows = server.psql(&ours_db, "SELECT count(*) FROM pgbench_accounts");
                assert_eq!(
                    rows,
                    (u64::from(scale) * 100_000).to_string(),
                    "restored rows"
                );
                timed
            },
        );
        restore_rows.push(Row {
            name: format!("restore scale {scale}"),
            bytes,
            ours: ours_restore,
            native: native_restore[0],
            peak_kib: restore_peak,
        });
        same_dump_restore_rows.push(Row {
            name: format!("restore scale {scale}, same dump"),
            bytes,
            ours: ours_restore,
            native: native_restore[1],
            peak_kib: restore_peak,
        });
        peaks.push((scale, export_peak.max(restore_peak).max(sql_peak)));
        for name in [native_db, native_of_ours_db, ours_db, db] {
            server.psql("postgres", &format!("DROP DATABASE IF EXISTS \"{name}\""));
        }
        let _ = std::fs::remove_file(&native_file);
        let _ = std::fs::remove_file(&native_z1_file);
        let _ = std::fs::remove_file(&ours_file);
    }

    print_report(
        "PostgreSQL export (custom format)",
        "pg_dump s",
        &export_rows,
    );
    print_report(
        &format!("PostgreSQL export against pg_dump -Fc -Z{DEFAULT_COMPRESSION_LEVEL} (the adapter's level)"),
        "pg_dump s",
        &same_level_rows,
    );
    print_report("PostgreSQL export (plain SQL)", "pg_dump s", &plain_rows);
    println!("\ndump sizes:");
    for line in &sizes {
        println!("  {line}");
    }
    print_report(
        "PostgreSQL restore (custom format)",
        "pg_restore s",
        &restore_rows,
    );
    print_report(
        "PostgreSQL restore, pg_restore of the adapter's own dump",
        "pg_restore s",
        &same_dump_restore_rows,
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
