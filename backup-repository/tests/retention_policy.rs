//! Policy shape: per-kind rules (seed 003), grouping by services, seed 002's table,
//! parsing errors, and the JSON form of a plan.

mod retention_support;

use backup_core::bundle::BundleKind;
use backup_core::ErrorKind;
use backup_repository::retention::{plan, RetentionDuration, RetentionPolicy};
use jiff::Timestamp;
use retention_support::{at, daily, ids, item, kept, policy, reasons, ymd};

/// Seed 003: manual bundles keep the last 5, automatic ones the last 10; safety
/// bundles have no rules, so they are all kept.
#[test]
fn per_kind_rules_manual_5_automatic_10() {
    let mut items = Vec::new();
    for (kind, prefix) in [
        (BundleKind::Manual, "m"),
        (BundleKind::Automatic, "a"),
        (BundleKind::Safety, "s"),
    ] {
        for (i, d) in daily("UTC", ymd(2024, 1, 1), ymd(2024, 1, 20), 12, 0)
            .into_iter()
            .enumerate()
        {
            let mut it = item(format!("{prefix}{:02}", i + 1), d.created);
            it.kind = kind;
            items.push(it);
        }
    }
    let now = at("UTC", ymd(2024, 2, 1), 0, 0);
    let p = plan(
        &items,
        &policy(r#"{"kinds": {"manual": {"keepLast": 5}, "automatic": {"keepLast": 10}}}"#),
        now,
    )
    .unwrap();
    let kept_of = |prefix: &str| kept(&p).iter().filter(|id| id.starts_with(prefix)).count();
    assert_eq!(kept_of("m"), 5);
    assert_eq!(kept_of("a"), 10);
    assert_eq!(kept_of("s"), 20);
    assert_eq!(reasons(&p, "m20"), ["last #1"]);
    assert!(!p.get("m15").unwrap().keep);
    assert_eq!(reasons(&p, "a11"), ["last #10"]);
    assert_eq!(reasons(&p, "s01"), ["no rules for kind safety"]);
    assert_eq!(p.get("a01").unwrap().group, "services=db kind=automatic");

    // The default applies to kinds without their own rules.
    let p = plan(
        &items,
        &policy(r#"{"default": {"keepLast": 2}, "kinds": {"automatic": {"keepLast": 10}}}"#),
        now,
    )
    .unwrap();
    assert_eq!(kept(&p).iter().filter(|id| id.starts_with('s')).count(), 2);
    assert_eq!(kept(&p).iter().filter(|id| id.starts_with('m')).count(), 2);
}

#[test]
fn groups_by_service_set_each_keep_their_own_last() {
    let t = |d| at("UTC", ymd(2024, 1, d), 12, 0);
    let mut items = vec![
        item("db-1", t(1)),
        item("db-2", t(2)),
        item("both-1", t(3)),
        item("both-2", t(4)),
    ];
    items[2].services = vec!["db".into(), "cache".into()];
    items[3].services = vec!["cache".into(), "db".into(), "db".into()];
    let now = at("UTC", ymd(2024, 2, 1), 0, 0);
    let p = plan(&items, &policy(r#"{"default": {"keepLast": 1}}"#), now).unwrap();
    assert_eq!(kept(&p), ids(&["db-2", "both-2"]));
    assert_eq!(
        p.get("both-1").unwrap().group,
        "services=cache,db kind=manual"
    );

    let p = plan(
        &items,
        &policy(r#"{"groupBy": [], "default": {"keepLast": 1}}"#),
        now,
    )
    .unwrap();
    assert_eq!(kept(&p), ids(&["both-2"]));
    assert_eq!(p.get("db-1").unwrap().group, "all");
}

/// Seed 002's table: all for 7 days, daily to 30 days, weekly to a year, monthly
/// beyond, labelled forever.
#[test]
fn seed_002_recommended_retention_table() {
    let pol = policy(
        r#"{"default": {"keepWithin": "7d", "keepWithinDaily": "30d",
            "keepWithinWeekly": "1y", "keepWithinMonthly": "100y",
            "keepLabels": ["v*", "before-*"]}}"#,
    );
    // Four bundles a day for two years; a few labelled.
    let mut items = Vec::new();
    for d in daily("UTC", ymd(2023, 1, 1), ymd(2024, 12, 31), 0, 0) {
        for h in [3, 9, 15, 21] {
            let created = d.created.checked_add(jiff::Span::new().hours(h)).unwrap();
            items.push(item(format!("{}T{h:02}", d.id), created));
        }
    }
    items[100].label = Some("v1.0".into());
    items[2000].label = Some("before-migration".into());
    let newest = items.last().unwrap().created;
    let now = at("UTC", ymd(2025, 1, 1), 0, 0);
    let p = plan(&items, &pol, now).unwrap();

    let days = |t: Timestamp| (newest.as_second() - t.as_second()) as f64 / 86_400.0;
    for (it, d) in items
        .iter()
        .zip(items.iter().map(|i| p.get(&i.id).unwrap()))
    {
        if days(it.created) < 7.0 || it.label.is_some() {
            assert!(d.keep, "{} should be kept", it.id);
        }
    }
    // Per age band, the kept (unlabelled) bundles and the rules that kept them.
    let kept_between = |lo: f64, hi: f64, rule: &str| {
        let band: Vec<_> = items
            .iter()
            .filter(|i| days(i.created) >= lo && days(i.created) < hi)
            .filter(|i| i.label.is_none())
            .map(|i| p.get(&i.id).unwrap())
            .filter(|d| d.keep)
            .collect();
        let by_rule = band
            .iter()
            .filter(|d| d.reasons.iter().any(|r| r.contains(rule)))
            .count();
        (band.len(), by_rule)
    };
    assert_eq!(kept_between(0.0, 7.0, "within 7d"), (28, 28));
    // 8..29 days: one a day, each the day's newest.
    assert_eq!(kept_between(8.0, 29.0, "daily within 30d"), (21, 21));
    // 31..360 days: one a week, plus month ends that are not a week's newest.
    let (all, weekly) = kept_between(31.0, 360.0, "weekly within 1y");
    assert!((46..=48).contains(&weekly), "{weekly}");
    let (_, weekly_or_monthly) = kept_between(31.0, 360.0, "ly within 1");
    assert_eq!(all, weekly_or_monthly);
    assert!(all - weekly <= 12, "{all} {weekly}");
    // Beyond a year: one a month, plus the oldest bundle (#25 after 24 month ends).
    let (all, monthly) = kept_between(370.0, 731.0, "monthly within 100y");
    assert_eq!(all, monthly);
    assert!((11..=13).contains(&monthly), "{monthly}");
    assert_eq!(
        reasons(&p, "2023-01-01T03"),
        ["oldest monthly within 100y #25"]
    );
}

#[test]
fn policy_errors_name_the_problem() {
    let now = Timestamp::UNIX_EPOCH;
    let items = vec![item("x", now)];
    let err = RetentionPolicy::from_json(r#"{"default": {"keepLats": 3}}"#).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.message().contains("keepLats"), "{err}");

    let err = RetentionPolicy::from_json(r#"{"default": {"keepWithin": "7x"}}"#).unwrap_err();
    assert!(err.message().contains("unknown unit 'x'"), "{err}");

    let err = plan(
        &items,
        &policy(r#"{"timeZone": "Mars/Olympus", "default": {"keepLast": 1}}"#),
        now,
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.message().contains("Mars/Olympus"));

    let err = plan(
        &items,
        &policy(r#"{"groupBy": ["services"], "kinds": {"manual": {"keepLast": 1}}}"#),
        now,
    )
    .unwrap_err();
    assert!(err.hint().unwrap().contains("\"kind\""), "{err}");

    let err = plan(
        &items,
        &policy(r#"{"default": {"keepLast": 1, "keepLabels": [""]}}"#),
        now,
    )
    .unwrap_err();
    assert!(err.message().contains("empty keepLabels pattern"));
}

#[test]
fn durations_parse_and_print() {
    let d: RetentionDuration = "1y6m".parse().unwrap();
    assert_eq!((d.years, d.months), (1, 6));
    assert_eq!(d.to_string(), "1y6m");
    for (text, shown) in [("7d", "7d"), ("2w", "2w"), ("1y", "1y"), ("36h", "36h")] {
        assert_eq!(
            text.parse::<RetentionDuration>().unwrap().to_string(),
            shown
        );
    }
    for (bad, why) in [
        ("", "empty"),
        ("7", "no unit"),
        ("d", "no number"),
        ("7x", "unknown unit"),
        ("1d2d", "twice"),
        ("0d", "zero"),
        ("99999999999d", "too large"),
    ] {
        let err = bad.parse::<RetentionDuration>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.message().contains(why), "{bad}: {err}");
        assert!(err.hint().unwrap().contains("\"7d\""));
    }
    // Out of range when applied, not a panic.
    let items = vec![item("x", at("UTC", ymd(2024, 1, 1), 0, 0))];
    let err = plan(
        &items,
        &policy(r#"{"default": {"keepWithin": "4000000y"}}"#),
        at("UTC", ymd(2024, 2, 1), 0, 0),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
}

#[test]
fn plan_and_policy_serialize_as_camel_case_json() {
    let pol = policy(
        r#"{"timeZone": "Europe/Berlin", "default": {"keepLast": 2, "keepWithin": "7d"},
            "kinds": {"manual": {"keepLabels": ["v*"]}}}"#,
    );
    let round: RetentionPolicy =
        serde_json::from_str(&serde_json::to_string(&pol).unwrap()).unwrap();
    assert_eq!(round, pol);

    let items = daily("UTC", ymd(2024, 1, 1), ymd(2024, 1, 3), 12, 0);
    let p = plan(
        &items,
        &policy(r#"{"default": {"keepLast": 1}}"#),
        at("UTC", ymd(2024, 2, 1), 0, 0),
    )
    .unwrap();
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(
        json["decisions"][0],
        serde_json::json!({"id": "2024-01-03", "keep": true, "reasons": ["last #1"],
                           "group": "services=db kind=manual"})
    );
    assert_eq!(json["decisions"][2]["keep"], false);
}

/// The worked example in the README's retention section.
#[test]
fn readme_worked_example() {
    let mut items = daily("UTC", ymd(2024, 6, 1), ymd(2024, 6, 10), 2, 0);
    items[2].label = Some("v1.0".into()); // 2024-06-03
    items[1].locked = true; // 2024-06-02
    let p = plan(
        &items,
        &policy(r#"{"default": {"keepDaily": 3, "keepWeekly": 2, "keepLabels": ["v*"]}}"#),
        at("UTC", ymd(2024, 6, 10), 12, 0),
    )
    .unwrap();
    let lines: Vec<String> = p
        .decisions
        .iter()
        .map(|d| {
            let verdict = if d.keep { "keep  " } else { "remove" };
            format!("{verdict} {}  {}", d.id, d.reasons.join(", "))
        })
        .collect();
    assert_eq!(
        lines,
        [
            "keep   2024-06-10  daily #1, weekly #1",
            "keep   2024-06-09  daily #2, weekly #2",
            "keep   2024-06-08  daily #3",
            "remove 2024-06-07  ",
            "remove 2024-06-06  ",
            "remove 2024-06-05  ",
            "remove 2024-06-04  ",
            "keep   2024-06-03  label v*",
            "keep   2024-06-02  locked",
            "remove 2024-06-01  ",
        ]
    );
}
