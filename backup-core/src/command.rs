//! Where native tools run: locally, `podman exec` into a container, or `kubectl exec` into
//! a pod. Adapters that shell out (pg_dump, psql, podman) go through a [`CommandRunner`],
//! with stdout streamed, stdin fed from a stream, and stderr captured for the error.
//!
//! A tool that exits non-zero fails the operation even if it printed bytes first.

use std::fmt;
use std::process::Stdio;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::artifact::{reader_from_stream, ByteStream, CHUNK_SIZE};
use crate::{Error, ErrorKind, Result};

/// How much of a tool's stderr is kept for the error message (the tail).
const STDERR_TAIL: usize = 16 * 1024;
/// How much stdout [`CommandRunnerExt::output`] keeps; larger outputs must be streamed.
const OUTPUT_LIMIT: usize = 64 * 1024 * 1024;

/// What a failed tool left behind, for mapping to an error users can act on.
#[derive(Debug, Clone)]
pub struct ToolFailure {
    /// The command as shown to users (program and arguments, never env values).
    pub command: String,
    /// Exit code, or `None` when killed by a signal.
    pub exit_code: Option<i32>,
    /// The tail of its stderr.
    pub stderr: String,
}

impl ToolFailure {
    /// The default error: [`ErrorKind::ToolFailed`] with the exit code and stderr.
    pub fn into_error(self) -> Error {
        let status = match self.exit_code {
            Some(code) => format!("exit code {code}"),
            None => "killed by a signal".to_string(),
        };
        let stderr = self.stderr.trim();
        let detail = if stderr.is_empty() {
            String::new()
        } else {
            format!(": {}", stderr.replace('\n', " | "))
        };
        Error::new(
            ErrorKind::ToolFailed,
            format!("`{}` failed with {status}{detail}", self.command),
        )
    }
}

/// Maps a tool failure to an error with a kind and hint (adapters know their tool's messages).
pub type FailureMapper = Arc<dyn Fn(ToolFailure) -> Error + Send + Sync>;

/// A command to run: program, arguments, environment and a failure mapper.
#[derive(Clone)]
pub struct CommandSpec {
    /// Program name or path.
    pub program: String,
    /// Arguments. Never put a secret here: use [`CommandSpec::secret_env`].
    pub args: Vec<String>,
    /// Environment variables; values may be secrets and are never displayed.
    pub env: Vec<(String, String)>,
    /// Turns a failure into an error; defaults to [`ToolFailure::into_error`].
    pub on_failure: Option<FailureMapper>,
}

impl CommandSpec {
    /// A command with no arguments.
    pub fn new(program: impl Into<String>) -> Self {
        CommandSpec {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            on_failure: None,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable whose value is a secret (never shown or logged).
    pub fn secret_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Sets how a failure of this command becomes an error.
    pub fn on_failure(
        mut self,
        mapper: impl Fn(ToolFailure) -> Error + Send + Sync + 'static,
    ) -> Self {
        self.on_failure = Some(Arc::new(mapper));
        self
    }

    /// The command line as shown to users: program and arguments, no env values.
    pub fn display(&self) -> String {
        let mut text = self.program.clone();
        for arg in &self.args {
            text.push(' ');
            text.push_str(arg);
        }
        text
    }

    fn failure_error(&self, failure: ToolFailure) -> Error {
        match &self.on_failure {
            Some(mapper) => mapper(failure),
            None => failure.into_error(),
        }
    }
}

impl fmt::Debug for CommandSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env_names: Vec<&str> = self.env.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("CommandSpec")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &env_names)
            .finish_non_exhaustive()
    }
}

/// A started command with piped stdin, stdout and stderr.
#[derive(Debug)]
pub struct SpawnedCommand {
    /// The child process (killed when dropped).
    pub child: tokio::process::Child,
}

/// Starts commands somewhere: on this machine, in a container, in a pod.
///
/// Implementations only start processes; streaming, stderr capture and exit-status
/// handling live in [`CommandRunnerExt`], which every runner gets for free.
#[async_trait]
pub trait CommandRunner: Send + Sync + fmt::Debug {
    /// Starts `spec` with stdin, stdout and stderr piped, killed on drop.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`] when the program (or podman/kubectl) is not installed.
    async fn spawn(&self, spec: &CommandSpec) -> Result<SpawnedCommand>;
}

/// Runs commands on this machine.
#[derive(Debug, Clone, Default)]
pub struct LocalRunner {
    _private: (),
}

