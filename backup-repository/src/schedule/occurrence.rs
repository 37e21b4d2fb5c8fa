//! Next-occurrence math: civil (wall clock) occurrences in a time zone, mapped to
//! instants with the DST rules the [module docs](super) describe.

use backup_core::{Error, ErrorKind, Result};
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};

use super::cron::CronExpr;

/// How often a schedule runs, in wall-clock time of its time zone.
#[derive(Debug, Clone, PartialEq)]
pub enum Recurrence {
    /// Every day at this time.
    Daily {
        /// Time of day.
        at: Time,
    },
    /// Every week on this weekday at this time.
    Weekly {
        /// Day of the week.
        weekday: Weekday,
        /// Time of day.
        at: Time,
    },
    /// Every month on this day (1 to 31) at this time. In a month shorter than `day`
    /// (the 31st in April, the 30th in February) it runs on the month's last day.
    Monthly {
        /// Day of the month, 1 to 31.
        day: i8,
        /// Time of day.
        at: Time,
    },
    /// A cron expression (minute hour day-of-month month day-of-week).
    Cron(CronExpr),
}

/// Most civil candidates looked at to find one occurrence (a repeated hour of minutely
/// cron runs is 60 of them; a cron that never matches is refused at parse time).
const MAX_CANDIDATES: usize = 10_000;

impl Recurrence {
    /// The first wall-clock occurrence strictly after `after`.
    fn next_civil(&self, after: DateTime) -> Result<DateTime> {
        let date = after.date();
        let next = match self {
            Recurrence::Daily { at } => {
                if after.time() < *at {
                    date.to_datetime(*at)
                } else {
                    tomorrow(date)?.to_datetime(*at)
                }
            }
            Recurrence::Weekly { weekday, at } => {
                let mut day = date;
                while day.weekday() != *weekday || day.to_datetime(*at) <= after {
                    day = tomorrow(day)?;
                }
                day.to_datetime(*at)
            }
            Recurrence::Monthly { day, at } => {
                let this = day_in_month(date, *day).to_datetime(*at);
                if this > after {
                    this
                } else {
                    let next_month = date
                        .first_of_month()
                        .checked_add(1.month())
                        .map_err(|e| out_of_range(e.to_string()))?;
                    day_in_month(next_month, *day).to_datetime(*at)
                }
            }
            Recurrence::Cron(cron) => cron.next_civil(after)?,
        };
        Ok(next)
    }

    /// The first occurrence strictly after `after`, in `tz`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] when no occurrence can be found (out of the supported
    /// date range).
    pub fn next_after(&self, tz: &TimeZone, after: Timestamp) -> Result<Timestamp> {
        let mut civil = tz.to_datetime(after);
        for _ in 0..MAX_CANDIDATES {
            civil = self.next_civil(civil)?;
            let at = resolve(tz, civil)?;
            if at > after {
                return Ok(at);
            }
        }
        Err(out_of_range(format!(
            "no occurrence after {after} within {MAX_CANDIDATES} candidates"
        )))
    }
}

/// `day` of the month of `date`, or the month's last day when it is shorter.
fn day_in_month(date: Date, day: i8) -> Date {
    let last = date.days_in_month();
    date.first_of_month()
        .checked_add(i64::from(day.clamp(1, last) - 1).days())
        .unwrap_or(date)
}

fn tomorrow(date: Date) -> Result<Date> {
    date.tomorrow().map_err(|e| out_of_range(e.to_string()))
}

fn out_of_range(what: String) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("cannot compute the next run: {what}"),
    )
}

