//! Safe restore through a repository with real PostgreSQL, Redis and a directory: the
//! data equals the restored bundle, the safety bundle exists and is locked, a dry run
//! changes nothing and reports sizes, services are chosen with their dependencies.

mod restore_support;

use backup_core::bundle::BundleKind;
use backup_core::memory_host::HostCall;
use backup_core::progress::no_progress;
use backup_core::{ErrorKind, ProgressEvent};
use backup_repository::safe_restore::LATEST;
use backup_repository::{safe_restore, SafeRestoreOptions, SmokeTest};
use restore_support::{collecting, only_files, registry, Env};

#[tokio::test(flavor = "multi_thread")]
async fn safe_restore_brings_back_the_bundle_and_keeps_a_locked_safety_bundle() {
    let env = Env::start().await;
    let bundle = env.backup("good").await;
    let backed_up = env.state();
    env.change(1);
    let changed = env.state();
    assert_ne!(backed_up, changed);

    let report = safe_restore(
        &env.repo,
        &bundle.name,
        &env.host,
        &registry(),
        &SafeRestoreOptions::default(),
        no_progress(),
    )
    .await
    .expect("safe restore");

    assert_eq!(env.state(), backed_up, "data equals the restored bundle");
    assert_eq!(report.bundle_id, bundle.id);
    assert_eq!(
        report.stages,
        vec![vec!["cache".to_string(), "db".into()], vec!["files".into()]]
    );
    let names: Vec<_> = report.services.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(names, ["cache", "db", "files"]);
    for service in &report.services {
        assert_eq!(service.smoke_test, SmokeTest::Passed, "{}", service.service);
        assert!(service.bytes > 0, "{}", service.service);
        assert!(
            service.replaced.as_ref().is_some_and(|h| !h.is_empty()),
            "{}",
            service.service
        );
    }

    let safety_id = report.safety_bundle.expect("safety bundle");
    let safety = env
        .repo
        .info(&safety_id)
        .await
        .expect("safety bundle listed");
    assert_eq!(safety.manifest.kind, BundleKind::Safety);
    assert_eq!(safety.manifest.reason.as_deref(), Some("before-restore"));
    let until = safety
        .lock
        .as_ref()
        .and_then(|l| l.until)
        .expect("locked until a time");
    let days = (until - jiff::Timestamp::now()).as_secs() / 86_400;
    assert!((6..=7).contains(&days), "locked for 7 days, not {days}");
    assert!(
        env.repo.delete(&safety_id).await.is_err(),
        "a locked bundle cannot be deleted"
    );

    // The safety bundle holds what was replaced: restoring it brings the change back.
    let options = SafeRestoreOptions::default();
    safe_restore(
        &env.repo,
        &safety_id,
        &env.host,
        &registry(),
        &options,
        no_progress(),
    )
    .await
    .expect("restore the safety bundle");
    assert_eq!(env.state(), changed);
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_reports_current_and_bundle_sizes_and_changes_nothing() {
    let env = Env::start().await;
    let bundle = env.backup("good").await;
    env.change(1);
    let before = env.state();
    let listed = env
        .repo
        .list(&Default::default())
        .await
        .expect("list")
        .len();

    let options = SafeRestoreOptions {
        dry_run: true,
        ..SafeRestoreOptions::default()
    };
    let report = safe_restore(
        &env.repo,
        LATEST,
        &env.host,
        &registry(),
        &options,
        no_progress(),
    )
    .await
    .expect("dry run");

    assert!(report.dry_run);
    assert_eq!(report.bundle_id, bundle.id);
    assert_eq!(env.state(), before, "nothing touched");
    assert_eq!(
        env.repo
            .list(&Default::default())
            .await
            .expect("list")
            .len(),
        listed,
        "no safety bundle"
    );
    assert!(report.safety_bundle.is_none());
    let db = report
        .services
        .iter()
        .find(|s| s.service == "db")
        .expect("db");
    let held = db
        .replaced
        .as_ref()
        .expect("postgres describes its databases");
    assert!(held
        .iter()
        .any(|h| h.kind == "database" && h.name == "app" && h.size.unwrap_or(0) > 0));
    assert!(db
        .artifacts
        .iter()
        .all(|a| a.size > 0 && a.uncompressed_size > 0));
    let cache = report
        .services
        .iter()
        .find(|s| s.service == "cache")
        .expect("cache");
    let keys: u64 = cache
        .replaced
        .as_ref()
        .expect("redis")
        .iter()
        .filter(|h| h.kind == "keys")
        .filter_map(|h| h.count)
        .sum();
    assert_eq!(keys, env.redis.total_keys());
    let files = report
        .services
        .iter()
        .find(|s| s.service == "files")
        .expect("files");
    let tree = files.replaced.as_ref().expect("directory");
    assert!(tree
        .iter()
        .any(|h| h.kind == "files" && h.count.unwrap_or(0) > 0 && h.size.unwrap_or(0) > 0));
    assert!(report
        .services
        .iter()
        .all(|s| s.smoke_test == SmokeTest::NotRun));
}

#[tokio::test(flavor = "multi_thread")]
async fn chosen_service_comes_with_its_dependencies_unless_told_otherwise() {
    let env = Env::start().await;
    env.backup("good").await;
    let only = |with_dependencies| SafeRestoreOptions {
        services: Some(vec!["files".into()]),
        with_dependencies,
        dry_run: true,
        ..SafeRestoreOptions::default()
    };
    let report = safe_restore(
        &env.repo,
        "1",
        &env.host,
        &registry(),
        &only(true),
        no_progress(),
    )
    .await
    .expect("with dependencies");
    assert_eq!(
        report.stages,
        vec![vec!["cache".to_string(), "db".into()], vec!["files".into()]]
    );
    let report = safe_restore(
        &env.repo,
        "1",
        &env.host,
        &registry(),
        &only(false),
        no_progress(),
    )
    .await
    .expect("without dependencies");
    assert_eq!(report.stages, vec![vec!["files".to_string()]]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_that_must_be_stopped_is_stopped_and_started_again() {
    let env = Env::start().await;
    let bundle = env.backup("good").await;
    env.change(1);
    env.host.clear_calls();
    let report = env
        .restore(&bundle.id, &registry(), &only_files())
        .await
        .expect("restore");
    assert_eq!(report.restarted, ["files"]);
    let calls = env.host.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| matches!(c, HostCall::Stopped(n) if n == "files"))
            .count(),
        1,
        "{calls:?}"
    );
    assert!(
        matches!(calls.last(), Some(HostCall::Started(n)) if n == "files"),
        "{calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_service_stays_stopped() {
    let env = Env::start().await;
    let bundle = env.backup("good").await;
    backup_core::WorkspaceHost::stop_service(&env.host, "files")
        .await
        .expect("stop");
    env.host.clear_calls();
    let report = env
        .restore(&bundle.id, &registry(), &only_files())
        .await
        .expect("restore");
    assert!(report.restarted.is_empty());
    let calls = env.host.calls();
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, HostCall::Started(_) | HostCall::Stopped(_))),
        "{calls:?}"
    );
    assert_eq!(env.host.get("files").expect("files").status, "stopped");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_that_only_plans_reads_no_entry_and_the_restore_after_it_still_verifies() {
    let env = Env::start().await;
    let bundle = env.backup("good").await;
    env.change(1);
    let before = env.state();
    // One flipped byte in the middle of the bundle: inside an entry's data.
    let file = env.bundle_file(&bundle);
    let mut bytes = std::fs::read(&file).expect("read bundle");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&file, &bytes).expect("write bundle");
    let run = |options: SafeRestoreOptions, progress| {
        let env = &env;
        let name = bundle.name.clone();
        async move { safe_restore(&env.repo, &name, &env.host, &registry(), &options, progress).await }
    };

    let (progress, events) = collecting();
    let plan = run(
        SafeRestoreOptions {
            dry_run: true,
            verify_in_dry_run: false,
            ..SafeRestoreOptions::default()
        },
        progress,
    )
    .await
    .expect("a plan that reads no entry does not see the damage");
    assert!(plan.dry_run);
    assert_eq!(plan.services.len(), 3, "{plan:?}");
    assert!(
        !events
            .lock()
            .expect("events")
            .iter()
            .any(|e| matches!(e, ProgressEvent::Verified { .. })),
        "the plan read an entry"
    );

    let checked = run(
        SafeRestoreOptions {
            dry_run: true,
            ..SafeRestoreOptions::default()
        },
        no_progress(),
    )
    .await
    .expect_err("a default dry run verifies every entry");
    assert_eq!(checked.kind(), ErrorKind::Integrity, "{checked}");

    let restored = run(
        SafeRestoreOptions {
            verify_in_dry_run: false,
            ..SafeRestoreOptions::default()
        },
        no_progress(),
    )
    .await
    .expect_err("a restore always verifies first");
    assert_eq!(restored.kind(), ErrorKind::Integrity, "{restored}");
    assert_eq!(env.state(), before, "nothing touched");
}