impl LocalRunner {
    /// Creates a local runner.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl CommandRunner for LocalRunner {
    async fn spawn(&self, spec: &CommandSpec) -> Result<SpawnedCommand> {
        let mut command = tokio::process::Command::new(&spec.program);
        command
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command.spawn().map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("`{}` is not installed or not on PATH", spec.program),
                )
                .with_hint("install it (scripts/test.sh installs every tool the tests use)")
            } else {
                Error::io(format!("starting `{}`", spec.program), source)
            }
        })?;
        Ok(SpawnedCommand { child })
    }
}

/// Where [`ExecRunner`] runs commands.
#[derive(Clone, PartialEq, Eq)]
pub enum ExecTarget {
    /// `podman exec -i CONTAINER …`, with optional global args (`--root`, `--runroot`).
    Podman {
        /// Container name or id.
        container: String,
        /// Arguments placed before `exec` (e.g. `--root DIR`).
        global_args: Vec<String>,
    },
    /// `kubectl exec -i -n NAMESPACE POD [-c CONTAINER] -- …`.
    Kubectl {
        /// Namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// Container in the pod, when it has several.
        container: Option<String>,
        /// kubectl context, when not the current one.
        context: Option<String>,
    },
}

impl fmt::Debug for ExecTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecTarget::Podman { container, .. } => write!(f, "podman exec {container}"),
            ExecTarget::Kubectl { namespace, pod, .. } => {
                write!(f, "kubectl exec -n {namespace} {pod}")
            }
        }
    }
}

/// Runs commands inside a container (`podman exec`) or a pod (`kubectl exec`).
///
/// Secret environment values reach podman through its own environment (`-e NAME` without a
/// value), so they never appear on a command line. `kubectl exec` has no such option: the
/// values are passed as `env NAME=VALUE` inside the pod, which is visible to anyone who can
/// list processes on this machine while the command runs.
#[derive(Debug, Clone)]
pub struct ExecRunner {
    target: ExecTarget,
    local: LocalRunner,
}

impl ExecRunner {
    /// A runner that executes inside `target`.
    pub fn new(target: ExecTarget) -> Self {
        ExecRunner {
            target,
            local: LocalRunner::new(),
        }
    }

    /// The local command that runs `spec` inside the target.
    pub fn wrap(&self, spec: &CommandSpec) -> CommandSpec {
        let mut wrapped = match &self.target {
            ExecTarget::Podman {
                container,
                global_args,
            } => {
                let mut out = CommandSpec::new("podman").args(global_args.iter().cloned());
                out = out.arg("exec").arg("-i");
                for (name, value) in &spec.env {
                    out = out.arg("-e").arg(name.clone());
                    out.env.push((name.clone(), value.clone()));
                }
                out.arg(container.clone())
                    .arg(spec.program.clone())
                    .args(spec.args.iter().cloned())
            }
            ExecTarget::Kubectl {
                namespace,
                pod,
                container,
                context,
            } => {
                let mut out = CommandSpec::new("kubectl");
                if let Some(context) = context {
                    out = out.arg("--context").arg(context.clone());
                }
                out = out
                    .arg("exec")
                    .arg("-i")
                    .arg("-n")
                    .arg(namespace.clone())
                    .arg(pod.clone());
                if let Some(container) = container {
                    out = out.arg("-c").arg(container.clone());
                }
                out = out.arg("--");
                if !spec.env.is_empty() {
                    out = out.arg("env");
                    for (name, value) in &spec.env {
                        out = out.arg(format!("{name}={value}"));
                    }
                }
                out.arg(spec.program.clone())
                    .args(spec.args.iter().cloned())
            }
        };
        wrapped.on_failure = spec.on_failure.clone();
        wrapped
    }
}

#[async_trait]
impl CommandRunner for ExecRunner {
    async fn spawn(&self, spec: &CommandSpec) -> Result<SpawnedCommand> {
        self.local.spawn(&self.wrap(spec)).await
    }
}

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    /// Its stdout (bounded; stream large outputs with [`CommandRunnerExt::stream_stdout`]).
    pub stdout: Bytes,
    /// The tail of its stderr.
    pub stderr: String,
}

