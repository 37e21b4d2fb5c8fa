//! A restore told as it goes: "Restoring 3 services… PostgreSQL is running, Redis is
//! starting, n8n is waiting for dependencies…".

use std::collections::{BTreeMap, BTreeSet};

use super::{count_services, display_names, join_list, restored_sentence, ServiceLabel};
use crate::plan::RestorePlan;
use crate::progress::ProgressEvent;
use crate::snapshot::WorkspaceSnapshot;

/// Where one service of a restore stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceState {
    /// Nothing started for it yet.
    Waiting,
    /// Being created, deployed and waited on.
    Starting,
    /// Created and ready (its data, if any, not restored yet).
    Running,
    /// Its data is being restored; `percent` when the size is known.
    RestoringData {
        /// How much of the current artifact is in, 0-100.
        percent: Option<u8>,
    },
    /// Its data is restored.
    Restored,
    /// It failed, with the one-line error.
    Failed(String),
    /// It was created by this restore and removed again by the rollback.
    RolledBack,
    /// The rollback could not remove it, with the one-line error.
    RollbackFailed(String),
}

/// How the whole restore ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Failed(String),
}

/// Follows a restore's [`ProgressEvent`]s and tells where it stands at any point.
///
/// Build it with the services and their dependencies ([`RestoreNarrator::new`],
/// [`RestoreNarrator::from_snapshot`]), pass every event to [`observe`](Self::observe)
/// (it is a [`crate::ProgressSink`]-friendly `&mut` method; wrap it in a mutex to share),
/// and read [`status_line`](Self::status_line) whenever a line is wanted. Once the
/// restore ended, the status line is the final sentence.
///
/// A [`ProgressEvent::PlanReady`] narrows the services to those the plan restores, in
/// plan order; a service whose dependencies are not known waits for the stages before
/// its own.
#[derive(Debug, Clone)]
pub struct RestoreNarrator {
    labels: Vec<ServiceLabel>,
    depends_on: BTreeMap<String, Vec<String>>,
    stages: Vec<Vec<String>>,
    states: BTreeMap<String, ServiceState>,
    created: BTreeSet<String>,
    planned: bool,
    rolling_back: bool,
    failed_service: Option<String>,
    outcome: Option<Outcome>,
}

impl RestoreNarrator {
    /// A narrator for `services`, each with the names of the services it depends on.
    pub fn new(services: impl IntoIterator<Item = (ServiceLabel, Vec<String>)>) -> Self {
        let mut labels = Vec::new();
        let mut depends_on = BTreeMap::new();
        for (label, deps) in services {
            depends_on.insert(label.name.clone(), deps);
            labels.push(label);
        }
        let states = labels
            .iter()
            .map(|l| (l.name.clone(), ServiceState::Waiting))
            .collect();
        RestoreNarrator {
            labels,
            depends_on,
            stages: Vec::new(),
            states,
            created: BTreeSet::new(),
            planned: false,
            rolling_back: false,
            failed_service: None,
            outcome: None,
        }
    }

    /// A narrator for the services of a snapshot, with their recipes and dependencies.
    pub fn from_snapshot(snapshot: &WorkspaceSnapshot) -> Self {
        Self::new(snapshot.services.iter().map(|s| {
            (
                ServiceLabel::new(s.name.clone(), s.recipe.clone()),
                s.depends_on.clone(),
            )
        }))
    }

    /// A narrator for a plan's services (recipes unknown: named by service name), where
    /// each service waits for the stages before its own.
    pub fn from_plan(plan: &RestorePlan) -> Self {
        let mut narrator = Self::new(
            plan.order()
                .into_iter()
                .map(|name| (ServiceLabel::unnamed_recipe(name), Vec::new())),
        );
        narrator.depends_on.clear();
        narrator.observe(&ProgressEvent::PlanReady {
            stages: plan.stage_names(),
        });
        narrator
    }

