//! Run history: every run recorded in the repository, listed newest first.

mod sched_support;

use std::sync::Arc;

use backup_core::backup::BackupRequest;
use backup_core::bundle::{BundleKind, BundleOptions};
use backup_core::progress::no_progress;
use backup_core::{Error, ErrorKind};
use backup_repository::history::{
    RecordedBackup, RunFilter, RunKind, RunRecord, RunStart, RunStatus, MAX_RUN_RECORD_BYTES,
};
use backup_repository::{BundleFilter, PruneOptions, TokioClock};
use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};
use sched_support::Fixture;

fn request(label: &str) -> BackupRequest {
    BackupRequest {
        bundle: BundleOptions {
            kind: BundleKind::Automatic,
            ..BundleOptions::default()
        }
        .with_label(label),
        ..BackupRequest::default()
    }
}

/// Backs up the fixture's workspace (label `label`) as the run `run`, recorded.
async fn recorded(f: &Fixture, label: &str, run: RunStart) -> RecordedBackup {
    f.repo
        .backup_recorded(
            f.host.as_ref(),
            &f.registry,
            &request(label),
            run,
            no_progress(),
        )
        .await
}

async fn backup(f: &Fixture, kind: RunKind, trigger: &str) -> RunRecord {
    recorded(f, trigger, RunStart::new(kind, trigger)).await.run
}

#[tokio::test]
async fn a_successful_backup_is_recorded_with_its_bundle_size_duration_and_services() {
    let f = Fixture::new(&["files", "media"]).await;
    let run = RunStart::new(RunKind::Manual, "user").label(Some("nightly".into()));
    let done = recorded(&f, "nightly", run).await;
    let key = done.recorded.expect("recorded");
    assert!(key.starts_with("runs/") && key.ends_with(".json"), "{key}");
    let bundle = done.result.expect("backup");
    let runs = f.repo.runs(&RunFilter::default()).await.expect("runs");
    assert!(runs.unreadable.is_empty(), "{:?}", runs.unreadable);
    assert_eq!(runs.runs.len(), 1);
    let run = &runs.runs[0];
    assert_eq!(run, &done.run);
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!((run.kind, run.trigger.as_str()), (RunKind::Manual, "user"));
    assert_eq!(run.services, ["files", "media"]);
    assert_eq!(run.label.as_deref(), Some("nightly"));
    let recorded = run.bundle.as_ref().expect("bundle recorded");
    assert_eq!(
        (&recorded.id, &recorded.name, recorded.size),
        (&bundle.id, &bundle.name, bundle.size)
    );
    assert!(recorded.size > 0);
    assert!(run.finished >= run.started);
    assert_eq!(
        run.duration_ms,
        run.finished.duration_since(run.started).as_millis() as u64
    );
    assert!(run.error.is_none() && run.warnings.is_empty());
}

#[tokio::test]
async fn a_failed_backup_is_recorded_with_error_and_hint_and_leaves_no_bundle() {
    let f = Fixture::new(&["files"]).await;
    f.break_service("files", true);
    let run = RunStart::new(RunKind::Scheduled, "schedule:nightly").services(["files"]);
    let done = recorded(&f, "nightly", run).await;
    let err = done.result.expect_err("the directory is gone");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    done.recorded.expect("recorded");
    // No bundle: not listed, no object, no orphan, no partial upload.
    assert!(f
        .repo
        .list(&BundleFilter::default())
        .await
        .expect("list")
        .is_empty());
    assert!(f.bundle_files().is_empty(), "{:?}", f.bundle_files());
    let check = f.repo.check().await.expect("check");
    assert!(check.orphans.is_empty(), "{:?}", check.orphans);
    let runs = f.repo.runs(&RunFilter::default()).await.expect("runs").runs;
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.bundle.is_none());
    assert_eq!(run.services, ["files"]);
    let error = run.error.as_ref().expect("error recorded");
    assert_eq!(error.kind, ErrorKind::NotFound);
    assert_eq!(error.message, err.message());
    assert_eq!(error.hint.as_deref(), err.hint());
}

#[tokio::test]
async fn exporter_warnings_are_recorded_a_skipped_socket() {
    let f = Fixture::new(&["files"]).await;
    let _socket = std::os::unix::net::UnixListener::bind(f.data("files").join("app.sock"))
        .expect("bind a socket");
    let run = backup(&f, RunKind::Manual, "user").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.warnings.len(), 1, "{:?}", run.warnings);
    assert_eq!(run.warnings[0].service, "files");
    assert!(
        run.warnings[0].message.contains("1 socket"),
        "{:?}",
        run.warnings
    );
    let listed = f.repo.runs(&RunFilter::default()).await.expect("runs").runs;
    assert_eq!(listed[0].warnings, run.warnings);
}

