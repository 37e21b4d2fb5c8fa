//! `[[schedules]]`: when `schedule run` makes backups.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Issues, ServiceConfig};

/// How often a schedule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleEvery {
    /// Every hour, at the minute of `at`.
    Hourly,
    /// Every day at `at`.
    Daily,
    /// Every week on `weekday` at `at`.
    Weekly,
    /// Every month on `day` at `at`.
    Monthly,
}

/// One schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Its name (in the run history and the bundles' reason).
    pub name: String,
    /// How often (or give `cron` instead).
    #[serde(default)]
    pub every: Option<ScheduleEvery>,
    /// A cron expression (`minute hour day-of-month month day-of-week`) instead of `every`.
    #[serde(default)]
    pub cron: Option<String>,
    /// Time of day, `HH:MM` (`00:00` when absent).
    #[serde(default)]
    pub at: Option<String>,
    /// Weekly: `mon` … `sun`.
    #[serde(default)]
    pub weekday: Option<String>,
    /// Monthly: day of the month, 1–28.
    #[serde(default)]
    pub day: Option<u8>,
    /// IANA time zone of `at` (UTC when absent).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Only these services (all when absent).
    #[serde(default)]
    pub services: Option<Vec<String>>,
    /// Label of the bundles it makes.
    #[serde(default)]
    pub label: Option<String>,
    /// Retention applied to this schedule's own bundles after each run.
    #[serde(default)]
    pub retention: Option<backup_repository::retention::RetentionPolicy>,
}

/// `HH:MM` → (hour, minute).
pub(crate) fn parse_at(at: &str) -> Option<(i8, i8)> {
    let (h, m) = at.split_once(':')?;
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some((h, m))
}

pub(crate) const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl ScheduleConfig {
    pub(super) fn check(
        &self,
        field: &str,
        services: &BTreeMap<String, ServiceConfig>,
        issues: &mut Issues,
    ) {
        if self.name.trim().is_empty() {
            issues.add(format!("{field}.name"), "must not be empty");
        }
        if let Some(at) = &self.at {
            if parse_at(at).is_none() {
                issues.add(format!("{field}.at"), "must read HH:MM, e.g. \"02:30\"");
            }
        }
        if self.every.is_some() == self.cron.is_some() {
            issues.add(
                field.to_string(),
                "give `every` (hourly, daily, weekly, monthly) or `cron`, not both",
            );
        }
        match (self.every, &self.weekday, self.day) {
            (Some(ScheduleEvery::Weekly), None, _) => issues.add(
                format!("{field}.weekday"),
                "a weekly schedule needs a weekday (mon … sun)",
            ),
            (Some(ScheduleEvery::Weekly), Some(w), _) if !WEEKDAYS.contains(&w.as_str()) => issues
                .add(
                    format!("{field}.weekday"),
                    "must be one of mon, tue, wed, thu, fri, sat, sun",
                ),
            (Some(ScheduleEvery::Monthly), _, None) => issues.add(
                format!("{field}.day"),
                "a monthly schedule needs a day (1-28)",
            ),
            (Some(ScheduleEvery::Monthly), _, Some(d)) if !(1..=28).contains(&d) => {
                issues.add(format!("{field}.day"), "must be between 1 and 28")
            }
            _ => {}
        }
        if let Some(tz) = &self.time_zone {
            if jiff::tz::TimeZone::get(tz).is_err() {
                issues.add(
                    format!("{field}.timeZone"),
                    format!("unknown time zone {tz:?}"),
                );
            }
        }
        for name in self.services.iter().flatten() {
            if !services.contains_key(name) {
                issues.add(
                    format!("{field}.services"),
                    format!("`{name}` is not a configured service"),
                );
            }
        }
    }
}
