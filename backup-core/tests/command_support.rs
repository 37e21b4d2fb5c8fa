//! Shared helpers of the `command_*` integration tests (included with `#[path]`).
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use backup_core::{ByteStream, CommandSpec};
use bytes::Bytes;
use futures::StreamExt;

/// `sh -c SCRIPT`.
pub fn sh(script: &str) -> CommandSpec {
    CommandSpec::new("sh").arg("-c").arg(script)
}

/// `spec` once for each way its output can be read: through the runtime
/// ([`backup_core::command::OutputReader::Async`]) and on a thread of its own
/// ([`backup_core::command::OutputReader::Thread`]).
pub fn with_each_reader(spec: CommandSpec) -> [CommandSpec; 2] {
    [spec.clone(), spec.read_output_in_thread()]
}

/// A stream of `chunks`.
pub fn chunks(chunks: Vec<Vec<u8>>) -> ByteStream {
    Box::pin(futures::stream::iter(
        chunks.into_iter().map(|c| Ok(Bytes::from(c))),
    ))
}

/// `data` in 64 KiB chunks.
pub fn stream_of(data: &[u8]) -> ByteStream {
    chunks(data.chunks(64 * 1024).map(<[u8]>::to_vec).collect())
}

/// `good` in one chunk, then (after `delay`) an integrity error, as a bundle entry whose
/// checksum does not match ends.
pub fn failing_after(good: &[u8], delay: Duration) -> ByteStream {
    let good = Bytes::copy_from_slice(good);
    let head = futures::stream::iter(vec![Ok(good)]);
    let tail = futures::stream::once(async move {
        tokio::time::sleep(delay).await;
        Err(backup_core::Error::integrity("checksum mismatch").into_io())
    });
    Box::pin(head.chain(tail))
}

/// `first`, then nothing, ever (an input whose producer hangs).
pub fn then_forever(first: &[u8]) -> ByteStream {
    let first = Bytes::copy_from_slice(first);
    Box::pin(futures::stream::iter(vec![Ok(first)]).chain(futures::stream::pending()))
}

/// Deterministic pseudo-random bytes (every byte value, newlines and NULs included).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

/// Whether `pid` is a live process (a zombie waiting to be reaped is dead).
pub fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// Waits up to 5 s for `pid` to die; whether it did.
pub async fn dies_soon(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if !is_running(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    !is_running(pid)
}

/// Waits up to 5 s for `path` to hold a pid and returns it.
pub async fn pid_in(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "no pid in {}", path.display());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Writes an executable script.
///
/// A child process writes it: a file this multi-threaded test process had open for
/// writing can still be open in another test's freshly forked child (until that child
/// execs), and executing it then fails with "Text file busy" (ETXTBSY).
pub fn script(path: &Path, text: &str) {
    use std::io::Write;
    let mut writer = std::process::Command::new("sh")
        .arg("-c")
        .arg("cat > \"$1\" && chmod 755 \"$1\"")
        .arg("sh")
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writer
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    assert!(
        writer.wait().unwrap().success(),
        "writing {}",
        path.display()
    );
}

/// Shell-quotes `text` for a script.
pub fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}
