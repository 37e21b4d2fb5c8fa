//! Quickstart: back up a demo workspace of three directory-backed services, list and
//! verify the bundle, print the restore plan, restore into a fresh location, and check the
//! restored data equals the original. Needs no servers.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use backup_core::backup::{create_backup, BackupRequest};
use backup_core::bundle::{BundleOptions, BundleReader};
use backup_core::host::{NewDeployment, WorkspaceHost};
use backup_core::memory_host::{config_from_json, InMemoryHost};
use backup_core::progress::{ProgressEvent, SharedProgress};
use backup_core::restore::{restore_backup, RestoreOptions};
use backup_core::secrets::SecretGenerator;
use backup_core::snapshot::WorkspaceRef;
use backup_core::{directory, Recipe, RecipeRegistry};
use backup_examples::{human_bytes, list_bundles, trees_equal};
use serde_json::json;

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("quickstart failed: {error}");
        std::process::exit(1);
    }
}

/// A recipe of the host's own: a static site whose files are a directory, with an admin
/// token that is a secret (never exported, regenerated on restore).
fn static_site_recipe() -> backup_core::Result<Recipe> {
    Recipe::builder(
        "static-site",
        json!({
            "type": "object",
            "properties": {
                "path": { "type": "string", "pattern": "^/" },
                "domain": { "type": "string" },
                "adminToken": { "type": "string", "minLength": 16 }
            },
            "required": ["path", "domain", "adminToken"],
            "additionalProperties": false
        }),
    )
    .description("A static website served from a directory")
    .secret("adminToken", SecretGenerator::Hex(16))
    .exporter(Arc::new(directory::DirectoryExporter))
    .importer(Arc::new(directory::DirectoryImporter))
    .data_export_description("The site's files as a tar")
    .build()
}

fn write_demo_data(root: &Path) -> std::io::Result<()> {
    let files: [(&str, &str); 5] = [
        (
            "assets/logo.svg",
            "<svg xmlns='http://www.w3.org/2000/svg'/>\n",
        ),
        ("assets/css/site.css", "body { font-family: sans-serif }\n"),
        ("uploads/2026/11/report.txt", "quarterly numbers: 42\n"),
        ("site/index.html", "<h1>Hello from the quickstart</h1>\n"),
        ("site/about/index.html", "<p>Backed up and restored.</p>\n"),
    ];
    for (relative, content) in files {
        let path = root.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, content)?;
    }
    std::fs::create_dir_all(root.join("uploads/empty-folder"))?;
    Ok(())
}

