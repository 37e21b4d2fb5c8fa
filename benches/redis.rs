//! Redis benchmark: our RDB export against `redis-cli --rdb` (with and without the lowered
//! `repl-diskless-sync-delay`), and our logical import against `redis-cli --pipe` fed the
//! same `RESTORE` commands. One dataset, made with `DEBUG POPULATE`.
//!
//! Size: `REDIS_BENCH_KEYS` (default 1 000 000) keys of `REDIS_BENCH_VALUE_BYTES`
//! (default 200) bytes; the import sides run `REDIS_BENCH_RUNS` (default 3) rounds each,
//! alternating, into a flushed target, and the fastest counts. Run:
//! `cargo bench -p backup-benches --bench redis`.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::Duration;

use backup_benches::{measure, print_report, Row};
use backup_core::{DataExporter, DataImporter, ImportMode, ServiceTarget};
use backup_redis::{RedisExporter, RedisImporter};
use backup_testkit::redis_server::RedisServer;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn service(server: &RedisServer, extra: serde_json::Value) -> ServiceTarget {
    let mut config = server.config_json();
    if let (Some(base), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    ServiceTarget::local("bench", backup_redis::RECIPE, config)
}

/// Exports `service` into `path`; returns the bytes written.
async fn export_to_file(service: &ServiceTarget, path: &Path) -> u64 {
    let exporter = RedisExporter;
    let artifacts = exporter
        .artifacts(service)
        .await
        .unwrap_or_else(|e| panic!("artifacts: {e}"));
    let data = exporter
        .export(service, &artifacts[0])
        .await
        .unwrap_or_else(|e| panic!("export: {e}"));
    let mut file = tokio::io::BufWriter::new(
        tokio::fs::File::create(path)
            .await
            .unwrap_or_else(|e| panic!("create {}: {e}", path.display())),
    );
    let mut stream = data.stream;
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap_or_else(|e| panic!("export stream: {e}"));
        total += chunk.len() as u64;
        file.write_all(&chunk)
            .await
            .unwrap_or_else(|e| panic!("write: {e}"));
    }
    file.flush().await.unwrap_or_else(|e| panic!("flush: {e}"));
    total
}

async fn import_file(service: &ServiceTarget, path: &Path) {
    let artifact = backup_core::ArtifactDescriptor::new(
        backup_redis::LOGICAL_ARTIFACT,
        backup_core::artifact::formats::REDIS_DUMP_RESTORE,
        "application/octet-stream",
    );
    let file = tokio::fs::File::open(path)
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let stream = backup_core::artifact::stream_from_reader(file);
    RedisImporter::new()
        .import(service, &artifact, stream, ImportMode::default())
        .await
        .unwrap_or_else(|e| panic!("import: {e}"));
}

/// Turns a logical export (format in the backup-redis docs) into a RESP file of
/// `SELECT` / `RESTORE … REPLACE [ABSTTL]` commands for `redis-cli --pipe`.
fn logical_to_resp(input: &Path, output: &Path) {
    let mut r = BufReader::with_capacity(1 << 20, std::fs::File::open(input).expect("open export"));
    let mut w =
        BufWriter::with_capacity(1 << 20, std::fs::File::create(output).expect("create resp"));
    let mut buf8 = [0u8; 8];
    r.read_exact(&mut buf8).expect("magic");
    assert_eq!(&buf8, b"RDSLOGI\n", "not a logical export");
    let mut buf4 = [0u8; 4];
    r.read_exact(&mut buf4).expect("version");
    let bulk = |w: &mut BufWriter<std::fs::File>, arg: &[u8]| {
        write!(w, "${}\r\n", arg.len()).expect("write");
        w.write_all(arg).expect("write");
        w.write_all(b"\r\n").expect("write");
    };
    loop {
        let mut tag = [0u8; 1];
        r.read_exact(&mut tag).expect("tag");
        match tag[0] {
            b'D' => {
                r.read_exact(&mut buf4).expect("db");
                let db = u32::from_be_bytes(buf4).to_string();
                w.write_all(b"*2\r\n").expect("write");
                bulk(&mut w, b"SELECT");
                bulk(&mut w, db.as_bytes());
            }
            b'K' => {
                r.read_exact(&mut buf4).expect("key len");
                let mut key = vec![0u8; u32::from_be_bytes(buf4) as usize];
                r.read_exact(&mut key).expect("key");
                r.read_exact(&mut buf8).expect("expiry");
                let expire = i64::from_be_bytes(buf8);
                r.read_exact(&mut buf8).expect("payload len");
                let mut payload = vec![0u8; u64::from_be_bytes(buf8) as usize];
                r.read_exact(&mut payload).expect("payload");
                let absolute = expire >= 0;
                w.write_all(if absolute { b"*6\r\n" } else { b"*5\r\n" })
                    .expect("write");
                bulk(&mut w, b"RESTORE");
                bulk(&mut w, &key);
                bulk(&mut w, expire.max(0).to_string().as_bytes());
                bulk(&mut w, &payload);
                bulk(&mut w, b"REPLACE");
                if absolute {
                    bulk(&mut w, b"ABSTTL");
                }
            }
            b'E' => break,
            other => panic!("unknown record {other}"),
        }
    }
    w.flush().expect("flush");
}

