//! Feeding a tool and reading it: a failed input never reaches the tool as a clean end of
//! input, a tool that does not read all of its input fails, and exit statuses count.
#![allow(clippy::unwrap_used)]

#[path = "command_support.rs"]
mod support;

use std::path::Path;
use std::time::Duration;

use backup_core::{CommandRunnerExt, CommandSpec, Error, ErrorKind, LocalRunner};
use bytes::Bytes;
use futures::TryStreamExt;
use support::{chunks, failing_after, noise, quoted, sh, stream_of, with_each_reader};

fn path(dir: &Path, name: &str) -> String {
    quoted(&dir.join(name).display().to_string())
}

/// Whether a process the test left behind might still write `marker`: give it time.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn a_failing_input_never_lets_a_tool_commit_at_end_of_input() {
    let dir = tempfile::tempdir().unwrap();
    let spec = sh(&format!(
        "cat > {}; echo committed > {}",
        path(dir.path(), "out"),
        path(dir.path(), "marker")
    ));
    let err = LocalRunner::new()
        .run_with_stdin(
            &spec,
            failing_after(b"BEGIN; INSERT", Duration::from_millis(200)),
        )
        .await
        .unwrap_err();
    settle().await;

    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("out")).unwrap(),
        b"BEGIN; INSERT"
    );
    assert!(
        !dir.path().join("marker").exists(),
        "the tool committed a failed input"
    );
}

#[tokio::test]
async fn a_failing_input_is_never_seen_as_end_of_input_by_a_pipeline_inside_the_tool() {
    // The reader of the input is not the spawned process but its child (`sh -c "zstd -d |
    // psql"` has the same shape): killing only the spawned shell and then closing stdin
    // would let the child see a clean end of input and commit.
    let dir = tempfile::tempdir().unwrap();
    let spec = sh(&format!(
        "exec 3<&0; (cat <&3 > {}; echo committed > {}) & wait",
        path(dir.path(), "out"),
        path(dir.path(), "marker")
    ));
    let err = LocalRunner::new()
        .run_with_stdin(
            &spec,
            failing_after(b"COPY t FROM stdin;", Duration::from_millis(200)),
        )
        .await
        .unwrap_err();
    settle().await;

    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(
        !dir.path().join("marker").exists(),
        "the tool committed a failed input"
    );
}

#[tokio::test]
async fn a_tool_that_exits_0_before_reading_a_large_input_fails() {
    let spec = sh("head -c 10 > /dev/null");
    let err = LocalRunner::new()
        .run_with_stdin(&spec, stream_of(&noise(4 * 1024 * 1024, 3)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ToolFailed, "{err}");
    assert!(err.message().contains("stopped reading its input"), "{err}");
    assert!(err.hint().is_some());
}

#[tokio::test]
async fn a_tool_that_exits_0_leaving_input_in_the_pipe_fails() {
    // Small enough to sit in the pipe buffer: the write succeeds, the tool never reads it.
    let spec = sh("sleep 0.5; exit 0");
    let err = LocalRunner::new()
        .run_with_stdin(&spec, stream_of(b"\\q\nDROP TABLE important;\n"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ToolFailed, "{err}");
    assert!(err.message().contains("25 bytes unread"), "{err}");
}

#[tokio::test]
async fn a_tool_that_fails_before_reading_its_input_reports_its_own_error() {
    let spec = sh("echo 'password authentication failed' >&2; exit 2");
    let err = LocalRunner::new()
        .run_with_stdin(&spec, stream_of(&noise(4 * 1024 * 1024, 5)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ToolFailed, "{err}");
    assert!(err.message().contains("exit code 2"), "{err}");
    assert!(
        err.message().contains("password authentication failed"),
        "{err}"
    );
}

#[tokio::test]
async fn stdin_is_fed_from_a_stream_byte_exact() {
    let data = noise(5 * 1024 * 1024 + 3, 11);
    let dir = tempfile::tempdir().unwrap();
    let spec = sh(&format!("cat > {}; echo done", path(dir.path(), "copy")));
    let out = LocalRunner::new()
        .run_with_stdin(&spec, stream_of(&data))
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "done\n");
    assert!(std::fs::read(dir.path().join("copy")).unwrap() == data);
}

#[tokio::test]
async fn an_empty_input_is_a_clean_end_of_input() {
    let out = LocalRunner::new()
        .run_with_stdin(&sh("wc -c"), chunks(Vec::new()))
        .await
        .unwrap();
    assert_eq!(out.stdout_text().trim(), "0");
}

#[tokio::test]
async fn stdout_streams_and_success_ends_cleanly() {
    let stream = LocalRunner::new()
        .stream_stdout(&sh("printf hello; printf world"))
        .await
        .unwrap();
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), b"helloworld");
}

#[tokio::test]
async fn non_zero_exit_after_output_is_an_error_with_stderr() {
    for spec in with_each_reader(sh("printf partial; echo 'disk on fire' >&2; exit 3")) {
        let stream = LocalRunner::new().stream_stdout(&spec).await.unwrap();
        let result: std::io::Result<Vec<Bytes>> = stream.try_collect().await;
        let err = Error::io("export", result.unwrap_err());
        assert_eq!(err.kind(), ErrorKind::ToolFailed);
        assert!(err.message().contains("exit code 3"), "{err}");
        assert!(err.message().contains("disk on fire"), "{err}");
    }
}

#[tokio::test]
async fn missing_program_is_unavailable_with_a_hint() {
    let err = LocalRunner::new()
        .output(&CommandSpec::new("definitely-not-a-real-tool-xyz"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.hint().is_some());
}

#[tokio::test]
async fn output_larger_than_the_limit_is_an_error_not_a_hang() {
    let err = LocalRunner::new()
        .output(&sh("head -c 70000000 /dev/zero"))
        .await
        .unwrap_err();
    assert!(err.message().contains("stream it instead"), "{err}");
}
