//! Restore planning: services ordered by `dependsOn` into stages that may run concurrently.
//!
//! A [`RestorePlan`] is a plain, serialisable value: it is what a dry run prints. Stage `k`
//! holds every service whose dependencies all sit in stages before `k` and at least one in
//! stage `k - 1` (longest-path layering), so each service starts as early as its
//! dependencies allow. Services within a stage are sorted by name, which makes the plan
//! independent of the order of the input.
//!
//! ```
//! use backup_core::plan::RestorePlan;
//!
//! let db = vec![];
//! let app = vec!["db".to_string()];
//! let plan = RestorePlan::from_dependencies([("app", &app[..]), ("db", &db[..])])?;
//! assert_eq!(plan.order(), ["db", "app"]);
//! # Ok::<(), backup_core::Error>(())
//! ```

use std::collections::{HashMap, HashSet, VecDeque};

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};

use crate::snapshot::WorkspaceSnapshot;
use crate::{Error, ErrorKind, Result};

/// The order in which a snapshot's services are restored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestorePlan {
    /// Stages in the order they run; services of one stage may run concurrently.
    pub stages: Vec<PlanStage>,
}

/// Services that may restore concurrently, once every earlier stage is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanStage {
    /// Position of the stage, from 0.
    pub index: usize,
    /// Service names, sorted.
    pub services: Vec<String>,
}

impl RestorePlan {
    /// Plans services given as `(name, dependsOn)` pairs.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::InvalidSnapshot`] when a name appears twice;
    /// - [`ErrorKind::UnknownDependency`] when `dependsOn` names a service that is not in
    ///   the input; the message names both services (every such pair, sorted);
    /// - [`ErrorKind::DependencyCycle`] for a self-dependency or a cycle; the message names
    ///   the services of one cycle in order, e.g. `a -> b -> c -> a` (`a` depends on `b`).
    pub fn from_dependencies<'a>(
        services: impl IntoIterator<Item = (&'a str, &'a [String])>,
    ) -> Result<Self> {
        let services: Vec<(&str, &[String])> = services.into_iter().collect();
        let index = index_names(&services)?;
        check_dependencies(&services, &index)?;

        // Edge `service -> dependency`: reads as "depends on", like the cycle message.
        let mut graph: DiGraph<&str, ()> = DiGraph::with_capacity(services.len(), 0);
        for (name, _) in &services {
            graph.add_node(name);
        }
        for (position, (_, depends_on)) in services.iter().enumerate() {
            let mut seen = HashSet::new();
            for dependency in depends_on.iter() {
                let target = index[dependency.as_str()];
                if seen.insert(target) {
                    graph.add_edge(NodeIndex::new(position), NodeIndex::new(target), ());
                }
            }
        }

        let sorted = toposort(&graph, None).map_err(|_| cycle_error(&graph))?;
        // Dependents come before their dependencies in `sorted`: walk it backwards so every
        // dependency has its stage before its dependents ask for it.
        let mut stage_of = vec![0usize; services.len()];
        for node in sorted.iter().rev() {
            let stage = graph
                .neighbors(*node)
                .map(|dependency| stage_of[dependency.index()] + 1)
                .max()
                .unwrap_or(0);
            stage_of[node.index()] = stage;
        }

        let stage_count = stage_of.iter().max().map_or(0, |last| last + 1);
        let mut stages: Vec<PlanStage> = (0..stage_count)
            .map(|index| PlanStage {
                index,
                services: Vec::new(),
            })
            .collect();
        for (position, (name, _)) in services.iter().enumerate() {
            stages[stage_of[position]]
                .services
                .push((*name).to_string());
        }
        for stage in &mut stages {
            stage.services.sort_unstable();
        }
        Ok(RestorePlan { stages })
    }

    /// Plans the services of a snapshot.
    ///
    /// # Errors
    ///
    /// As [`RestorePlan::from_dependencies`].
    pub fn from_snapshot(snapshot: &WorkspaceSnapshot) -> Result<Self> {
        Self::from_dependencies(
            snapshot
                .services
                .iter()
                .map(|service| (service.name.as_str(), service.depends_on.as_slice())),
        )
    }

    /// Every service name, stage by stage: an order in which restoring one at a time works.
    pub fn order(&self) -> Vec<&str> {
        self.stages
            .iter()
            .flat_map(|stage| stage.services.iter().map(String::as_str))
            .collect()
    }

    /// Service names per stage, as [`crate::ProgressEvent::PlanReady`] carries them.
    pub fn stage_names(&self) -> Vec<Vec<String>> {
        self.stages
            .iter()
            .map(|stage| stage.services.clone())
            .collect()
    }

    /// Number of services in the plan (not stages; see [`RestorePlan::stage_count`]).
    pub fn len(&self) -> usize {
        self.stages.iter().map(|stage| stage.services.len()).sum()
    }

    /// Whether the plan has no services.
    pub fn is_empty(&self) -> bool {
        self.stages.iter().all(|stage| stage.services.is_empty())
    }

    /// Number of stages.
    pub fn stage_count(&self) -> usize {
        self.stages.len()
    }

    /// The stage a service is in, if it is part of the plan.
    pub fn stage_of(&self, service: &str) -> Option<usize> {
        self.stages
            .iter()
            .find(|stage| stage.services.iter().any(|name| name == service))
            .map(|stage| stage.index)
    }
}

