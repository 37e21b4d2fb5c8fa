//! What a guarded `remove` of a podman deployment may delete, decided before anything is
//! touched: the deployment's own containers (those its quadlet units create), its own
//! pods, and the volumes no other container uses. A volume that another container
//! mounts is never deleted, nor a pod another container is in, nor that container.

use backup_core::{Error, ErrorKind, Result};

use crate::cli::{Podman, VolumeUser};
use crate::quadlet::{Deployment, OwnNames};

/// What `remove` does with a deployment volume that containers outside the deployment
/// also use, and with a deployment pod such a container is in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SharedVolumes {
    /// Refuse the whole removal, before the guard backup and before anything changes
    /// (the default of [`crate::PodmanDeploymentOps::remove`]).
    #[default]
    Refuse,
    /// Remove the deployment and its unshared volumes and pods, keep the shared volumes,
    /// the shared pods (with their infra containers) and the other containers untouched
    /// (listed in [`crate::RemoveReport::kept_volumes`] / [`crate::RemoveReport::kept_pods`]).
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

/// A deployment pod `remove` kept because containers that are not the deployment's are
/// in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptPod {
    /// The pod name.
    pub name: String,
    /// The names of the containers in it that are not the deployment's.
    pub used_by: Vec<String>,
}

/// A deployment pod `remove` deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedPod {
    /// The pod name.
    pub(crate) name: String,
    /// Its infra containers' ids (stopped before `podman pod rm`).
    pub(crate) infra: Vec<String>,
}

/// The removal decided before anything is touched.
#[derive(Debug, Default)]
pub(crate) struct RemovePlan {
    /// The deployment's existing containers (not infra): (id, name), each once.
    pub(crate) containers: Vec<(String, String)>,
    /// The deployment's existing pods that hold only its own containers.
    pub(crate) pods: Vec<PlannedPod>,
    /// Existing volumes only the deployment's containers use.
    pub(crate) volumes: Vec<String>,
    /// Existing volumes other containers use too.
    pub(crate) kept: Vec<KeptVolume>,
    /// Existing pods of the deployment other containers are in.
    pub(crate) kept_pods: Vec<KeptPod>,
}

/// Lists `deployment`'s existing containers and pods, and sorts the users of each
/// existing volume of `volumes` into the deployment's own containers and others.
///
/// # Errors
///
/// [`ErrorKind::InUse`] with `shared` [`SharedVolumes::Refuse`] when another container
/// uses a volume or is in a pod of the deployment (naming them, with a hint); podman
/// failures.
pub(crate) async fn plan_removal(
    podman: &Podman,
    name: &str,
    deployment: &Deployment,
    volumes: &[String],
    shared: SharedVolumes,
) -> Result<RemovePlan> {
    let own = deployment.own_names();
    let mut plan = RemovePlan::default();
    let all = podman.containers().await?;
    for container in &all {
        if !container.infra && own.owns(&container.name, &container.pod, false) {
            plan.containers
                .push((container.id.clone(), container.name.clone()));
        }
    }
    plan_pods(&mut plan, &own, &podman.pods().await?, &all);
    for volume in volumes {
        if podman.volume_inspect(volume).await?.is_none() {
            continue;
        }
        let mut others = Vec::new();
        for user in podman.volume_users(volume).await? {
            if own.owns(&user.name, &user.pod, user.infra) {
                if !user.infra && !plan.containers.iter().any(|(id, _)| *id == user.id) {
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
    if shared == SharedVolumes::Refuse && !(plan.kept.is_empty() && plan.kept_pods.is_empty()) {
        return Err(shared_error(name, &plan.kept, &plan.kept_pods));
    }
    Ok(plan)
}

/// Sorts the deployment's existing pods (of `existing`) into those holding only its own
/// containers (removed) and those holding others (kept).
fn plan_pods(plan: &mut RemovePlan, own: &OwnNames, existing: &[String], all: &[VolumeUser]) {
    for pod in own.pods.iter().filter(|p| existing.contains(p)) {
        let members = all.iter().filter(|c| c.pod == *pod);
        let (mine, others): (Vec<&VolumeUser>, Vec<&VolumeUser>) =
            members.partition(|c| own.owns(&c.name, &c.pod, c.infra));
        if others.is_empty() {
            plan.pods.push(PlannedPod {
                name: pod.clone(),
                infra: mine
                    .iter()
                    .filter(|c| c.infra)
                    .map(|c| c.id.clone())
                    .collect(),
            });
        } else {
            plan.kept_pods.push(KeptPod {
                name: pod.clone(),
                used_by: others.iter().map(|c| c.name.clone()).collect(),
            });
        }
    }
}

/// "podman deployment `a` shares volume `data` with `b` … and pod `p` with `c`; nothing
/// was removed".
fn shared_error(name: &str, kept: &[KeptVolume], kept_pods: &[KeptPod]) -> Error {
    let with = |what: &str, name: &str, used_by: &[String]| {
        let users: Vec<String> = used_by.iter().map(|u| format!("`{u}`")).collect();
        format!("{what} `{name}` with {}", users.join(", "))
    };
    let listed: Vec<String> = kept
        .iter()
        .map(|k| with("volume", &k.name, &k.used_by))
        .chain(kept_pods.iter().map(|p| with("pod", &p.name, &p.used_by)))
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
        "stop and remove those containers or detach the volume or pod from them, or call \
         `remove_with(name, guard, SharedVolumes::Keep)` to remove the deployment and keep \
         its shared volumes and pods",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_names_every_shared_volume_and_pod_and_their_other_containers() {
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
        let pods = [KeptPod {
            name: "apod".into(),
            used_by: vec!["intruder".into()],
        }];
        let error = shared_error("a", &kept, &pods);
        assert_eq!(error.kind(), ErrorKind::InUse);
        let text = error.to_string();
        for part in [
            "`a`",
            "volume `shared` with `b`, `c`",
            "volume `cache` with `d`",
            "pod `apod` with `intruder`",
        ] {
            assert!(text.contains(part), "{text}");
        }
        assert!(error
            .hint()
            .is_some_and(|h| h.contains("SharedVolumes::Keep")));
    }
}
