//! Guarded `remove` / `apply` against real Podman and a local repository: the guard
//! bundle (kind automatic, reason before-remove / before-apply) exists and restores
//! what the operation replaced; a failing guard blocks the operation unless overridden.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use backup_core::bundle::BundleKind;
use backup_core::{ErrorKind, ImportMode};
use backup_podman::{Guard, KeptPod, KeptVolume, PodmanDeploymentOps, SharedVolumes};
use backup_repository::BundleInfo;
use backup_testkit::tree::tree_digest;
use common::{listing, Deployment, GuardedHost};

/// Listing and content digest of `appdata`, and every quadlet file's bytes.
type State = (Vec<String>, String, Vec<(String, Vec<u8>)>);

/// A podman deployment (a running container on volume `appdata`, quadlets naming it),
/// a host listing it as `app`, and a local repository.
struct Env {
    d: Deployment,
    guarded: GuardedHost,
}

const CONTAINER: &str = "[Container]\nContainerName=app\nImage=localhost/busybox-test:1\nVolume=data.volume:/d\nExec=sleep 1000\n";

impl Env {
    async fn start() -> Env {
        let d = Deployment::new("app");
        d.write_quadlet("data.volume", "[Volume]\nVolumeName=appdata\n");
        d.write_quadlet("app.container", CONTAINER);
        d.write_quadlet(
            "app.container.d/10-env.conf",
            "[Container]\nEnvironment=A=1\n",
        );
        d.env.create_volume("appdata");
        common::write_special_tree(&d.env.mountpoint("appdata"), 1 << 20);
        d.env
            .run_container("app", &["appdata:/d"], &["sleep", "1000"]);
        Env::on(d).await
    }

    /// The environment around deployment `d`, listed by the host as `app`.
    async fn on(d: Deployment) -> Env {
        let guarded = common::guarded_host(&d.service).await;
        Env { d, guarded }
    }

    fn ops(&self) -> PodmanDeploymentOps<'_> {
        self.guarded.ops()
    }

    /// Listing and content digest of `appdata`, and the quadlet bytes.
    fn state(&self) -> State {
        let (listing, digest) = self.volume("appdata");
        (listing, digest, self.d.quadlet_bytes())
    }

    /// Listing and content digest of a volume.
    fn volume(&self, name: &str) -> (Vec<String>, String) {
        let data = self.d.env.mountpoint(name);
        (listing(&data), tree_digest(&data))
    }

    /// Whether container `name` no longer exists.
    fn container_gone(&self, name: &str) -> bool {
        let out = self.d.env.try_podman(&["container", "exists", name]);
        out.status.code() == Some(1)
    }

    fn volume_exists(&self) -> bool {
        let out = self.d.env.try_podman(&["volume", "exists", "appdata"]);
        out.status.success()
    }

    fn bundle_file(&self, info: &BundleInfo) -> PathBuf {
        self.guarded.bundle_file(info)
    }

    async fn bundles(&self) -> Vec<BundleInfo> {
        self.guarded.repo.list(&Default::default()).await.unwrap()
    }

    /// Makes the repository unwritable: its bundle directory becomes a file.
    fn break_repository(&self) {
        let bundles = self.guarded.repo_dir.path().join("repo/bundles");
        let _ = std::fs::remove_dir_all(&bundles);
        std::fs::write(&bundles, b"not a directory").unwrap();
    }
}

fn assert_guard_bundle(info: &BundleInfo, reason: &str) {
    assert_eq!(info.kind, BundleKind::Automatic);
    assert_eq!(info.reason.as_deref(), Some(reason));
    assert_eq!(info.services, ["app"]);
}

/// A staged quadlet directory with a changed container file and no drop-in.
fn staged(dir: &Path) -> PathBuf {
    let staged = dir.join("staged");
    std::fs::create_dir_all(&staged).unwrap();
    std::fs::write(staged.join("data.volume"), "[Volume]\nVolumeName=appdata\n").unwrap();
    std::fs::write(
        staged.join("app.container"),
        CONTAINER.replace("sleep 1000", "sleep 2000"),
    )
    .unwrap();
    staged
}

