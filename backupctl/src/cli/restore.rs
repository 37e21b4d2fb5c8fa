//! `restore` (safe restore with a typed confirmation) and `rollback --emergency`.

use std::io::{BufRead, Write};

use backup_core::progress::SharedProgress;
use backup_core::{Error, ErrorKind, Result};
use backup_repository::{
    emergency_restore, safe_restore, RestoreFailure, SafeRestoreOptions, SafeRestoreReport,
};

use super::args::{RestoreArgs, RollbackArgs};
use super::Context;
use crate::exit::Exit;
use crate::output::{clean, human_bytes, json_ok, line, table};

/// `restore <bundle|latest>`: result is the safe-restore report (`bundleId`,
/// `bundleName`, `dryRun`, `stages`, `safetyBundle`, `services: [{service, replaced,
/// artifacts, bytes, durationMs, smokeTest}]`, `notes`, `restarted`). A failure exits 4
/// (rolled back, data as before) or 5 (rollback failed); the error's `message` carries
/// the details.
pub(crate) async fn restore(ctx: &Context, args: RestoreArgs) -> Result<Exit> {
    let config = ctx.config()?;
    let host = ctx.host(&config)?;
    let repo = ctx.repository(&config).await?;
    let services = (!args.services.is_empty()).then(|| args.services.clone());
    // Before a real restore the plan reads no data: the restore verifies every entry
    // before it touches anything, and a bundle of hundreds of GiB is read once for that
    // check instead of twice. `--dry-run` verifies, as it is the whole answer.
    let mut options = SafeRestoreOptions {
        services,
        dry_run: true,
        verify_in_dry_run: args.dry_run,
        ..SafeRestoreOptions::default()
    };
    let progress: SharedProgress = ctx.progress.clone();
    // What will be replaced: the same checks as the restore, nothing touched.
    let plan = safe_restore(
        &repo,
        &args.bundle,
        &host,
        host.registry(),
        &options,
        progress.clone(),
    )
    .await?;
    ctx.progress.finish();
    if args.dry_run {
        return Ok(report(ctx, "restore", &plan));
    }
    if !ctx.json {
        print_plan(&plan);
    }
    if !args.yes {
        confirm(&plan)?;
    }
    options.dry_run = false;
    let restored = finish_even_on_ctrl_c(safe_restore(
        &repo,
        &plan.bundle_id,
        &host,
        host.registry(),
        &options,
        progress,
    ))
    .await
    .map_err(with_failure_details)?;
    ctx.progress.finish();
    Ok(report(ctx, "restore", &restored))
}

/// `rollback --emergency`: restores the newest bundle that verifies, without asking.
/// Result as `restore`, with `skippedBundles` (newer bundles that did not verify).
pub(crate) async fn rollback(ctx: &Context, args: RollbackArgs) -> Result<Exit> {
    let config = ctx.config()?;
    let host = ctx.host(&config)?;
    let repo = ctx.repository(&config).await?;
    let options = SafeRestoreOptions {
        services: (!args.services.is_empty()).then(|| args.services.clone()),
        ..SafeRestoreOptions::default()
    };
    let restored = finish_even_on_ctrl_c(emergency_restore(
        &repo,
        &host,
        host.registry(),
        &options,
        ctx.progress.clone(),
    ))
    .await
    .map_err(with_failure_details)?;
    ctx.progress.finish();
    Ok(report(ctx, "rollback", &restored))
}

/// A restore is never abandoned halfway: Ctrl-C is acknowledged, and the restore
/// finishes or rolls back.
async fn finish_even_on_ctrl_c<T>(work: impl std::future::Future<Output = T>) -> T {
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            result = &mut work => return result,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("a restore is not stopped halfway: it finishes, or rolls back on failure");
            }
        }
    }
}

/// Puts the rollback's outcome into the error's message (the source is not printed).
fn with_failure_details(error: Error) -> Error {
    match RestoreFailure::of(&error) {
        Some(failure) => {
            let mut message = failure.to_string();
            if let Some(safety) = &failure.safety_bundle {
                message.push_str(&format!("; safety bundle {safety} kept (locked)"));
            }
            for (service, why) in &failure.not_started {
                message.push_str(&format!("; `{service}` not started again: {why}"));
            }
            let mut out = Error::new(error.kind(), message);
            if let Some(hint) = error.hint() {
                out = out.with_hint(hint.to_string());
            }
            out
        }
        None => error,
    }
}

fn confirm(plan: &SafeRestoreReport) -> Result<()> {
    let phrase = match plan.services.as_slice() {
        [one] => one.service.clone(),
        _ => plan.bundle_name.clone(),
    };
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "This replaces the data listed above. Type `{}` to restore: ",
        clean(&phrase)
    );
    let _ = err.flush();
    let mut typed = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut typed)
        .map_err(|e| Error::io("reading the confirmation", e))?;
    if typed.trim() == phrase {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        "restore not confirmed: nothing was changed",
    )
    .with_hint(format!("type `{phrase}` exactly, or pass --yes")))
}

fn print_plan(plan: &SafeRestoreReport) {
    line(&format!(
        "bundle:  {} ({})",
        plan.bundle_name, plan.bundle_id
    ));
    line(&format!(
        "order:   {}",
        plan.stages
            .iter()
            .map(|s| s.join(", "))
            .collect::<Vec<_>>()
            .join(" -> ")
    ));
    let rows: Vec<Vec<String>> = plan
        .services
        .iter()
        .map(|s| {
            let replaced = match &s.replaced {
                None => "(cannot tell)".to_string(),
                Some(held) if held.is_empty() => "(empty)".to_string(),
                Some(held) => held
                    .iter()
                    .map(|h| {
                        let size = h
                            .size
                            .map(|b| format!(" {}", human_bytes(b)))
                            .unwrap_or_default();
                        let count = h.count.map(|c| format!(" {c} items")).unwrap_or_default();
                        format!("{} {}{size}{count}", h.kind, h.name)
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            let incoming: u64 = s.artifacts.iter().map(|a| a.uncompressed_size).sum();
            vec![s.service.clone(), replaced, human_bytes(incoming)]
        })
        .collect();
    table(&["SERVICE", "REPLACES (NOW)", "RESTORES"], &rows);
    for note in &plan.notes {
        line(&format!("note: {note}"));
    }
}

fn report(ctx: &Context, command: &str, report: &SafeRestoreReport) -> Exit {
    if ctx.json {
        json_ok(command, report);
        return Exit::Ok;
    }
    if report.dry_run {
        print_plan(report);
        line("dry run: nothing was changed");
        return Exit::Ok;
    }
    for skipped in &report.skipped_bundles {
        line(&format!("skipped {}: {}", skipped.name, skipped.error));
    }
    line(&format!(
        "✓ Restored {} from {}",
        report.stages.concat().join(", "),
        report.bundle_name
    ));
    if let Some(safety) = &report.safety_bundle {
        line(&format!(
            "  safety bundle of the replaced data: {safety} (locked)"
        ));
    }
    for note in &report.notes {
        line(&format!("  note: {note}"));
    }
    Exit::Ok
}
