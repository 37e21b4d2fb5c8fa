//! Golden tests from restic's documented `forget` examples (doc/060_forget.rst).

mod retention_support;

use backup_repository::retention::plan;
use retention_support::{at, daily, ids, item, kept, policy, reasons, ymd};

/// restic's example: one backup every Sunday at 11:00 for 12 weeks; `--keep-daily 4`
/// keeps the last four Sundays and removes the other eight.
#[test]
fn restic_weekly_sundays_keep_daily_4_keeps_the_last_four_sundays() {
    let sundays = [
        ("0a1f9759", ymd(2019, 9, 1)),
        ("46cfe4d5", ymd(2019, 9, 8)),
        ("f6b1f037", ymd(2019, 9, 15)),
        ("eb430a5d", ymd(2019, 9, 22)),
        ("8cf1cb9a", ymd(2019, 9, 29)),
        ("5d33b116", ymd(2019, 10, 6)),
        ("b9553125", ymd(2019, 10, 13)),
        ("e1a7b58b", ymd(2019, 10, 20)),
        ("8f8018c0", ymd(2019, 10, 27)),
        ("59403279", ymd(2019, 11, 3)),
        ("dfee9fb4", ymd(2019, 11, 10)),
        ("e1ae2f40", ymd(2019, 11, 17)),
    ];
    let items: Vec<_> = sundays
        .iter()
        .map(|(id, d)| item(*id, at("UTC", *d, 11, 0)))
        .collect();
    let now = at("UTC", ymd(2019, 11, 18), 0, 0);
    let p = plan(&items, &policy(r#"{"default": {"keepDaily": 4}}"#), now).unwrap();

    assert_eq!(
        kept(&p),
        ids(&["8f8018c0", "59403279", "dfee9fb4", "e1ae2f40"])
    );
    let removed: Vec<&str> = p.to_remove().collect();
    assert_eq!(removed.len(), 8);
    assert_eq!(reasons(&p, "e1ae2f40"), ["daily #1"]);
    assert_eq!(reasons(&p, "8f8018c0"), ["daily #4"]);
}

/// restic's example: a backup every day for 100 years with `--keep-daily 7
/// --keep-weekly 5 --keep-monthly 12 --keep-yearly 75` keeps the 7 newest dailies, 4
/// more last-day-of-the-week ones, 12 or 11 more month ends and 75 or 74 more year ends.
/// (The "7 dailies include 1 weekly" holds when the newest day is a Sunday.)
#[test]
fn restic_hundred_years_of_dailies_keep_the_documented_counts() {
    let items = daily("UTC", ymd(1925, 1, 1), ymd(2024, 12, 29), 12, 0);
    assert!(items.len() > 36_000);
    let now = at("UTC", ymd(2025, 1, 1), 0, 0);
    let p = plan(
        &items,
        &policy(
            r#"{"default": {"keepDaily": 7, "keepWeekly": 5, "keepMonthly": 12,
                            "keepYearly": 75}}"#,
        ),
        now,
    )
    .unwrap();

    let with = |rule: &str| {
        p.decisions
            .iter()
            .filter(|d| d.reasons.iter().any(|r| r.starts_with(rule)))
            .count()
    };
    let only = |rule: &str, not: &[&str]| {
        p.decisions
            .iter()
            .filter(|d| d.reasons.iter().any(|r| r.starts_with(rule)))
            .filter(|d| {
                !d.reasons
                    .iter()
                    .any(|r| not.iter().any(|n| r.starts_with(n)))
            })
            .count()
    };
    assert_eq!(with("daily"), 7);
    assert_eq!(with("weekly"), 5);
    assert_eq!(with("monthly"), 12);
    assert_eq!(with("yearly"), 75);
    assert_eq!(only("weekly", &["daily"]), 4);
    let monthly = only("monthly", &["daily", "weekly"]);
    assert!((11..=12).contains(&monthly), "{monthly}");
    let yearly = only("yearly", &["daily", "weekly", "monthly"]);
    assert!((74..=75).contains(&yearly), "{yearly}");
    assert_eq!(kept(&p).len(), 7 + 4 + monthly + yearly);
    // The count is filled, so the oldest bundle is not kept.
    assert!(!p.get("1925-01-01").unwrap().keep);
}

/// restic's note: when there are not enough bundles to fill a count, the oldest bundle
/// is kept additionally and marked "oldest".
#[test]
fn restic_unfilled_count_keeps_the_oldest_bundle() {
    // Two bundles on each of three days; keepDaily 5 cannot be filled.
    let mut items = Vec::new();
    for d in 1..=3 {
        items.push(item(
            format!("d{d}-morning"),
            at("UTC", ymd(2024, 5, d), 8, 0),
        ));
        items.push(item(
            format!("d{d}-evening"),
            at("UTC", ymd(2024, 5, d), 20, 0),
        ));
    }
    let now = at("UTC", ymd(2024, 6, 1), 0, 0);
    let p = plan(&items, &policy(r#"{"default": {"keepDaily": 5}}"#), now).unwrap();
    assert_eq!(
        kept(&p),
        ids(&["d3-evening", "d2-evening", "d1-evening", "d1-morning"])
    );
    assert_eq!(reasons(&p, "d1-morning"), ["oldest daily #4"]);

    // Filled exactly: no extra oldest bundle.
    let p = plan(&items, &policy(r#"{"default": {"keepDaily": 3}}"#), now).unwrap();
    assert_eq!(kept(&p), ids(&["d3-evening", "d2-evening", "d1-evening"]));

    // keepWithinDaily reaching past the oldest bundle keeps it as well.
    let p = plan(
        &items,
        &policy(r#"{"default": {"keepWithinDaily": "10d"}}"#),
        now,
    )
    .unwrap();
    assert_eq!(reasons(&p, "d1-morning"), ["oldest daily within 10d #4"]);
    assert_eq!(reasons(&p, "d3-evening"), ["daily within 10d #1"]);
    assert!(!p.get("d3-morning").unwrap().keep);
}

/// restic's keepWithin: every bundle newer than the duration before the newest bundle,
/// not before now; and restic's "rules are ORed".
#[test]
fn restic_keep_within_counts_back_from_the_newest_bundle_and_rules_are_ored() {
    let items = daily("UTC", ymd(2024, 1, 1), ymd(2024, 1, 31), 12, 0);
    // Run a year later: a window relative to now would remove everything.
    let now = at("UTC", ymd(2025, 2, 1), 0, 0);
    let p = plan(
        &items,
        &policy(r#"{"default": {"keepWithin": "7d", "keepLast": 1, "keepMonthly": 1}}"#),
        now,
    )
    .unwrap();
    let expected: Vec<String> = (25..=31).map(|d| format!("2024-01-{d}")).collect();
    assert_eq!(kept(&p), expected.into_iter().collect());
    assert_eq!(
        reasons(&p, "2024-01-31"),
        ["within 7d", "last #1", "monthly #1"]
    );
    assert_eq!(reasons(&p, "2024-01-25"), ["within 7d"]);
    // Exactly 7 days before the newest is outside the window (newer than, as restic).
    assert!(!p.get("2024-01-24").unwrap().keep);
}
