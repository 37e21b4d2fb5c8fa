//! Retention planning benchmark: `retention::plan` over 10,000 and 100,000 bundles in
//! two shapes, with time and peak memory, and whether 10,000 bundles plan in under
//! 50 ms (issue 9's goal).
//!
//! `cargo bench -p backup-benches --bench retention`. Shapes:
//! - `one-group`: hourly bundles of one service, UTC, keepLast/Daily/Weekly/Monthly/Yearly;
//! - `mixed`: bundles every 37 minutes over three service sets and three kinds in
//!   Europe/Berlin, with seed 002's table (keepWithin*), label globs and per-kind rules.
//!
//! Each case runs five times; the fastest run counts (inputs are built outside the timing).

use std::time::Duration;

use backup_benches::measure;
use backup_core::bundle::BundleKind;
use backup_repository::retention::{plan, RetentionItem, RetentionPlan, RetentionPolicy};
use jiff::Timestamp;

const RUNS: usize = 5;
const SIZES: [usize; 2] = [10_000, 100_000];
const START: i64 = 1_600_000_000;

fn one_group(n: usize) -> (Vec<RetentionItem>, RetentionPolicy) {
    let items = (0..n)
        .map(|i| RetentionItem {
            id: format!("b{i:07}"),
            created: Timestamp::from_second(START + i as i64 * 3_600).unwrap_or_default(),
            label: None,
            kind: BundleKind::Automatic,
            services: vec!["db".to_owned()],
            locked: false,
        })
        .collect();
    let policy = RetentionPolicy::from_json(
        r#"{"default": {"keepLast": 24, "keepDaily": 7, "keepWeekly": 5,
            "keepMonthly": 12, "keepYearly": 10}}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (items, policy)
}

fn mixed(n: usize) -> (Vec<RetentionItem>, RetentionPolicy) {
    let services = [vec!["db"], vec!["db", "cache"], vec!["files"]];
    let kinds = [
        BundleKind::Manual,
        BundleKind::Automatic,
        BundleKind::Safety,
    ];
    let items = (0..n)
        .map(|i| RetentionItem {
            id: format!("b{i:07}"),
            created: Timestamp::from_second(START + i as i64 * 37 * 60).unwrap_or_default(),
            label: (i % 97 == 0).then(|| format!("v{}.{}", i / 1000, i % 10)),
            kind: kinds[i % 3],
            services: services[(i / 3) % 3]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            locked: i % 1000 == 0,
        })
        .collect();
    let policy = RetentionPolicy::from_json(
        r#"{"timeZone": "Europe/Berlin",
            "default": {"keepWithin": "7d", "keepWithinDaily": "30d",
                        "keepWithinWeekly": "1y", "keepWithinMonthly": "10y",
                        "keepLabels": ["v*", "before-*"]},
            "kinds": {"manual": {"keepLast": 5, "keepLabels": ["v*"]},
                      "automatic": {"keepLast": 10, "keepDaily": 14}}}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (items, policy)
}

fn main() {
    println!("\n== retention plan ==");
    println!(
        "{:<10} {:>8} {:>8} {:>12} {:>14}",
        "shape", "bundles", "kept", "best ms", "peak RSS MiB"
    );
    let mut ten_k_worst = Duration::ZERO;
    type Shape = fn(usize) -> (Vec<RetentionItem>, RetentionPolicy);
    let shapes: [(&str, Shape); 2] = [("one-group", one_group), ("mixed", mixed)];
    for (shape, build) in shapes {
        for n in SIZES {
            let (items, policy) = build(n);
            let now = Timestamp::from_second(START + 400_000_000).unwrap_or_default();
            let mut best = Duration::MAX;
            let mut peak = 0;
            let mut kept = 0;
            for _ in 0..RUNS {
                let (result, elapsed, peak_kib) = measure(|| plan(&items, &policy, now));
                let result: RetentionPlan = result.unwrap_or_else(|e| panic!("plan failed: {e}"));
                assert_eq!(result.decisions.len(), n, "one decision per bundle");
                kept = result.decisions.iter().filter(|d| d.keep).count();
                best = best.min(elapsed);
                peak = peak.max(peak_kib);
            }
            if n == 10_000 {
                ten_k_worst = ten_k_worst.max(best);
            }
            println!(
                "{:<10} {:>8} {:>8} {:>12.2} {:>14.1}",
                shape,
                n,
                kept,
                best.as_secs_f64() * 1000.0,
                peak as f64 / 1024.0
            );
        }
    }
    let verdict = if ten_k_worst < Duration::from_millis(50) {
        "yes"
    } else {
        "NO"
    };
    println!(
        "10,000 bundles plan in under 50 ms: {verdict} (slowest shape {:.2} ms)",
        ten_k_worst.as_secs_f64() * 1000.0
    );
}
