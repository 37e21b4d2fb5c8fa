//! Applying one group's rules: calendar buckets, counts, `keepWithin` windows.
//!
//! The bundles are walked newest first. A calendar rule keeps a bundle when it opens a
//! new bucket (hour, day, ISO week, month, year in the policy's time zone) and the rule
//! still has count left; that bundle is the newest of its bucket. When the walk reaches
//! the oldest bundle and a count is still unfilled, the oldest bundle is kept too
//! ("oldest daily #5"), which keeps the longest history the counts allow.

use backup_core::Result;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::duration::RetentionDuration;
use super::glob;
use super::policy::Rules;

/// Calendar position of one bundle in the policy's time zone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keys {
    hour: i64,
    day: i64,
    week: i64,
    month: i64,
    year: i64,
}

impl Keys {
    pub(crate) fn of(created: Timestamp, tz: &TimeZone) -> Keys {
        let z = created.to_zoned_datetime(tz.clone());
        let year = i64::from(z.year());
        let month = year * 100 + i64::from(z.month());
        let day = month * 100 + i64::from(z.day());
        let hour = day * 100 + i64::from(z.hour());
        let iso = z.date().iso_week_date();
        let week = i64::from(iso.year()) * 100 + i64::from(iso.week());
        Keys {
            hour,
            day,
            week,
            month,
            year,
        }
    }

    fn get(&self, unit: Unit) -> i64 {
        match unit {
            Unit::Hour => self.hour,
            Unit::Day => self.day,
            Unit::Week => self.week,
            Unit::Month => self.month,
            Unit::Year => self.year,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Unit {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Hour => "hourly",
            Unit::Day => "daily",
            Unit::Week => "weekly",
            Unit::Month => "monthly",
            Unit::Year => "yearly",
        }
    }
}

/// One bundle as the evaluator sees it.
#[derive(Debug)]
pub(crate) struct Member<'a> {
    pub(crate) created: Timestamp,
    pub(crate) label: Option<&'a str>,
    pub(crate) keys: Keys,
}

/// A calendar count rule while walking.
struct Counter {
    unit: Unit,
    left: u32,
    used: u32,
    last: Option<i64>,
}

/// A `keepWithin<Unit>` rule while walking.
struct WithinBucket {
    unit: Unit,
    duration: RetentionDuration,
    since: Timestamp,
    used: u32,
    last: Option<i64>,
}

/// The reasons each member is kept by `rules` (empty: not kept by any rule). `members`
/// are sorted newest first and none is dated in the future.
pub(crate) fn evaluate(
    members: &[Member<'_>],
    rules: &Rules,
    tz: &TimeZone,
) -> Result<Vec<Vec<String>>> {
    let mut reasons = vec![Vec::new(); members.len()];
    let Some(newest) = members.first().map(|m| m.created) else {
        return Ok(reasons);
    };
    let oldest_index = members.len() - 1;

    let within = match &rules.keep_within {
        Some(d) => Some((d, d.before(newest, tz)?)),
        None => None,
    };
    let mut counters: Vec<Counter> = [
        (Unit::Hour, rules.keep_hourly),
        (Unit::Day, rules.keep_daily),
        (Unit::Week, rules.keep_weekly),
        (Unit::Month, rules.keep_monthly),
        (Unit::Year, rules.keep_yearly),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(unit, left)| Counter {
        unit,
        left,
        used: 0,
        last: None,
    })
    .collect();
    let mut within_buckets = Vec::new();
    for (unit, duration) in [
        (Unit::Hour, &rules.keep_within_hourly),
        (Unit::Day, &rules.keep_within_daily),
        (Unit::Week, &rules.keep_within_weekly),
        (Unit::Month, &rules.keep_within_monthly),
        (Unit::Year, &rules.keep_within_yearly),
    ] {
        if let Some(duration) = duration {
            within_buckets.push(WithinBucket {
                unit,
                duration: *duration,
                since: duration.before(newest, tz)?,
                used: 0,
                last: None,
            });
        }
    }

    for (index, (member, out)) in members.iter().zip(reasons.iter_mut()).enumerate() {
        let is_oldest = index == oldest_index;
        if let Some(label) = member.label {
            for pattern in &rules.keep_labels {
                if glob::matches(pattern, label) {
                    out.push(format!("label {pattern}"));
                }
            }
        }
        if let Some((duration, since)) = within {
            if member.created > since {
                out.push(format!("within {duration}"));
            }
        }
        if index < rules.keep_last as usize {
            out.push(format!("last #{}", index + 1));
        }
        for counter in &mut counters {
            if counter.left == 0 {
                continue;
            }
            let key = member.keys.get(counter.unit);
            let opens_bucket = counter.last != Some(key);
            if opens_bucket || is_oldest {
                counter.left -= 1;
                counter.used += 1;
                counter.last = Some(key);
                let prefix = if opens_bucket { "" } else { "oldest " };
                out.push(format!("{prefix}{} #{}", counter.unit.name(), counter.used));
            }
        }
        for bucket in &mut within_buckets {
            if member.created <= bucket.since {
                continue;
            }
            let key = member.keys.get(bucket.unit);
            let opens_bucket = bucket.last != Some(key);
            if opens_bucket || is_oldest {
                bucket.used += 1;
                bucket.last = Some(key);
                let prefix = if opens_bucket { "" } else { "oldest " };
                out.push(format!(
                    "{prefix}{} within {} #{}",
                    bucket.unit.name(),
                    bucket.duration,
                    bucket.used
                ));
            }
        }
    }
    Ok(reasons)
}
