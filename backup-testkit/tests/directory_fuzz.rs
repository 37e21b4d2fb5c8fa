//! Fuzzing the directory importer for a bounded time with arbitrary and mutated tar
//! bytes: it never panics, never writes outside its target, never leaves staging
//! directories behind, and its memory stays bounded.

mod directory_common;

use std::path::Path;
use std::time::{Duration, Instant};

use backup_testkit::data::PseudoRandom;
use backup_testkit::tree::write_sample_tree;
use directory_common::{export_bytes, import_bytes, observe, ArchiveBuilder};
use serde_json::json;

const BUDGET: Duration = Duration::from_secs(8);

/// A small deterministic generator on top of the testkit's byte source.
struct Dice(PseudoRandom);

impl Dice {
    fn below(&mut self, n: usize) -> usize {
        let mut bytes = [0u8; 8];
        self.0.fill(&mut bytes);
        (u64::from_le_bytes(bytes) % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        self.0.fill(&mut out);
        out
    }
}

/// Seeds: a real export and hand-built archives full of links, FIFOs and odd names.
async fn seeds(dir: &Path, outside: &Path) -> Vec<Vec<u8>> {
    let source = dir.join("seed-source");
    write_sample_tree(&source);
    std::fs::hard_link(source.join("config/app.toml"), source.join("hard.toml")).expect("link");
    let exported = export_bytes(&source).await.expect("export");
    std::fs::remove_dir_all(&source).expect("cleanup");
    let links = ArchiveBuilder::new()
        .dir("d", 0o755)
        .symlink("d/up", outside)
        .symlink("s", outside)
        .dir("s", 0o777)
        .file("f", 0o4755, b"suid")
        .hard_link("h", "f")
        .special("p", tar::EntryType::Fifo, 0o644)
        .file("d/up", 0o644, b"replaces the link")
        .finish();
    let long = ArchiveBuilder::new()
        .file(&"x".repeat(300), 0o644, b"long name")
        .symlink("l", Path::new(&"../".repeat(40)))
        .finish();
    vec![exported, links, long]
}

/// One input: random bytes, or a seed with flipped bytes, cuts, splices or a
/// header field overwritten.
fn input(dice: &mut Dice, seeds: &[Vec<u8>]) -> Vec<u8> {
    if dice.below(6) == 0 {
        let len = dice.below(8192);
        return dice.bytes(len);
    }
    let mut data = seeds[dice.below(seeds.len())].clone();
    for _ in 0..=dice.below(4) {
        match dice.below(5) {
            0 => {
                // Flip bytes, mostly in headers (the first 512 bytes of a block).
                for _ in 0..=dice.below(16) {
                    let block = dice.below(data.len() / 512 + 1) * 512;
                    let at = (block + dice.below(512)).min(data.len().saturating_sub(1));
                    if let Some(byte) = data.get_mut(at) {
                        *byte ^= 1 << dice.below(8);
                    }
                }
            }
            1 => data.truncate(dice.below(data.len() + 1)),
            2 => {
                // Duplicate a run of blocks somewhere else.
                let start = dice.below(data.len() / 512 + 1) * 512;
                let end = (start + 512 * (1 + dice.below(4))).min(data.len());
                let run = data[start.min(end)..end].to_vec();
                let at = dice.below(data.len() / 512 + 1) * 512;
                let tail = data.split_off(at.min(data.len()));
                data.extend(run);
                data.extend(tail);
            }
            3 => {
                // Overwrite the size field (124..136) of a block with random octal.
                let block = dice.below(data.len() / 512 + 1) * 512;
                if block + 136 <= data.len() {
                    for i in 0..11 {
                        data[block + 124 + i] = b'0' + dice.below(8) as u8;
                    }
                }
            }
            _ => {
                // Set a random entry type on a block.
                let block = dice.below(data.len() / 512 + 1) * 512;
                if block + 157 <= data.len() {
                    data[block + 156] = b"0123456KLSxgV\0"[dice.below(14)];
                }
            }
        }
    }
    data
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_and_mutated_tars_never_panic_or_write_outside_the_target() {
    let sandbox = tempfile::tempdir().expect("tempdir");
    let outside = sandbox.path().join("outside");
    std::fs::create_dir_all(outside.join("dir")).expect("mkdir");
    std::fs::write(outside.join("canary.txt"), b"canary").expect("write");
    let seeds = seeds(sandbox.path(), &outside).await;
    let outside_before = observe(&outside);
    let mut names_before: Vec<_> = std::fs::read_dir(sandbox.path())
        .expect("list")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    names_before.sort();
    let target = sandbox.path().join("target");
    let mut dice = Dice(PseudoRandom::new(0xF022_0008));
    let rss_before = peak_rss_kib();
    let started = Instant::now();
    let (mut runs, mut accepted) = (0u32, 0u32);
    while started.elapsed() < BUDGET {
        let data = input(&mut dice, &seeds);
        let extra = if dice.below(2) == 0 {
            json!({})
        } else {
            json!({ "restoreInPlace": true })
        };
        let outcome = import_bytes(&target, data, extra).await;
        runs += 1;
        if let Err(error) = &outcome {
            // A panic on the blocking thread comes back as a failed task.
            assert!(
                !error.message().contains("blocking task failed"),
                "run {runs} panicked: {error}"
            );
        }
        accepted += u32::from(outcome.is_ok());
        assert_eq!(
            outside_before,
            observe(&outside),
            "run {runs} changed the outside"
        );
        let mut names: Vec<_> = std::fs::read_dir(sandbox.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .filter(|name| name != "target")
            .collect();
        names.sort();
        assert_eq!(
            names, names_before,
            "run {runs} left entries beside the target"
        );
        if target.exists() {
            let hidden: Vec<_> = std::fs::read_dir(&target)
                .expect("list")
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".restore-") || n.starts_with(".old-"))
                .collect();
            assert!(
                hidden.is_empty(),
                "run {runs} left {hidden:?} in the target"
            );
            std::fs::remove_dir_all(&target).expect("reset target");
        }
    }
    let grown_mib = peak_rss_kib().saturating_sub(rss_before) / 1024;
    eprintln!("{runs} runs, {accepted} accepted, peak RSS grew by {grown_mib} MiB");
    assert!(runs > 50, "only {runs} runs in {BUDGET:?}");
    assert!(grown_mib < 128, "peak RSS grew by {grown_mib} MiB");
}
