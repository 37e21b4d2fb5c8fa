//! Sentences for people and chat agents: what a backup holds, how a restore is going,
//! what an export or import of one app's data moved.
//!
//! Everything here is pure: it reads a [`Manifest`], a [`WorkspaceSnapshot`] or
//! [`ProgressEvent`](crate::ProgressEvent)s and returns text. The wording follows the
//! seeds' agent tools:
//!
//! ```
//! use backup_core::narrate::{backed_up_sentence, ServiceLabel};
//!
//! let services = [
//!     ServiceLabel::new("db", "postgres"),
//!     ServiceLabel::new("cache", "redis"),
//!     ServiceLabel::new("n8n", "n8n"),
//! ];
//! assert_eq!(
//!     backed_up_sentence(&services),
//!     "I've backed up your workspace with 3 services: PostgreSQL, Redis, and n8n."
//! );
//! ```
//!
//! Sentences never quote a config value, so they never carry a secret; error text is
//! passed through as the library wrote it (which never holds one either).

mod restore;

pub use restore::{RestoreNarrator, ServiceState};

use crate::bundle::Manifest;
use crate::snapshot::WorkspaceSnapshot;
use crate::{Error, ErrorKind};

/// A service as a sentence names it: its name and its recipe slug (when known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLabel {
    /// The service's name in the workspace.
    pub name: String,
    /// Its recipe slug (`postgres`, `n8n`, …); `None` when unknown.
    pub recipe: Option<String>,
}

impl ServiceLabel {
    /// A service with a known recipe.
    pub fn new(name: impl Into<String>, recipe: impl Into<String>) -> Self {
        ServiceLabel {
            name: name.into(),
            recipe: Some(recipe.into()),
        }
    }

    /// A service whose recipe is unknown: it is named by its service name.
    pub fn unnamed_recipe(name: impl Into<String>) -> Self {
        ServiceLabel {
            name: name.into(),
            recipe: None,
        }
    }

    /// What a sentence calls it, see [`display_name`].
    pub fn display(&self) -> String {
        display_name(self.recipe.as_deref(), &self.name)
    }
}

/// The name people know a service by: `postgres` → PostgreSQL, `redis` → Redis,
/// `minio`/`s3` → MinIO, `n8n` → n8n, `uptime-kuma` → Uptime Kuma, `podman` → Podman;
/// a `directory`, a plain `sqlite` file or an unknown recipe → the service's own name.
pub fn display_name(recipe: Option<&str>, service: &str) -> String {
    let known = match recipe {
        Some("postgres") => "PostgreSQL",
        Some("redis") => "Redis",
        Some("minio" | "s3") => "MinIO",
        Some("n8n") => "n8n",
        Some("uptime-kuma") => "Uptime Kuma",
        Some("podman") => "Podman",
        _ => return service.to_owned(),
    };
    known.to_owned()
}

/// Display names of `services`, in order; two services that would read the same get
/// their service name in brackets: `PostgreSQL (db)`, `PostgreSQL (analytics)`.
pub fn display_names(services: &[ServiceLabel]) -> Vec<String> {
    let plain: Vec<String> = services.iter().map(ServiceLabel::display).collect();
    plain
        .iter()
        .zip(services)
        .map(|(shown, service)| {
            let shared = plain.iter().filter(|other| *other == shown).count() > 1;
            if shared && *shown != service.name {
                format!("{shown} ({})", service.name)
            } else {
                shown.clone()
            }
        })
        .collect()
}

/// `a`, `a and b`, `a, b, and c` (Oxford comma); empty for no items.
pub fn join_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [rest @ .., last] => format!("{}, and {last}", rest.join(", ")),
    }
}

/// `1 service`, `3 services`.
pub fn count_services(count: usize) -> String {
    if count == 1 {
        "1 service".to_owned()
    } else {
        format!("{count} services")
    }
}

/// A size for people, in binary units like the rest of the tools: `512 B`, `1.5 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The services a snapshot describes, in its order.
pub fn snapshot_services(snapshot: &WorkspaceSnapshot) -> Vec<ServiceLabel> {
    snapshot
        .services
        .iter()
        .map(|s| ServiceLabel::new(s.name.clone(), s.recipe.clone()))
        .collect()
}

