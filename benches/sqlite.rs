//! SQLite benchmark: the adapter's export and import against `sqlite3 db ".backup file"`
//! / `sqlite3 db ".restore file"` and a plain file copy (`cp`) of the same database, with
//! the adapter's peak memory.
//!
//! `cargo bench -p backup-benches --bench sqlite`. Environment:
//! - `SQLITE_BENCH_MB` (default 200): size of the WAL-mode database (rows of text and
//!   small blobs with an index, made with a recursive CTE),
//! - `SQLITE_BENCH_RUNS` (default 3) rounds per side; the fastest run counts.
//!
//! The adapter's export copies a snapshot with the online backup API into a private
//! temporary file, runs `integrity_check` and counts every table's rows on it, then
//! streams it (here into a file) and records its sha256. Its import writes a temporary
//! file beside the target, checks sha256, header, `integrity_check` and row counts, and
//! renames it in. `.backup` and `cp` do none of these checks, and `cp` of a live database
//! is not consistent: it is the floor, not an alternative.

use std::path::{Path, PathBuf};
use std::time::Duration;

use backup_benches::{measure, print_report, time_shell, Row};
use backup_core::artifact::stream_from_reader;
use backup_core::{ArtifactDescriptor, ImportMode, ServiceTarget};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

fn service(name: &str, path: &Path) -> ServiceTarget {
    ServiceTarget::local(
        name,
        backup_sqlite::RECIPE,
        serde_json::json!({ "path": path }),
    )
}

/// Exports `db` into `out`; returns the artifact with its late metadata and the bytes.
async fn adapter_export(db: &Path, out: &Path) -> (ArtifactDescriptor, u64) {
    let recipe = backup_sqlite::recipe().expect("recipe");
    let exporter = recipe.exporter().cloned().expect("exporter");
    let source = service("bench", db);
    let mut artifact = exporter
        .artifacts(&source)
        .await
        .expect("artifacts")
        .remove(0);
    let data = exporter.export(&source, &artifact).await.expect("export");
    let mut file = tokio::fs::File::create(out).await.expect("create");
    let mut stream = data.stream;
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("export stream");
        bytes += chunk.len() as u64;
        file.write_all(&chunk).await.expect("write");
    }
    file.flush().await.expect("flush");
    if let Some(late) = data.late_metadata {
        artifact.metadata.extend(late.await.expect("late metadata"));
    }
    (artifact, bytes)
}

/// Imports `file` into the (absent) database `target`.
async fn adapter_import(artifact: &ArtifactDescriptor, file: &Path, target: &Path) {
    let recipe = backup_sqlite::recipe().expect("recipe");
    let importer = recipe.importer().cloned().expect("importer");
    let service = service("restored", target);
    let input = tokio::fs::File::open(file).await.expect("open");
    importer
        .import(
            &service,
            artifact,
            stream_from_reader(input),
            ImportMode::default(),
        )
        .await
        .expect("import");
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

/// Fastest of `runs` for the native command and ours, alternating who goes first.
fn side_by_side<T>(
    runs: u64,
    mut prepare: impl FnMut(),
    mut native: impl FnMut() -> Duration,
    mut ours: impl FnMut() -> (T, Duration, u64),
) -> (Duration, Duration, u64) {
    let (mut native_best, mut ours_best, mut peak) = (Duration::MAX, Duration::MAX, 0);
    for run in 0..runs {
        for side in 0..2 {
            prepare();
            if (side + run) % 2 == 0 {
                native_best = native_best.min(native());
            } else {
                let (_, elapsed, run_peak) = ours();
                ours_best = ours_best.min(elapsed);
                peak = peak.max(run_peak);
            }
        }
    }
    (native_best, ours_best, peak)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let megabytes = env_number("SQLITE_BENCH_MB", 200);
    let runs = env_number("SQLITE_BENCH_RUNS", 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("bench.db");
    // About 300 bytes a row: text, a small blob, an index.
    let rows = megabytes * 1024 * 1024 / 300;
    time_shell(&format!(
        "sqlite3 '{}' \"PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, \
         payload BLOB, n REAL); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows}) \
         INSERT INTO t (name, payload, n) SELECT 'row ' || x || ' ' || hex(randomblob(40)), randomblob(160), x / 3.0 FROM c; \
         CREATE INDEX t_name ON t(name);\" > /dev/null",
        db.display()
    ));
    let size = std::fs::metadata(&db).expect("db").len();
    println!(
        "database: {:.1} MiB in WAL mode, {rows} rows",
        size as f64 / 1048576.0
    );

    let ours_file = dir.path().join("ours.sqlite");
    let native_file = dir.path().join("native.sqlite");
    let (artifact, exported) = runtime.block_on(adapter_export(&db, &ours_file));
    let mut export_backup = Vec::new();
    let mut export_copy = Vec::new();
    let mut import_restore = Vec::new();
    let mut import_copy = Vec::new();

    let backup_cmd = format!(
        "sqlite3 '{}' \".backup '{}'\"",
        db.display(),
        native_file.display()
    );
    let copy_cmd = format!("cp '{}' '{}'", db.display(), native_file.display());
    for (native_cmd, rows) in [
        (&backup_cmd, &mut export_backup),
        (&copy_cmd, &mut export_copy),
    ] {
        let (native, ours, peak) = side_by_side(
            runs,
            || {
                remove_db(&native_file);
                remove_db(&ours_file);
            },
            || time_shell(native_cmd),
            || measure(|| runtime.block_on(adapter_export(&db, &ours_file))),
        );
        rows.push(Row {
            name: "export".into(),
            bytes: exported,
            ours,
            native,
            peak_kib: peak,
        });
    }

    runtime.block_on(adapter_export(&db, &ours_file));
    let target = dir.path().join("restored").join("bench.db");
    let restore_cmd = format!(
        "mkdir -p '{0}' && sqlite3 '{1}' \".restore '{2}'\"",
        dir.path().join("restored").display(),
        target.display(),
        ours_file.display()
    );
    let copy_in_cmd = format!(
        "mkdir -p '{0}' && cp '{2}' '{1}'",
        dir.path().join("restored").display(),
        target.display(),
        ours_file.display()
    );
    for (native_cmd, rows) in [
        (&restore_cmd, &mut import_restore),
        (&copy_in_cmd, &mut import_copy),
    ] {
        let (native, ours, peak) = side_by_side(
            runs,
            || remove_db(&target),
            || time_shell(native_cmd),
            || measure(|| runtime.block_on(adapter_import(&artifact, &ours_file, &target))),
        );
        rows.push(Row {
            name: "import".into(),
            bytes: exported,
            ours,
            native,
            peak_kib: peak,
        });
    }
    print_report("export vs sqlite3 .backup", ".backup s", &export_backup);
    print_report(
        "export vs cp (not consistent while writers run)",
        "cp s",
        &export_copy,
    );
    print_report("import vs sqlite3 .restore", ".restore s", &import_restore);
    print_report("import vs cp", "cp s", &import_copy);
}
