//! Secrets given to `podman exec` / `kubectl exec` never reach a command line, `Debug`,
//! `display()` or an error, and the tool still gets them and its data stream intact.
//!
//! A fake `kubectl` / `podman` records its argv and environment, then runs the wrapped
//! command here, as the real client would in the pod or container.
#![allow(clippy::unwrap_used)]

#[path = "command_support.rs"]
mod support;

use std::path::{Path, PathBuf};

use backup_core::{CommandRunnerExt, CommandSpec, ErrorKind, ExecRunner, ExecTarget};
use futures::TryStreamExt;
use support::{noise, quoted, script, sh, stream_of};

/// A password with every character a shell or printf could trip on, and a newline at the end.
const SECRET: &str = "pl4nted-S3cret 'single' \"double\" $(touch PWNED) `touch PWNED` \\ \\n %s %% \t é €\nsecond-line\n";
/// Parts of [`SECRET`] that must not show up anywhere.
const SECRET_MARKS: [&str; 2] = ["pl4nted-S3cret", "second-line"];

fn assert_no_secret(what: &str, text: &str) {
    for mark in SECRET_MARKS {
        assert!(!text.contains(mark), "the secret shows in {what}: {text}");
    }
}

fn fake_kubectl(dir: &Path) -> PathBuf {
    let path = dir.join("kubectl");
    let log = quoted(&dir.display().to_string());
    script(
        &path,
        &format!(
            "#!/bin/sh\n\
             printf '%s\\n' \"$@\" > {log}/kubectl.argv\n\
             tr '\\0' '\\n' < /proc/$$/cmdline > {log}/kubectl.cmdline\n\
             env > {log}/kubectl.env\n\
             while [ $# -gt 0 ] && [ \"$1\" != -- ]; do shift; done\n\
             shift\n\
             exec \"$@\"\n"
        ),
    );
    path
}

fn fake_podman(dir: &Path) -> PathBuf {
    let path = dir.join("podman");
    let log = quoted(&dir.display().to_string());
    script(
        &path,
        &format!(
            "#!/bin/sh\n\
             printf '%s\\n' \"$@\" > {log}/podman.argv\n\
             env > {log}/podman.env\n\
             while [ $# -gt 0 ] && [ \"$1\" != exec ]; do shift; done\n\
             shift\n\
             [ \"$1\" = -i ] && shift\n\
             while [ \"$1\" = -e ]; do shift 2; done\n\
             shift\n\
             exec \"$@\"\n"
        ),
    );
    path
}

fn kubectl_runner(dir: &Path) -> ExecRunner {
    ExecRunner::new(ExecTarget::Kubectl {
        namespace: "ws-1".into(),
        pod: "postgres-0".into(),
        container: Some("postgres".into()),
        context: None,
    })
    .with_program(fake_kubectl(dir).display().to_string())
}

fn podman_runner(dir: &Path) -> ExecRunner {
    ExecRunner::new(ExecTarget::Podman {
        container: "db".into(),
        global_args: Vec::new(),
    })
    .with_program(fake_podman(dir).display().to_string())
}

/// A tool that saves the secret and its stdin under `dir`.
fn recording_tool(dir: &Path) -> CommandSpec {
    let d = quoted(&dir.display().to_string());
    sh(&format!(
        "printf %s \"$PGPASSWORD\" > {d}/got-secret; printf %s \"$PGAPPNAME\" > {d}/got-app; \
         cat > {d}/got-data"
    ))
    .secret_env("PGPASSWORD", SECRET)
    .secret_env("PGAPPNAME", "backup-postgres")
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap()
}

fn read_text(dir: &Path, name: &str) -> String {
    String::from_utf8_lossy(&read(dir, name)).into_owned()
}

#[tokio::test]
async fn kubectl_exec_sends_secrets_on_stdin_never_in_argv_and_keeps_the_data_exact() {
    let dir = tempfile::tempdir().unwrap();
    let runner = kubectl_runner(dir.path());
    let spec = recording_tool(dir.path());
    let data = noise(3 * 1024 * 1024 + 17, 13);

    runner
        .run_with_stdin(&spec, stream_of(&data))
        .await
        .unwrap();

    assert_eq!(read_text(dir.path(), "got-secret"), SECRET);
    assert_eq!(read_text(dir.path(), "got-app"), "backup-postgres");
    assert!(
        read(dir.path(), "got-data") == data,
        "the data stream changed"
    );
    assert!(!dir.path().join("PWNED").exists());
    assert!(!Path::new("PWNED").exists());
    assert_no_secret("kubectl's argv", &read_text(dir.path(), "kubectl.argv"));
    assert_no_secret(
        "kubectl's /proc cmdline",
        &read_text(dir.path(), "kubectl.cmdline"),
    );
    assert_no_secret(
        "kubectl's environment",
        &read_text(dir.path(), "kubectl.env"),
    );
    let wrapped = runner.wrap(&spec);
    assert_no_secret("display()", &wrapped.display());
    assert_no_secret("Debug", &format!("{wrapped:?} {spec:?} {runner:?}"));
    assert_no_secret(
        "the wrapped spec's environment",
        &format!("{:?}", wrapped.env),
    );
}

#[tokio::test]
async fn kubectl_exec_gives_the_secret_to_a_tool_that_reads_no_input() {
    let dir = tempfile::tempdir().unwrap();
    let runner = kubectl_runner(dir.path());
    let spec = sh("printf %s \"$PGPASSWORD\"").secret_env("PGPASSWORD", SECRET);

    let streamed: Vec<bytes::Bytes> = runner
        .stream_stdout(&spec)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(streamed.concat(), SECRET.as_bytes());
    let output = runner.output(&spec).await.unwrap();
    assert_eq!(output.stdout_text(), SECRET);
    assert_no_secret("kubectl's argv", &read_text(dir.path(), "kubectl.argv"));
}

#[tokio::test]
async fn a_failing_tool_through_kubectl_reports_its_error_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let runner = kubectl_runner(dir.path());
    let spec = sh("echo 'connection refused' >&2; exit 4").secret_env("PGPASSWORD", SECRET);

    let err = runner.output(&spec).await.unwrap_err();

    assert_eq!(err.kind(), ErrorKind::ToolFailed);
    assert!(err.message().contains("exit code 4"), "{err}");
    assert!(err.message().contains("connection refused"), "{err}");
    assert_no_secret("the error", &format!("{err} {err:?}"));
}

#[tokio::test]
async fn podman_exec_names_secrets_in_argv_and_passes_values_in_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let runner = podman_runner(dir.path());
    let spec = recording_tool(dir.path());
    let data = noise(2 * 1024 * 1024 + 5, 29);

    runner
        .run_with_stdin(&spec, stream_of(&data))
        .await
        .unwrap();

    assert_eq!(read_text(dir.path(), "got-secret"), SECRET);
    assert!(
        read(dir.path(), "got-data") == data,
        "the data stream changed"
    );
    let argv = read_text(dir.path(), "podman.argv");
    assert_no_secret("podman's argv", &argv);
    assert!(argv.contains("-e\nPGPASSWORD\n"), "{argv}");
    // The value travels in podman's own environment, readable only by its user.
    assert!(read_text(dir.path(), "podman.env").contains("pl4nted-S3cret"));
    assert_no_secret("display()", &runner.wrap(&spec).display());
}