fn progress_printer() -> SharedProgress {
    Arc::new(|event: &ProgressEvent| match event {
        ProgressEvent::ServiceStarted { service, operation } => {
            println!("    {operation:>6} {service} ...")
        }
        ProgressEvent::Verified { path, size } => {
            println!("    verified {path} ({})", human_bytes(*size))
        }
        ProgressEvent::Failed { service, error } => println!("    FAILED {service}: {error}"),
        ProgressEvent::RollingBack { reason } => println!("    rolling back: {reason}"),
        _ => {}
    })
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let work = tempfile::tempdir()?;
    let source_root = work.path().join("source");
    write_demo_data(&source_root)?;

    let mut registry = RecipeRegistry::new();
    directory::register(&mut registry)?;
    registry.register(static_site_recipe()?);

    println!("1. A demo workspace with three services (site depends on assets and uploads)");
    let source = InMemoryHost::new(WorkspaceRef {
        slug: "demo".into(),
        name: "Demo workspace".into(),
    });
    let original_token = SecretGenerator::Hex(16).generate();
    let service =
        |name: &str, recipe: &str, config: serde_json::Value, depends_on: &[&str]| NewDeployment {
            name: name.into(),
            recipe: recipe.into(),
            config: config_from_json(config),
            depends_on: depends_on.iter().map(|d| d.to_string()).collect(),
        };
    source.insert(service(
        "assets",
        "directory",
        json!({ "path": source_root.join("assets") }),
        &[],
    ));
    source.insert(service(
        "uploads",
        "directory",
        json!({ "path": source_root.join("uploads") }),
        &["assets"],
    ));
    source.insert(service(
        "site",
        "static-site",
        json!({ "path": source_root.join("site"), "domain": "demo.example", "adminToken": original_token }),
        &["assets", "uploads"],
    ));

    println!("2. Back up config + data into ./backups/");
    let backups = PathBuf::from("backups");
    std::fs::create_dir_all(&backups)?;
    let stamp = time::OffsetDateTime::now_utc().format(time::macros::format_description!(
        "[year][month][day][hour][minute][second]"
    ))?;
    let bundle_path = backups.join(format!("{stamp}_quickstart.backup.zip"));
    let request = BackupRequest {
        bundle: BundleOptions::default()
            .with_label("quickstart")
            .with_purpose("demo of backup and restore"),
        ..BackupRequest::default()
    };
    let manifest = create_backup(
        &source,
        &registry,
        &request,
        &bundle_path,
        progress_printer(),
    )
    .await?;
    println!(
        "    wrote {} ({} entries)",
        bundle_path.display(),
        manifest.entries.len()
    );

    println!("3. Bundles in ./backups/ (newest first)");
    for (path, manifest, size) in list_bundles(&backups).await? {
        println!(
            "    {}  {}  {:<10} {:>10}  {}",
            manifest.created_at,
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            manifest.label.as_deref().unwrap_or("-"),
            human_bytes(size),
            manifest.purpose.as_deref().unwrap_or("")
        );
    }

    println!("4. Verify every entry's sha256 and size");
    let reader = BundleReader::open(&bundle_path).await?;
    let report = reader.verify(progress_printer().as_ref()).await?;
    println!(
        "    ok: {} entries, {} checked",
        report.entries.len(),
        human_bytes(report.total_bytes)
    );
    let bundle_bytes = std::fs::read(&bundle_path)?;
    let leaked = bundle_bytes
        .windows(original_token.len())
        .any(|w| w == original_token.as_bytes());
    if leaked {
        return Err("a secret reached the bundle".into());
    }
    println!("    the bundle holds no secret (adminToken stripped from the snapshot)");

    println!("5. Restore plan (dry run into a fresh workspace)");
    let restored_root = work.path().join("restored");
    let target = InMemoryHost::new(WorkspaceRef {
        slug: "demo-restored".into(),
        name: "Restored demo".into(),
    });
    let mut options = RestoreOptions::default();
    for service in ["assets", "uploads", "site"] {
        let mut fields = serde_json::Map::new();
        fields.insert("path".into(), json!(restored_root.join(service)));
        options
            .import
            .config_overrides
            .insert(service.into(), fields);
    }
    options.import.dry_run = true;
    let plan = restore_backup(
        &bundle_path,
        &target,
        &registry,
        &options,
        progress_printer(),
    )
    .await?;
    println!("{}", serde_json::to_string_pretty(&plan.plan)?);

    println!("6. Restore into a fresh location");
    options.import.dry_run = false;
    let report = restore_backup(
        &bundle_path,
        &target,
        &registry,
        &options,
        progress_printer(),
    )
    .await?;

    println!("7. Check the restored data equals the original");
    for service in ["assets", "uploads", "site"] {
        let equal = trees_equal(&source_root.join(service), &restored_root.join(service))?;
        println!(
            "    {service:<8} {}",
            if equal { "identical" } else { "DIFFERENT" }
        );
        if !equal {
            return Err(format!("restored data of {service} differs").into());
        }
    }
    let site = target
        .list_deployments()
        .await?
        .into_iter()
        .find(|d| d.name == "site")
        .ok_or("site was not restored")?;
    let new_token = site
        .config
        .get("adminToken")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if new_token.is_empty() || new_token == original_token {
        return Err("the admin token was not regenerated".into());
    }

    println!("\nSummary");
    println!(
        "    bundle:    {} ({} entries, {})",
        bundle_path.display(),
        manifest.entries.len(),
        human_bytes(manifest.stored_bytes())
    );
    println!(
        "    restored:  {} services in {} stages",
        report.created.len(),
        report.plan.stages.len()
    );
    println!(
        "    secrets:   adminToken regenerated ({} chars), never written to the bundle",
        new_token.len()
    );
    println!("    data:      byte-for-byte identical, modes and mtimes kept");
    Ok(())
}
