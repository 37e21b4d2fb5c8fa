//! [`ExecRunner`]: run tools inside a container (`podman exec`) or a pod (`kubectl exec`)
//! without ever putting an environment value on a command line.

use std::fmt;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::{CommandRunner, CommandSpec, LocalRunner, SpawnedCommand};
use crate::{Error, ErrorKind, Result};

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

/// The shell program `kubectl exec` runs when the command has environment variables: it
/// reads them from the head of stdin (a count line, then a name line and a value line per
/// variable, each value byte outside `[A-Za-z0-9]` as a `\ooo` octal escape that the
/// `printf` builtin decodes), exports them, and `exec`s the tool, which reads the rest of
/// stdin. The script is constant; no value ever appears in an argument.
pub const KUBECTL_ENV_SCRIPT: &str = r#"fail() { echo "backup-core: $1 environment header on stdin" >&2; exit 125; }
IFS= read -r n || fail missing
case $n in ''|*[!0-9]*) fail malformed ;; esac
while [ "$n" -gt 0 ]; do
  IFS= read -r k && IFS= read -r v || fail truncated
  case $k in ''|[0-9]*|*[!A-Za-z0-9_]*) fail malformed ;; esac
  v=$(printf "${v}_") || fail malformed
  export "$k=${v%_}"
  n=$((n - 1))
done
exec "$@""#;

/// Runs commands inside a container (`podman exec`) or a pod (`kubectl exec`).
///
/// Environment values (passwords among them) never appear on a command line, in
/// [`ExecRunner::wrap`]'s result, in `Debug` output or in errors:
///
/// - podman gets them in its own environment and is told only their names (`-e NAME`);
/// - `kubectl exec` has no such option, so the command runs under `sh -c`
///   [`KUBECTL_ENV_SCRIPT`], and [`CommandRunner::spawn`] writes the variables at the head
///   of stdin, where the script reads them before handing the rest of stdin (the data) to
///   the tool. The container needs a POSIX `sh` with the `printf` builtin (dash, bash,
///   busybox) when a command has environment variables.
#[derive(Debug, Clone)]
pub struct ExecRunner {
    target: ExecTarget,
    program: Option<String>,
    local: LocalRunner,
}

impl ExecRunner {
    /// A runner that executes inside `target`.
    pub fn new(target: ExecTarget) -> Self {
        ExecRunner {
            target,
            program: None,
            local: LocalRunner::new(),
        }
    }

    /// Uses `program` (a path or a name on `PATH`) instead of `podman` / `kubectl`.
    pub fn with_program(mut self, program: impl Into<String>) -> Self {
        self.program = Some(program.into());
        self
    }

    /// The local command that runs `spec` inside the target.
    ///
    /// For `kubectl`, the environment is not part of the result: [`CommandRunner::spawn`]
    /// sends it on stdin (see [`KUBECTL_ENV_SCRIPT`]).
    pub fn wrap(&self, spec: &CommandSpec) -> CommandSpec {
        let mut wrapped = match &self.target {
            ExecTarget::Podman {
                container,
                global_args,
            } => {
                let mut out = CommandSpec::new(self.client("podman"))
                    .args(global_args.iter().cloned())
                    .arg("exec")
                    .arg("-i");
                for (name, value) in &spec.env {
                    out = out.arg("-e").arg(name.clone());
                    out.env.push((name.clone(), value.clone()));
                }
                out.arg(container.clone())
            }
            ExecTarget::Kubectl {
                namespace,
                pod,
                container,
                context,
            } => {
                let mut out = CommandSpec::new(self.client("kubectl"));
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
                    out = out.args(["sh", "-c", KUBECTL_ENV_SCRIPT, "sh"]);
                }
                out
            }
        };
        wrapped = wrapped
            .arg(spec.program.clone())
            .args(spec.args.iter().cloned());
        wrapped.on_failure = spec.on_failure.clone();
        wrapped.idle_timeout = spec.idle_timeout;
        wrapped.output_reader = spec.output_reader;
        wrapped
    }

    fn client(&self, default: &str) -> String {
        self.program.clone().unwrap_or_else(|| default.to_string())
    }
}

