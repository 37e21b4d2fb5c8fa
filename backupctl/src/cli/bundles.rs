//! Commands over the repository's bundles: init, list, info, verify, prune, lock,
//! unlock, label, delete.

use std::time::Duration;

use backup_core::bundle::BundleKind;
use backup_core::{Error, ErrorKind, Result};
use backup_repository::{BundleFilter, BundleInfo, IndexEntry, PruneOptions, Repository};
use jiff::Timestamp;
use serde::Serialize;
use serde_json::json;

use super::args::{BundleArg, KindArg, LabelArgs, ListArgs, LockArgs, PruneArgs, VerifyArgs};
use super::{until_interrupted, Context};
use crate::exit::Exit;
use crate::output::{human_bytes, json_ok, line, table};

/// The date column: UTC, minutes.
pub(crate) fn date(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M").to_string()
}

/// `init`: result `{"id", "location", "encryption"}`.
pub(crate) async fn init(ctx: &Context) -> Result<Exit> {
    let config = ctx.config()?;
    let storage = config.storage()?;
    let repo = Repository::init_encrypted(storage, config.init_encryption()?).await?;
    let encryption = repo
        .config()
        .encryption
        .as_ref()
        .map(|e| format!("{:?}", e.method).to_lowercase());
    let location = config
        .repository
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .or_else(|| config.repository.url.clone())
        .unwrap_or_default();
    if ctx.json {
        json_ok(
            "init",
            &json!({"id": repo.config().id, "location": location, "encryption": encryption}),
        );
    } else {
        line(&format!(
            "initialised repository {} at {location} (encryption: {})",
            repo.config().id,
            encryption.as_deref().unwrap_or("none")
        ));
    }
    Ok(Exit::Ok)
}

fn kind(arg: KindArg) -> BundleKind {
    match arg {
        KindArg::Manual => BundleKind::Manual,
        KindArg::Automatic => BundleKind::Automatic,
        KindArg::Safety => BundleKind::Safety,
    }
}

