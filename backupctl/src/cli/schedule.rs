//! `schedule run`: the configured schedules, in the foreground, until Ctrl-C.

use std::sync::Arc;

use backup_core::{Error, ErrorKind, Result};
use backup_repository::schedule::{Scheduler, SchedulerEvent};
use tokio_util::sync::CancellationToken;

use super::Context;
use crate::exit::Exit;
use crate::output::{json_ok, line};

/// `schedule run`: runs until Ctrl-C (a run in progress finishes first), then exits 0.
/// Prints a line per run as it ends; with `--json`, one object at the end: `{"runs":
/// [run records: id, kind, trigger, services, label, scheduledFor, status, started,
/// finished, durationMs, error]}`.
pub(crate) async fn run(ctx: &Context) -> Result<Exit> {
    let config = ctx.config()?;
    let registry = ctx.registry()?;
    config.validate(&registry)?;
    if config.schedules.is_empty() {
        return Err(Error::new(ErrorKind::InvalidInput, "no schedules are configured")
            .with_hint("add [[schedules]] to the configuration, e.g. name = \"nightly\", every = \"daily\", at = \"02:30\""));
    }
    let host = ctx.host(&config)?;
    let repo = ctx.repository(&config).await?;
    let mut scheduler = Scheduler::new(repo, Arc::new(host.clone()), Arc::new(registry))
        .with_progress(ctx.progress.clone());
    for s in &config.schedules {
        let schedule = s.to_schedule()?;
        if !ctx.json {
            line(&format!("schedule {}: {}", s.name, schedule.trigger()));
        }
        scheduler = scheduler.with_schedule(schedule)?;
    }
    let mut handle = scheduler.start(CancellationToken::new());
    let mut runs = Vec::new();
    let mut stopping = false;
    // After Ctrl-C the scheduler is asked to stop, and its last events (a run in
    // progress finishes first) are still read until it has ended.
    loop {
        tokio::select! {
            event = handle.next_event() => match event {
                Some(SchedulerEvent::Ran(report)) => {
                    if !ctx.json {
                        let outcome = match &report.run.error {
                            None => "ok".to_string(),
                            Some(e) => format!("FAILED: {}", e.message),
                        };
                        line(&format!("{} run of {}: {outcome}", report.run.started, report.schedule));
                    }
                    runs.push(report.run.clone());
                }
                Some(other) => {
                    if !ctx.json {
                        line(&format!("{other:?}"));
                    }
                }
                None => break,
            },
            _ = tokio::signal::ctrl_c(), if !stopping => {
                if !ctx.json {
                    line("stopping: a run in progress finishes first");
                }
                handle.cancel();
                stopping = true;
            }
        }
    }
    handle.wait().await?;
    if let Err(e) = host.start_stopped().await {
        eprintln!("warning: {e}");
    }
    if ctx.json {
        json_ok("schedule run", &serde_json::json!({ "runs": runs }));
    }
    Ok(Exit::Ok)
}
