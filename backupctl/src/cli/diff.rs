//! `diff`: what changed between two bundles, from their manifests (no data read).

use backup_core::artifact::formats::{POSTGRES_CUSTOM, POSTGRES_SQL};
use backup_core::Result;
use backup_postgres::SchemaDiff;
use serde::Serialize;

use super::args::DiffArgs;
use super::Context;
use crate::exit::Exit;
use crate::output::{human_bytes, json_ok, line};

/// One artifact in either bundle.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactChange {
    service: String,
    artifact: String,
    /// Stored size in the earlier bundle (`None`: not there).
    before_size: Option<u64>,
    /// Stored size in the later bundle (`None`: not there).
    after_size: Option<u64>,
    /// Whether the stored bytes differ (sha256).
    changed: bool,
    /// PostgreSQL schema and row-count changes, for dumps in both bundles.
    postgres: Option<SchemaDiff>,
}

/// The `diff` result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BundleDiff {
    before: String,
    after: String,
    services_added: Vec<String>,
    services_removed: Vec<String>,
    artifacts: Vec<ArtifactChange>,
}

/// `diff A B`: result `{before, after, servicesAdded, servicesRemoved, artifacts:
/// [{service, artifact, beforeSize, afterSize, changed, postgres}]}`.
pub(crate) async fn run(ctx: &Context, args: DiffArgs) -> Result<Exit> {
    let config = ctx.config()?;
    let repo = ctx.repository(&config).await?;
    let before = repo.info(&args.before).await?;
    let after = repo.info(&args.after).await?;
    let (b, a) = (&before.manifest, &after.manifest);
    let services_added = a
        .includes
        .services
        .iter()
        .filter(|s| !b.includes.services.contains(s))
        .cloned()
        .collect();
    let services_removed = b
        .includes
        .services
        .iter()
        .filter(|s| !a.includes.services.contains(s))
        .cloned()
        .collect();
    let mut artifacts = Vec::new();
    for entry in &b.entries {
        let other = a
            .entries
            .iter()
            .find(|e| e.service == entry.service && e.artifact.name == entry.artifact.name);
        let is_pg = |f: &str| f == POSTGRES_CUSTOM || f == POSTGRES_SQL;
        let postgres = match other {
            Some(o) if is_pg(&entry.artifact.format) && is_pg(&o.artifact.format) => {
                backup_postgres::diff(&entry.artifact, &o.artifact).ok()
            }
            _ => None,
        };
        artifacts.push(ArtifactChange {
            service: entry.service.clone(),
            artifact: entry.artifact.name.clone(),
            before_size: Some(entry.size),
            after_size: other.map(|o| o.size),
            changed: other.is_none_or(|o| o.sha256 != entry.sha256),
            postgres,
        });
    }
    for entry in a.entries.iter().filter(|e| {
        !b.entries
            .iter()
            .any(|o| o.service == e.service && o.artifact.name == e.artifact.name)
    }) {
        artifacts.push(ArtifactChange {
            service: entry.service.clone(),
            artifact: entry.artifact.name.clone(),
            before_size: None,
            after_size: Some(entry.size),
            changed: true,
            postgres: None,
        });
    }
    let diff = BundleDiff {
        before: before.name,
        after: after.name,
        services_added,
        services_removed,
        artifacts,
    };
    if ctx.json {
        json_ok("diff", &diff);
        return Ok(Exit::Ok);
    }
    line(&format!("before: {}\nafter:  {}", diff.before, diff.after));
    for s in &diff.services_added {
        line(&format!("+ service {s}"));
    }
    for s in &diff.services_removed {
        line(&format!("- service {s}"));
    }
    let size = |s: Option<u64>| s.map_or("-".into(), human_bytes);
    for c in &diff.artifacts {
        let mark = if c.changed { "~" } else { "=" };
        line(&format!(
            "{mark} {}/{}: {} -> {}",
            c.service,
            c.artifact,
            size(c.before_size),
            size(c.after_size)
        ));
        if let Some(pg) = c.postgres.as_ref().filter(|d| !d.is_empty()) {
            for l in pg.to_string().lines() {
                line(&format!("    {l}"));
            }
        }
    }
    Ok(Exit::Ok)
}