impl CommandOutput {
    /// Stdout as text, lossily decoded.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Streaming helpers every [`CommandRunner`] gets.
#[async_trait]
pub trait CommandRunnerExt: CommandRunner {
    /// Runs `spec` with empty stdin and streams its stdout.
    ///
    /// The stream ends with an error item when the tool exits non-zero (even after
    /// printing output), carrying the mapped [`ToolFailure`]. Dropping the stream kills
    /// the tool.
    ///
    /// # Errors
    ///
    /// Fails when the tool cannot be started.
    async fn stream_stdout(&self, spec: &CommandSpec) -> Result<ByteStream> {
        let mut spawned = self.spawn(spec).await?;
        drop(spawned.child.stdin.take());
        let stdout = take_pipe(spawned.child.stdout.take(), "stdout")?;
        let stderr = take_pipe(spawned.child.stderr.take(), "stderr")?;
        let stderr_task = tokio::spawn(read_tail(stderr));
        let (mut tx, rx) = futures::channel::mpsc::channel::<std::io::Result<Bytes>>(4);
        let spec = spec.clone();
        let mut child = spawned.child;
        tokio::spawn(async move {
            let mut chunks = tokio_util::io::ReaderStream::with_capacity(stdout, CHUNK_SIZE);
            while let Some(item) = chunks.next().await {
                let failed = item.is_err();
                if tx.send(item).await.is_err() {
                    // The consumer went away: stop the tool.
                    let _ = child.kill().await;
                    return;
                }
                if failed {
                    let _ = child.kill().await;
                    return;
                }
            }
            let status = child.wait().await;
            let stderr = stderr_task.await.unwrap_or_default();
            let outcome = match status {
                Ok(status) if status.success() => return,
                Ok(status) => spec.failure_error(ToolFailure {
                    command: spec.display(),
                    exit_code: status.code(),
                    stderr,
                }),
                Err(source) => Error::io(format!("waiting for `{}`", spec.program), source),
            };
            let _ = tx.send(Err(outcome.into_io())).await;
        });
        Ok(Box::pin(rx))
    }

    /// Runs `spec`, feeding `input` to its stdin, and waits for it to finish.
    ///
    /// If `input` ends with an error the tool is killed and that error is returned, so a
    /// truncated or corrupt stream never looks like a successful import.
    ///
    /// # Errors
    ///
    /// The input's error, or the mapped [`ToolFailure`] when the tool exits non-zero.
    async fn run_with_stdin(&self, spec: &CommandSpec, input: ByteStream) -> Result<CommandOutput> {
        let mut spawned = self.spawn(spec).await?;
        let mut stdin = take_pipe(spawned.child.stdin.take(), "stdin")?;
        let stdout = take_pipe(spawned.child.stdout.take(), "stdout")?;
        let stderr = take_pipe(spawned.child.stderr.take(), "stderr")?;
        let stdout_task = tokio::spawn(read_limited(stdout, OUTPUT_LIMIT));
        let stderr_task = tokio::spawn(read_tail(stderr));
        let mut reader = reader_from_stream(input);
        let copied = tokio::io::copy(&mut reader, &mut stdin).await;
        let copy_error = match copied {
            Ok(_) => stdin.shutdown().await.err(),
            Err(err) => Some(err),
        };
        drop(stdin);
        if let Some(err) = copy_error {
            // A broken pipe means the tool exited early: its own error explains why.
            if err.kind() != std::io::ErrorKind::BrokenPipe {
                let _ = spawned.child.kill().await;
                return Err(Error::io(format!("feeding `{}`", spec.program), err));
            }
        }
        finish(spec, spawned.child, stdout_task, stderr_task).await
    }

    /// Runs `spec` with empty stdin and returns its (bounded) output.
    ///
    /// # Errors
    ///
    /// The mapped [`ToolFailure`] when the tool exits non-zero.
    async fn output(&self, spec: &CommandSpec) -> Result<CommandOutput> {
        let mut spawned = self.spawn(spec).await?;
        drop(spawned.child.stdin.take());
        let stdout = take_pipe(spawned.child.stdout.take(), "stdout")?;
        let stderr = take_pipe(spawned.child.stderr.take(), "stderr")?;
        let stdout_task = tokio::spawn(read_limited(stdout, OUTPUT_LIMIT));
        let stderr_task = tokio::spawn(read_tail(stderr));
        finish(spec, spawned.child, stdout_task, stderr_task).await
    }
}

impl<T: CommandRunner + ?Sized> CommandRunnerExt for T {}

fn take_pipe<T>(pipe: Option<T>, name: &str) -> Result<T> {
    pipe.ok_or_else(|| Error::new(ErrorKind::Io, format!("the command's {name} was not piped")))
}

async fn finish(
    spec: &CommandSpec,
    mut child: tokio::process::Child,
    stdout_task: tokio::task::JoinHandle<std::io::Result<Bytes>>,
    stderr_task: tokio::task::JoinHandle<String>,
) -> Result<CommandOutput> {
    let status = child
        .wait()
        .await
        .map_err(|source| Error::io(format!("waiting for `{}`", spec.program), source))?;
    let stderr = stderr_task.await.unwrap_or_default();
    if !status.success() {
        return Err(spec.failure_error(ToolFailure {
            command: spec.display(),
            exit_code: status.code(),
            stderr,
        }));
    }
    let stdout = match stdout_task.await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(source)) => {
            return Err(Error::io(
                format!("reading `{}` output", spec.program),
                source,
            ))
        }
        Err(join) => return Err(Error::new(ErrorKind::Io, format!("reading output: {join}"))),
    };
    Ok(CommandOutput { stdout, stderr })
}

