//! Calendar golden tests: a 3-year synthetic calendar checked by hand and against a
//! simple reference implementation, plus randomized comparisons with the reference.

mod retention_support;

use std::collections::{BTreeMap, BTreeSet};

use backup_repository::retention::{plan, RetentionItem};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use retention_support::{at, daily, ids, item, kept, policy, reasons, ymd};

/// A deliberately naive reference: for each calendar rule, bucket every bundle by a
/// formatted local time string, keep the newest of the newest N buckets, and keep the
/// oldest bundle when there are fewer than N buckets.
struct Reference<'a> {
    tz: TimeZone,
    items: Vec<&'a RetentionItem>,
}

impl<'a> Reference<'a> {
    fn new(items: &'a [RetentionItem], tz: &str) -> Self {
        let mut items: Vec<&RetentionItem> = items.iter().collect();
        // Newest first, ties by id (the documented order).
        items.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Reference {
            tz: TimeZone::get(tz).expect("test time zone exists"),
            items,
        }
    }

    fn key(&self, t: Timestamp, format: &str) -> String {
        t.to_zoned_datetime(self.tz.clone())
            .strftime(format)
            .to_string()
    }

    fn count(&self, format: &str, n: usize, out: &mut BTreeSet<String>) {
        self.bucketed(format, n, self.items.to_vec(), out);
    }

    fn bucketed(
        &self,
        format: &str,
        n: usize,
        pool: Vec<&RetentionItem>,
        out: &mut BTreeSet<String>,
    ) {
        if n == 0 || pool.is_empty() {
            return;
        }
        let mut newest_of: BTreeMap<String, &RetentionItem> = BTreeMap::new();
        for it in &pool {
            newest_of.entry(self.key(it.created, format)).or_insert(it);
        }
        let mut buckets: Vec<&RetentionItem> = newest_of.into_values().collect();
        buckets.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        for it in buckets.iter().take(n) {
            out.insert(it.id.clone());
        }
        if buckets.len() < n {
            // The oldest of the whole group, when the pool reaches it.
            let oldest = self.items[self.items.len() - 1];
            if pool.iter().any(|p| p.id == oldest.id) {
                out.insert(oldest.id.clone());
            }
        }
    }

    fn since(&self, span: Span) -> Timestamp {
        let newest = self.items[0].created.to_zoned_datetime(self.tz.clone());
        newest
            .checked_sub(span)
            .expect("window in range")
            .timestamp()
    }

    fn within_bucketed(&self, format: &str, span: Span, out: &mut BTreeSet<String>) {
        let since = self.since(span);
        let pool: Vec<&RetentionItem> = self
            .items
            .iter()
            .copied()
            .filter(|i| i.created > since)
            .collect();
        self.bucketed(format, usize::MAX, pool, out);
    }
}

const HOUR: &str = "%Y-%m-%d %H";
const DAY: &str = "%Y-%m-%d";
const WEEK: &str = "%G-W%V";
const MONTH: &str = "%Y-%m";
const YEAR: &str = "%Y";

/// Three years of daily bundles with keepDaily 7, keepWeekly 4, keepMonthly 12,
/// keepYearly 3: the kept set checked date by date.
#[test]
fn three_year_calendar_keeps_the_hand_checked_dates() {
    let items = daily("UTC", ymd(2022, 1, 1), ymd(2024, 12, 31), 12, 0);
    assert_eq!(items.len(), 365 + 365 + 366);
    let now = at("UTC", ymd(2025, 1, 1), 0, 0);
    let p = plan(
        &items,
        &policy(
            r#"{"default": {"keepDaily": 7, "keepWeekly": 4, "keepMonthly": 12,
                            "keepYearly": 3}}"#,
        ),
        now,
    )
    .unwrap();

    // Daily: Dec 25–31. Weekly (ISO): 2025-W01 → Tue Dec 31, W52 → Sun Dec 29,
    // W51 → Sun Dec 22, W50 → Sun Dec 15. Monthly: every month end of 2024.
    // Yearly: Dec 31 of 2024, 2023, 2022. The counts fill, so 2022-01-01 goes.
    let expected = ids(&[
        "2024-12-31",
        "2024-12-30",
        "2024-12-29",
        "2024-12-28",
        "2024-12-27",
        "2024-12-26",
        "2024-12-25",
        "2024-12-22",
        "2024-12-15",
        "2024-11-30",
        "2024-10-31",
        "2024-09-30",
        "2024-08-31",
        "2024-07-31",
        "2024-06-30",
        "2024-05-31",
        "2024-04-30",
        "2024-03-31",
        "2024-02-29",
        "2024-01-31",
        "2023-12-31",
        "2022-12-31",
    ]);
    assert_eq!(kept(&p), expected);
    assert_eq!(
        reasons(&p, "2024-12-31"),
        ["daily #1", "weekly #1", "monthly #1", "yearly #1"]
    );
    assert_eq!(reasons(&p, "2024-12-29"), ["daily #3", "weekly #2"]);
    assert_eq!(reasons(&p, "2024-12-15"), ["weekly #4"]);
    assert_eq!(reasons(&p, "2024-01-31"), ["monthly #12"]);
    assert_eq!(reasons(&p, "2022-12-31"), ["yearly #3"]);

    // The reference agrees.
    let r = Reference::new(&items, "UTC");
    let mut want = BTreeSet::new();
    r.count(DAY, 7, &mut want);
    r.count(WEEK, 4, &mut want);
    r.count(MONTH, 12, &mut want);
    r.count(YEAR, 3, &mut want);
    assert_eq!(want, expected);
}

