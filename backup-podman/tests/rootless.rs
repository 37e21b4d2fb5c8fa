//! Rootless Podman, for real: each normal test here re-runs an `#[ignore]`d child test of
//! this binary as the unprivileged user `backup-rootless` (created with subordinate
//! uid/gid ranges when missing) and fails when the child fails. The children use a
//! rootless podman with its own storage and `rootless: true` in the recipe, and compare
//! owners as the containers see them (`podman unshare find`), not the host's shifted ids.
#![allow(clippy::unwrap_used)]

mod common;

use backup_core::bundle::BundleReader;
use backup_core::progress::NoProgress;
use backup_core::{ErrorKind, ImportMode};
use backup_podman::{safe_restore, Guard};
use backup_testkit::podman::PodmanEnv;
use backup_testkit::rootless::{
    is_root, run_test_as, run_test_as_rootless_user, WITHOUT_SUBORDINATE_IDS,
};
use common::{Deployment, State};
use futures::StreamExt;

/// As root (e.g. `--include-ignored`), runs `child` as the rootless user instead of here.
fn delegated(child: &str) -> bool {
    if is_root() {
        run_test_as_rootless_user(child);
        return true;
    }
    false
}

/// The tree of the issue, written inside the user namespace: nested directories, a
/// symlink, a hard link, an empty directory, a 0600 file of uid 1000, a 0750 directory of
/// 2000:3000, 1 MiB of random data, and the root 0700 owned by 999.
fn write_tree_in_namespace(env: &PodmanEnv, volume: &str) {
    let m = env.mountpoint(volume).display().to_string();
    env.unshare_sh(&format!(
        "set -e; cd '{m}'; mkdir -p a/b/c empty other; echo deep > a/b/c/deep.txt; \
         printf secret-ish > a/private; ln -s ../a/b/c/deep.txt a/b/link; ln a/b/c/deep.txt a/hard; \
         head -c 1048576 /dev/urandom > big.bin; echo o > other/file; \
         chown 1000:1000 a/private; chmod 0600 a/private; chown -R 2000:3000 other; chmod 0750 other; \
         chown 999:999 .; chmod 0700 ."
    ));
}

/// Checksums of every file of a volume, read inside the user namespace.
fn contents(env: &PodmanEnv, volume: &str) -> String {
    let m = env.mountpoint(volume).display().to_string();
    env.unshare_sh(&format!(
        "cd '{m}' && find . -type f -print0 | sort -z | xargs -0 -r sha256sum"
    ))
}

#[test]
fn rootless_volume_round_trips_with_owners_as_containers_see_them() {
    run_test_as_rootless_user("child_rootless_volume_round_trip");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "runs as the rootless user through rootless_volume_round_trips_with_owners_as_containers_see_them"]
async fn child_rootless_volume_round_trip() {
    if delegated("child_rootless_volume_round_trip") {
        return;
    }
    let source = Deployment::rootless("app", None);
    source.write_quadlet(
        "data.volume",
        "[Volume]\nVolumeName=appdata\nLabel=tier=db\n",
    );
    source.write_quadlet(
        "app.container",
        "[Container]\nImage=localhost/busybox-test:1\nVolume=data.volume:/data\n",
    );
    let env = &source.env;
    env.podman(&["volume", "create", "--label", "tier=db", "appdata"]);
    write_tree_in_namespace(env, "appdata");
    let before = env.listing("appdata");
    for expected in [
        "700 999 999 - d",
        "600 1000 1000 10 f 1 a/private",
        "750 2000 3000 - d 2 other",
        "644 2000 3000 2 f 1 other/file",
        "644 0 0 5 f 2 a/hard",
        "777 0 0 17 l 1 a/b/link ../a/b/c/deep.txt",
        "755 0 0 - d 2 empty",
    ] {
        assert!(
            before.iter().any(|l| l.starts_with(expected)),
            "{expected} not in {before:#?}"
        );
    }
    // Really rootless: the host sees the root directory under a shifted id.
    let host_uid =
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(env.mountpoint("appdata")).unwrap());
    assert_ne!(
        host_uid, 999,
        "the volume's owner is not shifted: not rootless"
    );

    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("app.backup.zip");
    source.export(&bundle).await.unwrap();

    let target = Deployment::rootless("app", None);
    target
        .import(&bundle, "app", ImportMode::default())
        .await
        .unwrap();
    assert_eq!(
        target.env.listing("appdata"),
        before,
        "owners, modes, links or sizes differ"
    );
    assert_eq!(
        contents(&target.env, "appdata"),
        contents(env, "appdata"),
        "contents differ"
    );
    assert_eq!(
        target
            .env
            .podman(&["volume", "inspect", "--format", "{{.Labels}}", "appdata"]),
        "map[tier:db]"
    );
    assert_eq!(target.quadlet_bytes(), source.quadlet_bytes());
}

