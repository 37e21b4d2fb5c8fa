//! The reader behind [`OutputReader::Thread`](super::OutputReader::Thread): a thread of
//! its own reads the tool's stdout with blocking reads and hands the bytes to the async
//! side in chunks of up to [`CHUNK_SIZE`] through a channel of [`CHANNEL_CHUNKS`].
//!
//! Why a thread: `podman volume export` writes its tar as fast as it can in 32 KiB
//! pieces. Read through the async reactor, every piece costs a readiness wake-up, a
//! failed read and a hand-over between runtime threads; on two cores that podman already
//! keeps busy, that made the export 15–30 % slower than `podman volume export | cat`. A
//! blocking read sleeps in the kernel until bytes arrive, as `cat` does; after a read
//! that emptied the pipe the pump pauses [`DRAINED_PAUSE`] so the next read takes several
//! pieces at once; and gathering them into a chunk wakes the consumer once per chunk.
//! (A tool that prints small pieces while it waits on a server, like `pg_dump`, gains
//! nothing from this: the default async reader serves it as well or better.)
//!
//! A chunk is handed over when it is full, when the tool closed its stdout, or
//! [`GATHER_WINDOW`] after its first byte: a tool that prints a little and then waits is
//! seen within milliseconds. Every read counts as activity for the idle timeout. Memory
//! stays bounded: at most [`CHANNEL_CHUNKS`] chunks wait in the channel and one is being
//! filled.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustix::buffer::spare_capacity;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use tokio::sync::mpsc::{channel, Receiver, Sender};

use super::process::Activity;
use crate::artifact::CHUNK_SIZE;

/// Chunks read ahead of the consumer.
const CHANNEL_CHUNKS: usize = 2;
/// How long a chunk that is not full waits for more bytes after its first one.
const GATHER_WINDOW: Duration = Duration::from_millis(2);
/// How long the pump lets a tool write after emptying its pipe, before reading again.
const DRAINED_PAUSE: Duration = Duration::from_micros(200);

/// Starts the pump on `stdout` (a pipe). The receiver yields chunks until the tool
/// closes its stdout, then ends; a read error is the last item. Dropping the receiver stops the pump after its current
/// read, which returns once the tool (killed when its stream is dropped) has closed the
/// pipe.
///
/// # Errors
///
/// When the pipe cannot be put in blocking mode or the thread cannot be started.
pub(crate) fn pump_stdout(
    stdout: OwnedFd,
    activity: Activity,
) -> std::io::Result<Receiver<std::io::Result<Bytes>>> {
    // The pump's reads block; tokio hands the pipe over in blocking mode, made sure here.
    rustix::io::ioctl_fionbio(&stdout, false)?;
    let (sender, receiver) = channel(CHANNEL_CHUNKS);
    std::thread::Builder::new()
        .name("tool-stdout".into())
        .spawn(move || pump(&stdout, &activity, &sender))?;
    Ok(receiver)
}

fn pump(stdout: &OwnedFd, activity: &Activity, sender: &Sender<std::io::Result<Bytes>>) {
    loop {
        let mut chunk = Vec::with_capacity(CHUNK_SIZE);
        let ended = match gather(stdout, &mut chunk, activity) {
            Ok(ended) => ended,
            Err(error) => {
                let _ = sender.blocking_send(Err(error));
                return;
            }
        };
        if !chunk.is_empty() && sender.blocking_send(Ok(Bytes::from(chunk))).is_err() {
            return;
        }
        if ended {
            return;
        }
    }
}

/// Reads into `chunk` until it is full, the pipe ends (`true`), or nothing more arrives
/// within [`GATHER_WINDOW`] of its first byte. After a read that emptied the pipe it
/// pauses [`DRAINED_PAUSE`] before waiting for more, so a tool printing small pieces
/// (pg_dump's plain SQL) is read a batch at a time instead of waking this thread for
/// every piece.
fn gather(stdout: &OwnedFd, chunk: &mut Vec<u8>, activity: &Activity) -> std::io::Result<bool> {
    let mut deadline: Option<Instant> = None;
    let mut drained = false;
    while chunk.len() < chunk.capacity() {
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            if drained {
                std::thread::sleep(DRAINED_PAUSE.min(left));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !readable_within(stdout, left)? {
                return Ok(false);
            }
        }
        let room = chunk.capacity() - chunk.len();
        match rustix::io::read(stdout, spare_capacity(chunk)) {
            Ok(0) => return Ok(true),
            Ok(read) => {
                activity.touch();
                drained = read < room;
                deadline.get_or_insert_with(|| Instant::now() + GATHER_WINDOW);
            }
            Err(Errno::INTR) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(false)
}

/// Whether `stdout` has bytes (or its end) within `wait`.
fn readable_within(stdout: &OwnedFd, wait: Duration) -> std::io::Result<bool> {
    let mut fds = [PollFd::new(stdout, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(wait.subsec_nanos()),
    };
    match poll(&mut fds, Some(&timeout)) {
        Ok(ready) => Ok(ready > 0),
        Err(Errno::INTR) => Ok(true),
        Err(error) => Err(error.into()),
    }
}
