//! Bundle writing benchmark: a pseudo-random stream written into a bundle (no
//! compression: the cost is hashing, CRC and I/O), side by side with `sha256sum` and
//! `openssl dgst -sha256` reading the same bytes from a file, with our peak memory.
//!
//! `cargo bench -p backup-benches --bench bundle_write`. Environment:
//! `BUNDLE_BENCH_GIB` (default 1) sets the large size in GiB; the small size is 100 MiB.
//! Each side runs three times and the fastest run counts; the peak RSS is the largest
//! of the runs of that size, each measured on a fresh peak mark.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use backup_benches::{measure, print_report, reset_peak_rss, time_shell, Row};
use backup_core::artifact::stream_from_reader;
use backup_core::bundle::{BundleOptions, BundleWriter, Compression};
use backup_core::progress::NoProgress;
use backup_core::{ArtifactData, ArtifactDescriptor};
use backup_testkit::data::PseudoRandom;

const MIB: u64 = 1024 * 1024;
const RUNS: usize = 3;

/// Writes `len` pseudo-random (incompressible) bytes to `path`.
fn generate(path: &Path, len: u64) {
    let file = std::fs::File::create(path).expect("create input file");
    let mut out = std::io::BufWriter::with_capacity(MIB as usize, file);
    let mut generator = PseudoRandom::new(0x9e37_79b9_7f4a_7c15);
    let mut block = vec![0u8; MIB as usize];
    let mut left = len;
    while left > 0 {
        generator.fill(&mut block);
        let n = left.min(MIB) as usize;
        out.write_all(&block[..n]).expect("write input file");
        left -= n as u64;
    }
    out.flush().expect("flush input file");
}

/// Streams `input` into a new bundle at `output`, as the export path does.
async fn write_bundle(input: &Path, output: &Path) -> u64 {
    let file = tokio::fs::File::open(input).await.expect("open input");
    let options = BundleOptions::default().with_compression(Compression::None);
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

/// The fastest of [`RUNS`] runs of `f`, and the largest peak RSS among them.
fn best_of(mut f: impl FnMut()) -> (Duration, u64) {
    let mut best = Duration::MAX;
    let mut peak = 0;
    for _ in 0..RUNS {
        let ((), elapsed, run_peak) = measure(&mut f);
        best = best.min(elapsed);
        peak = peak.max(run_peak);
    }
    (best, peak)
}

fn best_native(script: &str) -> Duration {
    (0..RUNS)
        .map(|_| time_shell(script))
        .min()
        .unwrap_or_default()
}

fn main() {
    let gib: u64 = std::env::var("BUNDLE_BENCH_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|g| *g > 0)
        .unwrap_or(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    if !reset_peak_rss() {
        println!("note: cannot reset the peak RSS mark here; peaks are cumulative");
    }

    let sizes = [
        ("100 MiB", 100 * MIB),
        (&*format!("{gib} GiB"), gib * 1024 * MIB),
    ];
    let mut vs_sha256sum = Vec::new();
    let mut vs_openssl = Vec::new();
    let mut peaks = Vec::new();
    for (label, len) in sizes {
        let input = dir.path().join("input.bin");
        generate(&input, len);
        let shown = input.display().to_string();
        let output = dir.path().join("bundle.zip");

        let (ours, peak) = best_of(|| {
            let _ = std::fs::remove_file(&output);
            let written = runtime.block_on(write_bundle(&input, &output));
            assert_eq!(written, len, "the bundle holds every byte");
        });
        let _ = std::fs::remove_file(&output);
        let sha256sum = best_native(&format!("sha256sum '{shown}' > /dev/null"));
        let openssl = best_native(&format!("openssl dgst -sha256 '{shown}' > /dev/null"));
        let _ = std::fs::remove_file(&input);

        let row = |native: Duration| Row {
            name: format!("bundle write {label}"),
            bytes: len,
            ours,
            native,
            peak_kib: peak,
        };
        vs_sha256sum.push(row(sha256sum));
        vs_openssl.push(row(openssl));
        peaks.push(peak);
    }

    print_report(
        "bundle write (STORE, sha256 + CRC32 + file write) vs sha256sum on the same bytes",
        "sha256sum",
        &vs_sha256sum,
    );
    print_report(
        "bundle write (STORE, sha256 + CRC32 + file write) vs openssl dgst -sha256",
        "openssl s",
        &vs_openssl,
    );
    let (small, large) = (peaks[0] as f64, peaks[1] as f64);
    let flat = large <= small * 1.5;
    println!(
        "\nmemory {}: peak RSS {:.1} MiB at 100 MiB, {:.1} MiB at {gib} GiB ({:.2}x; flat means within 1.5x)",
        if flat { "stayed flat" } else { "did NOT stay flat" },
        small / 1024.0,
        large / 1024.0,
        large / small.max(1.0)
    );
}
