//! Where native tools run: locally, `podman exec` into a container, or `kubectl exec` into
//! a pod. Adapters that shell out (pg_dump, psql, podman) go through a [`CommandRunner`],
//! with stdout streamed, stdin fed from a stream, and stderr captured for the error.
//!
//! What every command run through [`CommandRunnerExt`] guarantees:
//!
//! - A tool that exits non-zero fails the operation even if it printed bytes first.
//! - Environment values (passwords) never appear on a command line, in `Debug` output,
//!   in [`CommandSpec::display`] or in errors, also through `podman exec` and
//!   `kubectl exec` (see [`ExecRunner`]).
//! - A tool whose output stream is dropped, or whose operation is cancelled, is killed
//!   together with its process group.
//! - A tool that prints nothing and reads no input for [`CommandSpec::idle_timeout`] is
//!   killed and the operation fails with an error naming the tool and the limit.
//! - When the input fed to a tool fails, the tool is killed **before** its stdin is
//!   closed, so it never sees the end of a failed input (and cannot commit it); a tool
//!   that exits without reading all of its input fails the operation.

use std::fmt;
use std::process::Stdio;

use async_trait::async_trait;

use crate::{Error, ErrorKind, Result};

mod exec;
mod ext;
mod process;
mod pump;
mod spec;

pub use exec::{ExecRunner, ExecTarget, KUBECTL_ENV_SCRIPT};
pub use ext::{CommandOutput, CommandRunnerExt};
pub use spec::{CommandSpec, FailureMapper, OutputReader, ToolFailure, DEFAULT_IDLE_TIMEOUT};

/// A started command with piped stdin, stdout and stderr.
#[derive(Debug)]
pub struct SpawnedCommand {
    /// The child process (killed when dropped).
    pub child: tokio::process::Child,
}

/// Starts commands somewhere: on this machine, in a container, in a pod.
///
/// Implementations only start processes; streaming, stderr capture, timeouts and
/// exit-status handling live in [`CommandRunnerExt`], which every runner gets for free.
///
/// # Contract
///
/// `spawn` returns a child with stdin, stdout and stderr piped and `kill_on_drop` set,
/// started as the leader of a new process group (so that stopping it stops everything it
/// started), with no environment value on its command line. Anything written to its stdin
/// after `spawn` returns reaches the tool as its input.
#[async_trait]
pub trait CommandRunner: Send + Sync + fmt::Debug {
    /// Starts `spec` with stdin, stdout and stderr piped, killed on drop.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`] when the program (or podman/kubectl) is not installed;
    /// [`ErrorKind::InvalidInput`] when an environment variable cannot be passed on.
    async fn spawn(&self, spec: &CommandSpec) -> Result<SpawnedCommand>;
}

/// Runs commands on this machine, each in a process group of its own.
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
        #[cfg(unix)]
        command.process_group(0);
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