    /// Takes one event of the restore into account.
    pub fn observe(&mut self, event: &ProgressEvent) {
        match event {
            ProgressEvent::PlanReady { stages } => self.plan_ready(stages),
            ProgressEvent::ServiceStarted { service, operation } => match operation.as_str() {
                "create" => {
                    self.created.insert(service.clone());
                    self.set(service, ServiceState::Starting);
                }
                "import" => self.set(service, ServiceState::RestoringData { percent: None }),
                _ => {}
            },
            ProgressEvent::BytesTransferred {
                service,
                done,
                total: Some(total),
                ..
            } if *total > 0 => {
                let percent = (done.saturating_mul(100) / total).min(100) as u8;
                self.set(
                    service,
                    ServiceState::RestoringData {
                        percent: Some(percent),
                    },
                );
            }
            ProgressEvent::ServiceFinished { service, operation } => match operation.as_str() {
                "create" => self.set(service, ServiceState::Running),
                "import" => self.set(service, ServiceState::Restored),
                _ => {}
            },
            ProgressEvent::Failed { service, error } => self.failed(service, error),
            ProgressEvent::RollingBack { .. } => self.rolling_back(),
            ProgressEvent::Finished { operation } if operation != "verify" => {
                self.outcome = Some(Outcome::Succeeded);
            }
            ProgressEvent::OperationFailed { operation, error } if operation != "verify" => {
                self.outcome = Some(Outcome::Failed(error.clone()));
            }
            _ => {}
        }
    }

    /// Where `service` stands, if the restore includes it.
    pub fn state(&self, service: &str) -> Option<&ServiceState> {
        self.states.get(service)
    }

    /// The services the restore covers, in plan order once the plan is known.
    pub fn services(&self) -> &[ServiceLabel] {
        &self.labels
    }

    /// Whether a rollback started (after a failure).
    pub fn rolled_back(&self) -> bool {
        self.rolling_back
    }

    /// Whether the rollback could not remove some service.
    pub fn rollback_failed(&self) -> bool {
        self.states
            .values()
            .any(|s| matches!(s, ServiceState::RollbackFailed(_)))
    }

    /// Whether the restore ended (successfully or not).
    pub fn is_done(&self) -> bool {
        self.outcome.is_some()
    }

    /// One line saying where the restore stands, e.g. "Restoring 3 services… PostgreSQL
    /// is running, Redis is starting, n8n is waiting for dependencies…"; once it ended,
    /// the [`final_sentence`](Self::final_sentence).
    pub fn status_line(&self) -> String {
        if let Some(done) = self.final_sentence() {
            return done;
        }
        if self.rolling_back {
            return self.rollback_line();
        }
        let lead = if self.labels.is_empty() {
            "Restoring your workspace…".to_owned()
        } else {
            format!("Restoring {}…", count_services(self.labels.len()))
        };
        if !self.planned {
            return format!("{lead} checking the backup first…");
        }
        let names = display_names(&self.labels);
        let parts: Vec<String> = self
            .labels
            .iter()
            .zip(&names)
            .map(|(label, shown)| format!("{shown} {}", self.describe(&label.name)))
            .collect();
        if parts.is_empty() {
            return format!("{lead} there is nothing to restore…");
        }
        format!("{lead} {}…", parts.join(", "))
    }

    /// The sentence for a restore that ended: "I've restored your workspace with 3
    /// services: …", or "The restore failed at n8n: …" saying what the rollback did.
    /// `None` while the restore is still running.
    pub fn final_sentence(&self) -> Option<String> {
        match self.outcome.as_ref()? {
            Outcome::Succeeded => Some(restored_sentence(&self.labels)),
            Outcome::Failed(error) => Some(self.failure_sentence(error)),
        }
    }

    fn failure_sentence(&self, error: &str) -> String {
        let at = self
            .failed_service
            .as_ref()
            .map(|name| format!(" at {}", self.shown(name)))
            .unwrap_or_default();
        let mut sentence = format!(
            "The restore failed{at}: {}.",
            error.trim().trim_end_matches('.')
        );
        let rolled_back = self.names_in(|s| *s == ServiceState::RolledBack);
        let stuck = self.names_in(|s| matches!(s, ServiceState::RollbackFailed(_)));
        if !stuck.is_empty() {
            sentence.push_str(&format!(
                " I tried to roll it back, but could not remove {}; please check {} by hand.",
                join_list(&stuck),
                if stuck.len() == 1 { "it" } else { "them" }
            ));
        } else if self.rolling_back {
            sentence.push_str(&format!(
                " I rolled it back{}, so your workspace is as it was.",
                if rolled_back.is_empty() {
                    String::new()
                } else {
                    format!(" and removed {}", join_list(&rolled_back))
                }
            ));
        } else {
            let restored = self.names_in(|s| *s == ServiceState::Restored);
            if !restored.is_empty() {
                sentence.push_str(&format!(
                    " The data of {} had already been restored.",
                    join_list(&restored)
                ));
            }
        }
        sentence
    }

