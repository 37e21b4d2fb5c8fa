//! Schedules as JSON, the way a host stores them.

use backup_core::{Error, ErrorKind, Result};
use jiff::civil::{Time, Weekday};
use serde::{Deserialize, Serialize};

use super::{MissedRun, Recurrence, Schedule};
use crate::retention::RetentionPolicy;

/// How often a [`ScheduleConfig`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Every {
    /// Every day at `at`.
    Daily,
    /// Every week on `weekday` at `at`.
    Weekly,
    /// Every month on `day` at `at`.
    Monthly,
}

/// A schedule as JSON (camelCase), for example
/// `{"name": "nightly", "every": "daily", "at": "02:30", "timeZone": "Europe/Berlin",
/// "services": ["db"], "retention": {"default": {"keepDaily": 7}}}`, or with
/// `"cron": "30 2 * * *"` instead of `every`/`at`. `missedRun` is `"run-once"` (default)
/// or `"skip"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Unique name; runs are recorded with trigger `schedule:<name>`.
    pub name: String,
    /// Daily, weekly or monthly (or use `cron`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Every>,
    /// Time of day, `HH:MM` or `HH:MM:SS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// Weekly: `monday` … `sunday` (or `mon` … `sun`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekday: Option<String>,
    /// Monthly: day of the month, 1 to 31 (the last day of shorter months).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<i8>,
    /// A five-field cron expression, instead of `every`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// IANA time zone; `UTC` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Services to back up; all with an exporter when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<String>>,
    /// Bundle label; the name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Retention applied to this schedule's bundles after every successful run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPolicy>,
    /// `run-once` or `skip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed_run: Option<String>,
}

fn invalid(name: &str, what: String, hint: &str) -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        format!("schedule `{name}`: {what}"),
    )
    .with_hint(hint)
}

fn weekday(name: &str, text: &str) -> Result<Weekday> {
    let days = [
        ("mon", Weekday::Monday),
        ("tue", Weekday::Tuesday),
        ("wed", Weekday::Wednesday),
        ("thu", Weekday::Thursday),
        ("fri", Weekday::Friday),
        ("sat", Weekday::Saturday),
        ("sun", Weekday::Sunday),
    ];
    let lower = text.to_ascii_lowercase();
    days.iter()
        .find(|(short, day)| lower == *short || lower == format!("{day:?}").to_ascii_lowercase())
        .map(|(_, day)| *day)
        .ok_or_else(|| {
            invalid(
                name,
                format!("`{text}` is not a weekday"),
                "use monday … sunday (or mon … sun)",
            )
        })
}

impl ScheduleConfig {
    /// The schedule this config describes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] naming the field (both or neither of `every` and
    /// `cron`, a missing `at`/`weekday`/`day`, a bad time, weekday or `missedRun`);
    /// [`ErrorKind::InvalidInput`] for a bad cron expression or time zone.
    pub fn to_schedule(&self) -> Result<Schedule> {
        let name = self.name.as_str();
        let at = || -> Result<Time> {
            let text = self.at.as_deref().ok_or_else(|| {
                invalid(
                    name,
                    "`at` is missing".into(),
                    "give the time of day, e.g. \"02:30\"",
                )
            })?;
            text.parse::<Time>().map_err(|e| {
                invalid(
                    name,
                    format!("`at` = `{text}`: {e}"),
                    "use HH:MM, e.g. \"02:30\"",
                )
            })
        };
        let recurrence = match (self.every, &self.cron) {
            (Some(Every::Daily), None) => Recurrence::Daily { at: at()? },
            (Some(Every::Weekly), None) => {
                let day = self.weekday.as_deref().ok_or_else(|| {
                    invalid(
                        name,
                        "`weekday` is missing".into(),
                        "e.g. \"weekday\": \"sunday\"",
                    )
                })?;
                Recurrence::Weekly {
                    weekday: weekday(name, day)?,
                    at: at()?,
                }
            }
            (Some(Every::Monthly), None) => Recurrence::Monthly {
                day: self
                    .day
                    .ok_or_else(|| invalid(name, "`day` is missing".into(), "e.g. \"day\": 1"))?,
                at: at()?,
            },
            (None, Some(cron)) => Recurrence::Cron(super::CronExpr::parse(cron)?),
            _ => {
                return Err(invalid(
                    name,
                    "give exactly one of `every` and `cron`".into(),
                    "e.g. \"every\": \"daily\", \"at\": \"02:30\" or \"cron\": \"30 2 * * *\"",
                ))
            }
        };
        let mut schedule =
            Schedule::new(name, recurrence, self.time_zone.as_deref().unwrap_or("UTC"))?;
        schedule.services = self.services.clone();
        schedule.label = self.label.clone();
        schedule.retention = self.retention.clone();
        schedule.missed = match self.missed_run.as_deref() {
            None | Some("run-once") => MissedRun::RunOnce,
            Some("skip") => MissedRun::Skip,
            Some(other) => {
                return Err(invalid(
                    name,
                    format!("`missedRun` = `{other}`"),
                    "use \"run-once\" or \"skip\"",
                ))
            }
        };
        Ok(schedule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<Schedule> {
        serde_json::from_value::<ScheduleConfig>(v)
            .map_err(|e| Error::new(ErrorKind::InvalidConfig, e.to_string()))?
            .to_schedule()
    }

    #[test]
    fn a_schedule_reads_from_json() {
        let s = parse(
            json!({"name": "weekly", "every": "weekly", "weekday": "Sun",
            "at": "04:00", "timeZone": "Europe/Berlin", "services": ["db"],
            "retention": {"default": {"keepWeekly": 4}}, "missedRun": "skip"}),
        )
        .expect("schedule");
        assert_eq!(
            s.recurrence(),
            &Recurrence::Weekly {
                weekday: Weekday::Sunday,
                at: Time::constant(4, 0, 0, 0)
            }
        );
        assert_eq!(s.time_zone().iana_name(), Some("Europe/Berlin"));
        assert_eq!(s.services(), Some(&["db".to_string()][..]));
        assert_eq!((s.label(), s.missed_run()), ("weekly", MissedRun::Skip));
        assert!(s.retention().is_some());
        let cron = parse(json!({"name": "c", "cron": "0 3 * * MON-FRI"})).expect("cron");
        assert!(
            matches!(cron.recurrence(), Recurrence::Cron(c) if c.as_str() == "0 3 * * MON-FRI")
        );
    }

    #[test]
    fn a_bad_schedule_config_names_the_field() {
        for (config, says) in [
            (json!({"name": "a", "every": "daily"}), "`at` is missing"),
            (
                json!({"name": "a", "every": "daily", "at": "25:00"}),
                "`at` = `25:00`",
            ),
            (
                json!({"name": "a", "every": "weekly", "at": "01:00", "weekday": "someday"}),
                "`someday` is not a weekday",
            ),
            (
                json!({"name": "a", "every": "monthly", "at": "01:00", "day": 32}),
                "day of month 32",
            ),
            (
                json!({"name": "a", "every": "daily", "at": "01:00", "cron": "* * * * *"}),
                "exactly one",
            ),
            (
                json!({"name": "a", "cron": "* * *"}),
                "not a valid cron expression",
            ),
            (
                json!({"name": "a", "cron": "0 0 * * *", "missedRun": "later"}),
                "`missedRun`",
            ),
        ] {
            let err = parse(config.clone()).expect_err(&config.to_string());
            assert!(err.message().contains(says), "{config}: {err}");
        }
    }
}
