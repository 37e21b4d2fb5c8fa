//! Bind mounts: backed up through the core directory adapter when asked, restored only
//! to host paths the restored quadlet files mount, otherwise reported as skipped.
#![allow(clippy::unwrap_used)]

use backup_core::{
    ArtifactDescriptor, DataExporter, DataImporter, ErrorKind, ImportMode, ServiceTarget,
};
use backup_podman::{PodmanExporter, PodmanImporter};
use backup_testkit::tree::{tree_digest, write_sample_tree};
use futures::StreamExt;

fn podman_service(quadlets: &std::path::Path, include: bool) -> ServiceTarget {
    ServiceTarget::local(
        "site",
        backup_podman::RECIPE,
        serde_json::json!({
            "quadletDir": quadlets,
            "volumes": [],
            "bindMounts": if include { "include" } else { "skip" },
        }),
    )
}

async fn collect(stream: backup_core::ByteStream) -> backup_core::ByteStream {
    let chunks: Vec<_> = stream.collect().await;
    Box::pin(futures::stream::iter(chunks))
}

#[tokio::test]
async fn included_bind_mounts_round_trip_and_unusable_ones_are_reported_as_skipped() {
    let root = tempfile::tempdir().unwrap();
    let quadlets = root.path().join("quadlets");
    let site = root.path().join("srv/site");
    std::fs::create_dir_all(&quadlets).unwrap();
    write_sample_tree(&site);
    std::fs::write(
        quadlets.join("web.container"),
        format!(
            "[Container]\nImage=x\nVolume={}:/usr/share/nginx/html:ro\nVolume=%h/logs:/logs\nVolume=/nonexistent/path:/x\n",
            site.display()
        ),
    )
    .unwrap();
    let service = podman_service(&quadlets, true);
    let artifacts = PodmanExporter.artifacts(&service).await.unwrap();
    let names: Vec<_> = artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["quadlets.tar", "bind-0.tar"]);
    let skipped = artifacts[0].metadata["skippedBindMounts"]
        .as_array()
        .unwrap();
    let reasons: Vec<_> = skipped
        .iter()
        .map(|s| s["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons[0].contains("specifier") && reasons[1].contains("not a directory"),
        "{reasons:?}"
    );

    let before = tree_digest(&site);
    let mut exported = Vec::new();
    for artifact in &artifacts {
        let data = PodmanExporter.export(&service, artifact).await.unwrap();
        exported.push((artifact.clone(), collect(data.stream).await));
    }
    std::fs::write(site.join("stray"), b"not in the backup").unwrap();
    std::fs::remove_dir_all(site.join("config")).unwrap();
    for (artifact, stream) in exported {
        PodmanImporter
            .import(&service, &artifact, stream, ImportMode { force: true })
            .await
            .unwrap();
    }
    assert_eq!(
        tree_digest(&site),
        before,
        "the bind mount did not come back exactly"
    );

    // Without `include`, nothing of the host path is exported, and the skip says why.
    let skipping = PodmanExporter
        .artifacts(&podman_service(&quadlets, false))
        .await
        .unwrap();
    assert_eq!(skipping.len(), 1);
    assert_eq!(
        skipping[0].metadata["skippedBindMounts"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn a_bind_artifact_for_a_path_the_quadlets_do_not_mount_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let quadlets = root.path().join("quadlets");
    std::fs::create_dir_all(&quadlets).unwrap();
    std::fs::write(quadlets.join("web.container"), "[Container]\nImage=x\n").unwrap();
    let victim = root.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("keep"), b"untouched").unwrap();
    let artifact = ArtifactDescriptor::new("bind-0.tar", "tar", "application/x-tar")
        .with_metadata("source", serde_json::json!(victim.display().to_string()));
    let empty_tar = bytes::Bytes::from(vec![0u8; 1024]);
    let err = PodmanImporter
        .import(
            &podman_service(&quadlets, true),
            &artifact,
            Box::pin(futures::stream::iter(vec![Ok(empty_tar)])),
            ImportMode { force: true },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(std::fs::read(victim.join("keep")).unwrap(), b"untouched");
}