/// Prints bundles as the list table: `*` marks bundles of the last 24 hours, `L` locked.
pub(crate) fn bundle_table(bundles: &[BundleInfo]) {
    let rows: Vec<Vec<String>> = bundles
        .iter()
        .map(|b| {
            let mark = match (b.recent, b.locked) {
                (true, true) => "*L",
                (true, false) => "*",
                (false, true) => "L",
                (false, false) => "",
            };
            vec![
                format!("{}{mark}", b.index),
                b.label.clone().unwrap_or_else(|| b.name.clone()),
                date(b.created),
                human_bytes(b.size),
                format!("{:?}", b.kind).to_lowercase(),
                b.purpose.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &["#", "NAME / LABEL", "DATE (UTC)", "SIZE", "KIND", "PURPOSE"],
        &rows,
    );
}

/// `list`: result is an array of bundles (`index`, `id`, `name`, `label`, `kind`,
/// `reason`, `created`, `size`, `purpose`, `services`, `recent`, `lock`, `locked`).
pub(crate) async fn list(ctx: &Context, args: ListArgs) -> Result<Exit> {
    let config = ctx.config()?;
    let repo = ctx.repository(&config).await?;
    let filter = BundleFilter {
        service: args.service,
        kind: args.kind.map(kind),
        label: None,
    };
    let bundles = repo.list(&filter).await?;
    if ctx.json {
        json_ok("list", &bundles);
    } else if bundles.is_empty() {
        line("no bundles yet: create one with `backupctl create`");
    } else {
        bundle_table(&bundles);
        if bundles.iter().any(|b| b.recent) {
            line("* made in the last 24 hours    L locked");
        }
    }
    Ok(Exit::Ok)
}

/// `info`: result is the index entry (`name`, `size`, `label`, `lock`, `manifest`).
pub(crate) async fn info(ctx: &Context, args: BundleArg) -> Result<Exit> {
    let config = ctx.config()?;
    let repo = ctx.repository(&config).await?;
    let entry = repo.info(&args.bundle).await?;
    if ctx.json {
        json_ok("info", &entry);
    } else {
        print_entry(&entry);
    }
    Ok(Exit::Ok)
}

pub(crate) fn print_entry(entry: &IndexEntry) {
    let m = &entry.manifest;
    line(&format!("name:     {}", entry.name));
    line(&format!("id:       {}", m.id));
    line(&format!("created:  {}", m.created_at));
    line(&format!(
        "kind:     {}",
        format!("{:?}", m.kind).to_lowercase()
    ));
    line(&format!(
        "label:    {}",
        entry.effective_label().unwrap_or("-")
    ));
    line(&format!(
        "purpose:  {}",
        m.purpose.as_deref().unwrap_or("-")
    ));
    line(&format!("reason:   {}", m.reason.as_deref().unwrap_or("-")));
    line(&format!("size:     {}", human_bytes(entry.size)));
    let locked = match &entry.lock {
        None => "no".to_string(),
        Some(l) => l.until.map_or("forever".into(), |u| format!("until {u}")),
    };
    line(&format!("locked:   {locked}"));
    line(&format!("services: {}", m.includes.services.join(", ")));
    let rows: Vec<Vec<String>> = m
        .entries
        .iter()
        .map(|e| {
            vec![
                e.service.clone(),
                e.artifact.name.clone(),
                e.artifact.format.clone(),
                human_bytes(e.size),
                e.sha256.chars().take(16).collect(),
            ]
        })
        .collect();
    table(&["SERVICE", "ARTIFACT", "FORMAT", "SIZE", "SHA256"], &rows);
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Verified {
    name: String,
    ok: bool,
    entries: usize,
    total_bytes: u64,
    not_decrypted: Vec<String>,
    error: Option<String>,
}

/// `verify`: result is an array of `{name, ok, entries, totalBytes, notDecrypted,
/// error}`; exit code 3 when any bundle failed.
pub(crate) async fn verify(ctx: &Context, args: VerifyArgs) -> Result<Exit> {
    let config = ctx.config()?;
    let repo = ctx.repository(&config).await?;
    let selectors: Vec<String> = match args.bundle {
        Some(b) => vec![b],
        None => repo
            .list(&BundleFilter::default())
            .await?
            .into_iter()
            .map(|b| b.id)
            .collect(),
    };
    let mut results = Vec::new();
    for selector in &selectors {
        let entry = repo.info(selector).await?;
        let outcome =
            until_interrupted(repo.verify(&entry.manifest.id, ctx.progress.as_ref())).await;
        match outcome {
            Ok(report) => results.push(Verified {
                name: entry.name,
                ok: true,
                entries: report.entries.len(),
                total_bytes: report.total_bytes,
                not_decrypted: report.not_decrypted,
                error: None,
            }),
            Err(e) if e.kind() == ErrorKind::Integrity => results.push(Verified {
                name: entry.name,
                ok: false,
                entries: 0,
                total_bytes: 0,
                not_decrypted: Vec::new(),
                error: Some(e.to_string()),
            }),
            Err(e) => return Err(e),
        }
    }
    ctx.progress.finish();
    let failed = results.iter().filter(|r| !r.ok).count();
    if ctx.json {
        if failed > 0 {
            let error = Error::integrity(format!(
                "{failed} of {} bundle(s) failed verification",
                results.len()
            ));
            crate::output::json_error("verify", &error, Exit::VerificationFailed);
        } else {
            json_ok("verify", &results);
        }
    } else {
        for r in &results {
            match &r.error {
                None => {
                    line(&format!(
                        "ok      {}  {} entries, {}",
                        r.name,
                        r.entries,
                        human_bytes(r.total_bytes)
                    ));
                    if !r.not_decrypted.is_empty() {
                        line(&format!(
                            "        {} encrypted entries checked by stored bytes only (no key given)",
                            r.not_decrypted.len()
                        ));
                    }
                }
                Some(e) => line(&format!("FAILED  {}  {e}", r.name)),
            }
        }
    }
    Ok(if failed > 0 {
        Exit::VerificationFailed
    } else {
        Exit::Ok
    })
}

/// `prune`: result is the prune report (`removedOrphans`, `keptOrphans`, `plan` with
/// every decision and its reasons, `removedBundles`, `dryRun`).
pub(crate) async fn prune(ctx: &Context, args: PruneArgs) -> Result<Exit> {
    let config = ctx.config()?;
    let repo = ctx.repository(&config).await?;
    let options = PruneOptions {
        grace: Duration::from_secs(args.grace_hours.saturating_mul(3600)),
        dry_run: args.dry_run,
        policy: config.retention.clone(),
    };
    let bundles = repo.list(&BundleFilter::default()).await?;
    let report = until_interrupted(repo.prune(&options)).await?;
    if ctx.json {
        json_ok("prune", &report);
        return Ok(Exit::Ok);
    }
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    match &report.plan {
        None => line("no retention policy configured ([retention] in the configuration): only orphans are pruned"),
        Some(plan) => {
            let rows: Vec<Vec<String>> = bundles
                .iter()
                .filter_map(|b| plan.get(&b.id).map(|d| (b, d)))
                .map(|(b, d)| {
                    vec![
                        b.index.to_string(),
                        b.label.clone().unwrap_or_else(|| b.name.clone()),
                        date(b.created),
                        if d.keep { "keep".into() } else { "remove".into() },
                        d.reasons.join(", "),
                    ]
                })
                .collect();
            table(&["#", "NAME / LABEL", "DATE (UTC)", "DECISION", "WHY"], &rows);
        }
    }
    line(&format!(
        "{verb} {} bundle(s) and {} orphan(s); {} orphan(s) younger than {} h kept",
        report.removed_bundles.len(),
        report.removed_orphans.len(),
        report.kept_orphans.len(),
        args.grace_hours
    ));
    Ok(Exit::Ok)
}

fn entry_done(ctx: &Context, command: &str, entry: &IndexEntry, what: &str) -> Exit {
    if ctx.json {
        json_ok(command, entry);
    } else {
        line(&format!("{what}: {}", entry.name));
    }
    Exit::Ok
}

/// `lock`: result is the index entry.
pub(crate) async fn lock(ctx: &Context, args: LockArgs) -> Result<Exit> {
    let until = args
        .until
        .as_deref()
        .map(|u| {
            u.parse::<Timestamp>().map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("--until {u:?} is not a time: {e}"),
                )
                .with_hint("use RFC 3339, e.g. 2027-01-01T00:00:00Z")
            })
        })
        .transpose()?;
    let config = ctx.config()?;
    let repo = ctx.repository(&config).await?;
    let entry = repo.lock_bundle(&args.bundle, until).await?;
    Ok(entry_done(ctx, "lock", &entry, "locked"))
}

/// `unlock`: result is the index entry.
pub(crate) async fn unlock(ctx: &Context, args: BundleArg) -> Result<Exit> {
    let config = ctx.config()?;
    let repo = ctx.repository(&config).await?;
    let entry = repo.unlock_bundle(&args.bundle).await?;
    Ok(entry_done(ctx, "unlock", &entry, "unlocked"))
}

/// `label`: result is the index entry.
pub(crate) async fn label(ctx: &Context, args: LabelArgs) -> Result<Exit> {
    let config = ctx.config()?;
    let repo = ctx.repository(&config).await?;
    let label = if args.clear {
        None
    } else {
        args.label.as_deref()
    };
    let entry = repo.set_label(&args.bundle, label).await?;
    Ok(entry_done(ctx, "label", &entry, "labelled"))
}

/// `delete`: result is the deleted bundle's index entry.
pub(crate) async fn delete(ctx: &Context, args: BundleArg) -> Result<Exit> {
    let config = ctx.config()?;
    let repo = ctx.repository(&config).await?;
    let entry = repo.delete(&args.bundle).await?;
    Ok(entry_done(ctx, "delete", &entry, "deleted"))
}