/// A small deterministic generator (xorshift), so the test needs no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random bundle times (clustered and spread, across DST changes and year ends) and
/// random rules in four time zones: the plan keeps exactly what the reference keeps.
#[test]
fn random_calendars_match_the_reference_implementation() {
    let zones = [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
    ];
    let start = at("UTC", ymd(2021, 12, 20), 0, 0).as_second();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut rounds_with_removals = 0;
    for round in 0..300 {
        let tz = zones[round % zones.len()];
        let n = 1 + rng.below(200) as usize;
        // Spread over up to three years, or clustered within a few days.
        let range = if rng.below(2) == 0 {
            3 * 366 * 86_400
        } else {
            5 * 86_400
        };
        let items: Vec<RetentionItem> = (0..n)
            .map(|i| {
                let t = Timestamp::from_second(start + rng.below(range) as i64).unwrap();
                item(format!("b{i:04}"), t)
            })
            .collect();
        let counts: Vec<u64> = (0..6).map(|_| rng.below(6)).collect();
        let within_hours = rng.below(4) * 24 * rng.below(40);
        let within_days = rng.below(3) * rng.below(60);
        let mut json = format!(
            r#"{{"timeZone": "{tz}", "allowRemovingAll": true, "default": {{
                "keepLast": {}, "keepHourly": {}, "keepDaily": {}, "keepWeekly": {},
                "keepMonthly": {}, "keepYearly": {}"#,
            counts[0], counts[1], counts[2], counts[3], counts[4], counts[5]
        );
        if within_hours > 0 {
            json.push_str(&format!(r#", "keepWithin": "{within_hours}h""#));
        }
        if within_days > 0 {
            json.push_str(&format!(r#", "keepWithinDaily": "{within_days}d""#));
            json.push_str(&format!(r#", "keepWithinWeekly": "{within_days}d""#));
        }
        json.push_str("}}");
        if counts.iter().all(|c| *c == 0) && within_hours == 0 && within_days == 0 {
            continue;
        }
        let now = Timestamp::from_second(start + 4 * 366 * 86_400).unwrap();
        let got = kept(&plan(&items, &policy(&json), now).unwrap());

        let r = Reference::new(&items, tz);
        let mut want = BTreeSet::new();
        for it in r.items.iter().take(counts[0] as usize) {
            want.insert(it.id.clone());
        }
        r.count(HOUR, counts[1] as usize, &mut want);
        r.count(DAY, counts[2] as usize, &mut want);
        r.count(WEEK, counts[3] as usize, &mut want);
        r.count(MONTH, counts[4] as usize, &mut want);
        r.count(YEAR, counts[5] as usize, &mut want);
        if within_hours > 0 {
            let since = r.since(Span::new().hours(within_hours as i64));
            for it in &r.items {
                if it.created > since {
                    want.insert(it.id.clone());
                }
            }
        }
        if within_days > 0 {
            let span = Span::new().days(within_days as i64);
            r.within_bucketed(DAY, span, &mut want);
            r.within_bucketed(WEEK, span, &mut want);
        }
        assert_eq!(got, want, "round {round}, zone {tz}, policy {json}");
        if got.len() < items.len() {
            rounds_with_removals += 1;
        }
    }
    // The comparison is not vacuous: most rounds remove something.
    assert!(rounds_with_removals > 150, "{rounds_with_removals}");
}
