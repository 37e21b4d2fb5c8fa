//! Quadlet discovery on real-world deployments, and quadlet files that come back byte for
//! byte. No podman needed: the quadlet artifact goes through the core directory adapter.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use backup_core::{DataExporter, DataImporter, ImportMode, ServiceTarget};
use backup_podman::quadlet::discover;
use backup_podman::{PodmanExporter, PodmanImporter, QUADLETS_ARTIFACT};
use futures::StreamExt;

fn write(dir: &Path, name: &str, text: &[u8]) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A Nextcloud-like deployment: a pod, three containers sharing volumes, `.volume` units
/// with and without `VolumeName=`, drop-ins, continuations, quoting, `Mount=`, bind mounts.
fn write_deployment(dir: &Path) {
    write(dir, "nextcloud.pod", b"[Unit]\nDescription=Nextcloud pod\n\n[Pod]\nPodName=nextcloud\nPublishPort=8080:80\nVolume=shared.volume:/shared:z\n");
    write(
        dir,
        "db.volume",
        b"[Volume]\n# the database files\nVolumeName=nextcloud-db\nLabel=app=nextcloud\n",
    );
    write(dir, "data.volume", b"[Volume]\nLabel=app=nextcloud\n");
    write(
        dir,
        "shared.volume",
        b"[Volume]\nVolumeName=\"nc-shared\"\n",
    );
    write(
        dir,
        "db.container",
        b"[Unit]\nDescription=MariaDB\n\n[Container]\nImage=docker.io/library/mariadb:11\nPod=nextcloud.pod\nVolume=db.volume:/var/lib/mysql:Z\nEnvironment=MARIADB_DATABASE=nextcloud \\\n  MARIADB_USER=nextcloud\nSecret=db-password,type=env,target=MARIADB_PASSWORD\n\n[Install]\nWantedBy=default.target\n",
    );
    write(
        dir,
        "app.container",
        b"[Container]\r\nImage=docker.io/library/nextcloud:29\r\nPod=nextcloud.pod\r\nVolume=data.volume:/var/www/html\r\nVolume=\"nc-config:/var/www/html/config\"\r\nVolume=/srv/nextcloud/custom_apps:/var/www/html/custom_apps:ro\r\nVolume=/tmp/anonymous-only\r\n",
    );
    write(
        dir,
        "cron.container",
        b"; cron runs the background jobs\n[Container]\nImage=docker.io/library/nextcloud:29\nExec=/cron.sh\nVolume=data.volume:/var/www/html\nMount=type=volume,source=nc-config,destination=/config\nMount=type=bind,source=./scripts,destination=/scripts\n",
    );
    // A drop-in for one container and one for every container.
    write(
        dir,
        "app.container.d/10-cache.conf",
        b"[Container]\nVolume=nc-cache:/var/cache \\\n# still the same line\n  \n",
    );
    write(
        dir,
        "container.d/50-logs.conf",
        b"[Container]\nVolume=%h/logs:/logs\n",
    );
    write(
        dir,
        "app.container.d/notes.txt",
        b"[Container]\nVolume=ignored:/x\n",
    );
    write(
        dir,
        "nextcloud.network",
        b"[Network]\nSubnet=10.89.0.0/24\n",
    );
    write(dir, "redis.kube", b"[Kube]\nYaml=redis.yaml\n");
    write(
        dir,
        "mariadb.image",
        b"[Image]\nImage=docker.io/library/mariadb:11\n",
    );
    write(dir, "README.md", b"not a quadlet\n");
}

#[test]
fn named_volumes_and_bind_mounts_are_found_in_a_real_world_deployment() {
    let dir = tempfile::tempdir().unwrap();
    write_deployment(dir.path());
    let deployment = discover(dir.path()).unwrap();
    let files: Vec<_> = deployment.units.iter().map(|u| u.file.as_str()).collect();
    assert_eq!(
        files,
        [
            "app.container",
            "cron.container",
            "data.volume",
            "db.container",
            "db.volume",
            "mariadb.image",
            "nextcloud.network",
            "nextcloud.pod",
            "redis.kube",
            "shared.volume"
        ]
    );
    let volumes: Vec<_> = deployment
        .volumes
        .iter()
        .map(|v| {
            (
                v.name.as_str(),
                v.defined_by.as_deref(),
                v.used_by.join(","),
            )
        })
        .collect();
    assert_eq!(
        volumes,
        [
            ("nc-cache", None, "app.container".to_string()),
            (
                "nc-config",
                None,
                "app.container,cron.container".to_string()
            ),
            (
                "nc-shared",
                Some("shared.volume"),
                "nextcloud.pod".to_string()
            ),
            (
                "nextcloud-db",
                Some("db.volume"),
                "db.container".to_string()
            ),
            (
                "systemd-data",
                Some("data.volume"),
                "app.container,cron.container".to_string()
            ),
        ]
    );
    let binds: Vec<_> = deployment
        .bind_mounts
        .iter()
        .map(|b| (b.source.display().to_string(), b.used_by.as_str()))
        .collect();
    let scripts = dir.path().join("./scripts").display().to_string();
    assert_eq!(
        binds,
        [
            ("/srv/nextcloud/custom_apps".to_string(), "app.container"),
            ("%h/logs".to_string(), "app.container"),
            // `Volume=` (from the shared drop-in) comes before `Mount=`.
            ("%h/logs".to_string(), "cron.container"),
            (scripts, "cron.container"),
            // `container.d/` applies to every container.
            ("%h/logs".to_string(), "db.container"),
        ]
    );
    let app = &deployment.units[0];
    // Drop-ins of every directory apply in the order of their file names, as in systemd.
    assert_eq!(
        app.drop_ins,
        ["app.container.d/10-cache.conf", "container.d/50-logs.conf"]
    );
    let db = deployment
        .units
        .iter()
        .find(|u| u.file == "db.container")
        .unwrap();
    assert_eq!(
        db.unit.last("Container", "Environment"),
        Some("MARIADB_DATABASE=nextcloud  MARIADB_USER=nextcloud")
    );
    assert!(deployment.units.iter().all(|u| u.issues.is_empty()));
}

