//! The never-rules: locked, labelled and future bundles are kept, a whole group is not
//! removed, an empty policy is refused; and plan is pure and deterministic.

mod retention_support;

use backup_core::ErrorKind;
use backup_repository::retention::{plan, RetentionPolicy};
use retention_support::{at, daily, ids, item, kept, policy, reasons, ymd};

#[test]
fn labelled_bundles_matching_keep_labels_are_kept() {
    let mut items = daily("UTC", ymd(2024, 1, 1), ymd(2024, 1, 10), 12, 0);
    items[0].label = Some("v1.0".to_owned());
    items[1].label = Some("before-migration".to_owned());
    items[2].label = Some("nightly".to_owned());
    items[3].label = Some("before".to_owned());
    let now = at("UTC", ymd(2024, 2, 1), 0, 0);
    let p = plan(
        &items,
        &policy(r#"{"default": {"keepLast": 1, "keepLabels": ["v*", "before-*"]}}"#),
        now,
    )
    .unwrap();
    assert_eq!(kept(&p), ids(&["2024-01-10", "2024-01-01", "2024-01-02"]));
    assert_eq!(reasons(&p, "2024-01-01"), ["label v*"]);
    assert_eq!(reasons(&p, "2024-01-02"), ["label before-*"]);
}

#[test]
fn locked_bundles_are_kept_whatever_the_rules() {
    let mut items = daily("UTC", ymd(2024, 1, 1), ymd(2024, 1, 10), 12, 0);
    items[0].locked = true;
    items[9].locked = true;
    let now = at("UTC", ymd(2024, 2, 1), 0, 0);
    let p = plan(&items, &policy(r#"{"default": {"keepLast": 1}}"#), now).unwrap();
    assert_eq!(kept(&p), ids(&["2024-01-10", "2024-01-01"]));
    assert_eq!(reasons(&p, "2024-01-01"), ["locked"]);
    assert_eq!(reasons(&p, "2024-01-10"), ["last #1", "locked"]);
}

/// A bundle dated after `now` is kept ("future") and takes no part in the rules: it
/// neither uses up keepLast nor moves the keepWithin window.
#[test]
fn future_dated_bundles_are_kept_and_do_not_count() {
    let mut items = daily("UTC", ymd(2024, 1, 1), ymd(2024, 1, 10), 12, 0);
    items.push(item("clock-skew", at("UTC", ymd(2030, 1, 1), 0, 0)));
    let now = at("UTC", ymd(2024, 1, 11), 0, 0);
    let p = plan(
        &items,
        &policy(r#"{"default": {"keepLast": 2, "keepWithin": "2d"}}"#),
        now,
    )
    .unwrap();
    assert_eq!(reasons(&p, "clock-skew"), ["future"]);
    assert_eq!(kept(&p), ids(&["clock-skew", "2024-01-10", "2024-01-09"]));
    assert_eq!(reasons(&p, "2024-01-10"), ["within 2d", "last #1"]);
}

#[test]
fn removing_every_bundle_of_a_group_is_refused_unless_allowed() {
    let mut items = daily("UTC", ymd(2024, 1, 1), ymd(2024, 1, 3), 12, 0);
    items.push(item("other", at("UTC", ymd(2024, 1, 2), 0, 0)));
    items[3].services = vec!["cache".to_owned()];
    items[3].label = Some("v2".to_owned());
    let now = at("UTC", ymd(2024, 2, 1), 0, 0);
    // Only the label rule: the "db" group has no labelled bundle.
    let only_labels = r#"{"default": {"keepLabels": ["v*"]}}"#;
    let err = plan(&items, &policy(only_labels), now).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err
        .message()
        .contains("all 3 bundles of group services=db kind=manual"));
    assert!(err.hint().unwrap().contains("allowRemovingAll"));

    let allowed = r#"{"allowRemovingAll": true, "default": {"keepLabels": ["v*"]}}"#;
    let p = plan(&items, &policy(allowed), now).unwrap();
    assert_eq!(kept(&p), ids(&["other"]));
    assert_eq!(p.to_remove().count(), 3);
}

#[test]
fn empty_policy_is_refused_with_a_hint() {
    let items = daily("UTC", ymd(2024, 1, 1), ymd(2024, 1, 3), 12, 0);
    let now = at("UTC", ymd(2024, 2, 1), 0, 0);
    for empty in [
        RetentionPolicy::default(),
        policy("{}"),
        policy(r#"{"default": {"keepLast": 0}, "kinds": {"manual": {}}}"#),
    ] {
        let err = plan(&items, &empty, now).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.message().contains("no rules"), "{err}");
        assert!(err.hint().unwrap().contains("keepLast"));
    }
    // Even with no bundles at all.
    assert!(plan(&[], &RetentionPolicy::default(), now).is_err());
}

#[test]
fn duplicate_ids_are_refused() {
    let items = vec![
        item("same", at("UTC", ymd(2024, 1, 1), 0, 0)),
        item("same", at("UTC", ymd(2024, 1, 2), 0, 0)),
    ];
    let now = at("UTC", ymd(2024, 2, 1), 0, 0);
    let err = plan(&items, &policy(r#"{"default": {"keepLast": 1}}"#), now).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

/// plan reads its input only, gives the same plan twice and for any input order, and
/// lists decisions newest first.
#[test]
fn plan_is_pure_and_deterministic() {
    let mut items = daily("Europe/Berlin", ymd(2023, 1, 1), ymd(2024, 12, 31), 23, 30);
    items[5].label = Some("v1".to_owned());
    items[9].locked = true;
    items[20].kind = backup_core::bundle::BundleKind::Automatic;
    let before = items.clone();
    let pol = policy(
        r#"{"timeZone": "Europe/Berlin", "default": {"keepDaily": 7, "keepWeekly": 4,
            "keepMonthly": 6, "keepLabels": ["v*"]}}"#,
    );
    let pol_before = pol.clone();
    let now = at("UTC", ymd(2025, 1, 1), 0, 0);
    let first = plan(&items, &pol, now).unwrap();
    assert_eq!(items, before);
    assert_eq!(pol, pol_before);
    assert_eq!(plan(&items, &pol, now).unwrap(), first);

    let mut shuffled = items.clone();
    shuffled.reverse();
    shuffled.swap(3, 400);
    shuffled.swap(17, 250);
    assert_eq!(plan(&shuffled, &pol, now).unwrap(), first);

    assert_eq!(first.decisions.len(), items.len());
    assert_eq!(first.decisions[0].id, "2024-12-31");
    assert!(first
        .decisions
        .windows(2)
        .all(|w| w[0].id > w[1].id || w[0].group != w[1].group));
}