#[test]
fn rootless_restore_over_extra_files_leaves_exactly_the_bundle_content() {
    run_test_as_rootless_user("child_rootless_restore_over_extra_files");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "runs as the rootless user through rootless_restore_over_extra_files_leaves_exactly_the_bundle_content"]
async fn child_rootless_restore_over_extra_files() {
    if delegated("child_rootless_restore_over_extra_files") {
        return;
    }
    let deployment = Deployment::rootless("app", Some(&["appdata"]));
    let env = &deployment.env;
    env.create_volume("appdata");
    write_tree_in_namespace(env, "appdata");
    let before = env.listing("appdata");
    let digest = contents(env, "appdata");
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("app.backup.zip");
    deployment.export(&bundle).await.unwrap();

    let m = env.mountpoint("appdata").display().to_string();
    env.unshare_sh(&format!(
        "set -e; cd '{m}'; mkdir -p extra/dir; echo x > extra/dir/file; chown -R 4000:4000 extra; \
         echo changed > a/b/c/deep.txt; rm a/hard; chmod 0755 .; chown 0:0 ."
    ));
    assert_ne!(env.listing("appdata"), before);
    common::import_refused_then_forced(&deployment, &bundle).await;
    assert_eq!(
        env.listing("appdata"),
        before,
        "the restore merged instead of replacing"
    );
    assert_eq!(contents(env, "appdata"), digest);
}

#[test]
fn rootless_running_container_is_stopped_and_started_around_a_consistent_export() {
    run_test_as_rootless_user("child_rootless_container_stopped_around_export");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "runs as the rootless user through rootless_running_container_is_stopped_and_started_around_a_consistent_export"]
async fn child_rootless_container_stopped_around_export() {
    if delegated("child_rootless_container_stopped_around_export") {
        return;
    }
    let deployment = Deployment::rootless("app", Some(&["appdata"]));
    let env = &deployment.env;
    env.create_volume("appdata");
    env.unshare_sh(&format!(
        "head -c 8388608 /dev/urandom > '{}/bulk.bin'",
        env.mountpoint("appdata").display()
    ));
    let writer = "while true; do echo line >> /d/log; sleep 0.05; done";
    env.run_container("writer", &["appdata:/d"], &["sh", "-c", writer]);
    env.run_container("idle", &["appdata:/d"], &["sleep", "1000"]);
    env.podman(&["stop", "-t", "0", "idle"]);
    let writer_started = env.started_at("writer");

    let mut stream = common::volume_stream(&deployment, "appdata").await;
    let first = stream.next().await.unwrap().unwrap();
    assert!(
        !env.is_running("writer"),
        "the writer runs during the export"
    );
    let log = format!("{}/log", env.mountpoint("appdata").display());
    let size_during: u64 = env
        .unshare_sh(&format!("stat -c %s '{log}'"))
        .parse()
        .unwrap();
    let archived = common::archived_size(first, stream, "log").await;
    assert_eq!(
        archived, size_during,
        "the archive's log is not the log as it was while stopped"
    );
    assert!(env.is_running("writer"), "the writer was not started again");
    assert_ne!(env.started_at("writer"), writer_started, "never stopped");
    assert!(!env.is_running("idle"), "a stopped container was started");
}

fn state(d: &Deployment) -> State {
    (
        d.env.listing("appdata"),
        contents(&d.env, "appdata"),
        d.env.listing("systemd-cache"),
        contents(&d.env, "systemd-cache"),
        d.quadlet_bytes(),
    )
}

/// Changes both volumes (inside the namespace) and the quadlets.
fn change(d: &Deployment, round: u32) {
    let data = d.env.mountpoint("appdata").display().to_string();
    let cache = d.env.mountpoint("systemd-cache").display().to_string();
    d.env.unshare_sh(&format!(
        "set -e; echo new > '{data}/new-{round}'; rm -rf '{data}/a/b'; chmod 0755 '{data}'; \
         echo v{round} > '{cache}/cached'; chown 0:0 '{cache}/cached'"
    ));
    d.write_quadlet(
        "data.volume",
        &format!("[Volume]\nVolumeName=appdata\nLabel=changed={round}\n"),
    );
}

#[test]
fn rootless_safe_restore_restores_and_rolls_back_a_corrupt_archive() {
    run_test_as_rootless_user("child_rootless_safe_restore");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "runs as the rootless user through rootless_safe_restore_restores_and_rolls_back_a_corrupt_archive"]
