//! The scheduler under tokio's paused clock, with a wall clock that moves with it: real
//! directory services backed up into a local repository.

mod sched_support;

use std::sync::Arc;
use std::time::Duration;

use backup_core::progress::CollectedProgress;
use backup_core::{ErrorKind, ProgressEvent};
use backup_repository::history::{RunFilter, RunKind, RunStart, RunStatus};
use backup_repository::schedule::{
    MissedRun, RunReport, Schedule, Scheduler, SchedulerEvent, SchedulerHandle,
};
use backup_repository::{BundleFilter, LockKind, LockRecord, TokioClock};
use jiff::civil::Time;
use jiff::Timestamp;
use object_store::{ObjectStoreExt, PutPayload};
use sched_support::Fixture;
use tokio_util::sync::CancellationToken;

const NY: &str = "America/New_York";

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn at(h: i8, m: i8) -> Time {
    Time::new(h, m, 0, 0).expect("time")
}

/// Starts `schedules` on `f` with the wall clock reading `now` at start.
fn start(f: &Fixture, now: &str, schedules: Vec<Schedule>) -> (SchedulerHandle, CollectedProgress) {
    let progress = CollectedProgress::new();
    let mut scheduler = Scheduler::new(f.repo.clone(), f.host.clone(), f.registry.clone())
        .with_clock(Arc::new(TokioClock::starting_at(ts(now))))
        .with_progress(Arc::new(progress.clone()));
    for schedule in schedules {
        scheduler = scheduler.with_schedule(schedule).expect("add");
    }
    (scheduler.start(CancellationToken::new()), progress)
}

/// The next `n` finished runs.
async fn runs(handle: &mut SchedulerHandle, n: usize) -> Vec<RunReport> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(handle.next_run().await.expect("a run"));
    }
    out
}

/// Runs `schedule` alone from `now` until it has run `n` times, then stops it.
async fn run_alone(f: &Fixture, now: &str, schedule: Schedule, n: usize) -> Vec<RunReport> {
    let (mut handle, _) = start(f, now, vec![schedule]);
    let reports = runs(&mut handle, n).await;
    handle.stop().await.expect("stop");
    reports
}

fn scheduled_for(reports: &[RunReport]) -> Vec<String> {
    reports
        .iter()
        .map(|r| r.run.scheduled_for.expect("scheduled_for").to_string())
        .collect()
}

async fn bundle_count(f: &Fixture) -> usize {
    f.repo
        .list(&BundleFilter::default())
        .await
        .expect("list")
        .len()
}

#[tokio::test(start_paused = true)]
async fn runs_at_the_local_time_across_spring_forward_once_at_the_jump() {
    let f = Fixture::new(&["files"]).await;
    let nightly = Schedule::daily("nightly", at(2, 30), NY).expect("schedule");
    let reports = run_alone(&f, "2026-03-06T12:00:00Z", nightly, 3).await;
    // 02:30 EST, then 02:30 does not exist on 03-08: 03:00 EDT (the jump), then 02:30 EDT.
    assert_eq!(
        scheduled_for(&reports),
        [
            "2026-03-07T07:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:00Z"
        ]
    );
    for r in &reports {
        assert!(r.succeeded(), "{:?}", r.run.error);
        assert!(r.run.started >= r.run.scheduled_for.expect("scheduled_for"));
        assert_eq!(
            (r.run.kind, r.run.trigger.as_str()),
            (RunKind::Scheduled, "schedule:nightly")
        );
    }
    let bundles = f.repo.list(&BundleFilter::default()).await.expect("list");
    assert_eq!(bundles.len(), 3);
    assert!(bundles.iter().all(|b| b.label.as_deref() == Some("nightly")
        && b.kind == backup_core::bundle::BundleKind::Automatic));
}

