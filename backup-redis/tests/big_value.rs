//! One value of 100 MB round-trips logically in small chunks, without the adapter
//! holding copies of it. Alone in its test binary so the memory measurement is its own.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use backup_core::{DataExporter, DataImporter, ImportMode};
use backup_redis::{RedisExporter, RedisImporter};
use backup_testkit::redis_server::RedisServer;
use common::{random_bytes, service};
use futures::StreamExt;
use serde_json::json;

const MIB: usize = 1024 * 1024;
const VALUE_MIB: usize = 100;

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_value_round_trips_in_small_chunks_without_copies_in_memory() {
    let source = RedisServer::start();
    let target = RedisServer::start();
    for i in 0..VALUE_MIB {
        source.command(&[b"APPEND", b"big", &random_bytes(MIB, i as u64 + 1)]);
    }
    source.cli(&["SET", "small", "x"]);
    let from = service(&source, json!({"format": "logical"}));
    let to = service(&target, json!({}));

    let can_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let baseline = status_kib("VmRSS:");
    let max_chunk = Arc::new(AtomicUsize::new(0));
    let exporter = RedisExporter;
    let artifacts = exporter.artifacts(&from).await.expect("artifacts");
    let data = exporter.export(&from, &artifacts[0]).await.expect("export");
    let seen = max_chunk.clone();
    let stream = data
        .stream
        .inspect(move |chunk| {
            if let Ok(chunk) = chunk {
                seen.fetch_max(chunk.len(), Ordering::Relaxed);
            }
        })
        .boxed();
    RedisImporter::new()
        .import(&to, &artifacts[0], stream, ImportMode::default())
        .await
        .expect("import");
    let peak = status_kib("VmHWM:");

    assert_eq!(source.digest(), target.digest());
    assert_eq!(
        target.cli(&["STRLEN", "big"]),
        (VALUE_MIB * MIB).to_string()
    );
    let max_chunk = max_chunk.load(Ordering::Relaxed);
    assert!(
        max_chunk <= backup_core::artifact::CHUNK_SIZE,
        "largest chunk {max_chunk} bytes"
    );
    if can_reset {
        let growth_mib = peak.saturating_sub(baseline) / 1024;
        println!("peak RSS growth during the round trip: {growth_mib} MiB");
        assert!(
            growth_mib < (VALUE_MIB / 2) as u64,
            "RSS grew by {growth_mib} MiB for a {VALUE_MIB} MiB value"
        );
    }
}
