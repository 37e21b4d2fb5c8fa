//! Quadlet discovery: which quadlet files a deployment directory holds, which named
//! volumes they use, and which bind mounts they make.
//!
//! Parsing is for discovery only; the files are backed up and restored byte for byte.
//! Drop-ins (`NAME.container.d/*.conf`, and `container.d/*.conf` for every unit of that
//! type) are applied after the main file, in file-name order.

mod names;
mod unit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use names::{container_name_of, pod_name_of, OwnNames};
pub use unit::{split_words, unquote, Assignment, ParseIssue, UnitFile};

use backup_core::{Error, Result};

/// Unit types quadlet parses for volumes and mounts.
pub const PARSED_TYPES: &[&str] = &["container", "volume", "pod", "network", "build"];
/// Unit types that are only listed (their content is not interpreted here).
pub const LISTED_TYPES: &[&str] = &["kube", "image"];

/// One quadlet unit of the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuadletUnit {
    /// File name (`web.container`).
    pub file: String,
    /// Type: the extension without the dot.
    pub kind: String,
    /// Drop-in files applied, relative to the deployment directory, in order.
    pub drop_ins: Vec<String>,
    /// The merged unit (main file then drop-ins); empty for listed-only types.
    pub unit: UnitFile,
    /// Lines that could not be parsed, per file.
    pub issues: Vec<(String, ParseIssue)>,
}

/// A named volume the deployment uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedVolume {
    /// The podman volume name.
    pub name: String,
    /// The `.volume` unit that defines it, if any.
    pub defined_by: Option<String>,
    /// Units that mount it, in order.
    pub used_by: Vec<String>,
}

/// A bind mount of a host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// Host path (relative sources resolved against the deployment directory).
    pub source: PathBuf,
    /// The unit that mounts it.
    pub used_by: String,
}

/// What a deployment directory holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deployment {
    /// Every quadlet unit, sorted by file name.
    pub units: Vec<QuadletUnit>,
    /// Named volumes, sorted by name.
    pub volumes: Vec<NamedVolume>,
    /// Bind mounts, in unit order.
    pub bind_mounts: Vec<BindMount>,
}

/// Reads the deployment in `dir`.
///
/// # Errors
///
/// When the directory or a unit file cannot be read.
pub fn discover(dir: &Path) -> Result<Deployment> {
    let mut names: Vec<String> = read_names(dir)?;
    names.sort();
    let mut units = Vec::new();
    for file in &names {
        let Some((stem, kind)) = file.rsplit_once('.') else {
            continue;
        };
        let parsed = PARSED_TYPES.contains(&kind);
        if stem.is_empty() || !(parsed || LISTED_TYPES.contains(&kind)) {
            continue;
        }
        let path = dir.join(file);
        if !path.is_file() {
            continue;
        }
        let mut unit = UnitFile::default();
        let mut issues = Vec::new();
        let mut drop_ins = Vec::new();
        if parsed {
            let text = read_text(&path)?;
            issues.extend(
                unit.parse_more(&text)
                    .into_iter()
                    .map(|i| (file.clone(), i)),
            );
            for drop_in in drop_in_files(dir, file, kind)? {
                let text = read_text(&dir.join(&drop_in))?;
                issues.extend(
                    unit.parse_more(&text)
                        .into_iter()
                        .map(|i| (drop_in.clone(), i)),
                );
                drop_ins.push(drop_in);
            }
        }
        units.push(QuadletUnit {
            file: file.clone(),
            kind: kind.to_string(),
            drop_ins,
            unit,
            issues,
        });
    }
    let mut deployment = Deployment {
        units,
        ..Deployment::default()
    };
    resolve_mounts(dir, &mut deployment);
    Ok(deployment)
}

/// The podman volume name a `.volume` unit creates: `VolumeName=`, else `systemd-STEM`.
pub fn volume_name_of(file: &str, unit: &UnitFile) -> String {
    match unit.last("Volume", "VolumeName") {
        Some(name) => unquote(name),
        None => format!("systemd-{}", file.strip_suffix(".volume").unwrap_or(file)),
    }
}

fn section_of(kind: &str) -> &'static str {
    match kind {
        "container" => "Container",
        "pod" => "Pod",
        "build" => "Build",
        "volume" => "Volume",
        "network" => "Network",
        _ => "",
    }
}

/// A mount source as written: a named volume, a `.volume` unit reference, or a host path.
enum Source {
    Volume(String),
    Bind(PathBuf),
}

