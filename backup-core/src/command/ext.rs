//! [`CommandRunnerExt`]: streaming, feeding, timeouts and exit-status handling for every
//! [`CommandRunner`].

use std::process::ExitStatus;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

use super::process::{idle_timeout_error, unconsumed_input_error, Activity, ToolProcess};
use super::pump::pump_stdout;
use super::{CommandRunner, CommandSpec, OutputReader, ToolFailure};
use crate::artifact::{ByteStream, CHUNK_SIZE};
use crate::{Error, ErrorKind, Result};

/// How much of a tool's stderr is kept for the error message (the tail).
const STDERR_TAIL: usize = 16 * 1024;
/// How much stdout [`CommandRunnerExt::output`] keeps; larger outputs must be streamed.
const OUTPUT_LIMIT: usize = 64 * 1024 * 1024;
/// How long the stderr tail is awaited once the tool ended (a process it left behind may
/// hold the pipe open).
const STDERR_GRACE: Duration = Duration::from_secs(5);
/// How long a tool that stopped reading its input gets to exit on its own (so that its
/// own error can be reported) before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

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
///
/// Every helper kills the tool (with its process group) when its future or stream is
/// dropped before the tool finished, and when the tool does nothing observable for the
/// spec's [`idle_timeout`](CommandSpec#structfield.idle_timeout).
#[async_trait]
pub trait CommandRunnerExt: CommandRunner {
    /// Runs `spec` with empty stdin and streams its stdout.
    ///
    /// The stream ends with an error item when the tool exits non-zero (even after
    /// printing output), carrying the mapped [`ToolFailure`], or when it prints nothing
    /// for its idle timeout ([`ErrorKind::Unavailable`]). Dropping the stream kills the
    /// tool. The spec's [`output_reader`](CommandSpec#structfield.output_reader) chooses
    /// how the output is read (the async runtime, or a thread of its own for bulk data).
    ///
    /// # Errors
    ///
    /// Fails when the tool cannot be started.
    async fn stream_stdout(&self, spec: &CommandSpec) -> Result<ByteStream> {
        let mut tool = ToolProcess::new(self.spawn(spec).await?);
        tool.close_stdin();
        let activity = Activity::new();
        let stdout = take_pipe(tool.child_mut().stdout.take(), "stdout")?;
        widen_pipe(&stdout);
        let chunks = output_chunks(stdout, spec, &activity)?;
        let stderr = take_pipe(tool.child_mut().stderr.take(), "stderr")?;
        let stderr_task = tokio::spawn(read_tail(stderr, activity.clone()));
        let state = StdoutStream {
            tool,
            chunks,
            stderr_task: Some(stderr_task),
            spec: spec.clone(),
            activity,
            ended: false,
        };
        Ok(Box::pin(futures::stream::unfold(
            state,
            |mut state| async move {
                let item = state.next_item().await?;
                Some((item, state))
            },
        )))
    }

    /// Runs `spec`, feeding `input` to its stdin, and waits for it to finish.
    ///
    /// If `input` ends with an error the tool is killed first and its stdin closed only
    /// then, so a tool that commits at the end of its input never commits a truncated or
    /// corrupt stream; that error is returned. A tool that exits (even with status 0) or
    /// closes its stdin before reading all of the input fails with
    /// [`ErrorKind::ToolFailed`].
    ///
    /// # Errors
    ///
    /// The input's error, the mapped [`ToolFailure`] when the tool exits non-zero, or the
    /// errors above.
    async fn run_with_stdin(&self, spec: &CommandSpec, input: ByteStream) -> Result<CommandOutput> {
        let mut tool = ToolProcess::new(self.spawn(spec).await?);
        let activity = Activity::new();
        let (stdout_task, stderr_task) = start_readers(&mut tool, &activity)?;
        if let Some(stdin) = tool.stdin_mut() {
            widen_pipe(stdin);
        }
        match feed(&mut tool, input, spec, &activity).await {
            Fed::Complete => {}
            Fed::InputFailed(source) => {
                tool.kill().await;
                return Err(Error::io(format!("feeding `{}`", spec.program), source));
            }
            Fed::WriteFailed(source) => {
                tool.kill().await;
                return Err(Error::io(format!("writing to `{}`", spec.program), source));
            }
            Fed::Stalled => return Err(stalled(spec, &mut tool, stderr_task).await),
            Fed::ToolClosedInput => {
                return Err(stopped_reading(spec, &mut tool, None, stderr_task).await)
            }
        }
        match drained(&mut tool, spec, &activity).await {
            Drain::Drained => {}
            Drain::Stalled => return Err(stalled(spec, &mut tool, stderr_task).await),
            Drain::Exited { unread } => {
                return Err(stopped_reading(spec, &mut tool, Some(unread), stderr_task).await)
            }
            Drain::Failed(source) => {
                tool.kill().await;
                return Err(Error::io(format!("waiting for `{}`", spec.program), source));
            }
        }
        let stderr = finish(spec, &mut tool, &activity, stderr_task).await?;
        let stdout = collect_stdout(spec, &activity, stdout_task).await?;
        Ok(CommandOutput { stdout, stderr })
    }

