//! `export-snapshot` / `import-snapshot`: the workspace's configuration only, in seed
//! 000's `WorkspaceSnapshot` format (secrets stripped).

use backup_core::host::WorkspaceHost;
use backup_core::memory_host::InMemoryHost;
use backup_core::snapshot::WorkspaceSnapshot;
use backup_core::workspace::{export_workspace, validate_import, ExportOptions, ImportOptions};
use backup_core::{Error, ErrorKind, Result};
use serde_json::{json, Value};

use super::args::{ExportSnapshotArgs, ImportSnapshotArgs};
use super::Context;
use crate::exit::Exit;
use crate::output::{json_ok, line};

/// `export-snapshot`: result is the snapshot itself (`version`, `exportedAt`,
/// `exportedBy`, `workspace`, `services`, `metadata`).
pub(crate) async fn export(ctx: &Context, args: ExportSnapshotArgs) -> Result<Exit> {
    let config = ctx.config()?;
    let host = ctx.host(&config)?;
    let options = ExportOptions {
        exported_by: "backupctl".into(),
        metadata: None,
    };
    let snapshot = export_workspace(&host, host.registry(), &options).await?;
    let text = String::from_utf8(snapshot.to_json()?)
        .map_err(|e| Error::new(ErrorKind::Io, format!("the snapshot is not UTF-8: {e}")))?;
    if let Some(path) = &args.output {
        std::fs::write(path, &text)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    if ctx.json {
        json_ok("export-snapshot", &snapshot);
    } else if let Some(path) = &args.output {
        line(&format!(
            "wrote {} service(s) to {}",
            snapshot.services.len(),
            path.display()
        ));
    } else {
        line(&text);
    }
    Ok(Exit::Ok)
}

/// `import-snapshot FILE`: validates the snapshot as an import would (version, recipes,
/// every config against its recipe's schema, `dependsOn`, no name conflict with the
/// configured services) and prints its services as `[services.NAME]` TOML to add to the
/// configuration; secret fields become `{ env = "SERVICE_FIELD" }` to fill in. Result
/// `{"services": [names], "stages": [[names]], "toml": "…"}`.
pub(crate) async fn import(ctx: &Context, args: ImportSnapshotArgs) -> Result<Exit> {
    let bytes = std::fs::read(&args.file)
        .map_err(|e| Error::io(format!("reading {}", args.file.display()), e))?;
    let snapshot = WorkspaceSnapshot::from_json(&bytes)?;
    let registry = ctx.registry()?;
    let plan = match ctx.config() {
        Ok(config) => {
            let host = ctx.host(&config)?;
            validate_import(&host, &registry, &snapshot, &ImportOptions::default()).await?
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let empty = InMemoryHost::new(snapshot.workspace.clone());
            let host: &dyn WorkspaceHost = &empty;
            validate_import(host, &registry, &snapshot, &ImportOptions::default()).await?
        }
        Err(e) => return Err(e),
    };
    let mut services = toml::Table::new();
    for service in &snapshot.services {
        let secrets: Vec<&str> = registry
            .get(&service.recipe)?
            .secret_fields()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        let mut config = service.config.clone();
        for field in secrets {
            let var = format!("{}_{}", service.name, field)
                .to_uppercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_");
            config.insert(field.to_string(), json!({ "env": var }));
        }
        let section = json!({
            "recipe": service.recipe,
            "dependsOn": service.depends_on,
            "config": Value::Object(config),
        });
        let table: toml::Table = serde_json::from_value(section).map_err(|e| {
            Error::new(
                ErrorKind::InvalidSnapshot,
                format!("service `{}` cannot be written as TOML: {e}", service.name),
            )
        })?;
        services.insert(service.name.clone(), toml::Value::Table(table));
    }
    let mut root = toml::Table::new();
    root.insert("services".into(), toml::Value::Table(services));
    let text = toml::to_string(&root).map_err(|e| {
        Error::new(
            ErrorKind::InvalidSnapshot,
            format!("cannot write TOML: {e}"),
        )
    })?;
    let stages: Vec<Vec<String>> = plan.stages.iter().map(|s| s.services.clone()).collect();
    if ctx.json {
        json_ok(
            "import-snapshot",
            &json!({"services": snapshot.service_names(), "stages": stages, "toml": text}),
        );
    } else {
        line(&format!(
            "# {} service(s) from {}; restore order: {}",
            snapshot.services.len(),
            args.file.display(),
            stages
                .iter()
                .map(|s| s.join(", "))
                .collect::<Vec<_>>()
                .join(" -> ")
        ));
        line("# add to the configuration; set the secrets' environment variables");
        line(&text);
    }
    Ok(Exit::Ok)
}