#[test]
fn an_empty_volume_assignment_in_a_drop_in_clears_the_volumes_before_it() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "web.container",
        b"[Container]\nVolume=old:/a\nVolume=older:/b\n",
    );
    write(
        dir.path(),
        "web.container.d/override.conf",
        b"[Container]\nVolume=\nVolume=new:/a\n",
    );
    let names: Vec<_> = discover(dir.path())
        .unwrap()
        .volumes
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, ["new"]);
}

fn quadlet_service(dir: &Path) -> ServiceTarget {
    ServiceTarget::local(
        "app",
        backup_podman::RECIPE,
        serde_json::json!({ "quadletDir": dir, "volumes": [] }),
    )
}

#[tokio::test]
async fn quadlet_files_round_trip_byte_for_byte_and_bind_mounts_are_reported_as_skipped() {
    let source = tempfile::tempdir().unwrap();
    write_deployment(source.path());
    // Oddities a parser might normalise: CRLF, a trailing backslash at the end of the
    // file, no final newline, tabs, non-UTF-8 bytes.
    write(
        source.path(),
        "odd.container",
        b"[Container]\r\n\tImage = x \\\n#c\n\xff\xfe=\x01 \\",
    );
    let service = quadlet_service(source.path());
    let artifacts = PodmanExporter.artifacts(&service).await.unwrap();
    assert_eq!(artifacts.len(), 1);
    let quadlets = &artifacts[0];
    assert_eq!(quadlets.name, QUADLETS_ARTIFACT);
    let skipped = quadlets.metadata["skippedBindMounts"].as_array().unwrap();
    assert_eq!(skipped.len(), 6, "{skipped:?}");
    assert!(skipped
        .iter()
        .all(|s| s["reason"].as_str().unwrap().contains("bind mount")));
    let data = PodmanExporter.export(&service, quadlets).await.unwrap();
    let chunks: Vec<_> = data.stream.collect::<Vec<_>>().await;
    let stream: backup_core::ByteStream = Box::pin(futures::stream::iter(chunks));

    let target_root = tempfile::tempdir().unwrap();
    let target_dir = target_root.path().join("quadlets");
    let target = quadlet_service(&target_dir);
    PodmanImporter
        .check(&target, &artifacts, ImportMode::default())
        .await
        .unwrap();
    PodmanImporter
        .import(&target, quadlets, stream, ImportMode::default())
        .await
        .unwrap();
    assert_eq!(
        backup_testkit::tree::tree_digest(&target_dir),
        backup_testkit::tree::tree_digest(source.path()),
        "the quadlet files did not come back byte for byte"
    );
}

#[test]
fn own_names_are_the_containers_and_pods_the_units_create() {
    let dir = tempfile::tempdir().unwrap();
    write_deployment(dir.path());
    // A drop-in names one container; the last `ContainerName=` wins.
    write(
        dir.path(),
        "cron.container.d/20-name.conf",
        b"[Container]\nContainerName=nc-cron\n",
    );
    let names = discover(dir.path()).unwrap().own_names();
    assert_eq!(names.containers, ["systemd-app", "nc-cron", "systemd-db"]);
    assert_eq!(names.pods, ["nextcloud"]);
    // The pod's infra container is the deployment's; a container only put in its pod
    // is not.
    assert!(names.owns("nextcloud-infra", "nextcloud", true));
    assert!(names.owns("nc-cron", "nextcloud", false));
    assert!(!names.owns("intruder", "nextcloud", false));
    assert!(!names.owns("systemd-cron", "", false));
}
