//! Bounded-time fuzzing of the bundle reader, the manifest parser and the snapshot
//! parser with arbitrary bytes and mutations of a valid bundle: no panic, no abort,
//! bounded memory, and a bundle that opens and verifies reads back exactly what was
//! written.
//!
//! Seeded, so a failure names the seed and iteration that reproduce it. A counting
//! allocator checks the heap each input needs; the tests of this file take one lock so
//! that only one runs at a time.

#[path = "bundle_support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backup_core::bundle::{BundleOptions, BundleReader, BundleWriter, Compression, MemorySource};
use backup_core::progress::NoProgress;
use backup_core::{ArtifactData, Error, WorkspaceSnapshot};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use support::*;

// backup-core's tests cannot depend on backup-testkit (it depends on backup-core).
#[path = "../../backup-testkit/src/alloc.rs"]
#[allow(dead_code, unreachable_pub)]
mod alloc;
use alloc::CountingAllocator;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MIB: usize = 1024 * 1024;
/// Heap one input may take beyond the baseline: buffers of a few MiB, never more.
const HEAP_PER_INPUT: usize = 64 * MIB;
/// Time each fuzz test runs for.
const BUDGET: Duration = Duration::from_secs(6);
/// The default seed; `BUNDLE_FUZZ_SEED` (decimal) picks another to explore further.
const DEFAULT_SEED: u64 = 0x5eed_b0d1e;

fn seed() -> u64 {
    std::env::var("BUNDLE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

/// The payloads of the fuzzed bundle: small, some compressible, one empty.
fn payloads() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        ("db", "app.dump", pseudo_random(40_000, 3)),
        ("db", "empty.sql", Vec::new()),
        ("files", "tree.tar", text(300_000)),
    ]
}

/// A valid, small, zstd-compressed bundle; returns its bytes and the sha256 of each
/// payload by entry path.
async fn valid_bundle(dir: &Path) -> (Vec<u8>, Vec<(String, String)>) {
    let path = dir.join("valid.zip");
    let options = BundleOptions::default().with_compression(Compression::Zstd);
    let mut writer = BundleWriter::create(&path, options).await.expect("create");
    writer.write_snapshot(&snapshot()).await.expect("snapshot");
    let mut sums = Vec::new();
    for (service, name, bytes) in payloads() {
        let entry = writer
            .write_artifact(
                service,
                &descriptor(name).with_metadata("rows", serde_json::json!({"t": [1, 2, 3]})),
                ArtifactData::from_stream(stream_of(&bytes, 8192)),
                &NoProgress,
            )
            .await
            .expect("artifact");
        sums.push((entry.path, hex::encode(Sha256::digest(&bytes))));
    }
    writer.finish().await.expect("finish");
    (std::fs::read(&path).expect("read"), sums)
}

/// One random change: flip, overwrite, truncate, insert or duplicate bytes.
fn mutate(rng: &mut StdRng, input: &mut Vec<u8>) {
    let len = input.len().max(1);
    match rng.random_range(0..6) {
        0 => {
            for _ in 0..rng.random_range(1..8) {
                let at = rng.random_range(0..len).min(input.len().saturating_sub(1));
                if let Some(b) = input.get_mut(at) {
                    *b ^= 1 << rng.random_range(0..8);
                }
            }
        }
        1 => {
            let at = rng.random_range(0..len);
            input.truncate(at);
        }
        2 => {
            let at = rng.random_range(0..=input.len());
            let n = rng.random_range(1..64);
            let extra: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            input.splice(at..at, extra);
        }
        3 => {
            let at = rng.random_range(0..len).min(input.len());
            let n = rng.random_range(1..16).min(input.len() - at);
            for b in &mut input[at..at + n] {
                *b = rng.random();
            }
        }
        4 => {
            // Structural bytes: zip signatures, huge little-endian numbers, JSON brackets.
            let tokens: [&[u8]; 7] = [
                b"PK\x03\x04",
                b"PK\x01\x02",
                b"PK\x05\x06",
                b"PK\x06\x06",
                &[0xff; 8],
                b"[[[[[[[[",
                b"{\"a\":",
            ];
            let token = tokens[rng.random_range(0..tokens.len())];
            let at = rng.random_range(0..len).min(input.len());
            let end = (at + token.len()).min(input.len());
            input.splice(at..end, token.iter().copied());
        }
        _ => {
            let at = rng.random_range(0..len).min(input.len());
            let n = rng.random_range(0..256).min(input.len() - at);
            let copy = input[at..at + n].to_vec();
            let to = rng.random_range(0..=input.len());
            input.splice(to..to, copy);
        }
    }
}