    /// Runs `spec` with empty stdin and returns its (bounded) output.
    ///
    /// # Errors
    ///
    /// The mapped [`ToolFailure`] when the tool exits non-zero; [`ErrorKind::Unavailable`]
    /// when it does nothing for its idle timeout.
    async fn output(&self, spec: &CommandSpec) -> Result<CommandOutput> {
        let mut tool = ToolProcess::new(self.spawn(spec).await?);
        tool.close_stdin();
        let activity = Activity::new();
        let (stdout_task, stderr_task) = start_readers(&mut tool, &activity)?;
        let stderr = finish(spec, &mut tool, &activity, stderr_task).await?;
        let stdout = collect_stdout(spec, &activity, stdout_task).await?;
        Ok(CommandOutput { stdout, stderr })
    }
}

impl<T: CommandRunner + ?Sized> CommandRunnerExt for T {}

/// The state behind [`CommandRunnerExt::stream_stdout`]; dropping it kills the tool.
struct StdoutStream {
    tool: ToolProcess,
    chunks: futures::stream::BoxStream<'static, std::io::Result<Bytes>>,
    stderr_task: Option<JoinHandle<String>>,
    spec: CommandSpec,
    activity: Activity,
    ended: bool,
}

impl StdoutStream {
    async fn next_item(&mut self) -> Option<std::io::Result<Bytes>> {
        if self.ended {
            return None;
        }
        // Time spent before this poll was the consumer's, not the tool's.
        self.activity.touch();
        let read = tokio::select! {
            item = self.chunks.next() => Some(item),
            () = self.activity.stalled(self.spec.idle_timeout) => None,
        };
        let outcome = match read {
            Some(Some(Ok(chunk))) => {
                self.activity.touch();
                return Some(Ok(chunk));
            }
            Some(Some(Err(source))) => {
                self.tool.kill().await;
                Err(Error::io(
                    format!("reading the output of `{}`", self.spec.program),
                    source,
                ))
            }
            Some(None) => match self.stderr_task.take() {
                Some(task) => finish(&self.spec, &mut self.tool, &self.activity, task)
                    .await
                    .map(|_| ()),
                None => Ok(()),
            },
            None => match self.stderr_task.take() {
                Some(task) => Err(stalled(&self.spec, &mut self.tool, task).await),
                None => Err(idle_timeout_error(&self.spec, "")),
            },
        };
        self.ended = true;
        outcome.err().map(|err| Err(err.into_io()))
    }
}

/// The tool's stdout as a stream of chunks, read as its spec says.
fn output_chunks(
    stdout: tokio::process::ChildStdout,
    spec: &CommandSpec,
    activity: &Activity,
) -> Result<futures::stream::BoxStream<'static, std::io::Result<Bytes>>> {
    match spec.output_reader {
        OutputReader::Async => Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            stdout, CHUNK_SIZE,
        ))),
        OutputReader::Thread => {
            let stdout = stdout.into_owned_fd().map_err(|source| {
                Error::io(
                    format!("taking the output pipe of `{}`", spec.program),
                    source,
                )
            })?;
            let chunks = pump_stdout(stdout, activity.clone()).map_err(|source| {
                Error::io(format!("starting the reader of `{}`", spec.program), source)
            })?;
            Ok(Box::pin(futures::stream::unfold(
                chunks,
                |mut chunks| async move { chunks.recv().await.map(|item| (item, chunks)) },
            )))
        }
    }
}

