//! A tool's output read on a thread of its own (`CommandSpec::read_output_in_thread`)
//! keeps every guarantee of the async reader: all bytes in order, a piece printed before
//! the tool goes quiet arrives at once, a failure after output ends the stream with the
//! tool's error, a silent tool is killed after its idle timeout, and dropping the stream
//! kills the tool.
#![allow(clippy::unwrap_used)]

#[path = "command_support.rs"]
mod support;

use std::time::{Duration, Instant};

use backup_core::command::OutputReader;
use backup_core::{CommandRunnerExt, Error, ErrorKind, LocalRunner};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use support::{dies_soon, is_running, noise, quoted, sh};

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

    let chunks: Vec<Bytes> = LocalRunner::new()
        .stream_stdout(&spec)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();

    assert!(chunks
        .iter()
        .all(|c| !c.is_empty() && c.len() <= backup_core::artifact::CHUNK_SIZE));
    assert_eq!(chunks.concat(), data);
}

#[tokio::test]
async fn a_piece_printed_before_the_tool_goes_quiet_arrives_at_once_and_dropping_kills_it() {
    let spec = sh("echo $$; exec sleep 1000").read_output_in_thread();
    let mut stream = LocalRunner::new().stream_stdout(&spec).await.unwrap();
    let started = Instant::now();

    let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the printed pid should arrive while the tool sleeps")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    let pid: u32 = String::from_utf8_lossy(&chunk).trim().parse().unwrap();
    assert!(is_running(pid));

    drop(stream);
    assert!(
        dies_soon(pid).await,
        "sleep {pid} still runs after its stream was dropped"
    );
}

#[tokio::test]
async fn a_failure_after_output_ends_the_stream_with_the_tools_error() {
    let spec = sh("printf partial; echo 'disk on fire' >&2; exit 3").read_output_in_thread();
    let stream = LocalRunner::new().stream_stdout(&spec).await.unwrap();

    let result: std::io::Result<Vec<Bytes>> = stream.try_collect().await;

    let err = Error::io("export", result.unwrap_err());
    assert_eq!(err.kind(), ErrorKind::ToolFailed);
    assert!(err.message().contains("exit code 3"), "{err}");
    assert!(err.message().contains("disk on fire"), "{err}");
}

#[tokio::test]
async fn a_tool_that_stops_printing_fails_after_its_idle_timeout() {
    let spec = sh("printf started; exec sleep 1000")
        .idle_timeout(Duration::from_millis(300))
        .read_output_in_thread();
    let mut stream = LocalRunner::new().stream_stdout(&spec).await.unwrap();

    assert_eq!(&stream.next().await.unwrap().unwrap()[..], b"started");
    let err = Error::io("export", stream.next().await.unwrap().unwrap_err());

    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains("300 ms"), "{err}");
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn a_tool_printing_slowly_is_not_idle() {
    // Ten pieces, 100 ms apart: never silent for the 400 ms limit, though a whole run
    // takes longer than it.
    let spec = sh("for i in 0 1 2 3 4 5 6 7 8 9; do printf $i; sleep 0.1; done")
        .idle_timeout(Duration::from_millis(400))
        .read_output_in_thread();

    let chunks: Vec<Bytes> = LocalRunner::new()
        .stream_stdout(&spec)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();

    assert_eq!(chunks.concat(), b"0123456789");
    assert!(chunks.len() > 1, "pieces should arrive as they are printed");
}
