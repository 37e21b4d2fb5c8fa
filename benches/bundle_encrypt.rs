//! Encrypted vs unencrypted bundle write on the same data, side by side in one run: the
//! same input (half pseudo-random, half text, so zstd has work to do) written with
//! zstd, then zstd + age to an X25519 recipient, then zstd + age with a passphrase (the
//! default scrypt work factor: one derivation per bundle, wrapping the bundle's X25519
//! identity, on its own thread while the entries stream), then zstd + age with a
//! passphrase key unlocked once (what a repository does: its key check is unlocked when
//! it is opened, and no bundle pays a scrypt run). The ratio to the unencrypted time is
//! printed; the goal is at most 1.3x. The age files are written by backup-core's own
//! age v1 writer on ring's ChaCha20-Poly1305 (`bundle::AgeWriter`; the age crate and
//! stock `age` read them back), which costs about half the CPU of the age crate's
//! encryptor: the encrypted write is CPU-bound, so compare the CPU seconds when the
//! machine is busy.
//!
//! `cargo bench -p backup-benches --bench bundle_encrypt`. `BUNDLE_ENCRYPT_BENCH_MIB`
//! (default `256,1024`) sets the sizes. Each side runs three times; the fastest counts.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use backup_benches::{cpu_time, measure, mib_per_s, reset_peak_rss};
use backup_core::artifact::stream_from_reader;
use backup_core::bundle::{
    BundleOptions, BundleWriter, Compression, Encryption, Passphrase, UnlockedKey,
    DEFAULT_SCRYPT_WORK_FACTOR,
};
use backup_core::progress::NoProgress;
use backup_core::{ArtifactData, ArtifactDescriptor};
use backup_testkit::data::PseudoRandom;

const MIB: u64 = 1024 * 1024;
const RUNS: usize = 3;
/// A fixed X25519 recipient (its identity is not needed to write).
const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

/// Writes `len` bytes, alternating pseudo-random and repetitive MiB blocks.
fn generate(path: &Path, len: u64) {
    let file = std::fs::File::create(path).expect("create input file");
    let mut out = std::io::BufWriter::with_capacity(MIB as usize, file);
    let mut generator = PseudoRandom::new(0x5eed);
    let mut block = vec![0u8; MIB as usize];
    let text: Vec<u8> = b"INSERT INTO t VALUES (42, 'some row text');\n"
        .iter()
        .copied()
        .cycle()
        .take(MIB as usize)
        .collect();
    let mut left = len;
    let mut i = 0u64;
    while left > 0 {
        let n = left.min(MIB) as usize;
        if i.is_multiple_of(2) {
            generator.fill(&mut block);
            out.write_all(&block[..n]).expect("write input");
        } else {
            out.write_all(&text[..n]).expect("write input");
        }
        left -= n as u64;
        i += 1;
    }
    out.flush().expect("flush input");
}

async fn write_bundle(input: &Path, output: &Path, encryption: Encryption) -> u64 {
    let file = tokio::fs::File::open(input).await.expect("open input");
    let options = BundleOptions::default()
        .with_compression(Compression::Zstd)
        .with_encryption(encryption);
    let mut writer = BundleWriter::create(output, options)
        .await
        .expect("create bundle");
    let artifact = ArtifactDescriptor::new("data.bin", "tar", "application/octet-stream");
    let entry = writer
        .write_artifact(
            "bench",
            &artifact,
            ArtifactData::from_stream(stream_from_reader(file)),
            &NoProgress,
        )
        .await
        .expect("write artifact");
    writer.finish().await.expect("finish bundle");
    entry.uncompressed_size
}

fn main() {
    let sizes: Vec<u64> = std::env::var("BUNDLE_ENCRYPT_BENCH_MIB")
        .unwrap_or_else(|_| "256,1024".to_owned())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .filter(|m| *m > 0)
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // A passphrase bundle pays one scrypt run (wrapping its key) whatever its size; time
    // that run alone: it overlaps the streaming, so it sets the floor of a small bundle.
    let passphrase = Passphrase::new("bench passphrase");
    let scrypt = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            passphrase
                .seal_key_check(DEFAULT_SCRYPT_WORK_FACTOR)
                .expect("scrypt");
            start.elapsed()
        })
        .min()
        .unwrap_or_default();
    println!(
        "one scrypt 2^18 run (once per passphrase bundle, overlapping the streaming): {:.2} s\n",
        scrypt.as_secs_f64()
    );
    let key_check = passphrase
        .seal_key_check(DEFAULT_SCRYPT_WORK_FACTOR)
        .expect("scrypt");
    let key = passphrase
        .unlock_key_check(&key_check, Some(DEFAULT_SCRYPT_WORK_FACTOR), "the bench")
        .expect("unlock");
    for mib in sizes {
        bench_size(&runtime, mib, &key);
    }
}

/// Writes `mib` MiB unencrypted, to a recipient and with a passphrase; prints the ratios.
fn bench_size(runtime: &tokio::runtime::Runtime, mib: u64, key: &UnlockedKey) {
    let len = mib * MIB;
    let dir = tempfile::tempdir().expect("tempdir");
    let _ = reset_peak_rss();
    let input = dir.path().join("input.bin");
    generate(&input, len);
    let output = dir.path().join("bundle.zip");

    let sides: [(&str, Encryption); 4] = [
        ("unencrypted (zstd)", Encryption::None),
        (
            "age X25519 recipient (zstd + age)",
            Encryption::recipients([RECIPIENT]).expect("recipient"),
        ),
        (
            "age passphrase, scrypt 2^18 (zstd + age)",
            Encryption::passphrase(Passphrase::new("bench passphrase")),
        ),
        (
            "age passphrase, key unlocked once (repository)",
            Encryption::PassphraseKey(key.clone()),
        ),
    ];
    println!("{mib} MiB entry:");
    let mut results: Vec<(&str, Duration)> = Vec::new();
    for (name, encryption) in sides {
        let mut best = Duration::MAX;
        let mut cpu = Duration::MAX;
        let mut peak = 0;
        let mut stored = 0;
        for _ in 0..RUNS {
            let _ = std::fs::remove_file(&output);
            let cpu_before = cpu_time();
            let (written, elapsed, run_peak) =
                measure(|| runtime.block_on(write_bundle(&input, &output, encryption.clone())));
            cpu = cpu.min(cpu_time().saturating_sub(cpu_before));
            assert_eq!(written, len, "the bundle holds every byte");
            stored = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
            best = best.min(elapsed);
            peak = peak.max(run_peak);
        }
        println!(
            "  {name:<48} {:>6.2} s (CPU {:>5.2} s)  {:>7.1} MiB/s  bundle {:>7.1} MiB  peak RSS {:>6.1} MiB",
            best.as_secs_f64(),
            cpu.as_secs_f64(),
            mib_per_s(len, best),
            stored as f64 / MIB as f64,
            peak as f64 / 1024.0
        );
        results.push((name, best));
    }
    let base = results[0].1.as_secs_f64().max(1e-9);
    println!("  encrypted vs unencrypted write of the same {mib} MiB (goal: at most 1.3x):");
    for (name, time) in results.iter().skip(1) {
        let ratio = time.as_secs_f64() / base;
        println!("    {name:<48} {ratio:.2}x {}", verdict(ratio));
    }
    println!();
}

fn verdict(ratio: f64) -> &'static str {
    if ratio <= 1.3 {
        "(within goal)"
    } else {
        "(OVER the 1.3x goal)"
    }
}
