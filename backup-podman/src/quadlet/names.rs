//! The podman names quadlet gives to what a deployment's units create: containers
//! (`ContainerName=`, else `systemd-STEM`) and pods (`PodName=`, else `systemd-STEM`).
//! These tell a deployment's own containers from other containers on the same volumes.

use super::{unquote, Deployment, UnitFile};

/// The names of the containers and pods a deployment's quadlet units create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnNames {
    /// Container names of the `.container` units, in unit order.
    pub containers: Vec<String>,
    /// Pod names of the `.pod` units, in unit order (their infra containers belong to
    /// the deployment; other containers in them only when one of its units names them).
    pub pods: Vec<String>,
}

impl OwnNames {
    /// Whether a container with this name, in this pod (empty: no pod), is the
    /// deployment's: one of its `.container` units names it, or it is the infra
    /// container (`infra`) of one of its pods. A container someone put into one of its
    /// pods by other means (`podman run --pod`) is not.
    pub fn owns(&self, container: &str, pod: &str, infra: bool) -> bool {
        self.containers.iter().any(|c| c == container)
            || (infra && !pod.is_empty() && self.pods.iter().any(|p| p == pod))
    }
}

impl Deployment {
    /// The names of the containers and pods this deployment's `.container` and `.pod`
    /// units create.
    pub fn own_names(&self) -> OwnNames {
        let mut names = OwnNames::default();
        for unit in &self.units {
            match unit.kind.as_str() {
                "container" => names
                    .containers
                    .push(container_name_of(&unit.file, &unit.unit)),
                "pod" => names.pods.push(pod_name_of(&unit.file, &unit.unit)),
                _ => {}
            }
        }
        names
    }
}

/// The container name a `.container` unit gives: `ContainerName=`, else quadlet's
/// default `systemd-STEM` (`%N` / `%p` / `%%` expanded as systemd would for the unit).
pub fn container_name_of(file: &str, unit: &UnitFile) -> String {
    named(file, "container", unit.last("Container", "ContainerName"))
}

/// The pod name a `.pod` unit gives: `PodName=`, else quadlet's default `systemd-STEM`.
pub fn pod_name_of(file: &str, unit: &UnitFile) -> String {
    named(file, "pod", unit.last("Pod", "PodName"))
}

fn named(file: &str, kind: &str, value: Option<&str>) -> String {
    let stem = file
        .strip_suffix(&format!(".{kind}"))
        .unwrap_or(file)
        .to_string();
    match value.map(unquote).filter(|v| !v.is_empty()) {
        Some(name) => expand_specifiers(&name, &stem),
        None => format!("systemd-{stem}"),
    }
}

/// Expands the unit-name specifiers of `value` for the unit `stem`: `%N` (the unit name
/// without its type), `%p` (its prefix, before `@`) and `%%`; others stay as written.
fn expand_specifiers(value: &str, stem: &str) -> String {
    let prefix = stem.split_once('@').map_or(stem, |(p, _)| p);
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('N') => out.push_str(stem),
            Some('p') => out.push_str(prefix),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(text: &str) -> UnitFile {
        UnitFile::parse(text).0
    }

    #[test]
    fn container_name_is_container_name_else_systemd_stem() {
        let named = unit("[Container]\nContainerName=first\nContainerName=\"web\"\n");
        assert_eq!(container_name_of("app.container", &named), "web");
        let unnamed = unit("[Container]\nImage=x\n");
        assert_eq!(container_name_of("app.container", &unnamed), "systemd-app");
        let in_other_section = unit("[Pod]\nContainerName=nope\n");
        assert_eq!(
            container_name_of("app.container", &in_other_section),
            "systemd-app"
        );
    }

    #[test]
    fn pod_name_is_pod_name_else_systemd_stem() {
        assert_eq!(
            pod_name_of("nc.pod", &unit("[Pod]\nPodName=nextcloud\n")),
            "nextcloud"
        );
        assert_eq!(pod_name_of("nc.pod", &unit("[Pod]\n")), "systemd-nc");
    }

    #[test]
    fn unit_name_specifiers_are_expanded_in_names() {
        let u = unit("[Container]\nContainerName=x-%N-%p-100%%\n");
        assert_eq!(
            container_name_of("web@blue.container", &u),
            "x-web@blue-web-100%"
        );
    }

    #[test]
    fn owns_by_container_name_or_as_its_pods_infra() {
        let names = OwnNames {
            containers: vec!["web".into()],
            pods: vec!["nc".into()],
        };
        assert!(names.owns("web", "", false));
        assert!(names.owns("web", "nc", false));
        assert!(names.owns("nc-infra", "nc", true));
        assert!(!names.owns("intruder", "nc", false));
        assert!(!names.owns("other", "", false));
        assert!(!names.owns("other-infra", "other-pod", true));
    }
}
