//! What a guarded `remove` of a podman deployment may delete, decided before anything is
//! touched: the deployment's own containers (those its quadlet units create) on its
//! volumes, and the volumes no other container uses. A volume that another container
//! mounts is never deleted, nor is that container.

use backup_core::{Error, ErrorKind, Result};

use crate::cli::Podman;
use crate::quadlet::Deployment;

/// What `remove` does with a deployment volume that containers outside the deployment
/// also use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SharedVolumes {
    /// Refuse the whole removal, before the guard backup and before anything changes
    /// (the default of [`crate::PodmanDeploymentOps::remove`]).
    #[default]
    Refuse,
    /// Remove the deployment and its unshared volumes, keep the shared volumes and the
    /// other containers untouched (listed in [`crate::RemoveReport::kept_volumes`]).
    Keep,
}

/// A deployment volume `remove` kept because other containers use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptVolume {
    /// The podman volume name.
    pub name: String,
    /// The names of the containers outside the deployment that use it.
    pub used_by: Vec<String>,
}

/// The removal decided before anything is touched.
#[derive(Debug, Default)]
pub(crate) struct RemovePlan {
    /// The deployment's own containers on its volumes: (id, name), each once.
    pub(crate) containers: Vec<(String, String)>,
    /// Existing volumes only the deployment's containers use.
    pub(crate) volumes: Vec<String>,
    /// Existing volumes other containers use too.
    pub(crate) kept: Vec<KeptVolume>,
}

/// Sorts the users of each existing volume of `volumes` into the deployment's own
/// containers (those `deployment`'s units name, or in its pods) and others.
///
/// # Errors
///
/// [`ErrorKind::InUse`] with `shared` [`SharedVolumes::Refuse`] when another container
/// uses a volume (naming volumes and containers, with a hint); podman failures.
pub(crate) async fn plan_removal(
    podman: &Podman,
    name: &str,
    deployment: &Deployment,
    volumes: &[String],
    shared: SharedVolumes,
) -> Result<RemovePlan> {
    let own = deployment.own_names();
    let mut plan = RemovePlan::default();
    for volume in volumes {
        if podman.volume_inspect(volume).await?.is_none() {
            continue;
        }
        let mut others = Vec::new();
        for user in podman.volume_users(volume).await? {
            if own.owns(&user.name, &user.pod) {
                if !plan.containers.iter().any(|(id, _)| *id == user.id) {
                    plan.containers.push((user.id, user.name));
                }
            } else {
                others.push(user.name);
            }
        }
        if others.is_empty() {
            plan.volumes.push(volume.clone());
        } else {
            plan.kept.push(KeptVolume {
                name: volume.clone(),
                used_by: others,
            });
        }
    }
    if shared == SharedVolumes::Refuse && !plan.kept.is_empty() {
        return Err(shared_volumes_error(name, &plan.kept));
    }
    Ok(plan)
}

/// "podman deployment `a` shares volume `data` with container `b` …; nothing was removed".
fn shared_volumes_error(name: &str, kept: &[KeptVolume]) -> Error {
    let listed: Vec<String> = kept
        .iter()
        .map(|k| {
            let users: Vec<String> = k.used_by.iter().map(|u| format!("`{u}`")).collect();
            format!("volume `{}` with {}", k.name, users.join(", "))
        })
        .collect();
    Error::new(
        ErrorKind::InUse,
        format!(
            "podman deployment `{name}` shares {} (containers that are not the deployment's); \
             nothing was removed",
            listed.join(" and ")
        ),
    )
    .with_hint(
        "stop and remove those containers or detach the volume from them, or call \
         `remove_with(name, guard, SharedVolumes::Keep)` to remove the deployment and keep \
         its shared volumes",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_names_every_shared_volume_and_its_other_containers() {
        let kept = [
            KeptVolume {
                name: "shared".into(),
                used_by: vec!["b".into(), "c".into()],
            },
            KeptVolume {
                name: "cache".into(),
                used_by: vec!["d".into()],
            },
        ];
        let error = shared_volumes_error("a", &kept);
        assert_eq!(error.kind(), ErrorKind::InUse);
        let text = error.to_string();
        for part in [
            "`a`",
            "volume `shared` with `b`, `c`",
            "volume `cache` with `d`",
        ] {
            assert!(text.contains(part), "{text}");
        }
        assert!(error
            .hint()
            .is_some_and(|h| h.contains("SharedVolumes::Keep")));
    }
}
