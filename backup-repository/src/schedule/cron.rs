//! Cron expressions, parsed by `croner` and searched in wall-clock time (jiff civil
//! datetimes); the time zone and its DST rules are applied by the caller.

use std::cmp::Ordering;
use std::str::FromStr;
use std::sync::Arc;

use backup_core::{Error, ErrorKind, Result};
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};
use croner::time::{CivilDate, CivilDateTime, CivilTime, CronDateTime, Resolution, Weekday};
use croner::Cron;
use jiff::civil::DateTime;
use jiff::SignedDuration;

/// A cron expression of five fields: minute, hour, day of month, month, day of week
/// (`30 2 * * *`, `0 4 * * SUN`, `0 3 1-7 * MON`, `@daily`, `@weekly`, …; `L` for the
/// last day of the month, `#` for the nth weekday, as `croner` reads them). It matches
/// wall-clock times of the schedule's time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct CronExpr {
    text: String,
    cron: Arc<Cron>,
}

impl CronExpr {
    /// Parses a five-field cron expression.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] naming the expression and what is wrong with it, with
    /// a hint showing the expected form; also for an expression that never matches
    /// (`0 0 30 2 *`).
    pub fn parse(text: &str) -> Result<CronExpr> {
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(text).map_err(|e| bad(text, &e.to_string()))?;
        let expr = CronExpr {
            text: text.trim().to_string(),
            cron: Arc::new(cron),
        };
        let probe = DateTime::constant(2000, 1, 1, 0, 0, 0, 0);
        expr.next_civil(probe)
            .map_err(|_| bad(text, "it matches no date (a day that no month has?)"))?;
        Ok(expr)
    }

    /// The expression as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first wall-clock time strictly after `after` that matches.
    pub(crate) fn next_civil(&self, after: DateTime) -> Result<DateTime> {
        let start = Civil(after.with().subsec_nanosecond(0).build().unwrap_or(after));
        self.cron
            .find_next_occurrence(&start, false)
            .map(|c| c.0)
            .map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("cron `{}`: no next run after {after}: {e}", self.text),
                )
            })
    }
}

impl FromStr for CronExpr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        CronExpr::parse(s)
    }
}

impl std::fmt::Display for CronExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn bad(text: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("`{text}` is not a valid cron expression: {why}"),
    )
    .with_hint(
        "use five fields: minute hour day-of-month month day-of-week, e.g. `30 2 * * *` \
         (daily at 02:30) or `0 4 * * SUN`",
    )
}

/// A jiff civil datetime for croner: a pure wall-clock search, no time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Civil(DateTime);

impl CronDateTime for Civil {
    fn to_civil(&self) -> CivilDateTime {
        let d = self.0;
        CivilDateTime::new(
            CivilDate::from_parts_unchecked(
                i32::from(d.year()),
                d.month().unsigned_abs().into(),
                d.day().unsigned_abs().into(),
            ),
            CivilTime::from_parts_unchecked(
                d.hour().unsigned_abs().into(),
                d.minute().unsigned_abs().into(),
                d.second().unsigned_abs().into(),
            ),
        )
    }

    fn civil_weekday(&self) -> Weekday {
        Weekday::from_days_from_sunday(
            self.0
                .weekday()
                .to_sunday_zero_offset()
                .unsigned_abs()
                .into(),
        )
    }

    fn resolve_civil(
        &self,
        civil: CivilDateTime,
    ) -> std::result::Result<Resolution<Self>, CronError> {
        let year = i16::try_from(civil.year()).map_err(|_| CronError::InvalidDate)?;
        let part = |v: u32| i8::try_from(v).map_err(|_| CronError::InvalidDate);
        DateTime::new(
            year,
            part(civil.month())?,
            part(civil.day())?,
            part(civil.hour())?,
            part(civil.minute())?,
            part(civil.second())?,
            0,
        )
        .map(|d| Resolution::Single(Civil(d)))
        .map_err(|_| CronError::InvalidDate)
    }

    fn checked_add_seconds(&self, seconds: i64) -> Option<Self> {
        self.0
            .checked_add(SignedDuration::from_secs(seconds))
            .ok()
            .map(Civil)
    }

    fn cmp_instant(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn next(expr: &str, after: DateTime) -> DateTime {
        CronExpr::parse(expr)
            .expect("parse")
            .next_civil(after)
            .expect("next")
    }

    #[test]
    fn cron_finds_the_next_wall_clock_match() {
        let from = date(2026, 11, 30).at(2, 30, 0, 0); // a Monday
        assert_eq!(next("30 2 * * *", from), date(2026, 12, 1).at(2, 30, 0, 0));
        assert_eq!(next("0 4 * * SUN", from), date(2026, 12, 6).at(4, 0, 0, 0));
        assert_eq!(
            next("*/15 * * * *", from),
            date(2026, 11, 30).at(2, 45, 0, 0)
        );
        assert_eq!(next("0 0 L * *", from), date(2026, 12, 31).at(0, 0, 0, 0));
        assert_eq!(next("@daily", from), date(2026, 12, 1).at(0, 0, 0, 0));
    }

    #[test]
    fn a_bad_cron_expression_is_refused_naming_it_with_a_hint() {
        for bad in [
            "",
            "61 * * * *",
            "* * *",
            "0 0 * * FOO",
            "0 0 30 2 *",
            "0 0 0 * * * *",
        ] {
            let err = CronExpr::parse(bad).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
            assert!(err.message().contains(&format!("`{bad}`")), "{err}");
            assert!(
                err.hint().is_some_and(|h| h.contains("five fields")),
                "{err}"
            );
        }
    }
}
