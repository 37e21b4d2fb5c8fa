//! Emergency restore: the newest bundle that verifies, no prompt, every step reported.

mod restore_support;

use backup_repository::{emergency_restore, SafeRestoreOptions};
use backup_testkit::tamper::flip_byte_inside_entry;
use restore_support::{collecting, registry, steps, Env};

#[tokio::test(flavor = "multi_thread")]
async fn emergency_restore_skips_a_newer_bundle_that_fails_verification() {
    let env = Env::start().await;
    let good = env.backup("good").await;
    let good_state = env.state();
    env.change(1);
    let bad = env.backup("newer").await;
    let entry = env.repo.info(&bad.id).await.expect("info");
    flip_byte_inside_entry(&env.bundle_file(&bad), &entry.manifest.entries[0]);
    env.change(2);
    let (progress, events) = collecting();

    let report = emergency_restore(
        &env.repo,
        &env.host,
        &registry(),
        &SafeRestoreOptions::default(),
        progress,
    )
    .await
    .expect("emergency restore");

    assert_eq!(report.bundle_id, good.id, "the newest bundle that verifies");
    assert_eq!(report.skipped_bundles.len(), 1);
    assert_eq!(report.skipped_bundles[0].id, bad.id);
    assert_eq!(env.state(), good_state);
    assert!(report.safety_bundle.is_some(), "current state was readable");
    let steps = steps(&events, "emergency-restore");
    assert!(
        steps
            .iter()
            .any(|s| s.contains(&bad.name) && s.contains("does not verify")),
        "{steps:?}"
    );
    assert!(
        steps
            .iter()
            .any(|s| s.contains(&good.name) && s.contains("verifies")),
        "{steps:?}"
    );
    assert!(
        steps.iter().any(|s| s.contains("safety backup")),
        "{steps:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn emergency_restore_notes_a_current_state_it_cannot_read_and_restores_anyway() {
    let env = Env::start().await;
    env.backup("good").await;
    let good_state = env.state();
    // The directory is gone: there is nothing to back up, but it can be restored.
    std::fs::remove_dir_all(env.files()).expect("remove");
    let options = SafeRestoreOptions {
        services: Some(vec!["files".into()]),
        with_dependencies: false,
        ..SafeRestoreOptions::default()
    };
    let (progress, events) = collecting();

    let report = emergency_restore(&env.repo, &env.host, &registry(), &options, progress)
        .await
        .expect("emergency restore");

    assert!(report.safety_bundle.is_none());
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("no safety backup") && n.contains("cannot be read")),
        "{:?}",
        report.notes
    );
    assert_eq!(env.state().tree, good_state.tree);
    let steps = steps(&events, "emergency-restore");
    assert!(
        steps.iter().any(|s| s.contains("no safety backup")),
        "{steps:?}"
    );
}
