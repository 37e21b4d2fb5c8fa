//! Retention durations such as `7d`, `2w`, `1y` or `1y6m`: calendar amounts, counted
//! back from the newest bundle of a group in the policy's time zone.

use std::fmt;
use std::str::FromStr;

use backup_core::{Error, ErrorKind, Result};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A calendar duration for the `keepWithin*` rules: years (`y`), months (`m`), weeks
/// (`w`), days (`d`) and hours (`h`), written like restic's `2y5m7d3h`.
///
/// Years, months, weeks and days are calendar units: `1d` back from 23:30 on the day
/// after a daylight saving change is 23:30 the day before, even though only 23 real
/// hours lie between. Hours are real hours. Serialized as its text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RetentionDuration {
    /// Years.
    pub years: u32,
    /// Months.
    pub months: u32,
    /// Weeks.
    pub weeks: u32,
    /// Days.
    pub days: u32,
    /// Hours.
    pub hours: u32,
}

impl RetentionDuration {
    /// Whether every component is zero (the rule is off).
    pub fn is_zero(&self) -> bool {
        *self == RetentionDuration::default()
    }

    /// The instant this duration before `newest`, counted in `tz`.
    pub(crate) fn before(&self, newest: Timestamp, tz: &TimeZone) -> Result<Timestamp> {
        let overflow = |e: jiff::Error| {
            Error::new(
                ErrorKind::InvalidConfig,
                format!("retention duration {self} is out of range: {e}"),
            )
            .with_hint("use a duration of at most a few hundred years")
        };
        let calendar = Span::new()
            .try_years(i64::from(self.years))
            .and_then(|s| s.try_months(i64::from(self.months)))
            .and_then(|s| s.try_weeks(i64::from(self.weeks)))
            .and_then(|s| s.try_days(i64::from(self.days)))
            .map_err(overflow)?;
        let hours = Span::new()
            .try_hours(i64::from(self.hours))
            .map_err(overflow)?;
        let zoned = newest.to_zoned_datetime(tz.clone());
        let zoned = zoned.checked_sub(calendar).map_err(overflow)?;
        let zoned = zoned.checked_sub(hours).map_err(overflow)?;
        Ok(zoned.timestamp())
    }
}

impl fmt::Display for RetentionDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0d");
        }
        for (n, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.weeks, 'w'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

fn duration_error(text: &str, problem: &str) -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        format!("invalid retention duration {text:?}: {problem}"),
    )
    .with_hint(
        "write a number followed by a unit, y (years), m (months), w (weeks), d (days) or \
         h (hours), optionally combined: \"7d\", \"2w\", \"1y\", \"1y6m\"",
    )
}

impl FromStr for RetentionDuration {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(duration_error(text, "it is empty"));
        }
        let mut out = RetentionDuration::default();
        let mut seen = String::new();
        let mut digits = String::new();
        for c in trimmed.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            if digits.is_empty() {
                return Err(duration_error(
                    text,
                    &format!("unit {c:?} has no number before it"),
                ));
            }
            let n: u32 = digits
                .parse()
                .map_err(|_| duration_error(text, &format!("{digits} is too large")))?;
            digits.clear();
            let slot = match c {
                'y' => &mut out.years,
                'm' => &mut out.months,
                'w' => &mut out.weeks,
                'd' => &mut out.days,
                'h' => &mut out.hours,
                other => return Err(duration_error(text, &format!("unknown unit {other:?}"))),
            };
            if seen.contains(c) {
                return Err(duration_error(text, &format!("unit {c:?} appears twice")));
            }
            seen.push(c);
            *slot = n;
        }
        if !digits.is_empty() {
            return Err(duration_error(
                text,
                &format!("{digits} has no unit (did you mean {digits}d?)"),
            ));
        }
        if out.is_zero() {
            return Err(duration_error(
                text,
                "it is zero; leave the rule out instead",
            ));
        }
        Ok(out)
    }
}

impl Serialize for RetentionDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RetentionDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|e: Error| {
            let hint = e.hint().map(|h| format!(" ({h})")).unwrap_or_default();
            serde::de::Error::custom(format!("{}{hint}", e.message()))
        })
    }
}