    fn rollback_line(&self) -> String {
        let removing = self.names_in(|s| *s == ServiceState::RolledBack);
        if removing.is_empty() {
            "Rolling back the restore…".to_owned()
        } else {
            format!(
                "Rolling back the restore… removing {}…",
                join_list(&removing)
            )
        }
    }

    fn describe(&self, service: &str) -> String {
        match self.states.get(service) {
            None | Some(ServiceState::Waiting) => {
                if self.dependencies_pending(service) {
                    "is waiting for dependencies".to_owned()
                } else {
                    "is waiting to start".to_owned()
                }
            }
            Some(ServiceState::Starting) => "is starting".to_owned(),
            Some(ServiceState::Running) => "is running".to_owned(),
            Some(ServiceState::RestoringData { percent: None }) => {
                "is getting its data back".to_owned()
            }
            Some(ServiceState::RestoringData {
                percent: Some(percent),
            }) => format!("is getting its data back ({percent}%)"),
            Some(ServiceState::Restored) => "is restored".to_owned(),
            Some(ServiceState::Failed(_)) => "failed".to_owned(),
            Some(ServiceState::RolledBack) => "was removed".to_owned(),
            Some(ServiceState::RollbackFailed(_)) => "could not be removed".to_owned(),
        }
    }

    /// Whether a dependency of `service` (or, when its dependencies are unknown, a
    /// service of an earlier stage) is not up yet.
    fn dependencies_pending(&self, service: &str) -> bool {
        let up = |name: &String| {
            matches!(
                self.states.get(name),
                Some(ServiceState::Running | ServiceState::Restored) | None
            )
        };
        match self.depends_on.get(service) {
            Some(deps) => deps.iter().any(|d| !up(d)),
            None => self
                .stages
                .iter()
                .take_while(|stage| !stage.iter().any(|s| s == service))
                .flatten()
                .any(|s| !up(s)),
        }
    }

    fn plan_ready(&mut self, stages: &[Vec<String>]) {
        self.planned = true;
        self.stages = stages.to_vec();
        let known = std::mem::take(&mut self.labels);
        self.labels = stages
            .iter()
            .flatten()
            .map(|name| {
                known
                    .iter()
                    .find(|l| &l.name == name)
                    .cloned()
                    .unwrap_or_else(|| ServiceLabel::unnamed_recipe(name.clone()))
            })
            .collect();
        self.states
            .retain(|name, _| stages.iter().flatten().any(|s| s == name));
        for label in &self.labels {
            self.states
                .entry(label.name.clone())
                .or_insert(ServiceState::Waiting);
        }
    }

    fn set(&mut self, service: &str, state: ServiceState) {
        if let Some(current) = self.states.get_mut(service) {
            *current = state;
        }
    }

    fn failed(&mut self, service: &str, error: &str) {
        if self.rolling_back {
            self.set(service, ServiceState::RollbackFailed(error.to_owned()));
        } else {
            self.failed_service
                .get_or_insert_with(|| service.to_owned());
            self.set(service, ServiceState::Failed(error.to_owned()));
        }
    }

    /// The restore removes, newest first, every service it started creating: mark them
    /// so; a later `Failed` says which could not be removed.
    fn rolling_back(&mut self) {
        self.rolling_back = true;
        for (name, state) in &mut self.states {
            if self.created.contains(name) {
                *state = ServiceState::RolledBack;
            }
        }
    }

    fn shown(&self, service: &str) -> String {
        let names = display_names(&self.labels);
        self.labels
            .iter()
            .zip(names)
            .find(|(label, _)| label.name == service)
            .map(|(_, shown)| shown)
            .unwrap_or_else(|| service.to_owned())
    }

    fn names_in(&self, pred: impl Fn(&ServiceState) -> bool) -> Vec<String> {
        self.labels
            .iter()
            .filter(|l| self.states.get(&l.name).is_some_and(&pred))
            .map(|l| self.shown(&l.name))
            .collect()
    }
}