fn set_delay(server: &RedisServer, seconds: &str) {
    server.cli(&["CONFIG", "SET", "repl-diskless-sync-delay", seconds]);
}

fn main() {
    let keys = env_or("REDIS_BENCH_KEYS", 1_000_000);
    let value_bytes = env_or("REDIS_BENCH_VALUE_BYTES", 200);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let work = tempfile::tempdir().expect("temp dir");
    let source = RedisServer::start();
    let target = RedisServer::start();
    source.cli(&[
        "DEBUG",
        "POPULATE",
        &keys.to_string(),
        "key",
        &value_bytes.to_string(),
    ]);
    let used = source
        .cli(&["INFO", "memory"])
        .lines()
        .find_map(|l| l.strip_prefix("used_memory_human:").map(str::to_string))
        .unwrap_or_default();
    println!("dataset: {keys} keys of {value_bytes} bytes (server memory {used})");

    let port = source.port().to_string();
    let native_rdb = work.path().join("native.rdb");
    let native_cmd = format!(
        "redis-cli -p {port} --rdb {} >/dev/null 2>&1",
        native_rdb.display()
    );
    let ours_rdb = work.path().join("ours.rdb");

    // RDB export with the server's default 5 s diskless delay, both sides.
    set_delay(&source, "5");
    let native_default = backup_benches::time_shell(&native_cmd);
    let (size, ours_default, peak_default) = measure(|| {
        runtime.block_on(export_to_file(
            &service(&source, serde_json::json!({"format": "rdb"})),
            &ours_rdb,
        ))
    });
    // Ours with the opt-in; the native tool with the delay set to 0 by hand.
    let (_, ours_lowered, peak_lowered) = measure(|| {
        runtime.block_on(export_to_file(
            &service(
                &source,
                serde_json::json!({"format": "rdb", "lowerDisklessSyncDelay": true}),
            ),
            &ours_rdb,
        ))
    });
    assert_eq!(
        source
            .cli(&["CONFIG", "GET", "repl-diskless-sync-delay"])
            .lines()
            .nth(1),
        Some("5"),
        "the delay must be put back"
    );
    set_delay(&source, "0");
    let native_zero = backup_benches::time_shell(&native_cmd);
    set_delay(&source, "5");
    let native_size = std::fs::metadata(&native_rdb).map(|m| m.len()).unwrap_or(0);
    println!("RDB sizes: ours {size} bytes, redis-cli {native_size} bytes");

    print_report(
        "redis RDB export (vs redis-cli --rdb)",
        "redis-cli",
        &[
            Row {
                name: "default delay (5 s) both".into(),
                bytes: size,
                ours: ours_default,
                native: native_default,
                peak_kib: peak_default,
            },
            Row {
                name: "lowerDisklessSyncDelay vs delay 0".into(),
                bytes: size,
                ours: ours_lowered,
                native: native_zero,
                peak_kib: peak_lowered,
            },
            Row {
                name: "ours lowered vs native default".into(),
                bytes: size,
                ours: ours_lowered,
                native: native_default,
                peak_kib: peak_lowered,
            },
        ],
    );

    // Logical export, then import of the same file: ours vs redis-cli --pipe.
    let logical = work.path().join("export.redis-logical");
    let (logical_size, logical_export, peak_logical_export) = measure(|| {
        runtime.block_on(export_to_file(
            &service(&source, serde_json::json!({"format": "logical"})),
            &logical,
        ))
    });
    let resp = work.path().join("restore.resp");
    logical_to_resp(&logical, &resp);
    let target_service = service(&target, serde_json::json!({}));
    // Both sides import into a flushed target, their order swapped every round (the side
    // that runs on a fresh server pays for growing its memory), fastest run counts.
    let runs = env_or("REDIS_BENCH_RUNS", 3).max(1);
    let (mut ours_import, mut native_import) = (Duration::MAX, Duration::MAX);
    let (mut peak_import, mut ours_digest, mut native_digest) = (0, String::new(), String::new());
    for run in 0..runs {
        for side in 0..2 {
            target.cli(&["FLUSHALL"]);
            if (side + run) % 2 == 0 {
                let ((), elapsed, peak) =
                    measure(|| runtime.block_on(import_file(&target_service, &logical)));
                ours_import = ours_import.min(elapsed);
                peak_import = peak_import.max(peak);
                ours_digest = target.digest();
            } else {
                native_import = native_import.min(backup_benches::time_shell(&format!(
                    "redis-cli -p {} --pipe < {} >/dev/null",
                    target.port(),
                    resp.display()
                )));
                native_digest = target.digest();
            }
        }
    }
    let source_digest = source.digest();
    println!(
        "digests equal: ours {} / redis-cli --pipe {}",
        ours_digest == source_digest,
        native_digest == source_digest
    );
    print_report(
        "redis logical import (vs redis-cli --pipe of the same RESTOREs)",
        "cli --pipe",
        &[Row {
            name: "logical import".into(),
            bytes: logical_size,
            ours: ours_import,
            native: native_import,
            peak_kib: peak_import,
        }],
    );
    println!(
        "\nlogical export (no native equivalent): {:.1} MiB in {:.3} s, peak RSS {:.1} MiB",
        logical_size as f64 / 1048576.0,
        logical_export.as_secs_f64(),
        peak_logical_export as f64 / 1024.0
    );
}
