//! What to run: [`CommandSpec`], and what a failed run left behind: [`ToolFailure`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{Error, ErrorKind};

/// How long a tool may do nothing observable (no output on stdout or stderr, no input
/// read) before it is killed: long enough for a silent index build at the end of a large
/// restore, short enough that a tool stuck on a lock or a dead server does not hang an
/// operation forever. Change it per command with [`CommandSpec::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);

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
        Error::new(
            ErrorKind::ToolFailed,
            format!(
                "`{}` failed with {status}{}",
                self.command,
                stderr_detail(&self.stderr)
            ),
        )
    }
}

/// `": line | line"` for a non-empty stderr tail, empty otherwise.
pub(crate) fn stderr_detail(stderr: &str) -> String {
    let stderr = stderr.trim();
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {}", stderr.replace('\n', " | "))
    }
}

/// Maps a tool failure to an error with a kind and hint (adapters know their tool's messages).
pub type FailureMapper = Arc<dyn Fn(ToolFailure) -> Error + Send + Sync>;

/// A command to run: program, arguments, environment, idle timeout and a failure mapper.
#[derive(Clone)]
pub struct CommandSpec {
    /// Program name or path.
    pub program: String,
    /// Arguments. Never put a secret here: use [`CommandSpec::secret_env`].
    pub args: Vec<String>,
    /// Environment variables; values may be secrets and are never displayed, and no
    /// runner puts them on a command line.
    pub env: Vec<(String, String)>,
    /// Turns a failure into an error; defaults to [`ToolFailure::into_error`].
    pub on_failure: Option<FailureMapper>,
    /// How long the tool may neither print anything nor read its input before it is
    /// killed and the operation fails; `None` waits forever. Defaults to
    /// [`DEFAULT_IDLE_TIMEOUT`]. Time the tool spends waiting on the caller (a slow
    /// consumer of its output, a slow producer of its input) does not count.
    pub idle_timeout: Option<Duration>,
    /// How [`CommandRunnerExt::stream_stdout`](super::CommandRunnerExt::stream_stdout)
    /// reads the tool's output; defaults to [`OutputReader::Async`].
    pub output_reader: OutputReader,
}

/// How a streamed tool's stdout is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutputReader {
    /// Through the async runtime, each piece as the tool writes it: best for a tool that
    /// prints in small pieces while it works (`pg_dump`, which waits on its server).
    #[default]
    Async,
    /// On a thread of its own with blocking reads, handed over in chunks: cheaper for a
    /// tool that streams hundreds of MiB as fast as it can (`podman volume export`, `cat`
    /// of a file), above all when that tool keeps the machine's cores busy. A piece the
    /// tool prints and then stays quiet after still arrives within a few milliseconds.
    Thread,
}

impl CommandSpec {
    /// A command with no arguments.
    pub fn new(program: impl Into<String>) -> Self {
        CommandSpec {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            on_failure: None,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            output_reader: OutputReader::Async,
        }
    }

    /// Reads the tool's streamed output on a thread of its own (see
    /// [`OutputReader::Thread`]): for bulk data a tool writes as fast as it can.
    pub fn read_output_in_thread(mut self) -> Self {
        self.output_reader = OutputReader::Thread;
        self
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

    /// Sets an environment variable whose value is a secret (never shown, logged or put
    /// on a command line).
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

    /// Sets how long the tool may do nothing observable before it is killed (see
    /// [`CommandSpec::idle_timeout`](CommandSpec#structfield.idle_timeout)).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Lets the tool stay silent for as long as it likes (no idle timeout).
    pub fn without_idle_timeout(mut self) -> Self {
        self.idle_timeout = None;
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

    pub(crate) fn failure_error(&self, failure: ToolFailure) -> Error {
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
            .field("idle_timeout", &self.idle_timeout)
            .field("output_reader", &self.output_reader)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_a_spec_never_shows_env_values() {
        let spec = CommandSpec::new("psql").secret_env("PGPASSWORD", "hunter2");
        assert!(!format!("{spec:?}").contains("hunter2"));
        assert!(format!("{spec:?}").contains("PGPASSWORD"));
    }

    #[test]
    fn a_new_spec_has_the_default_idle_timeout() {
        let spec = CommandSpec::new("pg_dump");
        assert_eq!(spec.idle_timeout, Some(DEFAULT_IDLE_TIMEOUT));
        assert_eq!(spec.without_idle_timeout().idle_timeout, None);
    }
}