async fn child_rootless_safe_restore() {
    if delegated("child_rootless_safe_restore") {
        return;
    }
    let d = Deployment::rootless("app", None);
    d.write_quadlet("data.volume", "[Volume]\nVolumeName=appdata\n");
    d.write_quadlet("cache.volume", "[Volume]\n");
    d.write_quadlet(
        "app.container",
        "[Container]\nImage=localhost/busybox-test:1\nVolume=data.volume:/d\nVolume=cache.volume:/c\nExec=sleep 1000\n",
    );
    d.env.create_volume("appdata");
    d.env.create_volume("systemd-cache");
    write_tree_in_namespace(&d.env, "appdata");
    d.env.unshare_sh(&format!(
        "echo v1 > '{0}/cached' && chown 500:500 '{0}/cached'",
        d.env.mountpoint("systemd-cache").display()
    ));
    d.env.run_container(
        "app",
        &["appdata:/d", "systemd-cache:/c"],
        &["sleep", "1000"],
    );
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.backup.zip");
    d.export(&good).await.unwrap();
    let backed_up = state(&d);

    change(&d, 2);
    assert_ne!(state(&d), backed_up);
    let started = d.env.started_at("app");
    let reader = BundleReader::open(&good).await.unwrap();
    safe_restore(&d.service, &reader, "app", dir.path(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        state(&d),
        backed_up,
        "the restore is not exactly the backup"
    );
    assert!(d.env.is_running("app"), "not running after the restore");
    assert_ne!(
        d.env.started_at("app"),
        started,
        "not stopped for the restore"
    );

    change(&d, 3);
    let before = state(&d);
    let corrupt = common::corrupt_copy(&good, dir.path(), "volume-systemd-cache.tar").await;
    let reader = BundleReader::open(&corrupt).await.unwrap();
    let text = safe_restore(&d.service, &reader, "app", dir.path(), &NoProgress)
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("rolled back"), "{text}");
    assert!(text.contains("systemd-cache"), "{text}");
    assert_eq!(
        state(&d),
        before,
        "the rollback did not bring back the state"
    );
    assert!(d.env.is_running("app"), "not running after the rollback");
}

#[test]
fn rootless_guarded_remove_and_apply_back_up_first_and_the_guard_bundles_restore() {
    run_test_as_rootless_user("child_rootless_guarded_remove_and_apply");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "runs as the rootless user through rootless_guarded_remove_and_apply_back_up_first_and_the_guard_bundles_restore"]
async fn child_rootless_guarded_remove_and_apply() {
    if delegated("child_rootless_guarded_remove_and_apply") {
        return;
    }
    let container = "[Container]\nContainerName=app\nImage=localhost/busybox-test:1\nVolume=data.volume:/d\nExec=sleep 1000\n";
    let d = Deployment::rootless("app", None);
    d.write_quadlet("data.volume", "[Volume]\nVolumeName=appdata\n");
    d.write_quadlet("app.container", container);
    d.env.create_volume("appdata");
    write_tree_in_namespace(&d.env, "appdata");
    d.env
        .run_container("app", &["appdata:/d"], &["sleep", "1000"]);
    let state = |d: &Deployment| {
        (
            d.env.listing("appdata"),
            contents(&d.env, "appdata"),
            d.quadlet_bytes(),
        )
    };
    let before = state(&d);
    let guarded = common::guarded_host(&d.service).await;

    // apply: the old quadlets are backed up, then replaced.
    let staged = tempfile::tempdir().unwrap();
    std::fs::write(
        staged.path().join("data.volume"),
        "[Volume]\nVolumeName=appdata\n",
    )
    .unwrap();
    std::fs::write(
        staged.path().join("app.container"),
        container.replace("sleep 1000", "sleep 2000"),
    )
    .unwrap();
    let applied = guarded
        .ops()
        .apply("app", staged.path(), Guard::Required)
        .await
        .unwrap();
    let before_apply = applied.guard.backup.expect("guard backup before apply");
    assert_eq!(before_apply.reason.as_deref(), Some("before-apply"));
    assert_ne!(d.quadlet_bytes(), before.2, "apply changed nothing");

    // remove: everything is backed up, then removed.
    let removed = guarded.ops().remove("app", Guard::Required).await.unwrap();
    let before_remove = removed.guard.backup.expect("guard backup before remove");
    assert_eq!(before_remove.reason.as_deref(), Some("before-remove"));
    assert_eq!(removed.removed_volumes, ["appdata"]);
    assert!(!d
        .env
        .try_podman(&["volume", "exists", "appdata"])
        .status
        .success());
    assert!(!d.quadlets.exists(), "the quadlet files were not removed");

    // The guard bundle of the apply holds the volume and quadlets as they were before
    // both operations: owners as the containers see them, contents, files.
    d.import(
        &guarded.bundle_file(&before_apply),
        "app",
        ImportMode { force: true },
    )
    .await
    .unwrap();
    assert_eq!(
        state(&d),
        before,
        "the guard bundle does not restore the state"
    );
}

