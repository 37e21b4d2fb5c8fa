//! Fuzz: mutated encrypted bundles, read with the key, through open, verify and
//! open_entry, never panic and never deliver more than an entry's declared size. Half of
//! the inputs damage only an encrypted entry and rewrite the manifest to match, so the
//! age header and payload parsers see hostile bytes (not only the zip checks).

#[path = "bundle_support.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backup_core::bundle::{
    BundleOptions, BundleReader, BundleWriter, Compression, Decryption, Encryption, MemorySource,
    Passphrase,
};
use backup_core::progress::NoProgress;
use backup_core::{ArtifactData, Error};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use support::*;

const BUDGET: Duration = Duration::from_secs(5);
const PASSPHRASE: &str = "fuzz";

async fn valid_bundle(path: &Path) -> Vec<u8> {
    let options = BundleOptions::default()
        .with_compression(Compression::Zstd)
        .with_encryption(Encryption::Passphrase {
            passphrase: Passphrase::new(PASSPHRASE),
            work_factor: 2,
        });
    let mut writer = BundleWriter::create(path, options).await.expect("create");
    writer.write_snapshot(&snapshot()).await.expect("snapshot");
    for (service, name, bytes) in [
        ("db", "app.dump", pseudo_random(40_000, 3)),
        ("db", "empty.sql", Vec::new()),
        ("files", "tree.tar", text(200_000)),
    ] {
        writer
            .write_artifact(
                service,
                &descriptor(name),
                ArtifactData::from_stream(stream_of(&bytes, 8192)),
                &NoProgress,
            )
            .await
            .expect("artifact");
    }
    writer.finish().await.expect("finish");
    std::fs::read(path).expect("read")
}

fn mutate(rng: &mut StdRng, input: &mut Vec<u8>) {
    if input.is_empty() {
        input.push(rng.random());
        return;
    }
    match rng.random_range(0..5) {
        0 => {
            for _ in 0..rng.random_range(1..6) {
                let at = rng.random_range(0..input.len());
                input[at] ^= 1 << rng.random_range(0..8);
            }
        }
        1 => input.truncate(rng.random_range(0..input.len())),
        2 => {
            let at = rng.random_range(0..=input.len());
            let extra: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
            input.splice(at..at, extra);
        }
        3 => {
            // Header-shaped text: age stanzas, huge work factors, a MAC line.
            let tokens: [&[u8]; 5] = [b"-> scrypt ", b" 63\n", b"\n--- ", b"-> X25519 ", b"\n\n"];
            let token = tokens[rng.random_range(0..tokens.len())];
            let at = rng.random_range(0..input.len());
            let end = (at + token.len()).min(input.len());
            input.splice(at..end, token.iter().copied());
        }
        _ => {
            let at = rng.random_range(0..input.len());
            let n = rng.random_range(1..16).min(input.len() - at);
            for b in &mut input[at..at + n] {
                *b = rng.random();
            }
        }
    }
}

/// Damages one encrypted entry and rewrites the manifest's size and sha256 to match.
fn damage_an_entry(rng: &mut StdRng, path: &Path) {
    let mut entries = read_entries(path);
    let data: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].0.starts_with("data/"))
        .collect();
    let index = data[rng.random_range(0..data.len())];
    let name = entries[index].0.clone();
    // Mostly the header (the first ~200 bytes), sometimes the payload.
    let stored = &mut entries[index].1;
    if rng.random_bool(0.6) && stored.len() > 8 {
        let mut head = stored[..stored.len().min(200)].to_vec();
        let rest = stored[head.len()..].to_vec();
        mutate(rng, &mut head);
        head.extend(rest);
        *stored = head;
    } else {
        mutate(rng, stored);
    }
    let (size, sha) = (stored.len(), hex::encode(Sha256::digest(&*stored)));
    let mut manifest = manifest_json(&entries);
    for e in manifest["entries"].as_array_mut().expect("entries") {
        if e["path"] == name.as_str() {
            e["size"] = serde_json::json!(size);
            e["sha256"] = serde_json::json!(sha);
        }
    }
    set_manifest(&mut entries, &manifest);
    write_raw_zip(path, &entries);
}

fn no_panic(err: &Error, case: &str) {
    assert!(!err.to_string().contains("panicked"), "{case}: {err}");
}

async fn exercise(bytes: Vec<u8>, case: &str) {
    let source = Arc::new(MemorySource::new("fuzzed", bytes));
    let reader = match BundleReader::open_source(source).await {
        Ok(reader) => reader,
        Err(err) => return no_panic(&err, case),
    };
    let reader = reader.with_decryption(Decryption::Passphrase(Passphrase::new(PASSPHRASE)));
    if let Err(err) = reader.verify(&NoProgress).await {
        no_panic(&err, case);
    }
    for entry in reader.manifest().entries.clone() {
        let mut stream = match reader.open_entry(&entry) {
            Ok(stream) => stream,
            Err(err) => {
                no_panic(&err, case);
                continue;
            }
        };
        let mut delivered = 0u64;
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => delivered += chunk.len() as u64,
                Err(e) => {
                    no_panic(&Error::io("reading", e), case);
                    break;
                }
            }
        }
        assert!(
            delivered <= entry.uncompressed_size,
            "{case}: {} delivered {delivered} of {}",
            entry.path,
            entry.uncompressed_size
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_encrypted_bundles_read_with_the_key_never_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let valid_path = dir.path().join("valid.zip");
    let valid = valid_bundle(&valid_path).await;
    exercise(valid.clone(), "valid").await;
    let seed = std::env::var("BUNDLE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xa9e_u64);
    let mut rng = StdRng::seed_from_u64(seed);
    let path = dir.path().join("fuzzed.zip");
    let start = Instant::now();
    let mut iterations: u64 = 0;
    while start.elapsed() < BUDGET {
        let case = format!("seed {seed} iteration {iterations}");
        let input = if iterations.is_multiple_of(2) {
            std::fs::write(&path, &valid).expect("write");
            damage_an_entry(&mut rng, &path);
            std::fs::read(&path).expect("read")
        } else {
            let mut input = valid.clone();
            for _ in 0..rng.random_range(1..4) {
                mutate(&mut rng, &mut input);
            }
            input
        };
        exercise(input, &case).await;
        iterations += 1;
    }
    eprintln!("encrypted bundles: {iterations} inputs in {BUDGET:?}");
    assert!(iterations > 20, "only {iterations} inputs");
}