/// The services a bundle holds: those of its snapshot (which knows their recipes), then
/// any service with data but no snapshot entry, named by its service name.
pub fn manifest_services(
    manifest: &Manifest,
    snapshot: Option<&WorkspaceSnapshot>,
) -> Vec<ServiceLabel> {
    let mut services = snapshot.map(snapshot_services).unwrap_or_default();
    for name in &manifest.includes.services {
        if !services.iter().any(|s| &s.name == name) {
            services.push(ServiceLabel::unnamed_recipe(name.clone()));
        }
    }
    services
}

/// "I've backed up your workspace with 3 services: PostgreSQL, Redis, and n8n."
///
/// With no services: "I've backed up your workspace; it has no services yet."
pub fn backed_up_sentence(services: &[ServiceLabel]) -> String {
    workspace_sentence("backed up", services)
}

/// [`backed_up_sentence`] for a bundle, naming the services of its snapshot and data.
pub fn backed_up_manifest_sentence(
    manifest: &Manifest,
    snapshot: Option<&WorkspaceSnapshot>,
) -> String {
    backed_up_sentence(&manifest_services(manifest, snapshot))
}

/// "I've restored your workspace with 3 services: PostgreSQL, Redis, and n8n."
pub fn restored_sentence(services: &[ServiceLabel]) -> String {
    workspace_sentence("restored", services)
}

fn workspace_sentence(verb: &str, services: &[ServiceLabel]) -> String {
    if services.is_empty() {
        return format!("I've {verb} your workspace; it has no services yet.");
    }
    format!(
        "I've {verb} your workspace with {}: {}.",
        count_services(services.len()),
        join_list(&display_names(services))
    )
}

/// "The restore failed: …", saying whether it was rolled back
/// ([`ErrorKind::RestoreRolledBack`]) or the rollback failed too
/// ([`ErrorKind::RollbackFailed`]), with the error's hint when it has one.
pub fn restore_failed_sentence(error: &Error) -> String {
    let lead = match error.kind() {
        ErrorKind::RestoreRolledBack => {
            "The restore failed, so I rolled your workspace back to how it was"
        }
        ErrorKind::RollbackFailed => {
            "The restore failed, and rolling it back failed too; your workspace needs a look"
        }
        _ => "The restore failed",
    };
    with_hint(format!("{lead}: {}", sentence_text(error.message())), error)
}

/// "I've exported n8n's data (12.4 MiB)."
pub fn exported_app_data_sentence(service: &ServiceLabel, bytes: u64) -> String {
    format!(
        "I've exported {}'s data ({}).",
        service.display(),
        human_bytes(bytes)
    )
}

/// "I've imported 12.4 MiB of data into PostgreSQL."
pub fn imported_app_data_sentence(service: &ServiceLabel, bytes: u64) -> String {
    format!(
        "I've imported {} of data into {}.",
        human_bytes(bytes),
        service.display()
    )
}

/// "I couldn't export n8n's data: …" with the error's hint.
pub fn export_failed_sentence(service: &ServiceLabel, error: &Error) -> String {
    with_hint(
        format!(
            "I couldn't export {}'s data: {}",
            service.display(),
            sentence_text(error.message())
        ),
        error,
    )
}

/// "I couldn't import the data into PostgreSQL: …" with the error's hint.
pub fn import_failed_sentence(service: &ServiceLabel, error: &Error) -> String {
    with_hint(
        format!(
            "I couldn't import the data into {}: {}",
            service.display(),
            sentence_text(error.message())
        ),
        error,
    )
}

/// Ends `text` with a full stop and appends the error's hint as its own sentence.
fn with_hint(text: String, error: &Error) -> String {
    let mut sentence = format!("{}.", text.trim_end_matches('.'));
    if let Some(hint) = error.hint() {
        let hint = sentence_text(hint);
        let stop = if hint.ends_with(['?', '!']) { "" } else { "." };
        sentence.push_str(&format!(" Hint: {hint}{stop}"));
    }
    sentence
}

/// A message without its trailing full stop, to go inside a sentence.
fn sentence_text(message: &str) -> &str {
    message.trim().trim_end_matches('.')
}