fn classify(dir: &Path, source: &str, volume_units: &BTreeMap<String, String>) -> Option<Source> {
    if source.is_empty() {
        return None;
    }
    if source.starts_with('/') || source.starts_with("%h") {
        return Some(Source::Bind(PathBuf::from(source)));
    }
    if source.starts_with("./") || source.starts_with("../") || source == "." {
        return Some(Source::Bind(dir.join(source)));
    }
    if let Some(name) = volume_units.get(source) {
        return Some(Source::Volume(name.clone()));
    }
    if let Some(stem) = source.strip_suffix(".volume") {
        // A reference to a `.volume` unit that is not in this directory: quadlet's default.
        return Some(Source::Volume(format!("systemd-{stem}")));
    }
    Some(Source::Volume(source.to_string()))
}

/// The source of a `Volume=` value (`SRC:DST[:OPTS]`, or just `DST` for an anonymous one).
fn volume_source(value: &str) -> Option<String> {
    let value = unquote(value);
    let mut parts = value.splitn(3, ':');
    let first = parts.next()?;
    parts.next()?;
    Some(first.to_string())
}

/// The source of a `Mount=` value of type volume or bind (`type=volume,source=x,…`).
fn mount_source(value: &str) -> Option<(bool, String)> {
    let value = unquote(value);
    let mut kind = "volume".to_string();
    let mut source = None;
    for field in value.split(',') {
        let (key, val) = field.split_once('=').unwrap_or((field, ""));
        match key.trim() {
            "type" => kind = val.trim().to_string(),
            "source" | "src" => source = Some(val.trim().to_string()),
            _ => {}
        }
    }
    match kind.as_str() {
        "volume" => source.map(|s| (false, s)),
        "bind" => source.map(|s| (true, s)),
        _ => None,
    }
}

fn resolve_mounts(dir: &Path, deployment: &mut Deployment) {
    let volume_units: BTreeMap<String, String> = deployment
        .units
        .iter()
        .filter(|u| u.kind == "volume")
        .map(|u| (u.file.clone(), volume_name_of(&u.file, &u.unit)))
        .collect();
    let mut volumes: BTreeMap<String, NamedVolume> = BTreeMap::new();
    for (file, name) in &volume_units {
        volumes.insert(
            name.clone(),
            NamedVolume {
                name: name.clone(),
                defined_by: Some(file.clone()),
                used_by: Vec::new(),
            },
        );
    }
    for unit in &deployment.units {
        let section = section_of(&unit.kind);
        if !matches!(unit.kind.as_str(), "container" | "pod" | "build") {
            continue;
        }
        let mut sources = Vec::new();
        for value in unit.unit.all(section, "Volume") {
            if let Some(source) = volume_source(value) {
                sources.push((None, source));
            }
        }
        for value in unit.unit.all(section, "Mount") {
            if let Some((bind, source)) = mount_source(value) {
                sources.push((Some(bind), source));
            }
        }
        for (forced_bind, source) in sources {
            let classified = match forced_bind {
                Some(true) => Some(Source::Bind(if source.starts_with('/') {
                    PathBuf::from(&source)
                } else {
                    dir.join(&source)
                })),
                _ => classify(dir, &source, &volume_units),
            };
            match classified {
                Some(Source::Volume(name)) => {
                    let entry = volumes.entry(name.clone()).or_insert_with(|| NamedVolume {
                        name,
                        defined_by: None,
                        used_by: Vec::new(),
                    });
                    if !entry.used_by.contains(&unit.file) {
                        entry.used_by.push(unit.file.clone());
                    }
                }
                Some(Source::Bind(source)) => deployment.bind_mounts.push(BindMount {
                    source,
                    used_by: unit.file.clone(),
                }),
                None => {}
            }
        }
    }
    deployment.volumes = volumes.into_values().collect();
}

fn read_names(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("listing quadlet directory `{}`", dir.display()), e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing `{}`", dir.display()), e))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

fn read_text(path: &Path) -> Result<String> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("reading `{}`", path.display()), e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Drop-ins for `file`: `KIND.d/*.conf` (every unit of the type) then `FILE.d/*.conf`,
/// each sorted by name; a name in the unit's own directory overrides the shared one.
fn drop_in_files(dir: &Path, file: &str, kind: &str) -> Result<Vec<String>> {
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    for sub in [format!("{kind}.d"), format!("{file}.d")] {
        let path = dir.join(&sub);
        if !path.is_dir() {
            continue;
        }
        for name in read_names(&path)? {
            if name.ends_with(".conf") && path.join(&name).is_file() {
                by_name.insert(name.clone(), format!("{sub}/{name}"));
            }
        }
    }
    Ok(by_name.into_values().collect())
}
