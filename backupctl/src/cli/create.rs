//! `create`: back up the configured services into the repository.

use std::time::Duration;

use backup_core::backup::BackupRequest;
use backup_core::bundle::BundleOptions;
use backup_core::progress::SharedProgress;
use backup_core::{Error, ErrorKind, Result};
use backup_repository::object_store::ObjectStoreExt;
use backup_repository::{BundleInfo, LockRecord, Repository, BUNDLE_SUFFIX};
use futures::TryStreamExt;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::args::CreateArgs;
use super::{interrupted, Context};
use crate::exit::Exit;
use crate::host::ConfiguredHost;
use crate::output::{human_bytes, json_ok, line};

/// What `create` prints: the bundle as `list` shows it, plus the sha256 of the whole
/// bundle object (to compare with `sha256sum` of a downloaded copy).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Created {
    #[serde(flatten)]
    bundle: BundleInfo,
    sha256: String,
}

pub(crate) async fn run(ctx: &Context, args: CreateArgs) -> Result<Exit> {
    let config = ctx.config()?;
    let mut host = ctx.host(&config)?;
    let repo = ctx.repository(&config).await?;
    let mut services = (!args.services.is_empty()).then(|| args.services.clone());
    if args.schema_only {
        let (host2, postgres) = schema_only(host, services.as_deref())?;
        host = host2;
        services = Some(postgres);
    }
    let bundle = BundleOptions {
        label: args.label.clone(),
        purpose: args.purpose.clone(),
        reason: args.reason.clone(),
        ..BundleOptions::default()
    };
    let request = BackupRequest {
        bundle,
        services,
        ..BackupRequest::default()
    };
    let progress: SharedProgress = ctx.progress.clone();
    let outcome = tokio::select! {
        result = repo.create_backup(&host, host.registry(), &request, progress) => result,
        _ = tokio::signal::ctrl_c() => Err(interrupted()),
    };
    let info = match outcome {
        Ok(info) => info,
        Err(e) if e.kind() == ErrorKind::Cancelled => {
            clean_up_after_interrupt(&repo, &host).await;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let sha256 = bundle_sha256(&repo, &info.name).await?;
    ctx.progress.finish();
    let created = Created {
        bundle: info,
        sha256,
    };
    if ctx.json {
        json_ok("create", &created);
    } else {
        let b = &created.bundle;
        line(&format!("✓ Backup created: {}", b.name));
        line(&format!("  id:       {}", b.id));
        line(&format!("  size:     {}", human_bytes(b.size)));
        line(&format!("  services: {}", b.services.join(", ")));
        line(&format!("  sha256:   {}", created.sha256));
    }
    Ok(Exit::Ok)
}

/// The host with every PostgreSQL service set to `scope: "schema"`, and those services'
/// names (of `wanted`, or all).
fn schema_only(
    host: ConfiguredHost,
    wanted: Option<&[String]>,
) -> Result<(ConfiguredHost, Vec<String>)> {
    let postgres: Vec<String> = host
        .service_names()
        .into_iter()
        .filter(|n| {
            host.get(n)
                .is_some_and(|s| s.recipe == backup_postgres::RECIPE)
        })
        .filter(|n| wanted.is_none_or(|w| w.contains(n)))
        .collect();
    if postgres.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "--schema-only backs up PostgreSQL schemas, and no PostgreSQL service is selected",
        )
        .with_hint("configure a service with recipe = \"postgres\", or drop --schema-only"));
    }
    let host = postgres.iter().fold(host, |h, n| {
        h.with_config_field(n, "scope", Value::String("schema".into()))
    });
    Ok((host, postgres))
}

/// The sha256 of the published bundle object, read back from storage.
async fn bundle_sha256(repo: &Repository, name: &str) -> Result<String> {
    let path = repo.key(&format!("bundles/{name}{BUNDLE_SUFFIX}"));
    let read_error = |e: backup_repository::object_store::Error| {
        Error::new(ErrorKind::Io, format!("reading back {path}: {e}"))
    };
    let mut stream = repo
        .object_store()
        .get(&path)
        .await
        .map_err(read_error)?
        .into_stream();
    let mut hasher = Sha256::new();
    while let Some(chunk) = stream.try_next().await.map_err(read_error)? {
        hasher.update(&chunk);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// After Ctrl-C dropped the backup: start the services it stopped, and wait (bounded)
/// for the background removal of this process's repository locks and partial upload,
/// removing our own lock records if they are still there.
async fn clean_up_after_interrupt(repo: &Repository, host: &ConfiguredHost) {
    if let Err(e) = host.start_stopped().await {
        eprintln!("warning: {e}");
    }
    let pid = std::process::id();
    for _ in 0..50 {
        let ours = our_locks(repo, pid).await;
        if ours.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for path in our_locks(repo, pid).await {
        let _ = repo.object_store().delete(&path).await;
    }
    // The upload's abort was spawned when the backup was dropped; let it run.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// This machine's name as the repository's lock records spell it.
fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

async fn our_locks(
    repo: &Repository,
    pid: u32,
) -> Vec<backup_repository::object_store::path::Path> {
    let Ok(metas) = repo
        .object_store()
        .list(Some(&repo.key("locks")))
        .try_collect::<Vec<_>>()
        .await
    else {
        return Vec::new();
    };
    let mut ours = Vec::new();
    for meta in metas {
        let Ok(got) = repo.object_store().get(&meta.location).await else {
            continue;
        };
        let Ok(bytes) = got.bytes().await else {
            continue;
        };
        if let Ok(record) = serde_json::from_slice::<LockRecord>(&bytes) {
            if record.pid == pid && record.host == this_host() {
                ours.push(meta.location);
            }
        }
    }
    ours
}
