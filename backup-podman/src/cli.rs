//! Every podman (and volume-root) command the adapter runs, through the service's
//! [`CommandRunner`], with the configured program and global arguments.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use backup_core::command::CommandOutput;
use backup_core::{
    ByteStream, CommandRunner, CommandRunnerExt, CommandSpec, Error, ErrorKind, Result,
};
use serde::{Deserialize, Serialize};

/// How long a podman management command (inspect, stop, start) may stay silent.
const MANAGEMENT_TIMEOUT: Duration = Duration::from_secs(120);

/// A container as `podman ps --all --pod` lists it: one that mounts a volume
/// ([`Podman::volume_users`]) or any container ([`Podman::containers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeUser {
    /// Full container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// The name of the pod it runs in; empty when it is in none.
    pub pod: String,
    /// Whether it is its pod's infra container.
    pub infra: bool,
}

/// What `podman volume inspect` says about a volume (the parts a restore recreates).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeInfo {
    /// Volume name.
    pub name: String,
    /// Driver (`local`).
    #[serde(default)]
    pub driver: String,
    /// Driver options (`type`, `device`, `o`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Where its data lives on the host (empty for drivers without a local path).
    #[serde(default)]
    pub mountpoint: String,
}

impl VolumeInfo {
    /// The host directory holding the volume's data.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] for a driver without a local mount point.
    pub fn local_mountpoint(&self) -> Result<&str> {
        if self.mountpoint.is_empty() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "volume `{}` (driver `{}`) has no local mount point",
                    self.name, self.driver
                ),
            ));
        }
        Ok(&self.mountpoint)
    }
}

/// Owner and permission bits of a volume's root directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootAttributes {
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Permission bits (`0o700`).
    pub mode: u32,
}

/// A podman client.
#[derive(Debug, Clone)]
pub struct Podman {
    runner: Arc<dyn CommandRunner>,
    program: String,
    global_args: Vec<String>,
    rootless: bool,
    stop_timeout: u64,
    /// Set once the configured mode (rootless or not) was checked against the user
    /// podman runs as.
    mode_checked: Arc<tokio::sync::OnceCell<()>>,
}

