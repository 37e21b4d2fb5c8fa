//! Shared helpers for the benchmarks: peak memory of this process, timing of native tools,
//! and side-by-side reports with ratios.
//!
//! Benchmarks are `harness = false` binaries run with `cargo bench -p backup-benches --bench NAME`.
//! Each prints a table; none asserts a time.

use std::process::Command;
use std::time::{Duration, Instant};

/// Peak resident memory of this process so far, in KiB (`VmHWM`), or 0 if unknown.
pub fn peak_rss_kib() -> u64 {
    read_status_field("VmHWM:")
}

/// Current resident memory of this process, in KiB (`VmRSS`), or 0 if unknown.
pub fn current_rss_kib() -> u64 {
    read_status_field("VmRSS:")
}

/// Resets the peak-memory mark so the next measurement covers only what follows.
///
/// Returns false where the kernel does not allow it (then peaks are cumulative).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn read_status_field(name: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find(|line| line.starts_with(name))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) this process has used so far, all threads; zero if unknown.
/// The difference across a run, beside its wall time, shows how many cores it kept busy.
pub fn cpu_time() -> Duration {
    // utime and stime: fields 14 and 15 of /proc/self/stat.
    stat_ticks(&[11, 12])
}

/// CPU time (user + system) of this process's children that have ended and been waited
/// for (the native tools a bench runs, the tools an adapter starts); zero if unknown.
pub fn children_cpu_time() -> Duration {
    // cutime and cstime: fields 16 and 17 of /proc/self/stat.
    stat_ticks(&[13, 14])
}

/// The sum of `/proc/self/stat` fields (counted after the command name, in clock ticks
/// of 10 ms), as a duration.
fn stat_ticks(fields_after_name: &[usize]) -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // The command name may hold spaces, so split after its ')'; state is the first field
    // after it (field 3).
    let Some((_, after)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields_after_name
        .iter()
        .map(|i| {
            fields
                .get(*i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    Duration::from_millis(ticks * 10)
}

/// Runs a shell command line (the native tool) and returns how long it took.
///
/// # Panics
///
/// When the command cannot start or exits non-zero: a benchmark that cannot run its
/// baseline must say so loudly rather than print a meaningless ratio.
pub fn time_shell(script: &str) -> Duration {
    let start = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(script)
        .status()
        .unwrap_or_else(|e| panic!("cannot run `{script}`: {e}"));
    assert!(status.success(), "`{script}` failed with {status}");
    start.elapsed()
}

/// Measures `f` on a fresh peak-memory mark: (elapsed, peak RSS in KiB during it).
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Duration, u64) {
    reset_peak_rss();
    let start = Instant::now();
    let out = f();
    let elapsed = start.elapsed();
    (out, elapsed, peak_rss_kib())
}

/// Throughput in MiB/s.
pub fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64().max(1e-9)
}

/// One row of a side-by-side report.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub name: String,
    /// Bytes processed.
    pub bytes: u64,
    /// Our time.
    pub ours: Duration,
    /// The native tool's time on the same input.
    pub native: Duration,
    /// Our peak memory in KiB.
    pub peak_kib: u64,
}

/// Prints rows as a table with the ratio ours/native (1.00 = as fast as the native tool).
pub fn print_report(title: &str, native_name: &str, rows: &[Row]) {
    println!("\n== {title} ==");
    println!(
        "{:<32} {:>10} {:>10} {:>10} {:>12} {:>8} {:>12}",
        "case", "MiB", "ours s", native_name, "ours MiB/s", "ratio", "peak RSS MiB"
    );
    for row in rows {
        println!(
            "{:<32} {:>10.1} {:>10.3} {:>10.3} {:>12.1} {:>8.2} {:>12.1}",
            row.name,
            row.bytes as f64 / 1048576.0,
            row.ours.as_secs_f64(),
            row.native.as_secs_f64(),
            mib_per_s(row.bytes, row.ours),
            row.ours.as_secs_f64() / row.native.as_secs_f64().max(1e-9),
            row.peak_kib as f64 / 1024.0
        );
    }
}
