//! Fuzz test of the RESP reply parser: for a bounded time, a fake server on 127.0.0.1
//! answers the client's first command with arbitrary and mutated bytes. The client must
//! return (an error or a value), never panic or overflow its stack, and never allocate
//! more than a small bound for input that announces huge lengths it does not deliver.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backup_core::DataExporter;
use backup_redis::RedisExporter;
use backup_testkit::alloc::CountingAllocator;
use serde_json::json;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// How long the test feeds inputs.
const BUDGET: Duration = Duration::from_secs(8);
/// Most heap one parse may add on top of what was live before it: connection buffers
/// and small replies, far below the 64 MiB a naive parser allocates for `$60000000`.
const MAX_EXTRA_HEAP: usize = 16 * 1024 * 1024;

/// xorshift64*: a seeded, reproducible source of pseudo-random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Fragments a reply may be built from: valid pieces, huge or negative numbers, deep
/// nesting, broken line endings.
fn fragment(rng: &mut Rng) -> Vec<u8> {
    let numbers = [
        "0",
        "1",
        "-1",
        "-2",
        "3",
        "1024",
        "60000000",
        "4294967296",
        "9223372036854775807",
        "-9223372036854775808",
        "99999999999999999999",
        "abc",
        "",
    ];
    let number = numbers[rng.below(numbers.len())];
    match rng.below(12) {
        0 => format!("*{number}\r\n").into_bytes(),
        1 => format!("${number}\r\n").into_bytes(),
        2 => format!(":{number}\r\n").into_bytes(),
        3 => b"+OK\r\n".to_vec(),
        4 => b"-ERR no\r\n".to_vec(),
        5 => b"$5\r\nhello\r\n".to_vec(),
        6 => b"*1\r\n".repeat(rng.below(5000)),
        7 => b"\r\n".to_vec(),
        8 => b"$3\r\nabcXY".to_vec(),
        9 => vec![b'+'; rng.below(100_000)],
        10 => b"*3\r\n:1\r\n$-1\r\n*-1\r\n".to_vec(),
        _ => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
    }
}

fn input(rng: &mut Rng) -> Vec<u8> {
    let mut bytes = Vec::new();
    for _ in 0..1 + rng.below(8) {
        bytes.extend_from_slice(&fragment(rng));
    }
    // Mutations: flip, drop or duplicate a few bytes.
    for _ in 0..rng.below(4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len());
        match rng.below(3) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => {
                bytes.remove(at);
            }
            _ => bytes.insert(at, bytes[at]),
        }
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_replies_never_panic_overflow_or_allocate_without_bound() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let payload: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
    let serving = Arc::clone(&payload);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 256];
            let _ = stream.read(&mut request);
            let reply = serving.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let _ = stream.write_all(&reply);
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    });
    let service = backup_core::ServiceTarget::local(
        "fuzz",
        backup_redis::RECIPE,
        json!({"host": "127.0.0.1", "port": port}),
    );
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed() < BUDGET {
        let bytes = input(&mut rng);
        *payload.lock().unwrap_or_else(|p| p.into_inner()) = bytes.clone();
        let before = CountingAllocator::reset_peak();
        // Errors are expected; a panic or an abort would end the test.
        let _ = RedisExporter.artifacts(&service).await;
        let extra = CountingAllocator::peak().saturating_sub(before);
        assert!(
            extra <= MAX_EXTRA_HEAP,
            "parsing {} bytes (starting {:?}) allocated {extra} bytes",
            bytes.len(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(40)])
        );
        runs += 1;
    }
    assert!(runs > 100, "only {runs} inputs in {BUDGET:?}");
}