/// Fails the test if `err` reports a panic caught somewhere inside the reader.
fn no_panic(err: &Error, case: &str) {
    let text = err.to_string();
    assert!(!text.contains("panicked"), "{case}: {text}");
}

/// Opens, verifies and reads every entry of the bundle at `path`: never more than the
/// declared size, and when open and verify pass, every entry reads back whole. With
/// `sums` (damaged bytes, not a rewritten manifest) it must also equal the payload
/// written.
///
/// The bundle is read twice, as a file and through an in-memory `BundleSource`: both
/// must agree on whether it opens, and both are exercised.
async fn exercise(path: &Path, sums: Option<&[(String, String)]>, case: &str) {
    let from_file = BundleReader::open(path).await;
    let bytes = std::fs::read(path).expect("read the fuzzed file");
    let source = Arc::new(MemorySource::new(path.display().to_string(), bytes));
    let from_memory = BundleReader::open_source(source).await;
    assert_eq!(
        from_file.as_ref().err().map(|e| e.to_string()),
        from_memory.as_ref().err().map(|e| e.to_string()),
        "{case}: a file and a memory source disagree"
    );
    for opened in [from_file, from_memory] {
        match opened {
            Ok(reader) => exercise_reader(&reader, sums, case).await,
            Err(err) => no_panic(&err, case),
        }
    }
}

/// [`exercise`] for one opened reader.
async fn exercise_reader(reader: &BundleReader, sums: Option<&[(String, String)]>, case: &str) {
    let verified = reader.verify(&NoProgress).await;
    if let Err(err) = &verified {
        no_panic(err, case);
    }
    for entry in reader.manifest().entries.clone() {
        let mut stream = match reader.open_entry(&entry) {
            Ok(stream) => stream,
            Err(err) => {
                no_panic(&err, case);
                assert!(
                    verified.is_err(),
                    "{case}: a verified entry cannot be opened: {err}"
                );
                continue;
            }
        };
        let mut hasher = Sha256::new();
        let mut delivered: u64 = 0;
        let mut failed = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => {
                    delivered += chunk.len() as u64;
                    hasher.update(&chunk);
                }
                Err(e) => {
                    failed = Some(Error::io("reading", e));
                    break;
                }
            }
        }
        assert!(
            delivered <= entry.uncompressed_size,
            "{case}: {} delivered {delivered} bytes, declared {}",
            entry.path,
            entry.uncompressed_size
        );
        match failed {
            Some(err) => {
                no_panic(&err, case);
                assert!(verified.is_err(), "{case}: a verified bundle failed: {err}");
            }
            None if verified.is_ok() && sums.is_some() => {
                let want = sums
                    .unwrap_or_default()
                    .iter()
                    .find(|(p, _)| *p == entry.path);
                let got = hex::encode(hasher.finalize());
                assert_eq!(
                    want.map(|(_, s)| s.as_str()),
                    Some(got.as_str()),
                    "{case}: a verified bundle read back other bytes for {}",
                    entry.path
                );
            }
            None => {}
        }
    }
}

