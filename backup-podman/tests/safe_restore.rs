//! Safe restore against real Podman: a safety backup first, containers stopped and
//! started, and a full rollback when any step fails (a damaged archive, or a fault
//! injected where a volume root's owner and mode are set).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use backup_core::bundle::BundleReader;
use backup_core::command::SpawnedCommand;
use backup_core::progress::NoProgress;
use backup_core::{CommandRunner, CommandSpec, LocalRunner};
use backup_podman::safe_restore;
use backup_testkit::tree::tree_digest;
use common::{listing, sh, Deployment, State};

/// Everything a restore may change: both volumes (listing and content) and the quadlets.
fn state(d: &Deployment) -> State {
    let data = d.env.mountpoint("appdata");
    let cache = d.env.mountpoint("systemd-cache");
    (
        listing(&data),
        tree_digest(&data),
        listing(&cache),
        tree_digest(&cache),
        d.quadlet_bytes(),
    )
}

/// A deployment with two volumes (one by `VolumeName=`, one by quadlet's `systemd-`
/// default), a running container using both, and a bundle of that state.
async fn deployment_with_bundle(dir: &std::path::Path) -> (Deployment, std::path::PathBuf) {
    let d = Deployment::new("app");
    d.write_quadlet("data.volume", "[Volume]\nVolumeName=appdata\n");
    d.write_quadlet("cache.volume", "# default name\n[Volume]\n");
    d.write_quadlet(
        "app.container",
        "[Container]\nImage=localhost/busybox-test:1\nVolume=data.volume:/d\nVolume=cache.volume:/c\nExec=sleep 1000\n",
    );
    d.env.create_volume("appdata");
    d.env.create_volume("systemd-cache");
    common::write_special_tree(&d.env.mountpoint("appdata"), 2 << 20);
    std::fs::write(d.env.mountpoint("systemd-cache").join("cached"), b"v1").unwrap();
    d.env.run_container(
        "app",
        &["appdata:/d", "systemd-cache:/c"],
        &["sleep", "1000"],
    );
    let bundle = dir.join("good.backup.zip");
    d.export(&bundle).await.unwrap();
    assert!(d.env.is_running("app"));
    (d, bundle)
}

/// Changes both volumes and the quadlets after the backup.
fn change(d: &Deployment) {
    let data = d.env.mountpoint("appdata").display().to_string();
    sh(&format!(
        "echo new > {data}/new-file && rm -r {data}/a/b && chmod 0755 {data}"
    ));
    std::fs::write(d.env.mountpoint("systemd-cache").join("cached"), b"v2").unwrap();
    d.write_quadlet(
        "app.container.d/10-env.conf",
        "[Container]\nEnvironment=A=1\n",
    );
    d.write_quadlet(
        "data.volume",
        "[Volume]\nVolumeName=appdata\nLabel=changed=1\n",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_safe_restore_brings_back_volumes_and_quadlets_and_restarts_the_container() {
    let dir = tempfile::tempdir().unwrap();
    let (d, bundle) = deployment_with_bundle(dir.path()).await;
    let backed_up = state(&d);
    change(&d);
    assert_ne!(state(&d), backed_up);
    let started = d.env.started_at("app");
    let reader = BundleReader::open(&bundle).await.unwrap();
    let report = safe_restore(&d.service, &reader, "app", dir.path(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        state(&d),
        backed_up,
        "the restore is not exactly the backup"
    );
    assert!(
        d.env.is_running("app"),
        "the container does not run after the restore"
    );
    assert_ne!(
        d.env.started_at("app"),
        started,
        "the container was not stopped for the restore"
    );
    assert_eq!(report.restarted.len(), 1);
    assert!(report.safety_backup.is_file());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_whose_volume_archive_is_corrupt_rolls_back_volumes_and_quadlets() {
    let dir = tempfile::tempdir().unwrap();
    let (d, good) = deployment_with_bundle(dir.path()).await;
    change(&d);
    let before = state(&d);

    // A bundle whose checksums are right but whose second volume archive is damaged:
    // the quadlets and `appdata` restore first, then `systemd-cache` fails.
    let corrupt = common::corrupt_copy(&good, dir.path(), "volume-systemd-cache.tar").await;
    let reader = BundleReader::open(&good).await.unwrap();
    let names: Vec<_> = reader
        .manifest()
        .entries
        .iter()
        .map(|e| e.artifact.name.clone())
        .collect();
    assert_eq!(
        names,
        [
            "quadlets.tar",
            "volume-appdata.tar",
            "volume-systemd-cache.tar"
        ]
    );

    let reader = BundleReader::open(&corrupt).await.unwrap();
    let err = safe_restore(&d.service, &reader, "app", dir.path(), &NoProgress)
        .await
        .unwrap_err();
    let text = err.to_string();
    eprintln!("the failed restore reports: {text}");
    assert!(
        text.contains("rolled back"),
        "the error does not say it rolled back: {text}"
    );
    assert!(
        text.contains("systemd-cache"),
        "the error does not say what failed: {text}"
    );
    assert_eq!(
        state(&d),
        before,
        "the rollback did not bring back the state before the restore"
    );
    assert!(
        d.env.is_running("app"),
        "the container does not run after the rollback"
    );
}

/// The local runner, except that the first command setting a volume root's owner and
/// mode fails (a fault injected at that step of a restore; the rollback's runs normally).
#[derive(Debug, Default)]
struct FailFirstRootOwner {
    inner: LocalRunner,
    fired: AtomicBool,
}

#[backup_core::async_trait]
impl CommandRunner for FailFirstRootOwner {
    async fn spawn(&self, spec: &CommandSpec) -> backup_core::Result<SpawnedCommand> {
        let sets_root_owner = spec.args.iter().any(|a| a.contains("chown -h"));
        if sets_root_owner && !self.fired.swap(true, Ordering::SeqCst) {
            let failing = sh_spec("echo 'chown: injected fault' >&2; exit 1");
            return self.inner.spawn(&failing).await;
        }
        self.inner.spawn(spec).await
    }
}

fn sh_spec(script: &str) -> CommandSpec {
    CommandSpec::new("sh").arg("-c").arg(script)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_failing_to_set_a_volume_roots_owner_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let (d, good) = deployment_with_bundle(dir.path()).await;
    change(&d);
    let before = state(&d);
    let runner = Arc::new(FailFirstRootOwner::default());
    let mut service = d.service.clone();
    service.runner = runner.clone();

    let reader = BundleReader::open(&good).await.unwrap();
    let text = safe_restore(&service, &reader, "app", dir.path(), &NoProgress)
        .await
        .unwrap_err()
        .to_string();

    assert!(runner.fired.load(Ordering::SeqCst), "the fault never fired");
    assert!(text.contains("owner and mode"), "{text}");
    assert!(text.contains("rolled back"), "{text}");
    assert_eq!(
        state(&d),
        before,
        "the rollback did not bring back the state before the restore"
    );
    assert!(
        d.env.is_running("app"),
        "the container does not run after the rollback"
    );
}