impl Podman {
    /// A client running `program global_args… SUBCOMMAND` through `runner`; `podman stop`
    /// waits `stop_timeout` seconds before it kills.
    pub fn new(
        runner: Arc<dyn CommandRunner>,
        program: String,
        global_args: Vec<String>,
        rootless: bool,
        stop_timeout: u64,
    ) -> Self {
        Podman {
            runner,
            program,
            global_args,
            rootless,
            stop_timeout,
            mode_checked: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// `podman GLOBAL ARGS…`.
    pub fn spec<I, S>(&self, args: I) -> CommandSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        CommandSpec::new(self.program.clone())
            .args(self.global_args.iter().cloned())
            .args(args)
            .on_failure(map_failure)
    }

    /// A host tool acting on volume data: directly as root, through `podman unshare`
    /// when rootless (so owners are those the containers see).
    fn data_tool(&self, program: &str, args: Vec<String>) -> CommandSpec {
        if self.rootless {
            self.spec(
                ["unshare".to_string(), program.to_string()]
                    .into_iter()
                    .chain(args),
            )
            .on_failure(map_unshared_failure)
        } else {
            CommandSpec::new(program).args(args).on_failure(map_failure)
        }
    }

    /// Refuses a configured mode that is not the one podman runs in (rootless exactly
    /// when the user is not root): host tools would read and set owners as the host sees
    /// them instead of as the containers do (a rootless volume's root recorded under its
    /// shifted host uid), or `podman unshare` would fail as root. Checked once per client
    /// with `id -u` through the runner.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] on a mismatch; `id`'s failure.
    async fn check_mode(&self) -> Result<()> {
        self.mode_checked
            .get_or_try_init(|| async {
                let spec = CommandSpec::new("id").arg("-u").on_failure(map_failure);
                let text = self.output(spec).await?.stdout_text();
                let uid: u32 = text.trim().parse().map_err(|_| {
                    Error::new(ErrorKind::ToolFailed, format!("`id -u` printed `{}`", text.trim()))
                })?;
                match (self.rootless, uid == 0) {
                    (true, true) => Err(Error::new(
                        ErrorKind::InvalidConfig,
                        "the podman service's config says `rootless: true`, but podman runs as root",
                    )
                    .with_hint("remove `rootless` from the config (or set it to false) for a rootful podman")),
                    (false, false) => Err(Error::new(
                        ErrorKind::InvalidConfig,
                        format!("podman runs rootless (as uid {uid}), but the podman service's config does not say `rootless: true`: owners in volumes would be those the host sees, not those the containers see"),
                    )
                    .with_hint("set `rootless: true` in the podman service's config")),
                    _ => Ok(()),
                }
            })
            .await
            .map(|_| ())
    }

    async fn output(&self, spec: CommandSpec) -> Result<CommandOutput> {
        self.runner
            .output(&spec.idle_timeout(MANAGEMENT_TIMEOUT))
            .await
    }

    /// `podman volume inspect`; `None` when there is no such volume.
    ///
    /// # Errors
    ///
    /// When podman fails for another reason or prints something unreadable.
    pub async fn volume_inspect(&self, name: &str) -> Result<Option<VolumeInfo>> {
        let spec = self.spec(["volume", "inspect", "--format", "json", name]);
        match self.output(spec).await {
            Ok(out) => {
                let mut list: Vec<VolumeInfo> =
                    serde_json::from_slice(&out.stdout).map_err(|e| {
                        Error::new(
                            ErrorKind::ToolFailed,
                            format!("`podman volume inspect {name}` printed unreadable JSON: {e}"),
                        )
                    })?;
                Ok(list.pop())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `podman volume create` with the driver, options and labels of `info`.
    ///
    /// # Errors
    ///
    /// When podman fails.
    pub async fn volume_create(&self, info: &VolumeInfo) -> Result<()> {
        let mut args = vec!["volume".to_string(), "create".to_string()];
        if !info.driver.is_empty() {
            args.extend(["--driver".to_string(), info.driver.clone()]);
        }
        for (k, v) in &info.options {
            args.extend(["--opt".to_string(), format!("{k}={v}")]);
        }
        for (k, v) in &info.labels {
            args.extend(["--label".to_string(), format!("{k}={v}")]);
        }
        args.push(info.name.clone());
        self.output(self.spec(args)).await.map(|_| ())
    }

    /// Streams `podman volume export NAME`, read on a thread of its own: podman writes
    /// the tar as fast as it can in 32 KiB pieces, which the async reactor reads at a
    /// wake-up each (10–15 % slower on two cores that podman keeps busy).
    ///
    /// # Errors
    ///
    /// When podman cannot start; later failures end the stream with an error.
    pub async fn volume_export(&self, name: &str) -> Result<ByteStream> {
        self.runner
            .stream_stdout(
                &self
                    .spec(["volume", "export", name])
                    .read_output_in_thread(),
            )
            .await
    }

    /// Feeds `data` to `podman volume import NAME -`.
    ///
    /// # Errors
    ///
    /// The input's error or podman's.
    pub async fn volume_import(&self, name: &str, data: ByteStream) -> Result<()> {
        self.runner
            .run_with_stdin(&self.spec(["volume", "import", name, "-"]), data)
            .await
            .map(|_| ())
    }

    /// Owner and mode of the volume's root directory, and whether it holds anything
    /// (one `find` that stops at the first entry inside).
    ///
    /// # Errors
    ///
    /// When `find` fails or prints something unexpected; [`ErrorKind::InvalidConfig`]
    /// when `rootless` is not the mode podman runs in.
    pub async fn inspect_root(&self, mountpoint: &str) -> Result<(RootAttributes, bool)> {
        self.check_mode().await?;
        let spec = self.data_tool(
            "find",
            vec![
                mountpoint.to_string(),
                "-maxdepth".into(),
                "1".into(),
                "-printf".into(),
                "%U %G %m\\n".into(),
                "!".into(),
                "-path".into(),
                glob_escape(mountpoint),
                "-quit".into(),
            ],
        );
        let text = self.output(spec).await?.stdout_text();
        let mut lines = text.lines();
        let fields: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
        let parsed = match fields.as_slice() {
            [uid, gid, mode] => uid
                .parse()
                .ok()
                .zip(gid.parse().ok())
                .zip(u32::from_str_radix(mode, 8).ok())
                .map(|((uid, gid), mode)| RootAttributes { uid, gid, mode }),
            _ => None,
        };
        let root = parsed.ok_or_else(|| {
            Error::new(
                ErrorKind::ToolFailed,
                format!("`find` of `{mountpoint}` printed `{}`", text.trim()),
            )
        })?;
        Ok((root, lines.next().is_some()))
    }

    /// Sets the owner and mode of the volume's root directory: `chown -h` then `chmod`,
    /// in one `sh` so that a rootless podman starts one user namespace for both, not two.
    /// The owner, mode and mount point are `sh`'s arguments, never part of its script.
    ///
    /// # Errors
    ///
    /// When `chown` or `chmod` fails; [`ErrorKind::InvalidConfig`] when `rootless` is not
    /// the mode podman runs in.
    pub async fn set_root_attributes(&self, mountpoint: &str, root: RootAttributes) -> Result<()> {
        self.check_mode().await?;
        let spec = self.data_tool(
            "sh",
            vec![
                "-c".into(),
                r#"chown -h "$1" "$3" && chmod "$2" "$3""#.into(),
                "sh".into(),
                format!("{}:{}", root.uid, root.gid),
                format!("{:o}", root.mode),
                mountpoint.to_string(),
            ],
        );
        self.output(spec).await.map(|_| ())
    }

    /// Whether the volume's directory holds anything.
    ///
    /// # Errors
    ///
    /// When `find` fails; [`ErrorKind::InvalidConfig`] when `rootless` is not the mode
    /// podman runs in.
    pub async fn has_content(&self, mountpoint: &str) -> Result<bool> {
        Ok(self.inspect_root(mountpoint).await?.1)
    }

    /// Deletes everything inside the volume's directory (not the directory itself).
    ///
    /// # Errors
    ///
    /// When `find -delete` fails; [`ErrorKind::InvalidConfig`] when `rootless` is not the
    /// mode podman runs in.
    pub async fn empty_volume(&self, mountpoint: &str) -> Result<()> {
        self.check_mode().await?;
        let spec = self.data_tool(
            "find",
            vec![
                mountpoint.into(),
                "-mindepth".into(),
                "1".into(),
                "-delete".into(),
            ],
        );
        self.runner.output(&spec).await.map(|_| ())
    }

    /// The running containers that mount `volume`, in start order (dependencies first,
    /// then by creation time).
    ///
    /// # Errors
    ///
    /// When podman fails.
    pub async fn running_users(&self, volume: &str) -> Result<Vec<String>> {
        let ids = self
            .users_with(volume, &["--filter", "status=running"])
            .await?;
        self.start_order(ids).await
    }

    /// Every container that mounts `volume`, running or not.
    ///
    /// # Errors
    ///
    /// When podman fails.
    pub async fn all_users(&self, volume: &str) -> Result<Vec<String>> {
        self.users_with(volume, &["--all"]).await
    }

    /// Every container that mounts `volume`, running or not, with its name and pod.
    ///
    /// # Errors
    ///
    /// When podman fails.
    pub async fn volume_users(&self, volume: &str) -> Result<Vec<VolumeUser>> {
        self.list_containers(&["--filter".into(), format!("volume={volume}")])
            .await
    }

    /// Every container, running or not, infra containers included, with its name and
    /// pod.
    ///
    /// # Errors
    ///
    /// When podman fails.
    pub async fn containers(&self) -> Result<Vec<VolumeUser>> {
        self.list_containers(&[]).await
    }

    async fn list_containers(&self, filter: &[String]) -> Result<Vec<VolumeUser>> {
        let mut args = vec!["ps".to_string(), "--all".into(), "--pod".into()];
        args.extend(filter.iter().cloned());
        args.extend([
            "--format".into(),
            "{{.ID}}|{{.IsInfra}}|{{.PodName}}|{{.Names}}".into(),
            "--no-trunc".into(),
        ]);
        let text = self.output(self.spec(args)).await?.stdout_text();
        Ok(text
            .lines()
            .filter_map(|line| {
                let mut parts = line.trim().splitn(4, '|');
                let id = parts.next().filter(|id| !id.is_empty())?.to_string();
                let infra = parts.next() == Some("true");
                let pod = parts.next().unwrap_or("").to_string();
                let name = parts.next().unwrap_or("").to_string();
                Some(VolumeUser {
                    id,
                    name,
                    pod,
                    infra,
                })
            })
            .collect())
    }

    /// The names of every existing pod (`podman pod ps`).
    ///
    /// # Errors
    ///
    /// When podman fails.
    pub async fn pods(&self) -> Result<Vec<String>> {
        let spec = self.spec(["pod", "ps", "--format", "{{.Name}}"]);
        let text = self.output(spec).await?.stdout_text();
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// `podman pod rm NAME`, without `--force`: fails while a container in the pod runs
    /// (stop its infra container first).
    ///
    /// # Errors
    ///
    /// When podman fails.
    pub async fn pod_remove(&self, name: &str) -> Result<()> {
        self.output(self.spec(["pod", "rm", name])).await?;
        Ok(())
    }

    async fn users_with(&self, volume: &str, extra: &[&str]) -> Result<Vec<String>> {
        let mut args = vec![
            "ps".to_string(),
            "--filter".into(),
            format!("volume={volume}"),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args.extend(["--format".into(), "{{.ID}}".into(), "--no-trunc".into()]);
        Ok(self
            .output(self.spec(args))
            .await?
            .stdout_text()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// Removes containers (`podman rm --force`, which stops a running one first with the
    /// stop timeout).
    ///
    /// # Errors
    ///
    /// When podman fails.
    pub async fn remove_containers(&self, ids: &[String]) -> Result<()> {
        for id in ids {
            let timeout = self.stop_timeout.to_string();
            self.output(self.spec(["rm", "--force", "--time", timeout.as_str(), id.as_str()]))
                .await?;
        }
        Ok(())
    }

    /// `podman volume rm NAME` (fails while a container uses it).
    ///
    /// # Errors
    ///
    /// When podman fails; [`ErrorKind::NotFound`] when there is no such volume.
    pub async fn volume_remove(&self, name: &str) -> Result<()> {
        self.output(self.spec(["volume", "rm", name])).await?;
        Ok(())
    }

    /// Orders containers so that every container comes after those it depends on.
    async fn start_order(&self, ids: Vec<String>) -> Result<Vec<String>> {
        if ids.len() < 2 {
            return Ok(ids);
        }
        let mut args = vec![
            "inspect".to_string(),
            "--format".into(),
            "{{.Id}}|{{.Created}}|{{range .Dependencies}}{{.}},{{end}}".into(),
        ];
        args.extend(ids.iter().cloned());
        let text = self.output(self.spec(args)).await?.stdout_text();
        let mut rows: Vec<(String, String, Vec<String>)> = text
            .lines()
            .filter_map(|line| {
                let mut parts = line.splitn(3, '|');
                let id = parts.next()?.to_string();
                let created = parts.next()?.to_string();
                let deps = parts
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
                    .collect();
                Some((id, created, deps))
            })
            .collect();
        rows.sort_by(|a, b| a.1.cmp(&b.1));
        let mut ordered: Vec<String> = Vec::new();
        while !rows.is_empty() {
            let ready = rows
                .iter()
                .position(|(_, _, deps)| {
                    deps.iter().all(|d| {
                        ordered
                            .iter()
                            .any(|o| o.starts_with(d.as_str()) || d.starts_with(o.as_str()))
                            || !rows.iter().any(|(id, _, _)| id.starts_with(d.as_str()))
                    })
                })
                .unwrap_or(0);
            ordered.push(rows.remove(ready).0);
        }
        Ok(ordered)
    }

    /// Stops containers, last started first.
    ///
    /// # Errors
    ///
    /// When podman fails.
    pub async fn stop(&self, ids: &[String]) -> Result<()> {
        for id in ids.iter().rev() {
            let timeout = self.stop_timeout.to_string();
            self.output(self.spec(["stop", "-t", timeout.as_str(), id.as_str()]))
                .await?;
        }
        Ok(())
    }

    /// Starts containers in order.
    ///
    /// # Errors
    ///
    /// The first container that does not start.
    pub async fn start(&self, ids: &[String]) -> Result<()> {
        for id in ids {
            self.output(self.spec(["start", id.as_str()])).await?;
        }
        Ok(())
    }

    /// Whether the container runs.
    ///
    /// # Errors
    ///
    /// When podman fails.
    pub async fn is_running(&self, id: &str) -> Result<bool> {
        let out = self
            .output(self.spec(["inspect", "--format", "{{.State.Running}}", id]))
            .await?;
        Ok(out.stdout_text().trim() == "true")
    }
}

/// `path` as a `find -path` pattern matching only itself.
fn glob_escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The hint for a rootless podman that cannot map an owner into its user namespace.
pub(crate) const ID_MAPPING_HINT: &str = "rootless podman maps only the user's subordinate ids into its namespace: give the user ranges in /etc/subuid and /etc/subgid (`usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER`), install `newuidmap`/`newgidmap` (package `uidmap`), then run `podman system migrate`";

/// A host tool run through `podman unshare` that failed with "Invalid argument" was
/// given an owner the namespace does not map.
fn map_unshared_failure(failure: backup_core::command::ToolFailure) -> Error {
    let unmapped = failure.stderr.contains("Invalid argument");
    let error = map_failure(failure);
    if unmapped {
        error.with_hint(ID_MAPPING_HINT)
    } else {
        error
    }
}

/// Podman's "no such …" becomes [`ErrorKind::NotFound`]; every failure gets a hint.
fn map_failure(failure: backup_core::command::ToolFailure) -> Error {
    let missing = failure.stderr.contains("no such volume")
        || failure.stderr.contains("no such container")
        || failure.stderr.contains("no container with name or ID")
        || failure.stderr.contains("no such pod");
    let unmapped = failure.stderr.contains("insufficient UIDs or GIDs");
    let error = failure.into_error();
    if unmapped {
        error.with_hint(ID_MAPPING_HINT)
    } else if missing {
        Error::new(ErrorKind::NotFound, error.message().to_string())
            .with_hint("check the names in the deployment's quadlet files and `volumes`; list them with `podman volume ls` / `podman ps -a`")
    } else {
        error.with_hint(
            "check `podman` works for this user and storage (`podman info`), and its message above",
        )
    }
}