/// Maps each name to its position, rejecting duplicates.
fn index_names<'a>(services: &[(&'a str, &[String])]) -> Result<HashMap<&'a str, usize>> {
    let mut index = HashMap::with_capacity(services.len());
    let mut duplicates = Vec::new();
    for (position, (name, _)) in services.iter().enumerate() {
        if index.insert(*name, position).is_some() {
            duplicates.push(*name);
        }
    }
    if duplicates.is_empty() {
        return Ok(index);
    }
    duplicates.sort_unstable();
    duplicates.dedup();
    Err(Error::new(
        ErrorKind::InvalidSnapshot,
        format!(
            "service names must be unique; duplicated: {}",
            quoted_list(duplicates.iter().copied())
        ),
    )
    .with_hint("rename or remove the duplicated services"))
}

/// Rejects dependencies on unknown services and on the service itself.
fn check_dependencies(services: &[(&str, &[String])], index: &HashMap<&str, usize>) -> Result<()> {
    let mut unknown: Vec<(&str, &str)> = Vec::new();
    let mut self_dependent: Vec<&str> = Vec::new();
    for (name, depends_on) in services {
        for dependency in depends_on.iter() {
            if dependency == name {
                self_dependent.push(name);
            } else if !index.contains_key(dependency.as_str()) {
                unknown.push((name, dependency));
            }
        }
    }
    if !unknown.is_empty() {
        unknown.sort_unstable();
        unknown.dedup();
        let pairs: Vec<String> = unknown
            .iter()
            .map(|(service, dependency)| {
                format!("`{service}` depends on `{dependency}`, which is not a service here")
            })
            .collect();
        return Err(Error::new(ErrorKind::UnknownDependency, pairs.join("; "))
            .with_hint("add the missing services or remove them from dependsOn"));
    }
    if let Some(first) = self_dependent.iter().min() {
        return Err(Error::new(
            ErrorKind::DependencyCycle,
            format!("service `{first}` depends on itself: {first} -> {first}"),
        )
        .with_hint(format!("remove `{first}` from its own dependsOn")));
    }
    Ok(())
}

/// Describes one cycle of a graph that has at least one, deterministically: the cycle
/// through the alphabetically first service that is part of any cycle, shortest first.
fn cycle_error(graph: &DiGraph<&str, ()>) -> Error {
    let start = tarjan_scc(graph)
        .into_iter()
        .filter(|component| component.len() > 1)
        .flatten()
        .min_by_key(|node| graph[*node]);
    let Some(start) = start else {
        return Error::new(ErrorKind::DependencyCycle, "dependsOn forms a cycle");
    };
    let cycle = shortest_cycle_through(graph, start);
    let names: Vec<&str> = cycle.iter().map(|node| graph[*node]).collect();
    Error::new(
        ErrorKind::DependencyCycle,
        format!("dependsOn forms a cycle: {}", names.join(" -> ")),
    )
    .with_hint("remove one of the dependsOn entries along the cycle")
}

/// Breadth-first search from `start` back to itself, visiting neighbours in name order so
/// that the cycle found does not depend on input order. Returns `start, …, start`.
fn shortest_cycle_through(graph: &DiGraph<&str, ()>, start: NodeIndex) -> Vec<NodeIndex> {
    let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        let mut next: Vec<NodeIndex> = graph.neighbors(node).collect();
        next.sort_unstable_by_key(|n| graph[*n]);
        for neighbour in next {
            if neighbour == start {
                let mut path = vec![start, node];
                let mut current = node;
                while current != start {
                    current = parent[&current];
                    path.push(current);
                }
                // start, node, parent(node), …, start  →  start, …, node, start
                path.reverse();
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(entry) = parent.entry(neighbour) {
                entry.insert(node);
                queue.push_back(neighbour);
            }
        }
    }
    vec![start, start]
}

/// `` `a`, `b` `` from names.
pub(crate) fn quoted_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
