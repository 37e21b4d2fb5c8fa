//! `backupctl`: inspect backup bundles from a terminal, no servers needed.
//!
//! ```text
//! cargo run --example backupctl -- list backups/
//! cargo run --example backupctl -- show backups/20261125120000_quickstart.backup.zip
//! cargo run --example backupctl -- verify backups/20261125120000_quickstart.backup.zip
//! cargo run --example backupctl -- plan backups/20261125120000_quickstart.backup.zip --json
//! cargo run --example backupctl -- diff before.backup.zip after.backup.zip
//! ```
//!
//! Exit status: 0 on success, 1 when the command failed (a corrupt bundle, …), 2 on a
//! usage error. Restoring needs the host application's `WorkspaceHost`; see the
//! quickstart for how an application wires `restore_backup`.

use std::path::Path;
use std::time::{Duration, SystemTime};

use backup_core::bundle::BundleReader;
use backup_core::progress::ProgressEvent;
use backup_core::RestorePlan;
use backup_examples::{human_bytes, list_bundles};

const USAGE: &str = "usage: backupctl <command> [args]

commands:
  list DIR            bundles in DIR, newest first (label, kind, size, age, purpose)
  show BUNDLE         the manifest: services, artifacts, formats, sizes, metadata
  verify BUNDLE       check every entry's sha256 and size against the manifest
  plan BUNDLE [--json] the restore order of the bundle's services (dry run)
  diff BEFORE AFTER   PostgreSQL schema and row-count changes between two bundles";

/// Prints a line; a closed stdout (`backupctl list | head`) ends the program quietly.
macro_rules! out {
    ($($arg:tt)*) => {
        emit(&format!($($arg)*))
    };
}

fn emit(line: &str) {
    use std::io::Write;
    if writeln!(std::io::stdout(), "{line}").is_err() {
        std::process::exit(0);
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["list", dir] => list(Path::new(dir)).await,
        ["show", bundle] => show(Path::new(bundle)).await,
        ["verify", bundle] => verify(Path::new(bundle)).await,
        ["plan", bundle] => plan(Path::new(bundle), false).await,
        ["plan", bundle, "--json"] => plan(Path::new(bundle), true).await,
        ["diff", before, after] => diff(Path::new(before), Path::new(after)).await,
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(error) = outcome {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

async fn list(dir: &Path) -> CliResult {
    let bundles = list_bundles(dir)
        .await
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    if bundles.is_empty() {
        out!("no bundles in {}", dir.display());
        return Ok(());
    }
    out!(
        "{:>3}  {:<20} {:<10} {:>10} {:>9}  {:<44} purpose",
        "#",
        "created",
        "kind",
        "size",
        "age",
        "file"
    );
    for (index, (path, manifest, size)) in bundles.iter().enumerate() {
        let age = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .map(human_age)
            .unwrap_or_default();
        out!(
            "{:>3}  {:<20} {:<10} {:>10} {:>9}  {:<44} {}{}",
            index + 1,
            manifest
                .created_at
                .get(..19)
                .unwrap_or(&manifest.created_at),
            format!("{:?}", manifest.kind).to_lowercase(),
            human_bytes(*size),
            age,
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            manifest
                .label
                .as_deref()
                .map(|l| format!("[{l}] "))
                .unwrap_or_default(),
            manifest.purpose.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

fn human_age(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

async fn show(bundle: &Path) -> CliResult {
    let reader = BundleReader::open(bundle).await?;
    let manifest = reader.manifest();
    out!("bundle   {}", bundle.display());
    out!("id       {}", manifest.id);
    out!("created  {}", manifest.created_at);
    out!("kind     {:?}", manifest.kind);
    if let Some(label) = &manifest.label {
        out!("label    {label}");
    }
    if let Some(purpose) = &manifest.purpose {
        out!("purpose  {purpose}");
    }
    out!("tool     {} {}", manifest.tool.name, manifest.tool.version);
    if let Some(snapshot) = reader.snapshot() {
        out!(
            "config   workspace `{}` with {} services",
            snapshot.workspace.slug,
            snapshot.services.len()
        );
    }
    for entry in &manifest.entries {
        out!(
            "  {:<14} {:<22} {:<20} {:>10}  {:?}",
            entry.service,
            entry.artifact.name,
            entry.artifact.format,
            human_bytes(entry.size),
            entry.compression
        );
        if !entry.artifact.metadata.is_empty() {
            let summary: Vec<String> = entry
                .artifact
                .metadata
                .iter()
                .filter(|(_, v)| !v.is_object() && !v.is_array())
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out!("                 {}", summary.join(" "));
        }
    }
    Ok(())
}

async fn verify(bundle: &Path) -> CliResult {
    let reader = BundleReader::open(bundle).await?;
    let progress = |event: &ProgressEvent| {
        if let ProgressEvent::Verified { path, size } = event {
            out!("  ok  {path} ({})", human_bytes(*size));
        }
    };
    let report = reader.verify(&progress).await?;
    out!(
        "verified {} entries, {}",
        report.entries.len(),
        human_bytes(report.total_bytes)
    );
    Ok(())
}

async fn plan(bundle: &Path, json: bool) -> CliResult {
    let reader = BundleReader::open(bundle).await?;
    let snapshot = reader
        .snapshot()
        .ok_or("the bundle has no snapshot.json: it holds data only")?;
    let plan = RestorePlan::from_snapshot(snapshot)?;
    if json {
        out!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        for stage in &plan.stages {
            out!("stage {}: {}", stage.index, stage.services.join(", "));
        }
    }
    Ok(())
}

async fn diff(before: &Path, after: &Path) -> CliResult {
    let report = backup_postgres::diff_bundles(before, after).await?;
    if report.is_empty() {
        out!("neither bundle holds a PostgreSQL dump");
    }
    for entry in report {
        out!(
            "== {} / {} ({})",
            entry.service,
            entry.artifact,
            entry.present_in
        );
        if let Some(changes) = entry.changes {
            out!("{changes}");
        }
    }
    Ok(())
}
