//! An isolated Podman for tests: its own storage root, run root and temp dir in a
//! temporary directory, its own `containers.conf` (cgroupfs, no default ulimits, runc),
//! and a busybox image imported from a root filesystem tar (there is no registry here).
//! Nothing touches the machine's own podman storage. Dropping it removes its containers
//! and volumes and unmounts its storage.
//!
//! ```no_run
//! let podman = backup_testkit::podman::PodmanEnv::start();
//! podman.podman(&["volume", "create", "v1"]);
//! let id = podman.run_container("c1", &["v1:/d"], &["sleep", "1000"]);
//! assert!(podman.is_running(&id));
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::ports::require_binary;

/// The image every test container runs (busybox, imported by [`PodmanEnv::start`]).
pub const IMAGE: &str = "localhost/busybox-test:1";

/// An isolated podman storage; cleaned up on drop.
#[derive(Debug)]
pub struct PodmanEnv {
    dir: tempfile::TempDir,
    program: PathBuf,
    rootless: bool,
}

/// Writes a busybox root filesystem tar into `dir`; returns its path.
fn rootfs_tar(dir: &Path) -> PathBuf {
    let busybox = require_binary("busybox", &["/bin", "/usr/bin"]);
    let bin = dir.join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap_or_else(|e| panic!("mkdir {}: {e}", bin.display()));
    std::fs::copy(&busybox, bin.join("busybox")).unwrap_or_else(|e| panic!("copy busybox: {e}"));
    for applet in [
        "sh", "sleep", "ls", "cat", "echo", "touch", "dd", "true", "false",
    ] {
        std::os::unix::fs::symlink("busybox", bin.join(applet))
            .unwrap_or_else(|e| panic!("symlink {applet}: {e}"));
    }
    let tar = dir.join("rootfs.tar");
    // Owned by root in the image, whoever builds it (a rootless user may map no other id).
    let status = Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner"])
        .arg("-C")
        .arg(dir.join("rootfs"))
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap_or_else(|e| panic!("tar: {e}"));
    assert!(status.success(), "tar of the busybox rootfs failed");
    let _ = std::fs::remove_dir_all(dir.join("rootfs"));
    tar
}

impl PodmanEnv {
    /// Creates the isolated storage and imports the busybox image.
    ///
    /// # Panics
    ///
    /// When `podman`, `runc` or `busybox` is missing (naming it and `scripts/test.sh`),
    /// or podman cannot import the image.
    pub fn start() -> PodmanEnv {
        Self::start_with(false)
    }

    /// Like [`PodmanEnv::start`], for a user that is not root: rootless podman with the
    /// `vfs` storage driver (no kernel overlay mounts in a user namespace), its pause
    /// process's pid file in this environment's temp dir. Needs `XDG_RUNTIME_DIR` and
    /// subordinate uid/gid ranges for the user (see [`crate::rootless`]).
    ///
    /// # Panics
    ///
    /// As [`PodmanEnv::start`], and when run as root.
    pub fn start_rootless() -> PodmanEnv {
        assert!(
            !crate::rootless::is_root(),
            "a rootless podman environment must not run as root: start it in a test run by \
             backup_testkit::rootless::run_test_as_rootless_user"
        );
        Self::start_with(true)
    }

    fn start_with(rootless: bool) -> PodmanEnv {
        let program = require_binary("podman", &[]);
        require_binary("runc", &["/usr/sbin", "/usr/bin", "/sbin"]);
        let dir = tempfile::Builder::new()
            .prefix("podmantest")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for podman: {e}"));
        let conf = "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\nruntime = \"runc\"\nevents_logger = \"file\"\n";
        std::fs::write(dir.path().join("containers.conf"), conf)
            .unwrap_or_else(|e| panic!("write containers.conf: {e}"));
        for sub in ["root", "run", "tmp"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap_or_else(|e| panic!("mkdir: {e}"));
        }
        let env = PodmanEnv {
            dir,
            program,
            rootless,
        };
        let tar = rootfs_tar(env.dir.path());
        env.podman(&["import", &tar.display().to_string(), IMAGE]);
        let _ = std::fs::remove_file(tar);
        env
    }

    /// The temporary directory everything lives in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The podman program.
    pub fn program(&self) -> String {
        self.program.display().to_string()
    }

    /// The global arguments that isolate this storage (`--root`, `--runroot`, `--tmpdir`,
    /// cgroupfs, runc): put them in the adapter's `podmanArgs`.
    pub fn global_args(&self) -> Vec<String> {
        let d = self.dir.path();
        let mut args: Vec<String> = vec![
            "--root".into(),
            d.join("root").display().to_string(),
            "--runroot".into(),
            d.join("run").display().to_string(),
            "--tmpdir".into(),
            d.join("tmp").display().to_string(),
            "--cgroup-manager".into(),
            "cgroupfs".into(),
            "--runtime".into(),
            "runc".into(),
            "--events-backend".into(),
            "file".into(),
        ];
        if self.rootless {
            args.extend(["--storage-driver".into(), "vfs".into()]);
        }
        args
    }

