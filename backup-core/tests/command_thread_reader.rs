//! A tool's output read on a thread of its own (`CommandSpec::read_output_in_thread`):
//! all bytes arrive in order, a piece printed before the tool goes quiet arrives at once,
//! and a tool printing slowly is not idle. The guarantees both readers share (a failure
//! after output, the idle timeout, a slow consumer, dropping the stream) are tested for
//! both in `command_input.rs` and `command_lifecycle.rs`.
#![allow(clippy::unwrap_used)]

#[path = "command_support.rs"]
mod support;

use std::time::{Duration, Instant};

use backup_core::command::OutputReader;
use backup_core::{CommandRunnerExt, CommandSpec, LocalRunner};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use support::{noise, quoted, sh};

/// Every chunk `spec` prints, streamed by a local runner.
async fn streamed(spec: &CommandSpec) -> Vec<Bytes> {
    LocalRunner::new()
        .stream_stdout(spec)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

#[test]
fn a_spec_reads_output_through_the_runtime_unless_told_otherwise() {
    assert_eq!(sh("true").output_reader, OutputReader::Async);
    assert_eq!(
        sh("true").read_output_in_thread().output_reader,
        OutputReader::Thread
    );
}

#[tokio::test]
async fn a_large_output_arrives_whole_and_in_order_in_bounded_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    let data = noise(9 * 1024 * 1024 + 123, 7);
    std::fs::write(&file, &data).unwrap();
    // Written in small pieces, as podman writes its tar.
    let spec = sh(&format!(
        "dd if={} bs=32k status=none",
        quoted(&file.display().to_string())
    ))
    .read_output_in_thread();

    let chunks = streamed(&spec).await;

    assert!(chunks
        .iter()
        .all(|c| !c.is_empty() && c.len() <= backup_core::artifact::CHUNK_SIZE));
    assert_eq!(chunks.concat(), data);
}

#[tokio::test]
async fn a_piece_printed_before_the_tool_goes_quiet_arrives_at_once() {
    let spec = sh("echo started; exec sleep 1000").read_output_in_thread();
    let mut stream = LocalRunner::new().stream_stdout(&spec).await.unwrap();
    let started = Instant::now();

    let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the printed line should arrive while the tool sleeps")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(&chunk[..], b"started\n");
}

#[tokio::test]
async fn a_tool_printing_slowly_is_not_idle() {
    // Ten pieces, 100 ms apart: never silent for the 400 ms limit, though a whole run
    // takes longer than it.
    let spec = sh("for i in 0 1 2 3 4 5 6 7 8 9; do printf $i; sleep 0.1; done")
        .idle_timeout(Duration::from_millis(400))
        .read_output_in_thread();

    let chunks = streamed(&spec).await;

    assert_eq!(chunks.concat(), b"0123456789");
    assert!(chunks.len() > 1, "pieces should arrive as they are printed");
}
