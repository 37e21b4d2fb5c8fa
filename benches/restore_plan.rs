//! Restore planning benchmark: `RestorePlan::from_dependencies` on 1k, 10k and 50k services
//! in three shapes, with time and peak memory, and whether 10k services plan in under a
//! second (the foundation issue's requirement).
//!
//! `cargo bench -p backup-benches --bench restore_plan`. Shapes:
//! - `chains`: independent chains of 100 services (deep, narrow);
//! - `fan-out`: one root every other service depends on, then a tree of fan-out 10;
//! - `mesh`: service `i` depends on `i/2`, `i/3` and `i - 1` (many edges, long paths).
//!
//! Each case runs five times; the fastest run counts (inputs are built outside the timing).

use std::time::Duration;

use backup_benches::measure;
use backup_core::plan::RestorePlan;

const RUNS: usize = 5;
const SIZES: [usize; 3] = [1_000, 10_000, 50_000];

fn name(i: usize) -> String {
    format!("svc-{i:06}")
}

/// Independent chains of 100: `i` depends on `i - 1` within its chain.
fn chains(n: usize) -> Vec<(String, Vec<String>)> {
    (0..n)
        .map(|i| {
            let on = if i % 100 == 0 {
                vec![]
            } else {
                vec![name(i - 1)]
            };
            (name(i), on)
        })
        .collect()
}

/// Everything depends on the root; below it a tree where `i` also depends on `i / 10`.
fn fan_out(n: usize) -> Vec<(String, Vec<String>)> {
    (0..n)
        .map(|i| {
            let on = match i {
                0 => vec![],
                1..=9 => vec![name(0)],
                _ => vec![name(0), name(i / 10)],
            };
            (name(i), on)
        })
        .collect()
}

/// Dense acyclic mesh: `i` depends on `i - 1`, `i / 2` and `i / 3`.
fn mesh(n: usize) -> Vec<(String, Vec<String>)> {
    (0..n)
        .map(|i| {
            let mut on = Vec::new();
            if i > 0 {
                on.push(name(i - 1));
                on.push(name(i / 2));
                on.push(name(i / 3));
                on.sort();
                on.dedup();
                on.retain(|d| *d != name(i));
            }
            (name(i), on)
        })
        .collect()
}

fn plan_once(input: &[(String, Vec<String>)]) -> RestorePlan {
    RestorePlan::from_dependencies(input.iter().map(|(n, d)| (n.as_str(), d.as_slice())))
        .unwrap_or_else(|e| panic!("planning failed: {e}"))
}

fn main() {
    println!("\n== restore plan ==");
    println!(
        "{:<10} {:>8} {:>8} {:>8} {:>12} {:>14}",
        "shape", "services", "edges", "stages", "best ms", "peak RSS MiB"
    );
    let mut ten_k_worst = Duration::ZERO;
    type Shape = fn(usize) -> Vec<(String, Vec<String>)>;
    let shapes: [(&str, Shape); 3] = [("chains", chains), ("fan-out", fan_out), ("mesh", mesh)];
    for (shape, build) in shapes {
        for n in SIZES {
            let input = build(n);
            let edges: usize = input.iter().map(|(_, d)| d.len()).sum();
            let mut best = Duration::MAX;
            let mut peak = 0;
            let mut stages = 0;
            for _ in 0..RUNS {
                let (plan, elapsed, peak_kib) = measure(|| plan_once(&input));
                assert_eq!(plan.len(), n, "every service is planned");
                stages = plan.stage_count();
                best = best.min(elapsed);
                peak = peak.max(peak_kib);
            }
            if n == 10_000 {
                ten_k_worst = ten_k_worst.max(best);
            }
            println!(
                "{:<10} {:>8} {:>8} {:>8} {:>12.2} {:>14.1}",
                shape,
                n,
                edges,
                stages,
                best.as_secs_f64() * 1000.0,
                peak as f64 / 1024.0
            );
        }
    }
    let verdict = if ten_k_worst < Duration::from_secs(1) {
        "yes"
    } else {
        "NO"
    };
    println!(
        "10,000 services plan in under a second: {verdict} (slowest shape {:.2} ms)",
        ten_k_worst.as_secs_f64() * 1000.0
    );
}
