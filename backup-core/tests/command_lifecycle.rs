//! Tools are stopped when the operation using them ends early, and when they stall
//! (streamed output read either way, through the runtime or on a thread of its own):
//! a dropped stream or a cancelled run kills the tool with its process group, and a tool
//! that does nothing for its idle timeout is killed with an error naming it and the limit.
#![allow(clippy::unwrap_used)]

#[path = "command_support.rs"]
mod support;

use std::time::{Duration, Instant};

use backup_core::{CommandRunnerExt, ErrorKind, LocalRunner};
use futures::{StreamExt, TryStreamExt};
use support::{
    dies_soon, is_running, noise, pid_in, quoted, sh, stream_of, then_forever, with_each_reader,
};

async fn first_line_pid(stream: &mut backup_core::ByteStream) -> u32 {
    let chunk = stream.next().await.unwrap().unwrap();
    String::from_utf8_lossy(&chunk).trim().parse().unwrap()
}

#[tokio::test]
async fn dropping_the_output_stream_kills_a_tool_that_writes_nothing() {
    let runner = LocalRunner::new();
    for spec in with_each_reader(sh("echo $$; exec sleep 1000")) {
        let mut stream = runner.stream_stdout(&spec).await.unwrap();
        let pid = first_line_pid(&mut stream).await;
        assert!(is_running(pid));

        drop(stream);

        assert!(
            dies_soon(pid).await,
            "sleep {pid} still runs after its stream was dropped ({:?})",
            spec.output_reader
        );
    }
}

#[tokio::test]
async fn dropping_the_output_stream_kills_the_tools_children_too() {
    let runner = LocalRunner::new();
    for spec in with_each_reader(sh("sleep 1000 & echo $!; wait")) {
        let mut stream = runner.stream_stdout(&spec).await.unwrap();
        let child = first_line_pid(&mut stream).await;
        assert!(is_running(child));

        drop(stream);

        assert!(
            dies_soon(child).await,
            "the tool's child {child} survived ({:?})",
            spec.output_reader
        );
    }
}

#[tokio::test]
async fn cancelling_a_run_kills_a_tool_reading_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let spec = sh(&format!(
        "echo $$ > {}; exec cat > /dev/null",
        quoted(&pid_file.display().to_string())
    ));
    let runner = LocalRunner::new();
    let run = runner.run_with_stdin(&spec, then_forever(b"some input"));
    let cancelled = tokio::time::timeout(Duration::from_millis(500), run).await;
    assert!(
        cancelled.is_err(),
        "the run should still be waiting for input"
    );

    let pid = pid_in(&pid_file).await;
    assert!(
        dies_soon(pid).await,
        "cat {pid} still runs after its run was cancelled"
    );
}

#[tokio::test]
async fn a_silent_tool_fails_after_its_idle_timeout_naming_the_tool_and_the_limit() {
    let runner = LocalRunner::new();
    let spec = sh("echo $$ >&2; exec sleep 1000").idle_timeout(Duration::from_millis(300));
    let started = Instant::now();

    let err = runner.output(&spec).await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains("sleep 1000"), "{err}");
    assert!(err.message().contains("300 ms"), "{err}");
    assert!(err.hint().unwrap().contains("idle_timeout"), "{err:?}");
    // The pid the tool printed on stderr is in the message; that process is gone.
    let pid: u32 = err
        .message()
        .rsplit(": ")
        .next()
        .and_then(|tail| tail.trim().parse().ok())
        .unwrap();
    assert!(dies_soon(pid).await);
}

#[tokio::test]
async fn a_stream_that_stops_producing_fails_after_its_idle_timeout() {
    let runner = LocalRunner::new();
    let spec = sh("printf started; exec sleep 1000").idle_timeout(Duration::from_millis(300));
    for spec in with_each_reader(spec) {
        let mut stream = runner.stream_stdout(&spec).await.unwrap();

        assert_eq!(&stream.next().await.unwrap().unwrap()[..], b"started");
        let err = stream.next().await.unwrap().unwrap_err();
        let err = backup_core::Error::io("export", err);

        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.message().contains("300 ms"), "{err}");
        assert!(stream.next().await.is_none());
    }
}

#[tokio::test]
async fn a_tool_that_stops_reading_its_input_fails_after_its_idle_timeout() {
    let runner = LocalRunner::new();
    // More than a pipe holds, to a tool that never reads it.
    let spec = sh("exec sleep 1000").idle_timeout(Duration::from_millis(300));
    let err = runner
        .run_with_stdin(&spec, stream_of(&noise(4 * 1024 * 1024, 1)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains("300 ms"), "{err}");
}

#[tokio::test]
async fn a_tool_that_hangs_after_its_input_fails_after_its_idle_timeout() {
    let runner = LocalRunner::new();
    let spec = sh("cat > /dev/null; exec sleep 1000").idle_timeout(Duration::from_millis(300));
    let err = runner
        .run_with_stdin(&spec, stream_of(b"input"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

#[tokio::test]
async fn a_tool_that_keeps_printing_runs_longer_than_its_idle_timeout() {
    let runner = LocalRunner::new();
    let spec = sh("for i in 1 2 3 4 5 6; do echo $i; sleep 0.1; done")
        .idle_timeout(Duration::from_millis(400));
    let output = runner.output(&spec).await.unwrap();
    assert_eq!(output.stdout_text(), "1\n2\n3\n4\n5\n6\n");
}

#[tokio::test]
async fn a_slow_consumer_does_not_count_as_the_tools_idle_time() {
    let runner = LocalRunner::new();
    let spec = sh("head -c 1000000 /dev/zero").idle_timeout(Duration::from_millis(200));
    for spec in with_each_reader(spec) {
        let mut stream = runner.stream_stdout(&spec).await.unwrap();
        let mut total = stream.next().await.unwrap().unwrap().len();
        // The tool fills the pipe and waits on us; that is not the tool stalling.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let rest: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
        total += rest.iter().map(bytes::Bytes::len).sum::<usize>();
        assert_eq!(total, 1_000_000);
    }
}

#[tokio::test]
async fn a_slow_input_does_not_count_as_the_tools_idle_time() {
    let runner = LocalRunner::new();
    let slow: backup_core::ByteStream = Box::pin(
        futures::stream::iter(vec![b"one ".to_vec(), b"two".to_vec()]).then(|chunk| async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            Ok(bytes::Bytes::from(chunk))
        }),
    );
    let spec = sh("cat").idle_timeout(Duration::from_millis(200));
    let output = runner.run_with_stdin(&spec, slow).await.unwrap();
    assert_eq!(output.stdout_text(), "one two");
}
