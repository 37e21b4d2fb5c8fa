//! The retention policy: which rules apply to which bundles, in which time zone.

use backup_core::bundle::BundleKind;
use backup_core::{Error, ErrorKind, Result};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::duration::RetentionDuration;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One set of keep rules; a bundle is kept when any rule keeps it (rules are ORed).
///
/// Counts of 0 and absent durations are off. Calendar counts (`keepHourly` …) keep the
/// newest bundle of each of the last N hours/days/ISO weeks/months/years that have a
/// bundle; the `keepWithin*` durations are counted back from the newest bundle of the
/// group, not from now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rules {
    /// Keep the N newest bundles.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_last: u32,
    /// Keep the newest bundle of each of the last N hours that have one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_hourly: u32,
    /// Keep the newest bundle of each of the last N days that have one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_daily: u32,
    /// Keep the newest bundle of each of the last N ISO weeks that have one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_weekly: u32,
    /// Keep the newest bundle of each of the last N months that have one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_monthly: u32,
    /// Keep the newest bundle of each of the last N years that have one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_yearly: u32,
    /// Keep every bundle made within this duration before the group's newest bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<RetentionDuration>,
    /// Keep the newest bundle of every hour within this duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within_hourly: Option<RetentionDuration>,
    /// Keep the newest bundle of every day within this duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within_daily: Option<RetentionDuration>,
    /// Keep the newest bundle of every ISO week within this duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within_weekly: Option<RetentionDuration>,
    /// Keep the newest bundle of every month within this duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within_monthly: Option<RetentionDuration>,
    /// Keep the newest bundle of every year within this duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within_yearly: Option<RetentionDuration>,
    /// Keep every bundle whose label matches one of these glob patterns (`*` any run
    /// of characters, `?` one character), e.g. `v*`, `before-*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_labels: Vec<String>,
}

impl Rules {
    /// Whether no rule is switched on.
    pub fn is_empty(&self) -> bool {
        self.keep_last == 0
            && self.keep_hourly == 0
            && self.keep_daily == 0
            && self.keep_weekly == 0
            && self.keep_monthly == 0
            && self.keep_yearly == 0
            && self.keep_within.is_none()
            && self.keep_within_hourly.is_none()
            && self.keep_within_daily.is_none()
            && self.keep_within_weekly.is_none()
            && self.keep_within_monthly.is_none()
            && self.keep_within_yearly.is_none()
            && self.keep_labels.is_empty()
    }
}

/// Rules for one bundle kind, replacing [`RetentionPolicy::default`] for that kind
/// (seed 003: manual keep 5, automatic keep 10).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KindRules {
    /// Rules for bundles a user asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual: Option<Rules>,
    /// Rules for scheduled and guard bundles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatic: Option<Rules>,
    /// Rules for safety bundles taken before a restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety: Option<Rules>,
}

impl KindRules {
    /// The override for `kind`, if any.
    pub fn get(&self, kind: BundleKind) -> Option<&Rules> {
        match kind {
            BundleKind::Manual => self.manual.as_ref(),
            BundleKind::Automatic => self.automatic.as_ref(),
            BundleKind::Safety => self.safety.as_ref(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&'static str, &Rules)> {
        [
            ("manual", self.manual.as_ref()),
            ("automatic", self.automatic.as_ref()),
            ("safety", self.safety.as_ref()),
        ]
        .into_iter()
        .filter_map(|(name, rules)| rules.map(|r| (name, r)))
    }
}

/// What bundles are grouped by before the rules are applied to each group on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// The set of services in the bundle (order and duplicates ignored).
    Services,
    /// The bundle kind (manual, automatic, safety).
    Kind,
}

fn default_group_by() -> Vec<GroupBy> {
    vec![GroupBy::Services, GroupBy::Kind]
}

/// A retention policy, as JSON for example:
///
/// ```json
/// { "default": { "keepDaily": 7, "keepWeekly": 4, "keepLabels": ["v*"] },
///   "kinds": { "manual": { "keepLast": 5 }, "automatic": { "keepLast": 10 } },
///   "groupBy": ["services", "kind"], "timeZone": "Europe/Berlin" }
/// ```
///
/// The default value has no rules at all, which [`plan`](super::plan) refuses: an empty
/// policy would remove everything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Rules for every kind without its own entry in [`RetentionPolicy::kinds`].
    #[serde(default)]
    pub default: Rules,
    /// Per-kind rules; each replaces `default` for its kind. Requires grouping by kind.
    #[serde(default)]
    pub kinds: KindRules,
    /// Grouping; the default is by service set and kind. Empty: one group for all.
    #[serde(default = "default_group_by")]
    pub group_by: Vec<GroupBy>,
    /// IANA time zone for the calendar buckets and `keepWithin` arithmetic; UTC when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Allow a plan that removes every bundle of a group (otherwise an error).
    #[serde(default)]
    pub allow_removing_all: bool,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            default: Rules::default(),
            kinds: KindRules::default(),
            group_by: default_group_by(),
            time_zone: None,
            allow_removing_all: false,
        }
    }
}

impl RetentionPolicy {
    /// Parses a policy from JSON, with errors naming the offending field.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| {
            Error::new(
                ErrorKind::InvalidConfig,
                format!("invalid retention policy: {e}"),
            )
            .with_hint(
                "fields are default, kinds (manual, automatic, safety), groupBy, timeZone, \
                 allowRemovingAll; rules are keepLast, keepHourly, keepDaily, keepWeekly, \
                 keepMonthly, keepYearly, keepWithin, keepWithinHourly … keepWithinYearly, \
                 keepLabels",
            )
        })
    }

    /// The rules that apply to bundles of `kind`.
    pub fn rules_for(&self, kind: BundleKind) -> &Rules {
        self.kinds.get(kind).unwrap_or(&self.default)
    }

    /// Checks the policy and resolves its time zone.
    pub(crate) fn validate(&self) -> Result<TimeZone> {
        let all_empty = self.default.is_empty() && self.kinds.iter().all(|(_, r)| r.is_empty());
        if all_empty {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "the retention policy has no rules, so it would remove every bundle",
            )
            .with_hint(
                "set at least one rule, e.g. {\"default\": {\"keepLast\": 5}}; to remove \
                 bundles one by one, delete them by id",
            ));
        }
        let has_overrides = self.kinds.iter().next().is_some();
        if has_overrides && !self.group_by.contains(&GroupBy::Kind) {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "the retention policy has per-kind rules but does not group by kind",
            )
            .with_hint("add \"kind\" to groupBy, e.g. \"groupBy\": [\"services\", \"kind\"]"));
        }
        let labelled = std::iter::once(("default", &self.default)).chain(self.kinds.iter());
        for (name, rules) in labelled {
            if rules.keep_labels.iter().any(|p| p.is_empty()) {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    format!("the {name} retention rules have an empty keepLabels pattern"),
                )
                .with_hint("use a pattern such as \"v*\" or \"before-*\"; \"*\" keeps every labelled bundle"));
            }
        }
        match &self.time_zone {
            None => Ok(TimeZone::UTC),
            Some(name) => TimeZone::get(name).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidConfig,
                    format!("unknown time zone {name:?} in the retention policy: {e}"),
                )
                .with_hint("use an IANA time zone name such as \"Europe/Berlin\" or \"UTC\"")
            }),
        }
    }
}