/// How feeding the input ended.
enum Fed {
    /// All input was written.
    Complete,
    /// The input stream failed.
    InputFailed(std::io::Error),
    /// Writing to the tool failed (not a closed pipe).
    WriteFailed(std::io::Error),
    /// The tool closed its stdin (or exited) before the input ended.
    ToolClosedInput,
    /// The tool neither read nor printed anything for its idle timeout.
    Stalled,
}

async fn feed(
    tool: &mut ToolProcess,
    mut input: ByteStream,
    spec: &CommandSpec,
    activity: &Activity,
) -> Fed {
    // Waiting for the input is not the tool's idleness: the clock runs only per write.
    while let Some(item) = input.next().await {
        let chunk = match item {
            Ok(chunk) => chunk,
            Err(source) => return Fed::InputFailed(source),
        };
        let Some(stdin) = tool.stdin_mut() else {
            return Fed::ToolClosedInput;
        };
        activity.touch();
        let written = tokio::select! {
            written = tokio::io::AsyncWriteExt::write_all(stdin, &chunk) => Some(written),
            () = activity.stalled(spec.idle_timeout) => None,
        };
        match written {
            Some(Ok(())) => activity.touch(),
            Some(Err(err)) if err.kind() == std::io::ErrorKind::BrokenPipe => {
                return Fed::ToolClosedInput
            }
            Some(Err(err)) => return Fed::WriteFailed(err),
            None => return Fed::Stalled,
        }
    }
    Fed::Complete
}

/// How waiting for the tool to read the input still in its pipe ended.
enum Drain {
    /// Everything written was read (or the platform cannot tell).
    Drained,
    /// The tool exited with `unread` bytes of input left in the pipe.
    Exited { unread: u64 },
    /// The tool did nothing for its idle timeout.
    Stalled,
    /// Checking the tool's status failed.
    Failed(std::io::Error),
}