#[async_trait]
impl CommandRunner for ExecRunner {
    async fn spawn(&self, spec: &CommandSpec) -> Result<SpawnedCommand> {
        check_env(spec)?;
        let mut spawned = self.local.spawn(&self.wrap(spec)).await?;
        if matches!(self.target, ExecTarget::Kubectl { .. }) && !spec.env.is_empty() {
            let mut header = env_header(&spec.env);
            let written = match spawned.child.stdin.as_mut() {
                Some(stdin) => match stdin.write_all(&header).await {
                    Ok(()) => stdin.flush().await,
                    Err(err) => Err(err),
                },
                None => Err(std::io::Error::other("stdin is not piped")),
            };
            header.fill(0);
            match written {
                // kubectl ended at once: its exit status and stderr tell the caller why.
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(err) => {
                    return Err(Error::io(
                        format!("sending the environment of `{}` to kubectl", spec.program),
                        err,
                    ))
                }
                Ok(()) => {}
            }
        }
        Ok(spawned)
    }
}

/// Refuses environment names a shell cannot export and values an environment cannot hold
/// (naming the variable, never the value).
fn check_env(spec: &CommandSpec) -> Result<()> {
    for (name, value) in &spec.env {
        let valid_name = name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid_name {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "`{name}` is not a valid environment variable name for `{}`",
                    spec.program
                ),
            )
            .with_hint("use letters, digits and `_`, not starting with a digit"));
        }
        if value.contains('\0') {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the value of `{name}` for `{}` contains a NUL byte",
                    spec.program
                ),
            )
            .with_hint("environment values cannot hold NUL bytes"));
        }
    }
    Ok(())
}

/// The stdin header [`KUBECTL_ENV_SCRIPT`] reads.
fn env_header(env: &[(String, String)]) -> Vec<u8> {
    let mut header = format!("{}\n", env.len()).into_bytes();
    for (name, value) in env {
        header.extend_from_slice(name.as_bytes());
        header.push(b'\n');
        for byte in value.bytes() {
            if byte.is_ascii_alphanumeric() {
                header.push(byte);
            } else {
                header.extend_from_slice(format!("\\{byte:03o}").as_bytes());
            }
        }
        header.push(b'\n');
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn kubectl_exec_keeps_env_values_out_of_the_command() {
        let runner = ExecRunner::new(ExecTarget::Kubectl {
            namespace: "ws-1".into(),
            pod: "postgres-0".into(),
            container: None,
            context: Some("prod".into()),
        })
        .with_program("/opt/kubectl");
        let spec = CommandSpec::new("psql").secret_env("PGPASSWORD", "hunter2");
        let wrapped = runner.wrap(&spec);
        assert_eq!(wrapped.program, "/opt/kubectl");
        assert!(wrapped.env.is_empty());
        assert!(!wrapped.args.iter().any(|a| a.contains("hunter2")));
        assert!(!wrapped.display().contains("hunter2"));
        assert!(!format!("{wrapped:?} {runner:?}").contains("hunter2"));
        assert_eq!(wrapped.args.last().map(String::as_str), Some("psql"));
    }

    #[test]
    fn the_env_header_escapes_every_byte_that_is_not_alphanumeric() {
        let header = env_header(&[("A".into(), "x y\n%\\".into())]);
        assert_eq!(header, b"1\nA\nx\\040y\\012\\045\\134\n");
    }

    #[test]
    fn env_names_a_shell_cannot_export_are_refused_without_the_value() {
        for name in ["", "1A", "A-B", "A=B", "A B"] {
            let spec = CommandSpec::new("psql").secret_env(name, "hunter2");
            let err = check_env(&spec).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}");
            assert!(!err.to_string().contains("hunter2"));
        }
        let spec = CommandSpec::new("psql").secret_env("A", "nul\0byte");
        assert_eq!(
            check_env(&spec).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
}