/// The instant a wall-clock time means in `tz`: the only one; the earlier of two in a
/// repeated hour (fall back); and, for a time skipped by a jump forward (spring
/// forward), the instant of the jump, the first that exists after it.
pub(crate) fn resolve(tz: &TimeZone, civil: DateTime) -> Result<Timestamp> {
    let ambiguous = tz.to_ambiguous_timestamp(civil);
    let resolved = match ambiguous.offset() {
        AmbiguousOffset::Gap { after, .. } => {
            // Read with the offset after the jump, `civil` lies before the jump: the next
            // transition is the jump itself.
            let before_jump = after
                .to_timestamp(civil)
                .map_err(|e| out_of_range(e.to_string()))?;
            match tz.following(before_jump).next() {
                Some(jump) => Ok(jump.timestamp()),
                None => ambiguous.compatible(),
            }
        }
        _ => ambiguous.earlier(),
    };
    resolved.map_err(|e| out_of_range(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).expect("time zone")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn at(h: i8, m: i8) -> Time {
        Time::new(h, m, 0, 0).expect("time")
    }

    /// The next `n` occurrences after `from`.
    fn series(r: &Recurrence, zone: &str, from: &str, n: usize) -> Vec<String> {
        let zone = tz(zone);
        let mut t = ts(from);
        (0..n)
            .map(|_| {
                t = r.next_after(&zone, t).expect("next");
                t.to_string()
            })
            .collect()
    }

    #[test]
    fn daily_runs_at_the_local_time_across_both_dst_changes_in_new_york() {
        let r = Recurrence::Daily { at: at(2, 30) };
        // 2026-03-08: 02:30 does not exist (02:00 EST jumps to 03:00 EDT): the run is at
        // the jump, 03:00 EDT = 07:00Z, once.
        assert_eq!(
            series(&r, "America/New_York", "2026-03-06T12:00:00Z", 4),
            [
                "2026-03-07T07:30:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-09T06:30:00Z",
                "2026-03-10T06:30:00Z"
            ]
        );
        // 2026-11-01: 01:30 happens twice; a 01:30 schedule runs at the first (EDT).
        let r = Recurrence::Daily { at: at(1, 30) };
        assert_eq!(
            series(&r, "America/New_York", "2026-10-31T00:00:00Z", 3),
            [
                "2026-10-31T05:30:00Z",
                "2026-11-01T05:30:00Z",
                "2026-11-02T06:30:00Z"
            ]
        );
    }

    #[test]
    fn a_time_in_the_repeated_hour_is_not_run_again_in_its_second_pass() {
        let r = Recurrence::Daily { at: at(1, 30) };
        // Asked during the second 01:30 (EST, 06:30Z), the next run is the next day.
        let next = r
            .next_after(&tz("America/New_York"), ts("2026-11-01T06:15:00Z"))
            .expect("next");
        assert_eq!(next, ts("2026-11-02T06:30:00Z"));
    }

    #[test]
    fn daily_in_berlin_across_both_dst_changes() {
        let r = Recurrence::Daily { at: at(2, 30) };
        assert_eq!(
            series(&r, "Europe/Berlin", "2026-03-28T12:00:00Z", 2),
            ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
            "02:30 is skipped on 03-29: the run is at the jump (03:00 CEST)"
        );
        assert_eq!(
            series(&r, "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
            "02:30 twice on 10-25: once, at the first (CEST)"
        );
    }

    #[test]
    fn weekly_runs_on_its_weekday() {
        let r = Recurrence::Weekly {
            weekday: Weekday::Sunday,
            at: at(4, 0),
        };
        // 2026-11-29 is a Sunday.
        assert_eq!(
            series(&r, "UTC", "2026-11-29T04:00:00Z", 2),
            ["2026-12-06T04:00:00Z", "2026-12-13T04:00:00Z"]
        );
        assert_eq!(
            series(&r, "UTC", "2026-11-29T03:59:00Z", 1),
            ["2026-11-29T04:00:00Z"]
        );
    }

    #[test]
    fn monthly_on_the_31st_runs_on_the_last_day_of_shorter_months() {
        let r = Recurrence::Monthly {
            day: 31,
            at: at(0, 0),
        };
        assert_eq!(
            series(&r, "UTC", "2027-01-01T00:00:00Z", 5),
            [
                "2027-01-31T00:00:00Z",
                "2027-02-28T00:00:00Z",
                "2027-03-31T00:00:00Z",
                "2027-04-30T00:00:00Z",
                "2027-05-31T00:00:00Z"
            ]
        );
        let leap = Recurrence::Monthly {
            day: 30,
            at: at(12, 0),
        };
        assert_eq!(
            series(&leap, "UTC", "2028-02-01T00:00:00Z", 2),
            ["2028-02-29T12:00:00Z", "2028-03-30T12:00:00Z"]
        );
    }

    #[test]
    fn an_occurrence_exactly_now_is_not_next() {
        let r = Recurrence::Daily { at: at(3, 0) };
        let next = r
            .next_after(&tz("UTC"), ts("2026-11-30T03:00:00Z"))
            .expect("next");
        assert_eq!(next, ts("2026-12-01T03:00:00Z"));
    }
}