/// Waits until the tool has read everything written to its stdin, before stdin is closed:
/// a tool that exits with input left unread did not import all of it.
async fn drained(tool: &mut ToolProcess, spec: &CommandSpec, activity: &Activity) -> Drain {
    activity.touch();
    let mut last = u64::MAX;
    let mut pause = Duration::from_millis(1);
    loop {
        let Some(unread) = tool.unread_input() else {
            return Drain::Drained;
        };
        if unread == 0 {
            return Drain::Drained;
        }
        if unread < last {
            activity.touch();
            last = unread;
        }
        match tool.try_wait() {
            Ok(Some(_)) => {
                return match tool.unread_input() {
                    Some(0) | None => Drain::Drained,
                    Some(unread) => Drain::Exited { unread },
                }
            }
            Ok(None) => {}
            Err(source) => return Drain::Failed(source),
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = activity.stalled(spec.idle_timeout) => return Drain::Stalled,
        }
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Closes stdin and waits for the tool to exit (killing it when it stalls); returns the
/// stderr tail on success.
async fn finish(
    spec: &CommandSpec,
    tool: &mut ToolProcess,
    activity: &Activity,
    stderr_task: JoinHandle<String>,
) -> Result<String> {
    tool.close_stdin();
    activity.touch();
    let waited = tokio::select! {
        status = tool.wait() => Some(status),
        () = activity.stalled(spec.idle_timeout) => None,
    };
    let status = match waited {
        Some(Ok(status)) => status,
        Some(Err(source)) => {
            tool.kill().await;
            return Err(Error::io(format!("waiting for `{}`", spec.program), source));
        }
        None => return Err(stalled(spec, tool, stderr_task).await),
    };
    let stderr = stderr_tail(stderr_task).await;
    if status.success() {
        tool.mark_finished();
        Ok(stderr)
    } else {
        // Stop whatever the tool left running before its pid can be reused.
        tool.kill().await;
        Err(failure(spec, status, stderr))
    }
}

/// Kills a stalled tool and builds the idle-timeout error.
async fn stalled(
    spec: &CommandSpec,
    tool: &mut ToolProcess,
    stderr_task: JoinHandle<String>,
) -> Error {
    tool.kill().await;
    let stderr = stderr_tail(stderr_task).await;
    idle_timeout_error(spec, &stderr)
}

/// The error for a tool that stopped reading its input: its own failure when it exited
/// non-zero, otherwise "input not consumed". A tool still running is killed.
async fn stopped_reading(
    spec: &CommandSpec,
    tool: &mut ToolProcess,
    unread: Option<u64>,
    stderr_task: JoinHandle<String>,
) -> Error {
    let status = match tool.try_wait() {
        Ok(Some(status)) => Some(status),
        _ => match tokio::time::timeout(EXIT_GRACE, tool.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => None,
        },
    };
    // Stop the tool, or what it left running, before its stdin closes.
    tool.kill().await;
    let stderr = stderr_tail(stderr_task).await;
    match status {
        Some(status) if !status.success() => failure(spec, status, stderr),
        _ => unconsumed_input_error(spec, unread, &stderr),
    }
}

fn failure(spec: &CommandSpec, status: ExitStatus, stderr: String) -> Error {
    spec.failure_error(ToolFailure {
        command: spec.display(),
        exit_code: status.code(),
        stderr,
    })
}

fn start_readers(
    tool: &mut ToolProcess,
    activity: &Activity,
) -> Result<(JoinHandle<std::io::Result<Bytes>>, JoinHandle<String>)> {
    let stdout = take_pipe(tool.child_mut().stdout.take(), "stdout")?;
    let stderr = take_pipe(tool.child_mut().stderr.take(), "stderr")?;
    let stdout_task = tokio::spawn(read_limited(stdout, OUTPUT_LIMIT, activity.clone()));
    let stderr_task = tokio::spawn(read_tail(stderr, activity.clone()));
    Ok((stdout_task, stderr_task))
}

async fn collect_stdout(
    spec: &CommandSpec,
    activity: &Activity,
    stdout_task: JoinHandle<std::io::Result<Bytes>>,
) -> Result<Bytes> {
    activity.touch();
    let joined = tokio::select! {
        joined = stdout_task => joined,
        () = activity.stalled(spec.idle_timeout) => return Err(idle_timeout_error(spec, "")),
    };
    match joined {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(source)) => Err(Error::io(
            format!("reading `{}` output", spec.program),
            source,
        )),
        Err(join) => Err(Error::new(ErrorKind::Io, format!("reading output: {join}"))),
    }
}

async fn stderr_tail(task: JoinHandle<String>) -> String {
    match tokio::time::timeout(STDERR_GRACE, task).await {
        Ok(Ok(tail)) => tail,
        _ => String::new(),
    }
}

/// Bytes a pipe to or from a streaming tool holds: 1 MiB instead of Linux's 64 KiB
/// default, so a tool streaming hundreds of MiB wakes the other side far less often.
const PIPE_SIZE: usize = 1024 * 1024;

/// Widens a streaming pipe to [`PIPE_SIZE`], best effort: where the size is refused
/// (above `/proc/sys/fs/pipe-max-size`, or not Linux) the default stays.
fn widen_pipe(pipe: &impl std::os::fd::AsFd) {
    #[cfg(target_os = "linux")]
    let _ = rustix::pipe::fcntl_setpipe_size(pipe, PIPE_SIZE);
    #[cfg(not(target_os = "linux"))]
    let _ = pipe;
}

fn take_pipe<T>(pipe: Option<T>, name: &str) -> Result<T> {
    pipe.ok_or_else(|| Error::new(ErrorKind::Io, format!("the command's {name} was not piped")))
}

/// Reads everything, keeping at most `limit` bytes; a larger output is drained (so the
/// tool does not block on a full pipe) and reported as an error.
async fn read_limited<R: AsyncRead + Unpin>(
    mut reader: R,
    limit: usize,
    activity: Activity,
) -> std::io::Result<Bytes> {
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut too_large = false;
    loop {
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        activity.touch();
        if too_large || buffer.len() + n > limit {
            too_large = true;
            buffer = Vec::new();
            continue;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    if too_large {
        return Err(std::io::Error::other(format!(
            "output larger than {limit} bytes; stream it instead"
        )));
    }
    Ok(Bytes::from(buffer))
}

async fn read_tail<R: AsyncRead + Unpin>(mut reader: R, activity: Activity) -> String {
    let mut tail: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 8 * 1024];
    while let Ok(n) = reader.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        activity.touch();
        tail.extend_from_slice(&chunk[..n]);
        if tail.len() > STDERR_TAIL {
            let cut = tail.len() - STDERR_TAIL;
            tail.drain(..cut);
        }
    }
    String::from_utf8_lossy(&tail).into_owned()
}
