//! `check-config`: every field error of the configuration; connections only on request.

use std::sync::Arc;
use std::time::Duration;

use backup_core::backup::service_target;
use backup_core::host::WorkspaceHost;
use backup_core::{Error, ErrorKind, Result};
use serde::Serialize;

use super::args::CheckConfigArgs;
use super::Context;
use crate::exit::Exit;
use crate::output::{json_ok, line};

/// One connection tried by `--connect`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Reached {
    /// `repository` or the service name.
    target: String,
    ok: bool,
    /// What was found (artifact count) or the error.
    detail: String,
}

/// `check-config`: result `{"services": [names], "schedules": N, "connected": [{target,
/// ok, detail}]}`; a configuration with problems fails with exit code 2 and every field
/// error (`fieldErrors`).
pub(crate) async fn run(ctx: &Context, args: CheckConfigArgs) -> Result<Exit> {
    let config = ctx.config()?;
    let registry = ctx.registry()?;
    config.validate(&registry)?;
    let mut connected = Vec::new();
    if args.connect {
        connected.push(match ctx.repository(&config).await {
            Ok(repo) => Reached {
                target: "repository".into(),
                ok: true,
                detail: format!("repository {}", repo.config().id),
            },
            Err(e) => Reached {
                target: "repository".into(),
                ok: false,
                detail: e.to_string(),
            },
        });
        let host = ctx.host(&config)?;
        for deployment in host.list_deployments().await? {
            let Some(exporter) = registry.get(&deployment.recipe)?.exporter().cloned() else {
                continue;
            };
            let target = service_target(
                &host,
                &deployment,
                Arc::new(backup_core::progress::NoProgress),
            );
            let reached =
                tokio::time::timeout(Duration::from_secs(30), exporter.artifacts(&target)).await;
            let (ok, detail) = match reached {
                Ok(Ok(artifacts)) => (true, format!("{} artifact(s) to back up", artifacts.len())),
                Ok(Err(e)) => (false, e.to_string()),
                Err(_) => (false, "no answer within 30 s".into()),
            };
            connected.push(Reached {
                target: deployment.name,
                ok,
                detail,
            });
        }
    }
    let failed = connected.iter().filter(|c| !c.ok).count();
    if ctx.json && failed == 0 {
        json_ok(
            "check-config",
            &serde_json::json!({
                "services": config.services.keys().collect::<Vec<_>>(),
                "schedules": config.schedules.len(),
                "connected": connected,
            }),
        );
    } else if !ctx.json {
        line(&format!(
            "configuration {} is valid: {} service(s), {} schedule(s)",
            ctx.config_path.display(),
            config.services.len(),
            config.schedules.len()
        ));
        for c in &connected {
            line(&format!(
                "  {} {}: {}",
                if c.ok { "ok    " } else { "FAILED" },
                c.target,
                c.detail
            ));
        }
    }
    if failed > 0 {
        let names: Vec<String> = connected
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{} ({})", c.target, c.detail))
            .collect();
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!("could not reach {}", names.join("; ")),
        )
        .with_hint(
            "the configuration is valid; check the servers are running and the credentials",
        ));
    }
    Ok(Exit::Ok)
}
