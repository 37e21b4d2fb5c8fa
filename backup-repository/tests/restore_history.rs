//! Restore, emergency restore and guard runs are recorded in the repository's run
//! history with their status, error and hint.

mod restore_support;

use backup_core::progress::no_progress;
use backup_core::ErrorKind;
use backup_repository::history::{RunFilter, RunKind, RunRecord, RunStatus};
use backup_repository::{emergency_restore, guard, safe_restore, GuardReason, SafeRestoreOptions};
use restore_support::{faulty, registry, Env, Fault};

async fn runs_of(env: &Env, kind: RunKind) -> Vec<RunRecord> {
    let filter = RunFilter {
        kind: Some(kind),
        ..RunFilter::default()
    };
    env.repo.runs(&filter).await.expect("runs").runs
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_runs_are_recorded_succeeded_and_failed_with_the_rollback_outcome() {
    let env = Env::start().await;
    let bundle = env.backup("good").await;
    env.change(1);
    let options = SafeRestoreOptions::default();
    let report = safe_restore(
        &env.repo,
        &bundle.id,
        &env.host,
        &registry(),
        &options,
        no_progress(),
    )
    .await
    .expect("restore");
    let (failing, _) = faulty(
        "directory",
        Fault {
            imports: usize::MAX,
            ..Fault::default()
        },
    );
    let error = safe_restore(
        &env.repo,
        &bundle.id,
        &env.host,
        &failing,
        &options,
        no_progress(),
    )
    .await
    .expect_err("fails");
    let dry = SafeRestoreOptions {
        dry_run: true,
        ..SafeRestoreOptions::default()
    };
    safe_restore(
        &env.repo,
        &bundle.id,
        &env.host,
        &registry(),
        &dry,
        no_progress(),
    )
    .await
    .expect("dry run");

    let runs = runs_of(&env, RunKind::Restore).await;
    assert_eq!(runs.len(), 2, "a dry run is not recorded: {runs:?}");
    let (failed, succeeded) = (&runs[0], &runs[1]);
    assert_eq!(succeeded.status, RunStatus::Succeeded);
    assert_eq!(
        succeeded.bundle.as_ref().map(|b| b.id.as_str()),
        Some(bundle.id.as_str())
    );
    assert_eq!(succeeded.services, ["cache", "db", "files"]);
    let safety = succeeded.details["restore"]["safetyBundle"].as_str();
    assert_eq!(safety, report.safety_bundle.as_deref());
    assert_eq!(failed.status, RunStatus::Failed);
    let recorded = failed.error.as_ref().expect("error");
    assert_eq!(recorded.kind, ErrorKind::RollbackFailed);
    assert_eq!(recorded.message, error.message());
    assert_eq!(recorded.hint.as_deref(), error.hint());
    assert_eq!(
        failed.details["rollback"]["rolledBack"],
        serde_json::json!(["cache", "db"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn emergency_and_guard_runs_are_recorded() {
    let env = Env::start().await;
    env.backup("good").await;
    emergency_restore(
        &env.repo,
        &env.host,
        &registry(),
        &SafeRestoreOptions::default(),
        no_progress(),
    )
    .await
    .expect("emergency restore");
    let services = vec!["files".to_string()];
    let (failing, _) = faulty(
        "directory",
        Fault {
            export: true,
            ..Fault::default()
        },
    );
    let _ = guard(
        &env.repo,
        &env.host,
        &failing,
        &services,
        GuardReason::BeforeApply,
        no_progress(),
    )
    .await
    .override_failure("test");

    let emergency = runs_of(&env, RunKind::EmergencyRestore).await;
    assert_eq!(emergency.len(), 1);
    assert_eq!(emergency[0].status, RunStatus::Succeeded);
    assert_eq!(emergency[0].trigger, "emergency");
    let guards = runs_of(&env, RunKind::Guard).await;
    assert_eq!(guards.len(), 1);
    assert_eq!(guards[0].status, RunStatus::Failed);
    assert_eq!(guards[0].trigger, "before-apply");
    assert_eq!(guards[0].services, ["files"]);
    assert!(
        guards[0].bundle.is_none(),
        "a failed guard leaves no bundle"
    );
}
