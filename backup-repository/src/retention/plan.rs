//! [`plan`]: grouping, the safety rules (locked, future, never remove a whole group) and
//! the result type.

use std::collections::{BTreeMap, HashSet};

use backup_core::bundle::BundleKind;
use backup_core::{Error, ErrorKind, Result};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::buckets::{evaluate, Keys, Member};
use super::policy::{GroupBy, RetentionPolicy};

/// What retention needs to know about one bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionItem {
    /// The bundle's id, unique in the list.
    pub id: String,
    /// When the bundle was made.
    pub created: Timestamp,
    /// The bundle's label, matched by `keepLabels`.
    pub label: Option<String>,
    /// Who made the bundle; selects per-kind rules and may group.
    pub kind: BundleKind,
    /// The services in the bundle; their set may group.
    pub services: Vec<String>,
    /// A locked bundle is always kept.
    pub locked: bool,
}

/// The decision for one bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionDecision {
    /// The bundle's id.
    pub id: String,
    /// Whether the bundle is kept.
    pub keep: bool,
    /// Every reason it is kept, e.g. `last #1`, `daily #3`, `oldest monthly #12`,
    /// `within 7d`, `daily within 30d #2`, `label v*`, `locked`, `future`,
    /// `no rules for kind safety`; empty when removed.
    pub reasons: Vec<String>,
    /// The group the rules were applied in, e.g. `services=app,db kind=manual`.
    pub group: String,
}

/// One decision per bundle, newest first (ties by id), the same for the same input in
/// any order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPlan {
    /// The decisions.
    pub decisions: Vec<RetentionDecision>,
}

impl RetentionPlan {
    /// Ids of the bundles to remove.
    pub fn to_remove(&self) -> impl Iterator<Item = &str> {
        self.decisions
            .iter()
            .filter(|d| !d.keep)
            .map(|d| d.id.as_str())
    }

    /// Ids of the bundles to keep.
    pub fn to_keep(&self) -> impl Iterator<Item = &str> {
        self.decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.id.as_str())
    }

    /// The decision for bundle `id`.
    pub fn get(&self, id: &str) -> Option<&RetentionDecision> {
        self.decisions.iter().find(|d| d.id == id)
    }
}

fn kind_name(kind: BundleKind) -> &'static str {
    match kind {
        BundleKind::Manual => "manual",
        BundleKind::Automatic => "automatic",
        BundleKind::Safety => "safety",
    }
}

fn group_key(item: &RetentionItem, group_by: &[GroupBy]) -> String {
    let mut parts = Vec::new();
    if group_by.contains(&GroupBy::Services) {
        let mut services: Vec<&str> = item.services.iter().map(String::as_str).collect();
        services.sort_unstable();
        services.dedup();
        parts.push(format!("services={}", services.join(",")));
    }
    if group_by.contains(&GroupBy::Kind) {
        parts.push(format!("kind={}", kind_name(item.kind)));
    }
    if parts.is_empty() {
        "all".to_owned()
    } else {
        parts.join(" ")
    }
}

/// Decides, for every bundle, keep or remove and why. Pure: reads its arguments only.
///
/// Bundles are grouped by `policy.group_by`; each group gets the rules of its kind
/// (see [`RetentionPolicy::rules_for`]) on its own. On top of the rules, a bundle is
/// always kept when it is locked (`locked`) or dated after `now` (`future`; such bundles
/// also take no part in the rules, so a wrong clock cannot push real bundles out). A
/// group whose kind has no rules at all keeps everything (`no rules for kind …`).
///
/// Errors (all [`ErrorKind::InvalidConfig`] with a hint, except duplicate ids which are
/// [`ErrorKind::InvalidInput`]): an empty policy, per-kind rules without grouping by
/// kind, an unknown time zone, an out-of-range duration, and a plan that would remove
/// every bundle of a group unless `allow_removing_all` is set.
pub fn plan(
    items: &[RetentionItem],
    policy: &RetentionPolicy,
    now: Timestamp,
) -> Result<RetentionPlan> {
    let tz = policy.validate()?;

    let mut seen = HashSet::with_capacity(items.len());
    for item in items {
        if !seen.insert(item.id.as_str()) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "bundle id {:?} appears twice in the retention input",
                    item.id
                ),
            )
            .with_hint("pass each bundle once; ids must be unique"));
        }
    }

    // Newest first, ties by id, so the result does not depend on the input order.
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        items[b]
            .created
            .cmp(&items[a].created)
            .then_with(|| items[a].id.cmp(&items[b].id))
    });

    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for &i in &order {
        groups
            .entry(group_key(&items[i], &policy.group_by))
            .or_default()
            .push(i);
    }

    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); items.len()];
    let mut group_of: Vec<&str> = vec![""; items.len()];
    for (key, members) in &groups {
        for &i in members {
            group_of[i] = key;
        }
        // Grouping by kind whenever per-kind rules exist is checked by validate, so the
        // first member's kind is the group's kind.
        let Some(&first) = members.first() else {
            continue;
        };
        let rules = policy.rules_for(items[first].kind);
        let (present, future): (Vec<usize>, Vec<usize>) =
            members.iter().partition(|&&i| items[i].created <= now);
        for &i in &future {
            reasons[i].push("future".to_owned());
        }
        if rules.is_empty() {
            for &i in &present {
                reasons[i].push(format!("no rules for kind {}", kind_name(items[i].kind)));
            }
        } else {
            let view: Vec<Member<'_>> = present
                .iter()
                .map(|&i| Member {
                    created: items[i].created,
                    label: items[i].label.as_deref(),
                    keys: Keys::of(items[i].created, &tz),
                })
                .collect();
            let kept = evaluate(&view, rules, &tz)?;
            for (&i, why) in present.iter().zip(kept) {
                reasons[i].extend(why);
            }
        }
        for &i in members {
            if items[i].locked {
                reasons[i].push("locked".to_owned());
            }
        }
        if !policy.allow_removing_all && members.iter().all(|&i| reasons[i].is_empty()) {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "the retention policy would remove all {} bundles of group {key}",
                    members.len()
                ),
            )
            .with_hint(
                "add a rule that keeps at least one bundle (e.g. keepLast 1), or set \
                 allowRemovingAll to remove the whole group on purpose",
            ));
        }
    }

    let decisions = order
        .into_iter()
        .map(|i| {
            let why = std::mem::take(&mut reasons[i]);
            RetentionDecision {
                id: items[i].id.clone(),
                keep: !why.is_empty(),
                reasons: why,
                group: group_of[i].to_owned(),
            }
        })
        .collect();
    Ok(RetentionPlan { decisions })
}