#[test]
fn a_rootless_podman_without_rootless_in_the_config_is_refused_with_a_hint() {
    run_test_as_rootless_user("child_rootless_podman_without_the_flag");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "runs as the rootless user through a_rootless_podman_without_rootless_in_the_config_is_refused_with_a_hint"]
async fn child_rootless_podman_without_the_flag() {
    if delegated("child_rootless_podman_without_the_flag") {
        return;
    }
    let mut d = Deployment::rootless("app", Some(&["appdata"]));
    d.service.config["rootless"] = serde_json::json!(false);
    d.env.create_volume("appdata");
    d.env.unshare_sh(&format!(
        "echo data > '{}/f'",
        d.env.mountpoint("appdata").display()
    ));
    let dir = tempfile::tempdir().unwrap();
    // Without the check, the export succeeded and recorded the host's shifted owner of
    // the volume root instead of the owner the containers see.
    let refused = d
        .export(&dir.path().join("app.backup.zip"))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidConfig, "{refused}");
    let text = format!("{refused} {:?}", refused.hint());
    assert!(text.contains("`rootless: true`"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rootless_in_the_config_of_a_rootful_podman_is_refused_with_a_hint() {
    assert!(
        is_root(),
        "this test checks a rootful podman: run it as root"
    );
    let mut d = Deployment::with_volumes("app", Some(&["appdata"]));
    d.service.config["rootless"] = serde_json::json!(true);
    d.env.create_volume("appdata");
    let dir = tempfile::tempdir().unwrap();
    let refused = d
        .export(&dir.path().join("app.backup.zip"))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidConfig, "{refused}");
    let text = format!("{refused} {:?}", refused.hint());
    assert!(text.contains("runs as root"), "{text}");
}

/// The tar `archive` with every regular file owned by `uid:uid`.
fn with_file_owner(archive: Vec<u8>, uid: u64) -> Vec<u8> {
    use std::io::Read;
    let mut out = tar::Builder::new(Vec::new());
    let mut input = tar::Archive::new(archive.as_slice());
    for entry in input.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut header = entry.header().clone();
        if header.entry_type().is_file() {
            header.set_uid(uid);
            header.set_gid(uid);
            header.set_cksum();
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.append(&header, data.as_slice()).unwrap();
    }
    out.into_inner().unwrap()
}

#[test]
fn a_restore_needing_ids_a_rootless_user_cannot_map_fails_with_a_subuid_hint() {
    run_test_as(
        WITHOUT_SUBORDINATE_IDS,
        "child_restore_without_subordinate_ids",
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "runs as a user without subuid ranges through a_restore_needing_ids_a_rootless_user_cannot_map_fails_with_a_subuid_hint"]
async fn child_restore_without_subordinate_ids() {
    if is_root() {
        run_test_as(
            WITHOUT_SUBORDINATE_IDS,
            "child_restore_without_subordinate_ids",
        );
        return;
    }
    let d = Deployment::rootless("app", Some(&["appdata"]));
    d.env.create_volume("appdata");
    let m = d.env.mountpoint("appdata").display().to_string();
    d.env.unshare_sh(&format!("echo data > '{m}/f'"));
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.backup.zip");
    d.export(&good).await.unwrap();
    // The same bundle with uid 1000 (which only subordinate ids map) as the owner of its
    // file, or of the volume root (set after the import, through `podman unshare chown`).
    let file_owned = dir.path().join("file-1000.backup.zip");
    common::rewritten_copy(&good, &file_owned, "volume-appdata.tar", |_, tar| {
        with_file_owner(tar, 1000)
    })
    .await;
    let root_owned = dir.path().join("root-1000.backup.zip");
    common::rewritten_copy(&good, &root_owned, "volume-appdata.tar", |artifact, tar| {
        artifact.metadata.insert("rootUid".into(), 1000.into());
        tar
    })
    .await;
    for bundle in [file_owned, root_owned] {
        d.env.unshare_sh(&format!("echo data > '{m}/f'"));
        let failed = d
            .import(&bundle, "app", ImportMode { force: true })
            .await
            .unwrap_err();
        let hint = failed.hint().unwrap_or_default();
        assert!(hint.contains("/etc/subuid"), "{failed}");
        assert!(
            failed
                .to_string()
                .contains("partly imported content was removed"),
            "{failed}"
        );
        assert_eq!(
            d.env.listing("appdata").len(),
            1,
            "a failed restore left content that looks restored: {failed}"
        );
    }
}