#[tokio::test(start_paused = true)]
async fn runs_once_in_the_repeated_hour_of_fall_back() {
    let f = Fixture::new(&["files"]).await;
    let nightly = Schedule::daily("nightly", at(1, 30), NY).expect("schedule");
    let reports = run_alone(&f, "2026-10-31T00:00:00Z", nightly, 3).await;
    // 01:30 EDT, 01:30 on 11-01 only before the clocks go back (EDT), then 01:30 EST.
    assert_eq!(
        scheduled_for(&reports),
        [
            "2026-10-31T05:30:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-02T06:30:00Z"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_cron_schedule_runs_a_skipped_hour_once_at_the_jump() {
    let f = Fixture::new(&["files"]).await;
    let cron = Schedule::cron("half-hourly", "*/30 2 * * *", NY).expect("schedule");
    let reports = run_alone(&f, "2026-03-07T06:00:00Z", cron, 5).await;
    assert_eq!(
        scheduled_for(&reports),
        [
            "2026-03-07T07:00:00Z",
            "2026-03-07T07:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:00:00Z",
            "2026-03-09T06:30:00Z"
        ]
    );
}

#[test]
fn a_bad_cron_expression_is_refused_with_a_clear_error() {
    let err = Schedule::cron("x", "0 25 * * *", "UTC").expect_err("hour 25");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.message()
            .contains("`0 25 * * *` is not a valid cron expression"),
        "{err}"
    );
    assert!(
        err.hint().is_some_and(|h| h.contains("minute hour")),
        "{err}"
    );
    let err = Schedule::daily("x", at(2, 0), "Mars/Olympus").expect_err("zone");
    assert!(err.message().contains("Mars/Olympus"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn retention_is_applied_to_the_schedules_bundles_after_each_run() {
    let f = Fixture::new(&["files"]).await;
    // A manual bundle of the same service: not the schedule's, never pruned by it.
    let manual = f
        .repo
        .create_backup(
            f.host.as_ref(),
            &f.registry,
            &Default::default(),
            backup_core::progress::no_progress(),
        )
        .await
        .expect("manual backup");
    let policy =
        serde_json::from_value(serde_json::json!({"default": {"keepLast": 2}})).expect("policy");
    let nightly = Schedule::daily("nightly", at(3, 0), "UTC")
        .expect("schedule")
        .with_retention(policy);
    let (mut handle, _) = start(&f, "2026-11-30T12:00:00Z", vec![nightly]);
    let mut counts = Vec::new();
    let mut removed = Vec::new();
    for _ in 0..4 {
        let report = handle.next_run().await.expect("run");
        assert!(
            report.retention_error.is_none(),
            "{:?}",
            report.retention_error
        );
        counts.push(bundle_count(&f).await);
        removed.push(report.removed_bundles.len());
    }
    handle.stop().await.expect("stop");
    assert_eq!(
        counts,
        [2, 3, 3, 3],
        "the manual bundle plus at most 2 of the schedule's"
    );
    assert_eq!(removed, [0, 0, 1, 1]);
    let left = f.repo.list(&BundleFilter::default()).await.expect("list");
    assert!(left.iter().any(|b| b.id == manual.id));
}

#[tokio::test(start_paused = true)]
async fn a_failed_run_is_recorded_and_reported_and_the_next_run_still_happens() {
    let f = Fixture::new(&["files"]).await;
    let nightly = Schedule::daily("nightly", at(3, 0), "UTC").expect("schedule");
    f.break_service("files", true);
    let (mut handle, progress) = start(&f, "2026-11-30T12:00:00Z", vec![nightly]);
    let failed = handle.next_run().await.expect("first run");
    f.break_service("files", false);
    let good = handle.next_run().await.expect("second run");
    handle.stop().await.expect("stop");

    assert!(!failed.succeeded());
    let error = failed.run.error.as_ref().expect("error");
    assert_eq!(error.kind, ErrorKind::NotFound);
    assert!(failed.run.bundle.is_none() && failed.removed_bundles.is_empty());
    assert!(good.succeeded(), "{:?}", good.run.error);
    assert_eq!(
        scheduled_for(&[failed.clone(), good.clone()]),
        ["2026-12-01T03:00:00Z", "2026-12-02T03:00:00Z"]
    );
    // Exactly one bundle (the good run's), and the history shows both.
    let bundles = f.repo.list(&BundleFilter::default()).await.expect("list");
    assert_eq!(bundles.len(), 1);
    assert_eq!(
        Some(&bundles[0].id),
        good.run.bundle.as_ref().map(|b| &b.id)
    );
    let history = f.repo.runs(&RunFilter::default()).await.expect("runs").runs;
    let statuses: Vec<_> = history.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [RunStatus::Succeeded, RunStatus::Failed]);
    assert_eq!(history[1], failed.run);
    // Progress: the failed run ends with OperationFailed, the good one with Finished.
    let ends: Vec<_> = progress
        .events()
        .into_iter()
        .filter(|e| match e {
            ProgressEvent::OperationFailed { operation, .. }
            | ProgressEvent::Finished { operation } => operation == "schedule:nightly",
            _ => false,
        })
        .collect();
    assert!(
        matches!(&ends[..], [ProgressEvent::OperationFailed { error, .. }, ProgressEvent::Finished { .. }] if error.contains("backup failed")),
        "{ends:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn runs_never_overlap_a_run_due_during_a_slow_run_starts_after_it() {
    let f = Fixture::with_slow(&["fast"], &["slow"]).await;
    let slow = Schedule::daily("slow", at(2, 0), "UTC")
        .expect("schedule")
        .with_services(["slow"]);
    // Due an hour into the slow run (which takes 3 hours).
    let fast = Schedule::daily("fast", at(3, 0), "UTC")
        .expect("schedule")
        .with_services(["fast"]);
    let (mut handle, _) = start(&f, "2026-11-30T00:00:00Z", vec![slow, fast]);
    let reports = runs(&mut handle, 2).await;
    handle.stop().await.expect("stop");
    let (a, b) = (&reports[0], &reports[1]);
    assert_eq!((a.schedule.as_str(), b.schedule.as_str()), ("slow", "fast"));
    assert!(
        a.succeeded() && b.succeeded(),
        "{:?} {:?}",
        a.run.error,
        b.run.error
    );
    assert!(
        a.run.finished >= ts("2026-11-30T05:00:00Z"),
        "{}",
        a.run.finished
    );
    assert!(
        b.run.started >= a.run.finished,
        "fast started {} before slow finished {}",
        b.run.started,
        a.run.finished
    );
    assert_eq!(b.run.scheduled_for, Some(ts("2026-11-30T03:00:00Z")));
    assert_eq!(bundle_count(&f).await, 2);
}

/// Records a scheduled run of `nightly` for `scheduled_for`, as if the host had been up.
async fn past_run(f: &Fixture, scheduled_for: &str) {
    let clock = Arc::new(TokioClock::starting_at(ts(scheduled_for)));
    let run = RunStart::with_clock(RunKind::Scheduled, "schedule:nightly", clock)
        .scheduled_for(ts(scheduled_for))
        .succeeded(None);
    f.repo.record_run(&run).await.expect("record");
}

#[tokio::test(start_paused = true)]
async fn a_missed_run_runs_once_at_start_up() {
    let f = Fixture::new(&["files"]).await;
    // Last ran on 11-26; down for the runs of 11-27 … 11-30; starts on 11-30 at 12:00.
    past_run(&f, "2026-11-26T03:00:00Z").await;
    let nightly = Schedule::daily("nightly", at(3, 0), "UTC").expect("schedule");
    let reports = run_alone(&f, "2026-11-30T12:00:00Z", nightly, 2).await;
    assert_eq!(
        scheduled_for(&reports),
        ["2026-11-30T03:00:00Z", "2026-12-01T03:00:00Z"],
        "the newest missed run once, then on schedule"
    );
    assert!(
        reports[0].run.started < ts("2026-11-30T12:01:00Z"),
        "at start-up, not at the next occurrence: {}",
        reports[0].run.started
    );
    assert_eq!(bundle_count(&f).await, 2);
}

#[tokio::test(start_paused = true)]
async fn a_missed_run_is_skipped_when_configured() {
    let f = Fixture::new(&["files"]).await;
    past_run(&f, "2026-11-26T03:00:00Z").await;
    let nightly = Schedule::daily("nightly", at(3, 0), "UTC")
        .expect("schedule")
        .with_missed_run(MissedRun::Skip);
    let (mut handle, _) = start(&f, "2026-11-30T12:00:00Z", vec![nightly]);
    match handle.next_event().await.expect("event") {
        SchedulerEvent::MissedRunSkipped {
            schedule,
            missed,
            next,
        } => {
            assert_eq!(schedule, "nightly");
            assert_eq!(missed, ts("2026-11-30T03:00:00Z"));
            assert_eq!(next, ts("2026-12-01T03:00:00Z"));
        }
        other => panic!("expected a skipped missed run, got {other:?}"),
    }
    let first = handle.next_run().await.expect("run");
    handle.stop().await.expect("stop");
    assert_eq!(first.run.scheduled_for, Some(ts("2026-12-01T03:00:00Z")));
}

#[tokio::test(start_paused = true)]
async fn a_schedule_that_never_ran_has_missed_nothing() {
    let f = Fixture::new(&["files"]).await;
    let nightly = Schedule::daily("nightly", at(3, 0), "UTC").expect("schedule");
    let first = run_alone(&f, "2026-11-30T12:00:00Z", nightly, 1).await;
    assert_eq!(scheduled_for(&first), ["2026-12-01T03:00:00Z"]);
}

#[tokio::test(start_paused = true)]
async fn two_schedules_with_one_name_are_refused() {
    let f = Fixture::new(&[]).await;
    let one = Schedule::daily("nightly", at(3, 0), "UTC").expect("schedule");
    let err = Scheduler::new(f.repo.clone(), f.host.clone(), f.registry.clone())
        .with_schedule(one.clone())
        .and_then(|s| s.with_schedule(one))
        .expect_err("duplicate");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
}

/// Writes an exclusive lock of another host into the repository (a prune elsewhere);
/// returns its key.
async fn foreign_exclusive_lock(f: &Fixture) -> object_store::path::Path {
    let now = Timestamp::now();
    let record = LockRecord {
        kind: LockKind::Exclusive,
        host: "another-host".into(),
        pid: 4242,
        operation: "prune".into(),
        since: now,
        refreshed: now,
    };
    let key = f.repo.key("locks/foreign.json");
    let json = serde_json::to_vec(&record).expect("json");
    f.repo
        .object_store()
        .put(&key, PutPayload::from(json))
        .await
        .expect("put lock");
    key
}

#[tokio::test(start_paused = true)]
async fn a_run_waits_for_another_processs_exclusive_lock_then_runs() {
    let f = Fixture::new(&["files"]).await;
    let key = foreign_exclusive_lock(&f).await;
    let store = f.repo.object_store().clone();
    // The other process finishes ten minutes after the run was due (03:00).
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3 * 3600 + 600)).await;
        store.delete(&key).await.expect("unlock");
    });
    let nightly = Schedule::daily("nightly", at(3, 0), "UTC").expect("schedule");
    let report = run_alone(&f, "2026-11-30T00:00:00Z", nightly, 1).await;
    // Taking the lock while the other process held it would have failed the run.
    assert!(report[0].succeeded(), "{:?}", report[0].run.error);
    assert!(
        report[0].run.finished >= ts("2026-11-30T03:10:00Z"),
        "finished {} while the exclusive lock was held",
        report[0].run.finished
    );
    assert_eq!(bundle_count(&f).await, 1);
}

#[tokio::test(start_paused = true)]
async fn a_run_that_cannot_get_the_lock_fails_recorded_and_the_next_one_runs() {
    let f = Fixture::new(&["files"]).await;
    let key = foreign_exclusive_lock(&f).await;
    let nightly = Schedule::daily("nightly", at(3, 0), "UTC").expect("schedule");
    let progress = CollectedProgress::new();
    let scheduler = Scheduler::new(f.repo.clone(), f.host.clone(), f.registry.clone())
        .with_clock(Arc::new(TokioClock::starting_at(ts(
            "2026-11-30T00:00:00Z",
        ))))
        .with_progress(Arc::new(progress))
        .with_lock_wait(Duration::from_secs(300))
        .with_schedule(nightly)
        .expect("schedule");
    let mut handle = scheduler.start(CancellationToken::new());
    let locked = handle.next_run().await.expect("first run");
    f.repo.object_store().delete(&key).await.expect("unlock");
    let next = handle.next_run().await.expect("second run");
    handle.stop().await.expect("stop");
    assert!(!locked.succeeded());
    let error = locked.run.error.as_ref().expect("error");
    assert_eq!(error.kind, ErrorKind::Locked);
    assert!(error.message.contains("another-host"), "{}", error.message);
    assert!(next.succeeded(), "{:?}", next.run.error);
    let history = f.repo.runs(&RunFilter::default()).await.expect("runs").runs;
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].status, RunStatus::Failed);
    assert_eq!(bundle_count(&f).await, 1);
}

#[tokio::test(start_paused = true)]
async fn stopping_lets_a_run_in_progress_finish_and_record_then_ends() {
    let f = Fixture::with_slow(&[], &["slow"]).await;
    let slow = Schedule::daily("slow", at(2, 0), "UTC").expect("schedule");
    let (mut handle, _) = start(&f, "2026-11-30T00:00:00Z", vec![slow]);
    // An hour into the three-hour run.
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    handle.cancel();
    let report = handle
        .next_run()
        .await
        .expect("the run in progress finishes");
    assert!(report.succeeded(), "{:?}", report.run.error);
    assert!(handle.next_event().await.is_none(), "no run after the stop");
    handle.wait().await.expect("ended");
    let history = f.repo.runs(&RunFilter::default()).await.expect("runs").runs;
    assert_eq!(history.len(), 1);
    assert_eq!(bundle_count(&f).await, 1);
}
