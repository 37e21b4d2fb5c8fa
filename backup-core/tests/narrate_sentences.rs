//! The sentences an agent says about a backup, a failed restore and one app's data:
//! counts, Oxford-comma lists, display names and human sizes.

use backup_core::narrate::{
    backed_up_manifest_sentence, backed_up_sentence, display_name, display_names,
    export_failed_sentence, exported_app_data_sentence, human_bytes, imported_app_data_sentence,
    join_list, restore_failed_sentence, restored_sentence, ServiceLabel,
};
use backup_core::snapshot::{ServiceSnapshot, WorkspaceRef, WorkspaceSnapshot};
use backup_core::{Error, ErrorKind, Manifest};

fn labels(services: &[(&str, &str)]) -> Vec<ServiceLabel> {
    services
        .iter()
        .map(|(name, recipe)| ServiceLabel::new(*name, *recipe))
        .collect()
}

#[test]
fn a_backup_of_no_services_says_the_workspace_is_empty() {
    assert_eq!(
        backed_up_sentence(&[]),
        "I've backed up your workspace; it has no services yet."
    );
}

#[test]
fn a_backup_of_one_service_uses_the_singular() {
    assert_eq!(
        backed_up_sentence(&labels(&[("db", "postgres")])),
        "I've backed up your workspace with 1 service: PostgreSQL."
    );
}

#[test]
fn a_backup_of_two_services_joins_them_with_and() {
    assert_eq!(
        backed_up_sentence(&labels(&[("db", "postgres"), ("cache", "redis")])),
        "I've backed up your workspace with 2 services: PostgreSQL and Redis."
    );
}

#[test]
fn a_backup_of_three_services_reads_like_the_seed() {
    assert_eq!(
        backed_up_sentence(&labels(&[
            ("db", "postgres"),
            ("cache", "redis"),
            ("n8n", "n8n")
        ])),
        "I've backed up your workspace with 3 services: PostgreSQL, Redis, and n8n."
    );
}

#[test]
fn a_restore_of_four_services_uses_the_oxford_comma() {
    assert_eq!(
        restored_sentence(&labels(&[
            ("db", "postgres"),
            ("cache", "redis"),
            ("files", "minio"),
            ("status", "uptime-kuma")
        ])),
        "I've restored your workspace with 4 services: PostgreSQL, Redis, MinIO, and Uptime Kuma."
    );
}

#[test]
fn join_list_handles_every_length() {
    let items = |n: usize| -> Vec<String> {
        ["a", "b", "c", "d"][..n]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    assert_eq!(join_list(&items(0)), "");
    assert_eq!(join_list(&items(1)), "a");
    assert_eq!(join_list(&items(2)), "a and b");
    assert_eq!(join_list(&items(3)), "a, b, and c");
    assert_eq!(join_list(&items(4)), "a, b, c, and d");
}

#[test]
fn display_names_come_from_the_recipe_slug() {
    let cases = [
        ("postgres", "PostgreSQL"),
        ("redis", "Redis"),
        ("minio", "MinIO"),
        ("s3", "MinIO"),
        ("n8n", "n8n"),
        ("uptime-kuma", "Uptime Kuma"),
        ("podman", "Podman"),
        ("directory", "uploads"),
        ("sqlite", "uploads"),
        ("something-new", "uploads"),
    ];
    for (recipe, shown) in cases {
        assert_eq!(display_name(Some(recipe), "uploads"), shown, "{recipe}");
    }
    assert_eq!(display_name(None, "uploads"), "uploads");
}

#[test]
fn two_services_of_one_recipe_are_told_apart_by_name() {
    assert_eq!(
        display_names(&labels(&[
            ("main", "postgres"),
            ("analytics", "postgres"),
            ("cache", "redis")
        ])),
        ["PostgreSQL (main)", "PostgreSQL (analytics)", "Redis"]
    );
}

fn snapshot(services: &[(&str, &str)]) -> WorkspaceSnapshot {
    WorkspaceSnapshot {
        version: 1,
        exported_at: "2026-11-30T05:00:00Z".into(),
        exported_by: "test".into(),
        workspace: WorkspaceRef {
            slug: "w".into(),
            name: "W".into(),
        },
        services: services
            .iter()
            .map(|(name, recipe)| ServiceSnapshot {
                recipe: recipe.to_string(),
                name: name.to_string(),
                config: Default::default(),
                depends_on: Vec::new(),
                status: "running".into(),
            })
            .collect(),
        metadata: None,
    }
}

fn manifest(services: &[&str]) -> Manifest {
    serde_json::from_value(serde_json::json!({
        "formatVersion": 1,
        "id": "b1",
        "createdAt": "2026-11-30T05:00:00Z",
        "kind": "manual",
        "tool": { "name": "backup-rs", "version": "0" },
        "includes": { "config": true, "services": services }
    }))
    .expect("manifest")
}

#[test]
fn a_manifest_sentence_takes_recipes_from_the_snapshot_and_names_the_rest() {
    let snapshot = snapshot(&[("db", "postgres"), ("cache", "redis")]);
    assert_eq!(
        backed_up_manifest_sentence(&manifest(&["db", "uploads"]), Some(&snapshot)),
        "I've backed up your workspace with 3 services: PostgreSQL, Redis, and uploads."
    );
    assert_eq!(
        backed_up_manifest_sentence(&manifest(&[]), None),
        "I've backed up your workspace; it has no services yet."
    );
}

#[test]
fn a_rolled_back_restore_says_the_workspace_is_as_it_was_with_the_hint() {
    let error = Error::new(ErrorKind::RestoreRolledBack, "import into `db` failed.")
        .with_hint("check the database logs");
    assert_eq!(
        restore_failed_sentence(&error),
        "The restore failed, so I rolled your workspace back to how it was: import into `db` \
         failed. Hint: check the database logs."
    );
}

#[test]
fn a_failed_rollback_says_the_workspace_needs_a_look() {
    let error = Error::new(ErrorKind::RollbackFailed, "could not remove `db`");
    assert_eq!(
        restore_failed_sentence(&error),
        "The restore failed, and rolling it back failed too; your workspace needs a look: \
         could not remove `db`."
    );
    let plain = Error::new(ErrorKind::Integrity, "the bundle is corrupt");
    assert_eq!(
        restore_failed_sentence(&plain),
        "The restore failed: the bundle is corrupt."
    );
}

#[test]
fn app_data_sentences_give_sizes_in_human_units() {
    let n8n = ServiceLabel::new("n8n", "n8n");
    let db = ServiceLabel::new("db", "postgres");
    assert_eq!(
        exported_app_data_sentence(&n8n, 13_002_342),
        "I've exported n8n's data (12.4 MiB)."
    );
    assert_eq!(
        imported_app_data_sentence(&db, 1536),
        "I've imported 1.5 KiB of data into PostgreSQL."
    );
    let error = Error::new(ErrorKind::ToolFailed, "pg_dump exited with 1").with_hint("is it up?");
    assert_eq!(
        export_failed_sentence(&db, &error),
        "I couldn't export PostgreSQL's data: pg_dump exited with 1. Hint: is it up?"
    );
}

#[test]
fn human_bytes_picks_the_unit() {
    assert_eq!(human_bytes(0), "0 B");
    assert_eq!(human_bytes(1023), "1023 B");
    assert_eq!(human_bytes(1024), "1.0 KiB");
    assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
}
