//! Shared helpers for the retention golden tests.
#![allow(dead_code)]

use std::collections::BTreeSet;

use backup_core::bundle::BundleKind;
use backup_repository::retention::{RetentionItem, RetentionPlan, RetentionPolicy};
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// The instant of local `date`-`time` in time zone `tz`.
pub(crate) fn at(tz: &str, date: Date, hour: i8, minute: i8) -> Timestamp {
    let zone = TimeZone::get(tz).expect("test time zone exists");
    DateTime::from_parts(date, jiff::civil::time(hour, minute, 0, 0))
        .to_zoned_datetime(zone)
        .expect("test instant exists")
        .timestamp()
}

/// A plain manual bundle with no label, no services, unlocked.
pub(crate) fn item(id: impl Into<String>, created: Timestamp) -> RetentionItem {
    RetentionItem {
        id: id.into(),
        created,
        label: None,
        kind: BundleKind::Manual,
        services: vec!["db".to_owned()],
        locked: false,
    }
}

/// One bundle a day at `hour:minute` local time in `tz`, from `first` to `last`
/// inclusive, ids `YYYY-MM-DD`.
pub(crate) fn daily(tz: &str, first: Date, last: Date, hour: i8, minute: i8) -> Vec<RetentionItem> {
    let mut out = Vec::new();
    let mut d = first;
    while d <= last {
        out.push(item(d.to_string(), at(tz, d, hour, minute)));
        d = d.tomorrow().expect("date in range");
    }
    out
}

/// Parses a policy from JSON, panicking with the error on failure.
pub(crate) fn policy(json: &str) -> RetentionPolicy {
    RetentionPolicy::from_json(json).unwrap_or_else(|e| panic!("policy {json}: {e}"))
}

/// The ids kept by `plan`.
pub(crate) fn kept(plan: &RetentionPlan) -> BTreeSet<String> {
    plan.to_keep().map(str::to_owned).collect()
}

/// The reasons recorded for `id`.
pub(crate) fn reasons<'a>(plan: &'a RetentionPlan, id: &str) -> &'a [String] {
    &plan
        .get(id)
        .unwrap_or_else(|| panic!("no decision for {id}"))
        .reasons
}

/// A set of ids from string literals.
pub(crate) fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// A date from its parts.
pub(crate) fn ymd(y: i16, m: i8, d: i8) -> Date {
    jiff::civil::date(y, m, d)
}