async fn read_limited<R: AsyncRead + Unpin>(mut reader: R, limit: usize) -> std::io::Result<Bytes> {
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Bytes::from(buffer));
        }
        if buffer.len() + n > limit {
            return Err(std::io::Error::other(format!(
                "output larger than {limit} bytes; stream it instead"
            )));
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

async fn read_tail<R: AsyncRead + Unpin>(mut reader: R) -> String {
    let mut tail: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 8 * 1024];
    while let Ok(n) = reader.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&chunk[..n]);
        if tail.len() > STDERR_TAIL {
            let cut = tail.len() - STDERR_TAIL;
            tail.drain(..cut);
        }
    }
    String::from_utf8_lossy(&tail).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn sh(script: &str) -> CommandSpec {
        CommandSpec::new("sh").arg("-c").arg(script)
    }

    #[tokio::test]
    async fn stdout_streams_and_success_ends_cleanly() {
        let runner = LocalRunner::new();
        let stream = runner
            .stream_stdout(&sh("printf hello; printf world"))
            .await
            .unwrap();
        let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
        assert_eq!(chunks.concat(), b"helloworld");
    }

    #[tokio::test]
    async fn non_zero_exit_after_output_is_an_error_with_stderr() {
        let runner = LocalRunner::new();
        let stream = runner
            .stream_stdout(&sh("printf partial; echo 'disk on fire' >&2; exit 3"))
            .await
            .unwrap();
        let result: std::io::Result<Vec<Bytes>> = stream.try_collect().await;
        let err = Error::io("export", result.unwrap_err());
        assert_eq!(err.kind(), ErrorKind::ToolFailed);
        assert!(err.message().contains("exit code 3"), "{err}");
        assert!(err.message().contains("disk on fire"), "{err}");
    }

    #[tokio::test]
    async fn stdin_is_fed_from_a_stream() {
        let runner = LocalRunner::new();
        let input: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Ok(Bytes::from_static(b"def")),
        ]));
        let out = runner.run_with_stdin(&sh("cat"), input).await.unwrap();
        assert_eq!(&out.stdout[..], b"abcdef");
    }

    #[tokio::test]
    async fn a_failing_input_stream_fails_the_command() {
        let runner = LocalRunner::new();
        let input: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err(Error::integrity("truncated").into_io()),
        ]));
        let err = runner
            .run_with_stdin(&sh("cat >/dev/null"), input)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity);
    }

    #[tokio::test]
    async fn missing_program_is_unavailable_with_a_hint() {
        let runner = LocalRunner::new();
        let err = runner
            .output(&CommandSpec::new("definitely-not-a-real-tool-xyz"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.hint().is_some());
    }

    #[test]
    fn podman_exec_passes_secrets_by_name_only() {
        let runner = ExecRunner::new(ExecTarget::Podman {
            container: "db".into(),
            global_args: vec!["--root".into(), "/tmp/r".into()],
        });
        let spec = CommandSpec::new("pg_dump")
            .arg("-Fc")
            .secret_env("PGPASSWORD", "hunter2");
        let wrapped = runner.wrap(&spec);
        assert_eq!(
            wrapped.args,
            vec![
                "--root",
                "/tmp/r",
                "exec",
                "-i",
                "-e",
                "PGPASSWORD",
                "db",
                "pg_dump",
                "-Fc"
            ]
        );
        assert!(!wrapped.display().contains("hunter2"));
        assert_eq!(
            wrapped.env,
            vec![("PGPASSWORD".to_string(), "hunter2".to_string())]
        );
    }

    #[test]
    fn kubectl_exec_builds_namespace_pod_and_container() {
        let runner = ExecRunner::new(ExecTarget::Kubectl {
            namespace: "ws-1".into(),
            pod: "postgres-0".into(),
            container: Some("postgres".into()),
            context: None,
        });
        let wrapped = runner.wrap(&CommandSpec::new("pg_dump").arg("-Fc"));
        assert_eq!(wrapped.program, "kubectl");
        assert_eq!(
            wrapped.args,
            vec![
                "exec",
                "-i",
                "-n",
                "ws-1",
                "postgres-0",
                "-c",
                "postgres",
                "--",
                "pg_dump",
                "-Fc"
            ]
        );
    }

    #[test]
    fn debug_of_a_spec_never_shows_env_values() {
        let spec = CommandSpec::new("psql").secret_env("PGPASSWORD", "hunter2");
        assert!(!format!("{spec:?}").contains("hunter2"));
    }
}
