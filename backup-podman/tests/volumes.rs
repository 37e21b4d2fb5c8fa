//! Volume export and clean import against real Podman (isolated storage).
#![allow(clippy::unwrap_used)]

mod common;

use backup_core::{DataExporter, ErrorKind, ImportMode};
use backup_podman::PodmanExporter;
use common::{listing, sh, write_special_tree, Deployment};
use futures::StreamExt;

const BIG: usize = 100 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn a_volume_round_trips_with_owners_modes_links_and_a_100mb_file() {
    let source = Deployment::new("app");
    source.write_quadlet(
        "data.volume",
        "[Volume]\nVolumeName=appdata\nLabel=tier=db\n",
    );
    source.write_quadlet(
        "app.container",
        "[Container]\nImage=localhost/busybox-test:1\nVolume=data.volume:/data\n",
    );
    source
        .env
        .podman(&["volume", "create", "--label", "tier=db", "appdata"]);
    let mount = source.env.mountpoint("appdata");
    write_special_tree(&mount, BIG);
    let before = listing(&mount);
    assert!(
        before.iter().any(|l| l.starts_with("700 999 999 - d")),
        "{before:?}"
    );
    assert!(
        before.iter().any(|l| l.starts_with("600 1000 1000 10 f")),
        "{before:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("app.backup.zip");
    source.export(&bundle).await.unwrap();

    // Another machine: the volume does not exist yet and is created as it was.
    let target = Deployment::new("app");
    target
        .import(&bundle, "app", ImportMode::default())
        .await
        .unwrap();
    let restored = target.env.mountpoint("appdata");
    assert_eq!(
        listing(&restored),
        before,
        "owners, modes, links or sizes differ"
    );
    let digest = |p: &std::path::Path| backup_testkit::tree::tree_digest(p);
    assert_eq!(digest(&restored), digest(&mount), "contents differ");
    assert_eq!(
        target
            .env
            .podman(&["volume", "inspect", "--format", "{{.Labels}}", "appdata"]),
        "map[tier:db]"
    );
    assert_eq!(
        target.quadlet_bytes(),
        source.quadlet_bytes(),
        "quadlet files differ"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn restoring_over_a_volume_with_extra_files_leaves_exactly_the_bundle_content() {
    let deployment = Deployment::with_volumes("app", Some(&["appdata"]));
    deployment.env.create_volume("appdata");
    let mount = deployment.env.mountpoint("appdata");
    write_special_tree(&mount, 1024 * 1024);
    let before = listing(&mount);
    let digest = backup_testkit::tree::tree_digest(&mount);
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("app.backup.zip");
    deployment.export(&bundle).await.unwrap();

    let m = mount.display();
    sh(&format!(
        "mkdir -p {m}/extra/dir && echo x > {m}/extra/dir/file && echo changed > {m}/a/b/c/deep.txt && rm {m}/a/hard && chmod 0755 {m} && chown 0:0 {m}"
    ));
    common::import_refused_then_forced(&deployment, &bundle).await;
    assert_eq!(
        listing(&mount),
        before,
        "the restore merged instead of replacing"
    );
    assert_eq!(backup_testkit::tree::tree_digest(&mount), digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_export_of_a_volume_that_holds_data_is_an_error() {
    let deployment = Deployment::with_volumes("app", Some(&["appdata"]));
    deployment.env.create_volume("appdata");
    std::fs::write(deployment.env.mountpoint("appdata").join("f"), b"data").unwrap();
    deployment
        .env
        .run_container("user", &["appdata:/d"], &["sleep", "1000"]);
    // A podman whose `volume export` prints an empty archive (as a broken driver would);
    // every other command is the real podman.
    let wrapper = deployment.env.dir().join("podman-empty-export");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = export ] && exec head -c 1024 /dev/zero; done\nexec {} \"$@\"\n",
            deployment.env.program()
        ),
    )
    .unwrap();
    sh(&format!("chmod +x {}", wrapper.display()));
    let mut service = deployment.service.clone();
    service.config["podman"] = serde_json::json!(wrapper);
    let artifacts = PodmanExporter.artifacts(&service).await.unwrap();
    let volume = artifacts
        .iter()
        .find(|a| a.name == "volume-appdata.tar")
        .unwrap();
    let mut stream = PodmanExporter
        .export(&service, volume)
        .await
        .unwrap()
        .stream;
    let mut failure = None;
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            failure = Some(e.to_string());
        }
    }
    let failure = failure.expect("an empty archive of a non-empty volume was accepted");
    assert!(failure.contains("empty archive"), "{failure}");
    assert!(
        deployment.env.is_running("user"),
        "the container stopped for the failed export was not started again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_volume_import_of_a_truncated_archive_fails_and_leaves_the_volume_empty() {
    let source = Deployment::with_volumes("app", Some(&["appdata"]));
    source.env.create_volume("appdata");
    write_special_tree(&source.env.mountpoint("appdata"), 4 * 1024 * 1024);
    let artifacts = PodmanExporter.artifacts(&source.service).await.unwrap();
    let volume = artifacts
        .iter()
        .find(|a| a.name == "volume-appdata.tar")
        .unwrap()
        .clone();
    let mut stream = PodmanExporter
        .export(&source.service, &volume)
        .await
        .unwrap()
        .stream;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    bytes.truncate(bytes.len() / 2);
    let target = Deployment::with_volumes("app", Some(&["appdata"]));
    target.env.create_volume("appdata");
    let data: backup_core::ByteStream =
        Box::pin(futures::stream::iter(vec![Ok(bytes::Bytes::from(bytes))]));
    let err = backup_core::DataImporter::import(
        &backup_podman::PodmanImporter,
        &target.service,
        &volume,
        data,
        ImportMode::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(
        err.to_string()
            .contains("partly imported content was removed"),
        "{err}"
    );
    let left = listing(&target.env.mountpoint("appdata"));
    assert_eq!(
        left.len(),
        1,
        "the volume holds part of the archive: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_volume_removed_after_planning_fails_its_export_with_not_found() {
    let deployment = Deployment::with_volumes("app", Some(&["appdata"]));
    deployment.env.create_volume("appdata");
    std::fs::write(deployment.env.mountpoint("appdata").join("f"), b"data").unwrap();
    let artifacts = PodmanExporter.artifacts(&deployment.service).await.unwrap();
    let volume = artifacts
        .iter()
        .find(|a| a.name == "volume-appdata.tar")
        .unwrap();
    deployment.env.podman(&["volume", "rm", "appdata"]);
    // The inspection runs beside `podman volume export`; its answer names the cause,
    // whether the failure comes when the export starts or from its stream.
    let failure = match PodmanExporter.export(&deployment.service, volume).await {
        Err(error) => error,
        Ok(data) => {
            let mut stream = data.stream;
            let mut failure = None;
            while let Some(item) = stream.next().await {
                if let Err(e) = item {
                    failure = Some(backup_core::Error::from(e));
                }
            }
            failure.expect("the export of a removed volume succeeded")
        }
    };
    assert_eq!(failure.kind(), ErrorKind::NotFound, "{failure}");
    assert!(
        failure
            .to_string()
            .contains("volume `appdata` does not exist"),
        "{failure}"
    );
}
