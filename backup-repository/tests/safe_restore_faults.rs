//! Faults injected at every step of a safe restore, each its own test, with real
//! PostgreSQL, Redis and directory data: the wrappers fail, the data stays real.

mod restore_support;

use std::sync::atomic::Ordering;

use backup_core::bundle::BundleKind;
use backup_core::{Error, ErrorKind, RecipeRegistry};
use backup_repository::{RestoreFailure, SafeRestoreOptions, SafeRestoreReport};
use restore_support::{failing_export, faulty, Env, Fault};

async fn restore_with(
    env: &Env,
    bundle: &str,
    registry: &RecipeRegistry,
) -> Result<SafeRestoreReport, Error> {
    env.restore(bundle, registry, &SafeRestoreOptions::default())
        .await
}

async fn safety_bundles(env: &Env) -> Vec<String> {
    env.repo
        .list(&Default::default())
        .await
        .expect("list")
        .into_iter()
        .filter(|b| b.kind == BundleKind::Safety)
        .map(|b| b.id)
        .collect()
}

/// Backs up, changes every service, and returns the bundle and the changed state.
async fn backed_up_then_changed(
    env: &Env,
) -> (backup_repository::BundleInfo, restore_support::State) {
    let bundle = env.backup("good").await;
    env.change(1);
    (bundle, env.state())
}

#[tokio::test(flavor = "multi_thread")]
async fn safety_backup_that_fails_stops_the_restore_before_anything_is_touched() {
    let env = Env::start().await;
    let (bundle, before) = backed_up_then_changed(&env).await;
    let (registry, imports) = faulty(
        "directory",
        Fault {
            export: true,
            ..Fault::default()
        },
    );

    let error = restore_with(&env, &bundle.id, &registry)
        .await
        .expect_err("refused");

    assert!(error.to_string().contains("safety backup"), "{error}");
    assert!(
        error
            .hint()
            .is_some_and(|h| h.contains("nothing was changed")),
        "{error:?}"
    );
    assert_eq!(env.state(), before, "nothing touched");
    assert_eq!(imports.load(Ordering::SeqCst), 0, "no import started");
    assert!(
        safety_bundles(&env).await.is_empty(),
        "a failed safety backup leaves no bundle"
    );
    assert_eq!(
        env.host.get("files").expect("files").status,
        "running",
        "started again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn safety_backup_failure_can_be_overridden_explicitly() {
    let env = Env::start().await;
    let bundle = env.backup("good").await;
    let backed_up = env.state();
    env.change(1);
    let registry = failing_export();
    let options = SafeRestoreOptions {
        proceed_without_safety_backup: true,
        ..SafeRestoreOptions::default()
    };
    let report = env
        .restore(&bundle.id, &registry, &options)
        .await
        .expect("restored without a way back");
    assert!(report.safety_bundle.is_none());
    assert!(
        report.notes.iter().any(|n| n.contains("no safety backup")),
        "{:?}",
        report.notes
    );
    assert_eq!(env.state(), backed_up);
}

#[tokio::test(flavor = "multi_thread")]
async fn import_failing_in_the_second_stage_rolls_back_the_first_stage() {
    let env = Env::start().await;
    let (bundle, before) = backed_up_then_changed(&env).await;
    // `files` (stage 2) fails its first import; its rollback import works.
    let (registry, _) = faulty(
        "directory",
        Fault {
            imports: 1,
            ..Fault::default()
        },
    );

    let error = restore_with(&env, &bundle.id, &registry)
        .await
        .expect_err("fails");

    assert_eq!(error.kind(), ErrorKind::RestoreRolledBack, "{error:?}");
    let after = env.state();
    assert_eq!(after.pg, before.pg, "PostgreSQL dump equal to before");
    assert_eq!(
        after.redis, before.redis,
        "Redis DEBUG DIGEST equal to before"
    );
    assert_eq!(after.tree, before.tree, "directory tree equal to before");
    let failure = RestoreFailure::of(&error).expect("details");
    assert_eq!(failure.failed_service.as_deref(), Some("files"));
    assert_eq!(failure.rolled_back, ["cache", "db", "files"]);
    let safety = safety_bundles(&env).await;
    assert_eq!(failure.safety_bundle.as_ref(), safety.first());
    assert!(
        error.to_string().contains(&safety[0]),
        "names the safety bundle: {error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn smoke_test_that_fails_rolls_back() {
    let env = Env::start().await;
    let (bundle, before) = backed_up_then_changed(&env).await;
    let (registry, _) = faulty(
        "directory",
        Fault {
            smoke_tests: 1,
            ..Fault::default()
        },
    );

    let error = restore_with(&env, &bundle.id, &registry)
        .await
        .expect_err("fails");

    assert_eq!(error.kind(), ErrorKind::RestoreRolledBack, "{error:?}");
    assert!(error.to_string().contains("smoke test"), "{error}");
    assert_eq!(
        env.state(),
        before,
        "every service holds what it held before"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_that_fails_reports_both_errors_with_its_own_kind_and_keeps_the_safety_bundle() {
    let env = Env::start().await;
    let (bundle, before) = backed_up_then_changed(&env).await;
    // `files` fails every import: the restore and its rollback.
    let (registry, imports) = faulty(
        "directory",
        Fault {
            imports: usize::MAX,
            ..Fault::default()
        },
    );

    let error = restore_with(&env, &bundle.id, &registry)
        .await
        .expect_err("fails");

    assert_eq!(error.kind(), ErrorKind::RollbackFailed, "{error:?}");
    assert_eq!(
        imports.load(Ordering::SeqCst),
        2,
        "the restore and the rollback tried"
    );
    let failure = RestoreFailure::of(&error).expect("details");
    assert!(
        failure.restore_error.contains("injected fault"),
        "{failure:?}"
    );
    assert_eq!(failure.rolled_back, ["cache", "db"]);
    assert_eq!(failure.not_rolled_back.len(), 1);
    assert_eq!(failure.not_rolled_back[0].0, "files");
    let message = error.to_string();
    assert!(
        message.contains("restore of bundle") && message.contains("rollback failed"),
        "{message}"
    );
    let hint = error.hint().expect("manual steps");
    assert!(
        hint.contains("by hand") && hint.contains("`files`"),
        "{hint}"
    );
    let safety = safety_bundles(&env).await;
    assert_eq!(safety.len(), 1, "safety bundle kept");
    assert_eq!(failure.safety_bundle.as_ref(), safety.first());
    let after = env.state();
    assert_eq!(after.pg, before.pg);
    assert_eq!(after.redis, before.redis);
}
