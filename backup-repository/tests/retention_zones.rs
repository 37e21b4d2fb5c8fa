//! Calendar edges: the Europe/Berlin DST change, ISO week 2025-W01, month ends.

mod retention_support;

use backup_repository::retention::plan;
use retention_support::{at, daily, ids, item, kept, policy, reasons, ymd};

const BERLIN: &str = "Europe/Berlin";

/// Bundles at 23:30 Berlin time around the 2019-03-31 change to summer time: each is
/// the newest of its own local day, including the 23-hour day itself.
#[test]
fn dst_change_berlin_bundles_at_2330_each_own_local_day() {
    let items = daily(BERLIN, ymd(2019, 3, 25), ymd(2019, 4, 5), 23, 30);
    let now = at("UTC", ymd(2019, 4, 6), 0, 0);
    let p = plan(
        &items,
        &policy(r#"{"timeZone": "Europe/Berlin", "default": {"keepDaily": 5}}"#),
        now,
    )
    .unwrap();
    assert_eq!(
        kept(&p),
        ids(&[
            "2019-04-05",
            "2019-04-04",
            "2019-04-03",
            "2019-04-02",
            "2019-04-01"
        ])
    );

    // Local midnight vs UTC: 2019-04-01 00:30 Berlin (CEST) is 2019-03-31 22:30 UTC.
    let mut items = daily(BERLIN, ymd(2019, 3, 29), ymd(2019, 4, 1), 23, 30);
    items.push(item("04-01 00:30", at(BERLIN, ymd(2019, 4, 1), 0, 30)));
    let rules = r#""default": {"keepDaily": 10}"#;
    let berlin = plan(
        &items,
        &policy(&format!(r#"{{"timeZone": "Europe/Berlin", {rules}}}"#)),
        now,
    )
    .unwrap();
    // In Berlin it shares Apr 1 with the 23:30 bundle and is not that day's newest.
    assert!(!berlin.get("04-01 00:30").unwrap().keep);
    assert_eq!(reasons(&berlin, "2019-03-31"), ["daily #2"]);
    // In UTC it is the newest bundle of Mar 31 and pushes out Mar 31 23:30 CEST.
    let utc = plan(&items, &policy(&format!("{{{rules}}}")), now).unwrap();
    assert_eq!(reasons(&utc, "04-01 00:30"), ["daily #2"]);
    assert!(!utc.get("2019-03-31").unwrap().keep);
}

/// keepWithin days are calendar days in the policy's zone, hours are real hours: one
/// day back from 2019-03-31 23:30 CEST is 2019-03-30 23:30 CET, only 23 hours earlier.
#[test]
fn dst_change_keep_within_one_day_is_a_calendar_day_and_24h_is_24_hours() {
    let items = daily(BERLIN, ymd(2019, 3, 28), ymd(2019, 3, 31), 23, 30);
    let now = at("UTC", ymd(2019, 4, 6), 0, 0);
    let day = plan(
        &items,
        &policy(r#"{"timeZone": "Europe/Berlin", "default": {"keepWithin": "1d"}}"#),
        now,
    )
    .unwrap();
    assert_eq!(kept(&day), ids(&["2019-03-31"]));

    let hours = plan(
        &items,
        &policy(r#"{"timeZone": "Europe/Berlin", "default": {"keepWithin": "24h"}}"#),
        now,
    )
    .unwrap();
    assert_eq!(kept(&hours), ids(&["2019-03-31", "2019-03-30"]));
    assert_eq!(reasons(&hours, "2019-03-30"), ["within 24h"]);
}

/// The autumn change repeats 02:00–02:59 local: both 02:30s fall into one local hour.
#[test]
fn dst_fall_back_repeated_hour_is_one_hourly_bucket() {
    // 2019-10-27 00:30 and 01:30 UTC are 02:30 CEST and 02:30 CET in Berlin.
    let first = at("UTC", ymd(2019, 10, 27), 0, 30);
    let second = at("UTC", ymd(2019, 10, 27), 1, 30);
    let third = at("UTC", ymd(2019, 10, 27), 2, 30); // 03:30 CET
    let items = vec![item("a", first), item("b", second), item("c", third)];
    let now = at("UTC", ymd(2019, 11, 1), 0, 0);
    let p = plan(
        &items,
        &policy(r#"{"timeZone": "Europe/Berlin", "default": {"keepHourly": 2}}"#),
        now,
    )
    .unwrap();
    assert_eq!(kept(&p), ids(&["c", "b"]));
    let p = plan(&items, &policy(r#"{"default": {"keepHourly": 2}}"#), now).unwrap();
    assert_eq!(kept(&p), ids(&["c", "b"]));
    let p = plan(&items, &policy(r#"{"default": {"keepHourly": 3}}"#), now).unwrap();
    assert_eq!(kept(&p), ids(&["c", "b", "a"]));
    let p = plan(
        &items,
        &policy(r#"{"timeZone": "Europe/Berlin", "default": {"keepHourly": 3}}"#),
        now,
    )
    .unwrap();
    // Only two local hours exist, so "a" is kept as the oldest, not as an hourly.
    assert_eq!(reasons(&p, "a"), ["oldest hourly #3"]);
}

/// 2024-12-30 (Monday) and 2025-01-01 (Wednesday) are one ISO week, 2025-W01; the year
/// rule still uses calendar years.
#[test]
fn iso_week_2025_w01_spans_the_year_end() {
    let items = vec![
        item("2024-12-27", at("UTC", ymd(2024, 12, 27), 12, 0)), // Fri, 2024-W52
        item("2024-12-30", at("UTC", ymd(2024, 12, 30), 12, 0)), // Mon, 2025-W01
        item("2025-01-01", at("UTC", ymd(2025, 1, 1), 12, 0)),   // Wed, 2025-W01
    ];
    let now = at("UTC", ymd(2025, 1, 2), 0, 0);
    let p = plan(&items, &policy(r#"{"default": {"keepWeekly": 2}}"#), now).unwrap();
    assert_eq!(kept(&p), ids(&["2025-01-01", "2024-12-27"]));
    assert_eq!(reasons(&p, "2025-01-01"), ["weekly #1"]);
    assert_eq!(reasons(&p, "2024-12-27"), ["weekly #2"]);
    assert!(!p.get("2024-12-30").unwrap().keep);

    let p = plan(&items, &policy(r#"{"default": {"keepYearly": 2}}"#), now).unwrap();
    assert_eq!(kept(&p), ids(&["2025-01-01", "2024-12-30"]));
}

/// Month buckets end on Jan 31, Feb 28 (2023) / Feb 29 (2024), Mar 31; one month back
/// from Mar 31 is the last day of February.
#[test]
fn month_ends_in_leap_and_common_years() {
    let now = at("UTC", ymd(2024, 6, 1), 0, 0);
    let monthly = policy(r#"{"default": {"keepMonthly": 3}}"#);
    let leap = daily("UTC", ymd(2024, 1, 1), ymd(2024, 3, 31), 12, 0);
    let p = plan(&leap, &monthly, now).unwrap();
    assert_eq!(kept(&p), ids(&["2024-03-31", "2024-02-29", "2024-01-31"]));
    let common = daily("UTC", ymd(2023, 1, 1), ymd(2023, 3, 31), 12, 0);
    let p = plan(&common, &monthly, now).unwrap();
    assert_eq!(kept(&p), ids(&["2023-03-31", "2023-02-28", "2023-01-31"]));

    // keepWithin 1m from 2024-03-31 12:00 reaches back to 2024-02-29 12:00 (exclusive).
    let p = plan(&leap, &policy(r#"{"default": {"keepWithin": "1m"}}"#), now).unwrap();
    assert_eq!(kept(&p).len(), 31);
    assert!(!p.get("2024-02-29").unwrap().keep);
    let p = plan(
        &common,
        &policy(r#"{"default": {"keepWithin": "1m"}}"#),
        now,
    )
    .unwrap();
    assert_eq!(kept(&p).len(), 31);
    assert!(!p.get("2023-02-28").unwrap().keep);

    // A month end in Berlin: 2024-03-01 00:30 Berlin is 2024-02-29 23:30 UTC.
    let items = vec![
        item("feb-29 23:00", at(BERLIN, ymd(2024, 2, 29), 23, 0)),
        item("mar-01 00:30", at(BERLIN, ymd(2024, 3, 1), 0, 30)),
        item("mar-31", at(BERLIN, ymd(2024, 3, 31), 12, 0)),
    ];
    let berlin = plan(
        &items,
        &policy(r#"{"timeZone": "Europe/Berlin", "default": {"keepMonthly": 2}}"#),
        now,
    )
    .unwrap();
    assert_eq!(kept(&berlin), ids(&["mar-31", "feb-29 23:00"]));
    let utc = plan(&items, &policy(r#"{"default": {"keepMonthly": 2}}"#), now).unwrap();
    assert_eq!(kept(&utc), ids(&["mar-31", "mar-01 00:30"]));
}
