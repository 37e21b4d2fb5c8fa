//! The logical-format reader fed arbitrary and mutated bytes for a bounded time: no
//! panic, every input refused with an error or imported, and no length field from the
//! input drives an allocation (a counting allocator measures the largest one).

mod common;

use std::time::{Duration, Instant};

use backup_core::{ErrorKind, ImportMode};
use backup_testkit::alloc::CountingAllocator;
use backup_testkit::redis_server::RedisServer;
use common::{import_logical_bytes, logical_bytes};
use serde_json::json;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// How long the fuzz loop runs.
const BUDGET: Duration = Duration::from_secs(8);
/// No single allocation may exceed this (the reader's buffers are 256 KiB; a key length
/// field may claim 512 MiB).
const MAX_ALLOCATION: usize = 16 * 1024 * 1024;
/// Live memory may not grow by more than this over the loop.
const MAX_GROWTH: usize = 64 * 1024 * 1024;

/// xorshift64*: seeded, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn header(version: u32) -> Vec<u8> {
    let mut out = b"RDSLOGI\n".to_vec();
    out.extend_from_slice(&version.to_be_bytes());
    out
}

/// Rewrites the trailing CRC so the reader goes past the checksum to the structure.
fn fix_crc(bytes: &mut [u8]) {
    if bytes.len() >= 16 {
        let body = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[..body]);
        bytes[body..].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Inputs whose length fields claim far more than they hold.
fn hostile_lengths(rng: &mut Rng, variant: usize) -> Vec<u8> {
    let mut out = header(2);
    match variant % 4 {
        0 => {
            out.extend_from_slice(b"D\0\0\0\0K");
            out.extend_from_slice(&(512u32 * 1024 * 1024 - 1).to_be_bytes());
        }
        1 => {
            out.push(b'F');
            out.extend_from_slice(&u64::MAX.to_be_bytes());
        }
        2 => {
            out.extend_from_slice(b"D\0\0\0\0K\0\0\0\x01k");
            out.extend_from_slice(&(-1i64).to_be_bytes());
            out.extend_from_slice(&(u64::MAX / 2).to_be_bytes());
        }
        _ => {
            for db in 0..2000u32 {
                out.push(b'D');
                out.extend_from_slice(&(db * 7919).to_be_bytes());
            }
        }
    }
    let tail = rng.below(300);
    out.extend(rng.bytes(tail));
    out
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        if out.is_empty() {
            break;
        }
        let at = rng.below(out.len());
        match rng.below(5) {
            0 => out[at] ^= 1 << rng.below(8),
            1 => out.truncate(at),
            2 => {
                let extra = rng.below(16);
                let bytes = rng.bytes(extra);
                out.splice(at..at, bytes);
            }
            3 => {
                let end = (at + 8).min(out.len());
                for b in &mut out[at..end] {
                    *b = 0xff;
                }
            }
            _ => {
                let end = (at + 1 + rng.below(64)).min(out.len());
                out.drain(at..end);
            }
        }
    }
    if rng.below(2) == 0 {
        fix_crc(&mut out);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logical_reader_survives_arbitrary_and_mutated_input_with_bounded_memory() {
    let source = RedisServer::start();
    let target = RedisServer::start();
    source.cli(&["SET", "a", "1"]);
    source.cli(&["SET", "ttl", "x", "PX", "600000"]);
    source.cli(&["-n", "2", "RPUSH", "list", "a", "b", "c"]);
    source.cli(&[
        "FUNCTION",
        "LOAD",
        "#!lua name=lib\nredis.register_function('f', function() return 1 end)",
    ]);
    let seed = logical_bytes(&source, json!({})).await;
    let mut rng = Rng(0x5eed_1234_abcd_0042);
    let force = ImportMode { force: true };

    let live_before = CountingAllocator::reset_peak();
    let started = Instant::now();
    let (mut runs, mut refused) = (0u64, 0u64);
    // Every hostile length once, whatever the random choices below.
    for variant in 0..4 {
        let input = hostile_lengths(&mut rng, variant);
        let error = import_logical_bytes(&target, input, force)
            .await
            .expect_err("a length beyond the input is refused");
        let largest = CountingAllocator::largest();
        assert!(
            largest <= MAX_ALLOCATION,
            "hostile length {variant} made the reader allocate {largest} bytes at once"
        );
        assert_eq!(error.kind(), ErrorKind::Integrity, "{error:?}");
    }
    while started.elapsed() < BUDGET {
        let input = match rng.below(4) {
            0 => {
                let len = rng.below(512);
                let mut bytes = if rng.below(2) == 0 {
                    header(1 + rng.below(2) as u32)
                } else {
                    Vec::new()
                };
                bytes.extend(rng.bytes(len));
                bytes
            }
            1 => {
                let variant = rng.below(4);
                hostile_lengths(&mut rng, variant)
            }
            _ => mutate(&mut rng, &seed),
        };
        match import_logical_bytes(&target, input, force).await {
            Ok(()) => {}
            Err(error) => {
                refused += 1;
                assert!(!error.to_string().is_empty());
                assert_ne!(error.kind(), ErrorKind::Cancelled, "{error:?}");
            }
        }
        runs += 1;
    }
    let largest = CountingAllocator::largest();
    let growth = CountingAllocator::peak().saturating_sub(live_before);
    eprintln!(
        "{runs} inputs, {refused} refused, largest allocation {largest} B, growth {growth} B"
    );
    assert!(runs >= 50, "only {runs} inputs in {BUDGET:?}");
    assert!(refused > 0);
    assert!(
        largest <= MAX_ALLOCATION,
        "an input made the reader allocate {largest} bytes at once"
    );
    assert!(
        growth <= MAX_GROWTH,
        "live memory grew by {growth} bytes while reading hostile input"
    );
    // The intact export still imports after all that.
    import_logical_bytes(&target, seed, force)
        .await
        .expect("the intact export imports");
    assert_eq!(source.digest(), target.digest());
}
