//! A running tool that is stopped, whole, whenever the operation using it ends early, and
//! the clock that notices when it has gone quiet for too long.

use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::process::{Child, ChildStdin};
use tokio::time::Instant;

use super::spec::{stderr_detail, CommandSpec};
use super::SpawnedCommand;
use crate::{Error, ErrorKind};

/// A spawned tool that owns its stdin.
///
/// Whenever the tool is stopped (explicitly, or because this value is dropped while the
/// tool still runs), it is killed **before** its stdin is closed: a tool that commits at
/// the end of its input (`psql --single-transaction`, `pg_restore`) never sees the end of
/// an input that failed or was abandoned. The kill reaches the tool's whole process group
/// (runners start tools as group leaders), so a pipeline inside `sh -c` dies with it.
pub(crate) struct ToolProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The tool's pid, which is also its process group's id.
    pid: Option<u32>,
    reaped: bool,
    /// Nothing more to kill: the tool ended successfully (what it left running, a daemon
    /// it started, stays), or it was killed and reaped. Its pid may be reused from now on.
    settled: bool,
}

impl ToolProcess {
    pub(crate) fn new(mut spawned: SpawnedCommand) -> Self {
        let stdin = spawned.child.stdin.take();
        let pid = spawned.child.id();
        ToolProcess {
            child: spawned.child,
            stdin,
            pid,
            reaped: false,
            settled: false,
        }
    }

    pub(crate) fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    pub(crate) fn stdin_mut(&mut self) -> Option<&mut ChildStdin> {
        self.stdin.as_mut()
    }

    /// Closes stdin: the tool sees the end of its input.
    pub(crate) fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Sends SIGKILL to the tool's process group and to the tool, without waiting.
    ///
    /// The group is killed even when the tool itself has already exited: what it started
    /// (the other half of a pipeline) may still hold its stdin.
    pub(crate) fn kill_now(&mut self) {
        if self.settled {
            return;
        }
        if let Some(pid) = self.pid {
            kill_process_group(pid);
        }
        if !self.reaped {
            let _ = self.child.start_kill();
        }
    }

    /// Records that the tool ended successfully, so that nothing it left is killed.
    pub(crate) fn mark_finished(&mut self) {
        self.settled = true;
    }

    /// Kills the tool and its process group (then closes its stdin) and reaps it.
    pub(crate) async fn kill(&mut self) {
        self.kill_now();
        self.close_stdin();
        if !self.reaped && self.child.wait().await.is_ok() {
            self.reaped = true;
        }
        self.settled = self.reaped;
    }

    /// Waits for the tool to exit.
    pub(crate) async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        self.reaped = true;
        Ok(status)
    }

    /// The exit status if the tool has exited.
    pub(crate) fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        let status = self.child.try_wait()?;
        if status.is_some() {
            self.reaped = true;
        }
        Ok(status)
    }

    /// Bytes written to the tool's stdin that it has not read yet, when the platform can
    /// tell (`None` otherwise, or when stdin is closed).
    pub(crate) fn unread_input(&self) -> Option<u64> {
        #[cfg(unix)]
        {
            let stdin = self.stdin.as_ref()?;
            rustix::io::ioctl_fionread(stdin).ok()
        }
        #[cfg(not(unix))]
        {
            None
        }
    }
}

impl Drop for ToolProcess {
    fn drop(&mut self) {
        // Kill first; the stdin field is closed only after this body has run.
        self.kill_now();
    }
}

/// Sends SIGKILL to the process group led by `pid`. A group with that id exists only if
/// the tool made it: while any member lives the id cannot be reused, and the tool's pid
/// is recycled only long after it exited (pids are handed out in sequence).
fn kill_process_group(pid: u32) {
    #[cfg(unix)]
    {
        let Ok(raw) = i32::try_from(pid) else {
            return;
        };
        if raw <= 1 {
            return;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(raw) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
    }
}

/// When a tool last did something observable (printed, or read some input).
#[derive(Debug, Clone)]
pub(crate) struct Activity(Arc<ActivityClock>);

#[derive(Debug)]
struct ActivityClock {
    start: Instant,
    last_millis: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Activity(Arc::new(ActivityClock {
            start: Instant::now(),
            last_millis: AtomicU64::new(0),
        }))
    }

    /// Records that the tool did something now (or that we start waiting on it now).
    pub(crate) fn touch(&self) {
        let now = u64::try_from(self.0.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_millis.fetch_max(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.0.last_millis.load(Ordering::Relaxed));
        self.0.start.elapsed().saturating_sub(last)
    }

    /// Completes once the tool has done nothing for `timeout`; never with `None`.
    pub(crate) async fn stalled(&self, timeout: Option<Duration>) {
        let Some(timeout) = timeout else {
            return std::future::pending().await;
        };
        loop {
            let idle = self.idle_for();
            if idle >= timeout {
                return;
            }
            tokio::time::sleep(timeout - idle).await;
        }
    }
}

/// The error for a tool killed after doing nothing for its idle timeout.
pub(crate) fn idle_timeout_error(spec: &CommandSpec, stderr: &str) -> Error {
    let limit = spec
        .idle_timeout
        .map(human_duration)
        .unwrap_or_else(|| "ever".to_string());
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "`{}` printed nothing and read no input for {limit}, so it was stopped{}",
            spec.display(),
            stderr_detail(stderr)
        ),
    )
    .with_hint(
        "a tool stalls like this while it waits on a lock or on a server that does not answer; \
         if it legitimately works silently for longer, raise the limit \
         (CommandSpec::idle_timeout, or the adapter's timeout setting)",
    )
}

/// The error for a tool that ended (or stopped reading) before its whole input was read.
pub(crate) fn unconsumed_input_error(
    spec: &CommandSpec,
    unread: Option<u64>,
    stderr: &str,
) -> Error {
    let amount = match unread {
        Some(bytes) => format!(" ({bytes} bytes unread)"),
        None => String::new(),
    };
    Error::new(
        ErrorKind::ToolFailed,
        format!(
            "`{}` stopped reading its input before the end{amount}, so the data it loaded is incomplete{}",
            spec.display(),
            stderr_detail(stderr)
        ),
    )
    .with_hint("the input is not what the tool expects (for example a script that quits early); check the artifact and the tool's messages")
}

/// `90 s`, `5 min`, `2 h`, `250 ms`.
pub(crate) fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    if duration.subsec_millis() != 0 || secs == 0 {
        format!("{} ms", duration.as_millis())
    } else if secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_secs(3600)), "1 h");
        assert_eq!(human_duration(Duration::from_secs(300)), "5 min");
        assert_eq!(human_duration(Duration::from_secs(90)), "90 s");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1500 ms");
    }
}
