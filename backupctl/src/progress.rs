//! Progress on stderr: indicatif bars on a terminal, plain lines otherwise.
//!
//! The mode is chosen in one place ([`Progress::for_stderr`]): bars only when stderr is
//! a terminal and `--json` is off; otherwise one plain, control-character-free line per
//! service step (nothing under `--json`). Results alone go to stdout.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use backup_core::progress::{ProgressEvent, ProgressSink};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::clean;

/// Where core progress events go.
#[derive(Debug)]
pub(crate) enum Progress {
    /// Bars on the terminal.
    Bars(Bars),
    /// One plain line per step.
    Lines,
    /// Nothing.
    Quiet,
}

#[derive(Debug)]
pub(crate) struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Progress {
    /// Bars when stderr is a terminal and `json` is off; plain lines when it is not;
    /// nothing with `json`.
    pub(crate) fn for_stderr(json: bool) -> Arc<Progress> {
        Arc::new(if json {
            Progress::Quiet
        } else if std::io::stderr().is_terminal() {
            Progress::Bars(Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: Mutex::default(),
            })
        } else {
            Progress::Lines
        })
    }

    /// Finishes every bar still drawn (call before printing the result).
    pub(crate) fn finish(&self) {
        if let Progress::Bars(bars) = self {
            for bar in bars.lock().values() {
                bar.finish();
            }
            let _ = bars.multi.clear();
        }
    }
}

impl Bars {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ProgressBar>> {
        self.bars
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn bar(&self, key: &str, total: Option<u64>) -> ProgressBar {
        let mut bars = self.lock();
        if let Some(bar) = bars.get(key) {
            if let (Some(total), None) = (total, bar.length()) {
                bar.set_style(style(true));
                bar.set_length(total);
            }
            return bar.clone();
        }
        let bar = match total {
            Some(total) => ProgressBar::new(total),
            None => ProgressBar::no_length(),
        };
        bar.set_style(style(total.is_some()));
        bar.set_prefix(clean(key));
        let bar = self.multi.add(bar);
        bars.insert(key.to_string(), bar.clone());
        bar
    }

    fn event(&self, event: &ProgressEvent) {
        match event {
            ProgressEvent::BytesTransferred {
                service,
                artifact,
                done,
                total,
            } => {
                let bar = self.bar(&format!("{service}/{artifact}"), *total);
                bar.set_position(*done);
                bar.tick();
            }
            ProgressEvent::Verified { path, size } => {
                let bar = self.bar(path, Some(*size));
                bar.set_position(*size);
                bar.finish_with_message("verified");
            }
            ProgressEvent::ServiceFinished { service, operation } => {
                let prefix = format!("{service}/");
                for (key, bar) in self.lock().iter() {
                    if key.starts_with(&prefix) {
                        bar.finish_with_message(clean(operation));
                    }
                }
            }
            ProgressEvent::Failed { service, error } => {
                let _ = self
                    .multi
                    .println(format!("failed: {}: {}", clean(service), clean(error)));
            }
            ProgressEvent::RollingBack { reason } => {
                let _ = self
                    .multi
                    .println(format!("rolling back: {}", clean(reason)));
            }
            _ => {}
        }
    }
}

/// A bar when the total is known, a spinner with the bytes so far when it is not.
fn style(known_total: bool) -> ProgressStyle {
    let template = if known_total {
        "{prefix:>28} [{bar:30}] {bytes:>10} {binary_bytes_per_sec:>12} {msg}"
    } else {
        "{prefix:>28} {spinner} {bytes:>10} {binary_bytes_per_sec:>12} {msg}"
    };
    ProgressStyle::with_template(template)
        .map(|s| s.progress_chars("█▉▊▋▌▍▎▏ "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn plain_line(event: &ProgressEvent) -> Option<String> {
    Some(match event {
        ProgressEvent::PlanReady { stages } => format!(
            "plan: {}",
            stages
                .iter()
                .map(|s| s.join(", "))
                .collect::<Vec<_>>()
                .join(" -> ")
        ),
        ProgressEvent::ServiceStarted { service, operation } => {
            format!("{operation} {service}: started")
        }
        ProgressEvent::ServiceFinished { service, operation } => {
            format!("{operation} {service}: done")
        }
        ProgressEvent::Failed { service, error } => format!("failed: {service}: {error}"),
        ProgressEvent::RollingBack { reason } => format!("rolling back: {reason}"),
        ProgressEvent::Step { operation, message } => format!("{operation}: {message}"),
        _ => return None,
    })
}

impl ProgressSink for Progress {
    fn event(&self, event: &ProgressEvent) {
        match self {
            Progress::Bars(bars) => bars.event(event),
            Progress::Lines => {
                if let Some(text) = plain_line(event) {
                    let _ = writeln!(std::io::stderr(), "{}", clean(&text));
                }
            }
            Progress::Quiet => {}
        }
    }
}