/// Runs `one` for each input until the budget is spent; checks the heap of each.
async fn fuzz_for<F, Fut>(name: &str, mut one: F) -> usize
where
    F: FnMut(&mut StdRng, usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let start = Instant::now();
    let mut iterations = 0;
    while start.elapsed() < BUDGET {
        let base = CountingAllocator::reset_peak();
        one(&mut rng, iterations).await;
        let peak = CountingAllocator::peak().saturating_sub(base);
        assert!(
            peak < HEAP_PER_INPUT,
            "{name} seed {seed} iteration {iterations}: {peak} bytes of heap"
        );
        iterations += 1;
    }
    eprintln!("{name}: {iterations} inputs in {BUDGET:?}");
    iterations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_bundle_reader_with_mutated_and_arbitrary_bundles() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (valid, sums) = valid_bundle(dir.path()).await;
    let path: PathBuf = dir.path().join("fuzzed.zip");

    // The unmutated bundle passes everything.
    std::fs::write(&path, &valid).expect("write");
    exercise(&path, Some(&sums), "valid").await;

    let iterations = fuzz_for("bundle", |rng, i| {
        let mut input = if i % 10 == 9 {
            // Arbitrary bytes, sometimes ending like a zip.
            let n = rng.random_range(0..4096);
            let mut bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            if rng.random_bool(0.5) {
                bytes.extend_from_slice(b"PK\x05\x06");
                bytes.extend((0..18).map(|_| rng.random::<u8>()));
            }
            bytes
        } else {
            valid.clone()
        };
        for _ in 0..rng.random_range(1..4) {
            mutate(rng, &mut input);
        }
        std::fs::write(&path, &input).expect("write");
        let case = format!("bundle seed {} iteration {i}", seed());
        let (path, sums) = (path.clone(), sums.clone());
        async move { exercise(&path, Some(&sums), &case).await }
    })
    .await;
    assert!(iterations > 50, "only {iterations} inputs in the budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_manifest_parser_with_mutated_manifests() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (valid, _) = valid_bundle(dir.path()).await;
    std::fs::write(dir.path().join("valid.zip"), &valid).expect("write");
    let entries = read_entries(&dir.path().join("valid.zip"));
    let manifest = entries
        .iter()
        .find(|(n, _)| n == "manifest.json")
        .expect("manifest")
        .1
        .clone();
    let path = dir.path().join("fuzzed.zip");

    let iterations = fuzz_for("manifest", |rng, i| {
        let mut text = if i % 10 == 9 {
            (0..rng.random_range(0..2048))
                .map(|_| rng.random())
                .collect()
        } else {
            manifest.clone()
        };
        for _ in 0..rng.random_range(1..6) {
            mutate(rng, &mut text);
        }
        let mut crafted = entries.clone();
        for (name, bytes) in crafted.iter_mut() {
            if name == "manifest.json" {
                bytes.clone_from(&text);
            }
        }
        write_raw_zip(&path, &crafted);
        let case = format!("manifest seed {} iteration {i}", seed());
        let path = path.clone();
        // A rewritten manifest is not damage the bundle can detect: the payloads may
        // differ, but what verifies must read back whole.
        async move { exercise(&path, None, &case).await }
    })
    .await;
    assert!(iterations > 50, "only {iterations} inputs in the budget");
}

#[tokio::test]
async fn fuzz_snapshot_parser_with_mutated_and_arbitrary_json() {
    let _one = ONE_AT_A_TIME.lock().await;
    let valid = snapshot().to_json().expect("json");
    assert!(WorkspaceSnapshot::from_json(&valid).is_ok());
    let iterations = fuzz_for("snapshot", |rng, i| {
        let mut input = if i % 10 == 9 {
            (0..rng.random_range(0..2048))
                .map(|_| rng.random())
                .collect()
        } else {
            valid.clone()
        };
        for _ in 0..rng.random_range(1..6) {
            mutate(rng, &mut input);
        }
        if i % 50 == 49 {
            // Deep nesting, far beyond the limit.
            let at = rng.random_range(0..=input.len());
            input.splice(at..at, std::iter::repeat_n(b'[', 100_000));
        }
        let parsed = std::panic::catch_unwind(|| WorkspaceSnapshot::from_json(&input));
        assert!(
            parsed.is_ok(),
            "snapshot seed {} iteration {i} panicked",
            seed()
        );
        async {}
    })
    .await;
    assert!(iterations > 1000, "only {iterations} inputs in the budget");
}