#[tokio::test(flavor = "multi_thread")]
async fn guarded_remove_backs_up_first_and_the_guard_bundle_restores_what_was_removed() {
    let env = Env::start().await;
    let before = env.state();
    let report = env.ops().remove("app", Guard::Required).await.unwrap();

    let info = report.guard.backup.clone().expect("guard backup");
    assert_guard_bundle(&info, "before-remove");
    assert_eq!(env.bundles().await.len(), 1);
    assert!(!env.volume_exists(), "the volume was not removed");
    assert!(
        !env.d.quadlets.exists(),
        "the quadlet files were not removed"
    );
    assert!(env.container_gone("app"));
    assert_eq!(report.removed_volumes, ["appdata"]);
    assert_eq!(report.removed_containers.len(), 1);

    // The guard bundle holds exactly what was removed.
    env.d
        .import(&env.bundle_file(&info), "app", ImportMode { force: true })
        .await
        .unwrap();
    assert_eq!(
        env.state(),
        before,
        "the guard bundle does not restore the removed state"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_guard_blocks_remove_and_apply_until_the_caller_overrides() {
    let env = Env::start().await;
    let before = env.state();
    env.break_repository();

    let error = env.ops().remove("app", Guard::Required).await.unwrap_err();
    assert!(
        error.hint().is_some_and(|h| h.contains("override_failure")),
        "{error:?}"
    );
    assert!(error.to_string().contains("before-remove"), "{error}");
    let dir = tempfile::tempdir().unwrap();
    let error = env
        .ops()
        .apply("app", &staged(dir.path()), Guard::Required)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("before-apply"), "{error}");
    assert_eq!(
        env.state(),
        before,
        "a blocked operation changed the deployment"
    );
    assert!(
        env.d.env.is_running("app"),
        "the container was left stopped"
    );

    let why = "the operator accepted data loss";
    let report = env
        .ops()
        .remove(
            "app",
            Guard::Override {
                why: why.to_string(),
            },
        )
        .await
        .unwrap();
    assert!(report.guard.backup.is_none());
    assert!(report.guard.error.is_some());
    assert_eq!(report.guard.override_why.as_deref(), Some(why));
    assert!(!env.volume_exists(), "the overridden removal did not run");
    assert!(!env.d.quadlets.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn guarded_apply_backs_up_the_old_quadlets_then_replaces_them() {
    let env = Env::start().await;
    let before = env.state();
    let dir = tempfile::tempdir().unwrap();
    let staged = staged(dir.path());
    let report = env
        .ops()
        .apply("app", &staged, Guard::Required)
        .await
        .unwrap();

    let info = report.guard.backup.clone().expect("guard backup");
    assert_guard_bundle(&info, "before-apply");
    assert_eq!(
        report.files,
        [PathBuf::from("app.container"), PathBuf::from("data.volume")]
    );
    let applied = env.d.quadlet_bytes();
    assert_eq!(
        applied.len(),
        2,
        "the old drop-in is still there: {applied:?}"
    );
    assert_eq!(
        applied[0].1,
        std::fs::read(staged.join("app.container")).unwrap()
    );
    assert_eq!(env.state().0, before.0, "apply touched the volume");

    // The guard bundle brings the old quadlets back, byte for byte.
    env.d
        .import(&env.bundle_file(&info), "app", ImportMode { force: true })
        .await
        .unwrap();
    assert_eq!(env.state(), before);
}

const IMAGE: &str = "localhost/busybox-test:1";

/// Deployment `app` — container `systemd-app` (quadlet's default name) on its own volume
/// `appdata` and on `shared`, and `app-worker` in its pod `apod` on `shared` — next to
/// another deployment's container `b` on `shared`; all running.
async fn shared_env() -> Env {
    let d = Deployment::new("app");
    d.write_quadlet("data.volume", "[Volume]\nVolumeName=appdata\n");
    d.write_quadlet("app.pod", "[Pod]\nPodName=apod\n");
    d.write_quadlet(
        "app.container",
        &format!("[Container]\nImage={IMAGE}\nVolume=data.volume:/d\nVolume=shared:/s\n"),
    );
    d.write_quadlet(
        "worker.container",
        &format!(
            "[Container]\nContainerName=app-worker\nImage={IMAGE}\nPod=app.pod\nVolume=shared:/s\n"
        ),
    );
    for volume in ["appdata", "shared"] {
        d.env.create_volume(volume);
        common::write_special_tree(&d.env.mountpoint(volume), 1 << 16);
    }
    let sleep = ["sleep", "1000"];
    d.env
        .run_container("systemd-app", &["appdata:/d", "shared:/s"], &sleep);
    d.env
        .podman(&["pod", "create", "--name", "apod", "--network", "none"]);
    d.env.podman(&[
        "run",
        "-d",
        "--name",
        "app-worker",
        "--pod",
        "apod",
        "-v",
        "shared:/s",
        IMAGE,
        "sleep",
        "1000",
    ]);
    d.env.run_container("b", &["shared:/s"], &sleep);
    Env::on(d).await
}

#[tokio::test(flavor = "multi_thread")]
async fn remove_refuses_a_volume_shared_with_another_deployments_container_and_touches_nothing() {
    let env = shared_env().await;
    let before = (env.state(), env.volume("shared"));

    let error = env.ops().remove("app", Guard::Required).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InUse, "{error:?}");
    let text = error.to_string();
    assert!(text.contains("volume `shared` with `b`"), "{text}");
    assert!(
        !text.contains("appdata") && !text.contains("systemd-app") && !text.contains("worker"),
        "the deployment's own volume or containers are named as shared: {text}"
    );
    assert!(
        error
            .hint()
            .is_some_and(|h| h.contains("SharedVolumes::Keep")),
        "{error:?}"
    );

    assert_eq!((env.state(), env.volume("shared")), before);
    for container in ["systemd-app", "app-worker", "b"] {
        assert!(env.d.env.is_running(container), "`{container}` was stopped");
    }
    assert!(env.bundles().await.is_empty(), "a guard bundle was written");
    let bundles_dir = env.guarded.repo_dir.path().join("repo/bundles");
    let files = std::fs::read_dir(&bundles_dir).map_or(0, |d| d.count());
    assert_eq!(
        files,
        0,
        "something was written to {}",
        bundles_dir.display()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn remove_keeping_shared_volumes_removes_only_the_deployments_containers_and_own_volume() {
    let env = shared_env().await;
    let shared_before = env.volume("shared");

    let report = env
        .ops()
        .remove_with("app", Guard::Required, SharedVolumes::Keep)
        .await
        .unwrap();

    assert!(report.guard.backup.is_some(), "no guard backup");
    assert_eq!(
        report.kept_volumes,
        [KeptVolume {
            name: "shared".into(),
            used_by: vec!["b".into()],
        }]
    );
    assert_eq!(report.removed_volumes, ["appdata"]);
    let mut removed = report.removed_containers.clone();
    removed.sort();
    assert_eq!(removed, ["app-worker", "systemd-app"]);
    assert!(!env.volume_exists(), "the deployment's own volume was kept");
    assert!(env.container_gone("systemd-app") && env.container_gone("app-worker"));
    assert_eq!(report.removed_pods, ["apod"]);
    assert!(report.kept_pods.is_empty());
    assert!(!env.d.quadlets.exists(), "the quadlet files were kept");

    assert!(
        env.d.env.is_running("b"),
        "the other deployment's container stopped"
    );
    assert_eq!(
        env.volume("shared"),
        shared_before,
        "the shared volume changed"
    );
}

/// Deployment `app`: `app-db` on its volume `appdata`, `systemd-web` on no volume, and
/// `app-side` (no volume) in its pod `apod`; another deployment's `other` runs next to
/// it. All running.
async fn full_env() -> Env {
    Env::on(full_deployment()).await
}

/// The deployment of [`full_env`], before the host and repository are made around it.
fn full_deployment() -> Deployment {
    let d = Deployment::new("app");
    d.write_quadlet("data.volume", "[Volume]\nVolumeName=appdata\n");
    d.write_quadlet("app.pod", "[Pod]\nPodName=apod\n");
    let units = [
        (
            "db.container",
            "ContainerName=app-db\nVolume=data.volume:/d\n",
        ),
        ("web.container", ""),
        ("side.container", "ContainerName=app-side\nPod=app.pod\n"),
    ];
    for (file, extra) in units {
        d.write_quadlet(file, &format!("[Container]\nImage={IMAGE}\n{extra}"));
    }
    d.env.create_volume("appdata");
    common::write_special_tree(&d.env.mountpoint("appdata"), 1 << 16);
    let sleep = ["sleep", "1000"];
    d.env.run_container("app-db", &["appdata:/d"], &sleep);
    d.env.run_container("systemd-web", &[], &sleep);
    d.env
        .podman(&["pod", "create", "--name", "apod", "--network", "none"]);
    run_in_pod(&d, "app-side", "apod");
    d.env.run_container("other", &[], &sleep);
    d
}

/// Runs a sleeping container `name` in pod `pod`.
fn run_in_pod(d: &Deployment, name: &str, pod: &str) {
    d.env.podman(&[
        "run", "-d", "--name", name, "--pod", pod, IMAGE, "sleep", "1000",
    ]);
}

const FULL_CONTAINERS: [&str; 3] = ["app-db", "app-side", "systemd-web"];

fn pod_exists(env: &Env, pod: &str) -> bool {
    env.d
        .env
        .try_podman(&["pod", "exists", pod])
        .status
        .success()
}

#[tokio::test(flavor = "multi_thread")]
async fn remove_deletes_every_container_and_pod_of_the_deployment_and_nothing_else() {
    let env = full_env().await;

    let report = env.ops().remove("app", Guard::Required).await.unwrap();

    let mut removed = report.removed_containers.clone();
    removed.sort();
    assert_eq!(removed, FULL_CONTAINERS);
    assert_eq!(report.removed_pods, ["apod"]);
    assert_eq!(report.removed_volumes, ["appdata"]);
    for container in FULL_CONTAINERS {
        assert!(
            env.container_gone(container),
            "`{container}` is still there"
        );
    }
    assert!(!pod_exists(&env, "apod"), "the pod is still there");
    let infra = env.d.env.podman(&[
        "ps",
        "--all",
        "--filter",
        "pod=apod",
        "--format",
        "{{.Names}}",
    ]);
    assert!(infra.trim().is_empty(), "left in the pod: {infra}");
    assert!(!env.volume_exists(), "the volume is still there");
    assert!(
        !env.d.quadlets.exists(),
        "the quadlet directory is still there"
    );
    assert!(
        env.d.env.is_running("other"),
        "another deployment's container stopped"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn remove_refuses_a_pod_holding_another_deployments_container_and_touches_nothing() {
    let env = full_env().await;
    run_in_pod(&env.d, "intruder", "apod");
    let before = env.state();

    let error = env.ops().remove("app", Guard::Required).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InUse, "{error:?}");
    let text = error.to_string();
    assert!(text.contains("pod `apod` with `intruder`"), "{text}");
    assert!(
        !text.contains("app-side"),
        "its own container named as other: {text}"
    );

    assert_eq!(env.state(), before, "the volume or the quadlets changed");
    for container in FULL_CONTAINERS.iter().chain(&["intruder", "other"]) {
        assert!(env.d.env.is_running(container), "`{container}` was stopped");
    }
    assert!(pod_exists(&env, "apod"));
    assert!(env.bundles().await.is_empty(), "a guard bundle was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn remove_keeping_shared_pods_keeps_the_pod_and_its_other_container() {
    let env = full_env().await;
    run_in_pod(&env.d, "intruder", "apod");

    let report = env
        .ops()
        .remove_with("app", Guard::Required, SharedVolumes::Keep)
        .await
        .unwrap();

    assert_eq!(
        report.kept_pods,
        [KeptPod {
            name: "apod".into(),
            used_by: vec!["intruder".into()],
        }]
    );
    assert!(report.removed_pods.is_empty());
    for container in FULL_CONTAINERS {
        assert!(
            env.container_gone(container),
            "`{container}` is still there"
        );
    }
    assert!(pod_exists(&env, "apod"), "the shared pod was removed");
    assert!(
        env.d.env.is_running("intruder"),
        "the other container stopped"
    );
    assert!(!env.d.quadlets.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_removal_that_fails_puts_the_quadlets_back_and_keeps_the_volumes() {
    let mut d = full_deployment();
    // Real podman for everything but `pod rm`, which fails as if a container had
    // started in the pod after the plan was made.
    let wrapper = d.env.dir().join("podman-failing-pod-rm");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do\n  if [ \"$prev\" = pod ] && [ \"$a\" = rm ]; then echo 'injected fault: pod rm' >&2; exit 125; fi\n  prev=$a\ndone\nexec '{}' \"$@\"\n",
            d.env.program()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    d.service.config["podman"] = serde_json::json!(wrapper.display().to_string());
    let env = Env::on(d).await;
    let before = env.state();

    let error = env.ops().remove("app", Guard::Required).await.unwrap_err();
    assert!(error.to_string().contains("injected fault"), "{error}");
    assert_eq!(
        env.state(),
        before,
        "the quadlet directory or the volume is not as before the removal"
    );
    assert!(env.volume_exists(), "the volume was removed");
    assert!(pod_exists(&env, "apod"), "the pod was removed");
    assert!(
        env.d.env.is_running("other"),
        "another deployment's container stopped"
    );
    let bundles = env.bundles().await;
    assert_eq!(bundles.len(), 1, "the guard bundle holds what was removed");
    assert_guard_bundle(&bundles[0], "before-remove");
}
