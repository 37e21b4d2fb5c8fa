//! The shared conformance suite against real Podman: every service is a quadlet directory
//! plus the volume `appdata`, each in its own isolated podman storage (so a restore into
//! another service restores the same volume name, as on another machine).
#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use backup_core::{Error, ErrorKind, Recipe, Result, ServiceTarget};
use backup_testkit::conformance::{self, ConformanceFixture, DataSize};
use backup_testkit::podman::PodmanEnv;
use backup_testkit::tree::{tree_digest, write_bulk_files, write_sample_tree};

const VOLUME: &str = "appdata";

struct PodmanFixture {
    dir: tempfile::TempDir,
    envs: Mutex<Vec<(String, PodmanEnv)>>,
}

impl PodmanFixture {
    fn new() -> Self {
        PodmanFixture {
            dir: tempfile::tempdir().unwrap(),
            envs: Mutex::new(Vec::new()),
        }
    }

    fn mountpoint(&self, service: &ServiceTarget) -> PathBuf {
        let envs = self.envs.lock().unwrap();
        let (_, env) = envs.iter().find(|(n, _)| n == &service.name).unwrap();
        env.mountpoint(VOLUME)
    }
}

fn quadlet_dir(service: &ServiceTarget) -> PathBuf {
    PathBuf::from(service.config["quadletDir"].as_str().unwrap())
}

#[async_trait]
impl ConformanceFixture for PodmanFixture {
    fn recipe(&self) -> Recipe {
        backup_podman::recipe().unwrap()
    }

    async fn new_service(&self, name: &str) -> Result<ServiceTarget> {
        let env = tokio::task::spawn_blocking(PodmanEnv::start)
            .await
            .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
        env.create_volume(VOLUME);
        let quadlets = self.dir.path().join(name);
        std::fs::create_dir_all(&quadlets)?;
        let config = env.service_config(&quadlets, Some(&[VOLUME]));
        self.envs.lock().unwrap().push((name.to_string(), env));
        Ok(ServiceTarget::local(name, backup_podman::RECIPE, config))
    }

    async fn fill(&self, service: &ServiceTarget, size: DataSize) -> Result<()> {
        let mount = self.mountpoint(service);
        let quadlets = quadlet_dir(service);
        match size {
            DataSize::Empty => {}
            DataSize::Small => {
                std::fs::write(
                    quadlets.join("app.volume"),
                    "[Volume]\nVolumeName=appdata\n",
                )?;
                std::fs::write(
                    quadlets.join("app.container"),
                    "[Container]\nImage=localhost/busybox-test:1\nVolume=app.volume:/data\n",
                )?;
                write_sample_tree(&mount);
            }
            DataSize::Large => write_bulk_files(&mount, 72, 1024 * 1024),
        }
        Ok(())
    }

    async fn digest(&self, service: &ServiceTarget) -> Result<String> {
        let mount = self.mountpoint(service);
        let meta = std::fs::metadata(&mount)?;
        Ok(format!(
            "{} root {:o} {}:{} quadlets {}",
            tree_digest(&mount),
            meta.mode() & 0o7777,
            meta.uid(),
            meta.gid(),
            tree_digest(&quadlet_dir(service))
        ))
    }

    async fn broken_service(&self, name: &str) -> Result<ServiceTarget> {
        let mut service = self.new_service(name).await?;
        service.config["volumes"] = serde_json::json!(["volume-that-does-not-exist"]);
        Ok(service)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_passes_the_conformance_suite() {
    conformance::run_all(&PodmanFixture::new()).await;
}