#[tokio::test]
async fn runs_are_listed_newest_first_and_filtered_by_status_kind_service_and_trigger() {
    let f = Fixture::new(&["files", "media"]).await;
    // A backup that fails at once may start in the same millisecond as the next run.
    let first = backup(&f, RunKind::Manual, "user").await;
    let guard = backup(&f, RunKind::Guard, "before-remove").await;
    f.break_service("media", true);
    let failed = backup(&f, RunKind::Scheduled, "schedule:nightly").await;
    let restore = RunStart::new(RunKind::Restore, "user")
        .services(["media"])
        .failed(&Error::new(ErrorKind::Integrity, "bad bundle").with_hint("verify it"));
    f.repo.record_run(&restore).await.expect("record");
    let ids = |runs: &[RunRecord]| runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    let all = f.repo.runs(&RunFilter::default()).await.expect("runs").runs;
    assert_eq!(
        ids(&all),
        [
            restore.id.as_str(),
            failed.id.as_str(),
            guard.id.as_str(),
            first.id.as_str()
        ],
        "newest first"
    );
    let only = |filter: RunFilter| {
        let repo = f.repo.clone();
        async move { ids(&repo.runs(&filter).await.expect("runs").runs) }
    };
    let failed_only = RunFilter {
        status: Some(RunStatus::Failed),
        ..RunFilter::default()
    };
    assert_eq!(
        only(failed_only).await,
        [restore.id.as_str(), failed.id.as_str()]
    );
    let guards = RunFilter {
        kind: Some(RunKind::Guard),
        ..RunFilter::default()
    };
    assert_eq!(only(guards).await, [guard.id.as_str()]);
    let media = RunFilter {
        service: Some("media".into()),
        ..RunFilter::default()
    };
    // The failed backup asked for the whole workspace: its record names its services.
    assert_eq!(
        only(media).await,
        [
            restore.id.as_str(),
            failed.id.as_str(),
            guard.id.as_str(),
            first.id.as_str()
        ]
    );
    let nightly = RunFilter {
        trigger: Some("schedule:nightly".into()),
        ..RunFilter::default()
    };
    assert_eq!(only(nightly).await, [failed.id.as_str()]);
    let two = RunFilter {
        limit: Some(2),
        ..RunFilter::default()
    };
    assert_eq!(only(two).await, [restore.id.as_str(), failed.id.as_str()]);
}

#[tokio::test]
async fn a_corrupt_or_oversized_run_record_is_reported_not_fatal() {
    let f = Fixture::new(&["files"]).await;
    let good = backup(&f, RunKind::Manual, "user").await;
    let store = f.repo.object_store();
    let corrupt = f.repo.key("runs/29990101T000000.000Z_corrupt.json");
    store
        .put(&corrupt, PutPayload::from_static(b"{not json"))
        .await
        .expect("put");
    let huge = f.repo.key("runs/29990101T000000.001Z_huge.json");
    let big = vec![b' '; MAX_RUN_RECORD_BYTES as usize + 1];
    store
        .put(&huge, PutPayload::from(Bytes::from(big)))
        .await
        .expect("put");
    let list = f.repo.runs(&RunFilter::default()).await.expect("runs");
    assert_eq!(list.runs.len(), 1);
    assert_eq!(list.runs[0].id, good.id);
    let mut bad: Vec<_> = list.unreadable.iter().map(|u| u.path.clone()).collect();
    bad.sort();
    assert_eq!(bad, [corrupt.to_string(), huge.to_string()]);
    assert!(list
        .unreadable
        .iter()
        .any(|u| u.error.contains("not a run record")));
    assert!(list.unreadable.iter().any(|u| u.error.contains("bytes")));
}

#[tokio::test]
async fn a_run_record_is_never_overwritten() {
    let f = Fixture::new(&[]).await;
    let run = RunStart::new(RunKind::Manual, "user").succeeded(None);
    f.repo.record_run(&run).await.expect("first write");
    let again = f.repo.record_run(&run).await.expect_err("create-only");
    assert_eq!(again.kind(), ErrorKind::AlreadyExists);
}

#[tokio::test]
async fn check_and_prune_leave_the_run_history_alone() {
    let f = Fixture::new(&["files"]).await;
    for _ in 0..3 {
        backup(&f, RunKind::Scheduled, "schedule:nightly").await;
    }
    let check = f.repo.check().await.expect("check");
    assert!(check.orphans.is_empty(), "{:?}", check.orphans);
    let policy =
        serde_json::from_value(serde_json::json!({"default": {"keepLast": 1}})).expect("policy");
    let pruned = f
        .repo
        .prune(&PruneOptions {
            grace: std::time::Duration::ZERO,
            dry_run: false,
            policy: Some(policy),
        })
        .await
        .expect("prune");
    assert_eq!(pruned.removed_bundles.len(), 2);
    assert!(pruned.removed_orphans.is_empty());
    assert_eq!(
        f.repo
            .runs(&RunFilter::default())
            .await
            .expect("runs")
            .runs
            .len(),
        3
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_started_with_an_injected_clock_records_that_clocks_times() {
    let start: jiff::Timestamp = "2026-03-08T06:59:00Z".parse().expect("time");
    let clock = Arc::new(TokioClock::starting_at(start));
    let run = RunStart::with_clock(RunKind::Scheduled, "schedule:x", clock);
    tokio::time::sleep(std::time::Duration::from_secs(90)).await;
    let record = run.succeeded(None);
    assert_eq!(record.started, start);
    assert_eq!(record.duration_ms, 90_000);
}

#[tokio::test]
async fn runs_started_within_the_same_millisecond_are_listed_by_their_exact_start() {
    let f = Fixture::new(&["files"]).await;
    let start: jiff::Timestamp = "2026-03-08T06:59:00.250Z".parse().expect("time");
    // Eight runs 100 µs apart, all in one millisecond: their keys differ only by their
    // random ids, which put them in start order once in 40,320 tries.
    let mut recorded = Vec::new();
    for i in 0..8 {
        let at = start
            .checked_add(jiff::SignedDuration::from_micros(100 * i))
            .expect("time");
        let run = RunStart::with_clock(
            RunKind::Manual,
            "user",
            Arc::new(TokioClock::starting_at(at)),
        )
        .succeeded(None);
        f.repo.record_run(&run).await.expect("record");
        recorded.push(run);
    }
    let listed = f.repo.runs(&RunFilter::default()).await.expect("runs").runs;
    let started: Vec<_> = listed.iter().map(|r| r.started).collect();
    let mut newest_first: Vec<_> = recorded.iter().map(|r| r.started).collect();
    newest_first.reverse();
    assert_eq!(started, newest_first);
}
