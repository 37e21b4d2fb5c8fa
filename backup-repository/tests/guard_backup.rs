//! Guard: an automatic backup exists before the host's destructive operation runs; a
//! failing guard blocks it unless overridden.

mod restore_support;

use backup_core::bundle::BundleKind;
use backup_core::memory_host::HostCall;
use backup_core::progress::no_progress;
use backup_core::{RecipeRegistry, Result, WorkspaceHost};
use backup_repository::{guard, BundleInfo, GuardReason, Repository};
use restore_support::{failing_export, registry, Env};

/// The host's destructive operation, as an embedding would write it: guard first, then
/// remove. Returns what the repository listed when the removal started.
async fn remove_guarded(
    env: &Env,
    registry: &RecipeRegistry,
    override_why: Option<&str>,
) -> Result<Vec<BundleInfo>> {
    let services = vec!["files".to_string()];
    let outcome = guard(
        &env.repo,
        &env.host,
        registry,
        &services,
        GuardReason::BeforeRemove,
        no_progress(),
    )
    .await;
    match override_why {
        Some(why) => {
            let _ = outcome.override_failure(why);
        }
        None => {
            outcome.proceed()?;
        }
    }
    remove_recording(&env.repo, &env.host, "files").await
}

/// Lists the repository at the moment the removal starts, then removes.
async fn remove_recording(
    repo: &Repository,
    host: &dyn WorkspaceHost,
    name: &str,
) -> Result<Vec<BundleInfo>> {
    let seen = repo.list(&Default::default()).await?;
    host.remove_deployment(name).await?;
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn guard_backup_exists_before_the_host_removes_the_service() {
    let env = Env::start().await;
    let seen = remove_guarded(&env, &registry(), None)
        .await
        .expect("guarded removal");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].kind, BundleKind::Automatic);
    assert_eq!(seen[0].reason.as_deref(), Some("before-remove"));
    assert_eq!(seen[0].services, ["files"]);
    assert!(env
        .host
        .calls()
        .iter()
        .any(|c| matches!(c, HostCall::Removed(n) if n == "files")));
    // The guard bundle restores what was removed.
    let entry = env.repo.info(&seen[0].id).await.expect("info");
    assert!(entry.manifest.entries.iter().any(|e| e.service == "files"));
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_guard_blocks_the_operation() {
    let env = Env::start().await;
    let registry = failing_export();
    let error = remove_guarded(&env, &registry, None)
        .await
        .expect_err("blocked");
    assert!(
        error.hint().is_some_and(|h| h.contains("override_failure")),
        "{error:?}"
    );
    assert!(env.host.get("files").is_some(), "not removed");
    assert!(
        env.repo
            .list(&Default::default())
            .await
            .expect("list")
            .is_empty(),
        "no bundle"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_guard_overridden_lets_the_operation_run() {
    let env = Env::start().await;
    let registry = failing_export();
    let seen = remove_guarded(&env, &registry, Some("the operator accepted data loss"))
        .await
        .expect("overridden");
    assert!(seen.is_empty());
    assert!(env.host.get("files").is_none(), "removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn guard_reason_is_the_callers_and_an_idle_service_stays_stopped() {
    let env = Env::start().await;
    env.host.stop_service("files").await.expect("stop");
    env.host.clear_calls();
    let services = vec!["files".to_string()];
    let reason = GuardReason::Other("before-migration".into());
    let info = guard(
        &env.repo,
        &env.host,
        &registry(),
        &services,
        reason,
        no_progress(),
    )
    .await
    .proceed()
    .expect("guard");
    assert_eq!(info.reason.as_deref(), Some("before-migration"));
    assert!(!env
        .host
        .calls()
        .iter()
        .any(|c| matches!(c, HostCall::Started(_))));
    assert_eq!(env.host.get("files").expect("files").status, "stopped");
}
