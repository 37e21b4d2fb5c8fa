//! Choosing what to restore: the bundle (`latest`, index, id, name), the services (with
//! the ones they depend on), and the order (stages of the bundle's `dependsOn`).

use std::collections::BTreeSet;

use backup_core::bundle::Manifest;
use backup_core::progress::{ProgressEvent, ProgressSink};
use backup_core::{BundleReader, Error, ErrorKind, RestorePlan, Result, WorkspaceSnapshot};

use super::quoted_list;
use crate::index::IndexEntry;
use crate::repo::Repository;

/// The selector of the newest bundle holding the selected services.
pub const LATEST: &str = "latest";

/// The index entry `selector` names: `latest` (the newest bundle with data of every
/// requested service, or of any service), an index number, an id (or 8+ character
/// prefix) or a name.
pub(crate) async fn resolve(
    repo: &Repository,
    selector: &str,
    services: Option<&[String]>,
) -> Result<IndexEntry> {
    if selector != LATEST {
        return repo.info(selector).await;
    }
    repo.entries()
        .await?
        .into_iter()
        .find(|e| holds_all(&e.manifest, services))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                match services {
                    Some(list) => format!(
                        "no bundle in the repository holds data of {}",
                        quoted_list(list.iter().map(String::as_str))
                    ),
                    None => "the repository holds no bundle with data".to_string(),
                },
            )
            .with_hint("list the bundles; back the services up first")
        })
}

/// Whether the bundle has data of every service in `services` (of any, when `None`).
pub(crate) fn holds_all(manifest: &Manifest, services: Option<&[String]>) -> bool {
    match services {
        Some(list) => list
            .iter()
            .all(|s| manifest.entries.iter().any(|e| &e.service == s)),
        None => !manifest.entries.is_empty(),
    }
}

/// The services to restore: those requested (every service with data when `None`), plus,
/// with `with_dependencies`, every service with data they depend on (transitively, as
/// the bundle's snapshot says).
///
/// # Errors
///
/// [`ErrorKind::NotFound`] for a requested service the bundle holds no data of.
pub(crate) fn services(
    manifest: &Manifest,
    snapshot: Option<&WorkspaceSnapshot>,
    requested: Option<&[String]>,
    with_dependencies: bool,
) -> Result<Vec<String>> {
    let with_data: BTreeSet<&str> = manifest
        .entries
        .iter()
        .map(|e| e.service.as_str())
        .collect();
    let Some(requested) = requested else {
        return Ok(with_data.iter().map(|s| s.to_string()).collect());
    };
    for name in requested {
        if !with_data.contains(name.as_str()) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("bundle {} holds no data of service `{name}`", manifest.id),
            )
            .with_hint(format!(
                "services with data: {}",
                quoted_list(with_data.iter().copied())
            )));
        }
    }
    let mut chosen: BTreeSet<String> = requested.iter().cloned().collect();
    let mut pending: Vec<String> = requested.to_vec();
    while let Some(name) = pending.pop() {
        if !with_dependencies {
            break;
        }
        let deps = snapshot
            .and_then(|s| s.services.iter().find(|s| s.name == name))
            .map(|s| s.depends_on.clone())
            .unwrap_or_default();
        for dep in deps {
            if with_data.contains(dep.as_str()) && chosen.insert(dep.clone()) {
                pending.push(dep);
            }
        }
    }
    Ok(chosen.into_iter().collect())
}

/// Stages of `services` in dependency order (the snapshot's `dependsOn` among them).
///
/// # Errors
///
/// [`ErrorKind::DependencyCycle`] from the plan.
pub(crate) fn plan(
    snapshot: Option<&WorkspaceSnapshot>,
    services: &[String],
) -> Result<RestorePlan> {
    let deps: Vec<(String, Vec<String>)> = services
        .iter()
        .map(|name| {
            let deps = snapshot
                .and_then(|s| s.services.iter().find(|s| &s.name == name))
                .map(|s| s.depends_on.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|d| services.contains(d))
                .collect();
            (name.clone(), deps)
        })
        .collect();
    RestorePlan::from_dependencies(deps.iter().map(|(n, d)| (n.as_str(), d.as_slice())))
}

/// Passes every event on except `Finished`: verifying is one step of a restore.
struct WithoutFinished<'a>(&'a dyn ProgressSink);

impl ProgressSink for WithoutFinished<'_> {
    fn event(&self, event: &ProgressEvent) {
        if !matches!(event, ProgressEvent::Finished { .. }) {
            self.0.event(event);
        }
    }
}

/// A reader for planning only: the manifest checked against the index and the key
/// able to open it, no entry read.
///
/// # Errors
///
/// As [`verified_reader`], without the entries' checks.
pub(crate) async fn planning_reader(repo: &Repository, entry: &IndexEntry) -> Result<BundleReader> {
    let reader = repo.checked_reader(entry).await?;
    reader.ensure_decryptable()?;
    Ok(reader)
}

/// Opens the bundle of `entry`, with the repository's key, and verifies every entry's
/// size and sha256 (decrypting each when the bundle is encrypted) against its manifest,
/// and that manifest against the index.
///
/// # Errors
///
/// [`ErrorKind::Integrity`] naming the entry that does not match;
/// [`ErrorKind::WrongKey`] for a missing or wrong key; storage errors.
pub(crate) async fn verified_reader(
    repo: &Repository,
    entry: &IndexEntry,
    progress: &dyn ProgressSink,
) -> Result<BundleReader> {
    let reader = repo.checked_reader(entry).await?;
    reader.ensure_decryptable()?;
    reader.verify(&WithoutFinished(progress)).await?;
    Ok(reader)
}