    /// Whether this environment runs podman rootless.
    pub fn is_rootless(&self) -> bool {
        self.rootless
    }

    /// Runs a shell script inside podman's user namespace (`podman unshare sh -c`), where
    /// owners are those the containers see; as root, runs it directly.
    ///
    /// # Panics
    ///
    /// When the script fails, with its stderr.
    pub fn unshare_sh(&self, script: &str) -> String {
        if self.rootless {
            self.podman(&["unshare", "sh", "-c", script])
        } else {
            let out = Command::new("sh")
                .arg("-c")
                .arg(script)
                .output()
                .unwrap_or_else(|e| panic!("sh: {e}"));
            assert!(
                out.status.success(),
                "`{script}` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        }
    }

    /// `find -printf '%m %U %G %s %y %n %P %l'` of a volume as its containers see it
    /// (through `podman unshare` when rootless), sorted, directory sizes as `-`; the same
    /// form as [`crate::tree::find_listing`].
    pub fn listing(&self, volume: &str) -> Vec<String> {
        let mountpoint = self.mountpoint(volume).display().to_string();
        let text = self.unshare_sh(&format!(
            "find '{mountpoint}' -printf '%m %U %G %s %y %n %P %l\\n'"
        ));
        let mut lines: Vec<String> = text
            .lines()
            .map(|line| {
                let fields: Vec<&str> = line.splitn(6, ' ').collect();
                match fields.as_slice() {
                    [mode, uid, gid, _, "d", rest] => format!("{mode} {uid} {gid} - d {rest}"),
                    _ => line.to_string(),
                }
            })
            .collect();
        lines.sort();
        lines
    }

    /// Runs podman with the isolating arguments; returns its output.
    pub fn try_podman(&self, args: &[&str]) -> Output {
        Command::new(&self.program)
            .env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .args(self.global_args())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run podman: {e}"))
    }

    /// Runs podman and returns its trimmed stdout.
    ///
    /// # Panics
    ///
    /// When podman fails, with its stderr.
    pub fn podman(&self, args: &[&str]) -> String {
        let out = self.try_podman(args);
        assert!(
            out.status.success(),
            "podman {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Creates a volume.
    pub fn create_volume(&self, name: &str) {
        self.podman(&["volume", "create", name]);
    }

    /// Where a volume's data lives.
    pub fn mountpoint(&self, volume: &str) -> PathBuf {
        PathBuf::from(self.podman(&["volume", "inspect", "--format", "{{.Mountpoint}}", volume]))
    }

    /// Starts a detached container `name` with `mounts` (`-v` values) running `command`;
    /// returns its id.
    pub fn run_container(&self, name: &str, mounts: &[&str], command: &[&str]) -> String {
        let mut args = vec!["run", "-d", "--name", name, "--network", "none"];
        for mount in mounts {
            args.push("-v");
            args.push(mount);
        }
        args.push(IMAGE);
        args.extend_from_slice(command);
        self.podman(&args)
    }

    /// Whether a container runs.
    pub fn is_running(&self, name: &str) -> bool {
        self.podman(&["inspect", "--format", "{{.State.Running}}", name]) == "true"
    }

    /// When a container last started (`.State.StartedAt`).
    pub fn started_at(&self, name: &str) -> String {
        self.podman(&["inspect", "--format", "{{.State.StartedAt}}", name])
    }

    /// A `podman` service config for `quadlet_dir` on this storage.
    pub fn service_config(
        &self,
        quadlet_dir: &Path,
        volumes: Option<&[&str]>,
    ) -> serde_json::Value {
        let mut config = serde_json::json!({
            "quadletDir": quadlet_dir,
            "podman": self.program(),
            "podmanArgs": self.global_args(),
            "startCheckSeconds": 1,
        });
        if let Some(volumes) = volumes {
            config["volumes"] = serde_json::json!(volumes);
        }
        config
    }
}

impl Drop for PodmanEnv {
    fn drop(&mut self) {
        let _ = self.try_podman(&["stop", "--all", "--time", "0"]);
        // Dependent containers (`--requires`) must go first: podman 4.3 refuses otherwise.
        for _ in 0..3 {
            let _ = self.try_podman(&["rm", "--all", "--force", "--time", "0"]);
        }
        let _ = self.try_podman(&["volume", "rm", "--all", "--force"]);
        let _ = self.try_podman(&["rmi", "--all", "--force"]);
        if self.rootless {
            // Files of other owners in the namespace are not this user's to delete.
            let root = self.dir.path().join("root").display().to_string();
            let _ = self.try_podman(&["unshare", "rm", "-rf", root.as_str()]);
            if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("tmp/pause.pid")) {
                let _ = Command::new("kill").arg(pid.trim()).output();
            }
            return;
        }
        let overlay = self.dir.path().join("root/overlay");
        let _ = Command::new("umount").arg("-l").arg(&overlay).output();
    }
}
