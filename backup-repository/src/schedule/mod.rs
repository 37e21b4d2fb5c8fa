//! Schedules: backups that run daily, weekly, monthly or on a cron expression, in an
//! IANA time zone, each with its services, label and retention policy.
//!
//! A [`Scheduler`] runs them inside the host's tokio runtime until it is cancelled; see
//! its docs for what a run does and the guarantees (no overlap, failures reported and
//! recorded, missed runs).
//!
//! # Wall-clock times and DST
//!
//! A schedule's time is a wall-clock time in its time zone (`02:30` in `Europe/Berlin`),
//! and it runs when the wall clock shows it, whatever the UTC offset that day:
//!
//! - **A time that does not exist** (spring forward: 02:30 on the day clocks jump from
//!   02:00 to 03:00) runs once, at the first instant after the jump (03:00 local time).
//!   Every cron time inside the skipped hour runs at that same instant, once.
//! - **A time that happens twice** (fall back: 01:30 on the day clocks go from 02:00 back
//!   to 01:00) runs once, at its first occurrence (before the clocks go back); the
//!   repeated hour does not run again, also for cron expressions that match every minute
//!   of it.
//! - **Monthly on the 29th, 30th or 31st** runs on the last day of a shorter month
//!   (the 31st runs on 30 April and on 28 or 29 February).
//!
//! # Missed runs
//!
//! When the host was down at a scheduled time, the scheduler finds out at start-up: the
//! newest run of the schedule in the [run history](crate::history) is older than the
//! schedule's last occurrence before now. [`MissedRun::RunOnce`] runs it once right away
//! (however many occurrences were missed); [`MissedRun::Skip`] waits for the next
//! occurrence and reports the skip. A schedule that has never run has missed nothing.

mod config;
mod cron;
mod occurrence;
mod retention;
mod scheduler;

use std::sync::Arc;

use backup_core::{Error, ErrorKind, Result};
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;

pub use self::cron::CronExpr;
pub use config::{Every, ScheduleConfig};
pub use occurrence::Recurrence;
pub use scheduler::{RunReport, Scheduler, SchedulerEvent, SchedulerHandle, DEFAULT_LOCK_WAIT};

use crate::clock::Clock;
use crate::retention::RetentionPolicy;

/// What the scheduler does about a run missed while the host was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedRun {
    /// Run it once at start-up (the default).
    #[default]
    RunOnce,
    /// Skip it; wait for the next occurrence.
    Skip,
}

/// One scheduled backup.
#[derive(Debug, Clone)]
pub struct Schedule {
    name: String,
    recurrence: Recurrence,
    time_zone: TimeZone,
    services: Option<Vec<String>>,
    label: Option<String>,
    retention: Option<RetentionPolicy>,
    missed: MissedRun,
}

impl Schedule {
    /// A schedule named `name` (unique per scheduler; its runs' trigger is
    /// `schedule:<name>`) recurring in time zone `time_zone` (an IANA name such as
    /// `Europe/Berlin`, or `UTC`). It backs up every service with an exporter, labels
    /// bundles with `name`, applies no retention and runs a missed run once.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for an empty name, an unknown time zone or a monthly
    /// day outside 1 to 31.
    pub fn new(name: &str, recurrence: Recurrence, time_zone: &str) -> Result<Schedule> {
        if name.trim().is_empty() {
            return Err(
                Error::new(ErrorKind::InvalidInput, "a schedule needs a name")
                    .with_hint("name it after what it does, e.g. `nightly`"),
            );
        }
        if let Recurrence::Monthly { day, .. } = recurrence {
            if !(1..=31).contains(&day) {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("schedule `{name}`: day of month {day} is not between 1 and 31"),
                ));
            }
        }
        let tz = TimeZone::get(time_zone).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("schedule `{name}`: unknown time zone `{time_zone}`: {e}"),
            )
            .with_hint("use an IANA time zone name such as `Europe/Berlin` or `UTC`")
        })?;
        Ok(Schedule {
            name: name.to_string(),
            recurrence,
            time_zone: tz,
            services: None,
            label: None,
            retention: None,
            missed: MissedRun::default(),
        })
    }

    /// Every day at `at`.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn daily(name: &str, at: Time, time_zone: &str) -> Result<Schedule> {
        Self::new(name, Recurrence::Daily { at }, time_zone)
    }

    /// Every week on `weekday` at `at`.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn weekly(name: &str, weekday: Weekday, at: Time, time_zone: &str) -> Result<Schedule> {
        Self::new(name, Recurrence::Weekly { weekday, at }, time_zone)
    }

    /// Every month on `day` (1 to 31; the last day of shorter months) at `at`.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn monthly(name: &str, day: i8, at: Time, time_zone: &str) -> Result<Schedule> {
        Self::new(name, Recurrence::Monthly { day, at }, time_zone)
    }

    /// On a five-field cron expression, in wall-clock time of `time_zone`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a bad expression (naming it, with a hint), and as
    /// [`new`](Self::new).
    pub fn cron(name: &str, expression: &str, time_zone: &str) -> Result<Schedule> {
        Self::new(
            name,
            Recurrence::Cron(CronExpr::parse(expression)?),
            time_zone,
        )
    }

    /// Backs up only these services.
    pub fn with_services<S: Into<String>>(mut self, services: impl IntoIterator<Item = S>) -> Self {
        self.services = Some(services.into_iter().map(Into::into).collect());
        self
    }

    /// Labels its bundles `label` (default: the schedule's name).
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Applies `policy` after every successful run, to this schedule's bundles only
    /// (kind `automatic`, this schedule's label); locked bundles are never removed.
    pub fn with_retention(mut self, policy: RetentionPolicy) -> Self {
        self.retention = Some(policy);
        self
    }

    /// What to do about a run missed while the host was down.
    pub fn with_missed_run(mut self, missed: MissedRun) -> Self {
        self.missed = missed;
        self
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The label its bundles get.
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }

    /// The trigger its runs are recorded with: `schedule:<name>`.
    pub fn trigger(&self) -> String {
        format!("schedule:{}", self.name)
    }

    /// How it recurs.
    pub fn recurrence(&self) -> &Recurrence {
        &self.recurrence
    }

    /// Its time zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    /// The services it backs up (`None`: all with an exporter).
    pub fn services(&self) -> Option<&[String]> {
        self.services.as_deref()
    }

    /// Its retention policy.
    pub fn retention(&self) -> Option<&RetentionPolicy> {
        self.retention.as_ref()
    }

    /// What it does about a missed run.
    pub fn missed_run(&self) -> MissedRun {
        self.missed
    }

    /// Its first occurrence strictly after `after`, with the DST rules of the module docs.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] when none can be computed (out of the date range).
    pub fn next_after(&self, after: Timestamp) -> Result<Timestamp> {
        self.recurrence.next_after(&self.time_zone, after)
    }

    /// Its next occurrence after now by `clock`.
    ///
    /// # Errors
    ///
    /// As [`next_after`](Self::next_after).
    pub fn next_run(&self, clock: &Arc<dyn Clock>) -> Result<Timestamp> {
        self.next_after(clock.now())
    }
}
