//! The restore narration, driven by the events of a real in-memory restore of three
//! services where n8n depends on PostgreSQL and Redis (directory data on the real file
//! system, recipes named like the seed's services).

mod flow_support;

use std::path::Path;
use std::sync::Arc;

use backup_core::backup::{create_backup, BackupRequest};
use backup_core::directory::DirectoryExporter;
use backup_core::memory_host::InMemoryHost;
use backup_core::narrate::{RestoreNarrator, ServiceState};
use backup_core::progress::{CollectedProgress, NoProgress, ProgressEvent};
use backup_core::restore::{restore_backup, RestoreOptions, RestoreReport};
use backup_core::{BundleReader, Recipe, RecipeRegistry, Result};
use flow_support::{fill, new, workspace, ConfigurableImporter};
use serde_json::json;

const SERVICES: [(&str, &str, &[&str]); 3] = [
    ("db", "postgres", &[]),
    ("queue", "redis", &[]),
    ("n8n", "n8n", &["db", "queue"]),
];

/// `postgres`, `redis` and `n8n` recipes over directory data; `failImport: true` in a
/// service's config fails its import.
fn registry() -> RecipeRegistry {
    let mut registry = RecipeRegistry::new();
    for (_, recipe, _) in SERVICES {
        registry.register(
            Recipe::builder(
                recipe,
                json!({
                    "type": "object",
                    "properties": {
                        "path": { "type": "string" },
                        "failImport": { "type": "boolean" }
                    },
                    "required": ["path"]
                }),
            )
            .exporter(Arc::new(DirectoryExporter))
            .importer(Arc::new(ConfigurableImporter))
            .build()
            .expect("recipe"),
        );
    }
    registry
}

/// The outcome, the bundle's snapshot and every event of restoring a backup of
/// db/queue/n8n into a new workspace, one service at a time; `fail` names a service whose
/// import fails.
async fn restore(
    root: &Path,
    fail: Option<&str>,
) -> (Result<RestoreReport>, RestoreNarrator, Vec<ProgressEvent>) {
    let source = InMemoryHost::new(workspace("source"));
    for (name, recipe, deps) in SERVICES {
        let dir = root.join("src").join(name);
        fill(&dir, name);
        source.insert(new(name, recipe, json!({ "path": dir }), deps));
    }
    let bundle = root.join("b.backup.zip");
    create_backup(
        &source,
        &registry(),
        &BackupRequest::default(),
        &bundle,
        Arc::new(NoProgress),
    )
    .await
    .expect("backup");
    let reader = BundleReader::open(&bundle).await.expect("open");
    let narrator = RestoreNarrator::from_snapshot(reader.snapshot().expect("snapshot"));

    let mut options = RestoreOptions::default();
    options.import.max_concurrency = 1;
    for (name, _, _) in SERVICES {
        let mut fields = serde_json::Map::new();
        fields.insert("path".into(), json!(root.join("dst").join(name)));
        if fail == Some(name) {
            fields.insert("failImport".into(), json!(true));
        }
        options.import.config_overrides.insert(name.into(), fields);
    }
    let target = InMemoryHost::new(workspace("target"));
    let progress = CollectedProgress::new();
    let outcome = restore_backup(
        &bundle,
        &target,
        &registry(),
        &options,
        Arc::new(progress.clone()),
    )
    .await;
    (outcome, narrator, progress.events())
}

/// The status line before any event and after each event that changed it.
fn status_lines(mut narrator: RestoreNarrator, events: &[ProgressEvent]) -> Vec<String> {
    let mut lines = vec![narrator.status_line()];
    for event in events {
        narrator.observe(event);
        let line = narrator.status_line();
        if lines.last() != Some(&line) {
            lines.push(line);
        }
    }
    lines
}

const PLANNED: &str = "Restoring 3 services… PostgreSQL is waiting to start, Redis is waiting \
                       to start, n8n is waiting for dependencies…";

/// The lines of creating db, then queue, then n8n, one at a time (the plan orders a stage by name).
fn creating() -> Vec<String> {
    [
        "Restoring 3 services… checking the backup first…",
        PLANNED,
        "Restoring 3 services… PostgreSQL is starting, Redis is waiting to start, n8n is \
         waiting for dependencies…",
        "Restoring 3 services… PostgreSQL is running, Redis is waiting to start, n8n is \
         waiting for dependencies…",
        "Restoring 3 services… PostgreSQL is running, Redis is starting, n8n is waiting for \
         dependencies…",
        "Restoring 3 services… PostgreSQL is running, Redis is running, n8n is waiting to \
         start…",
        "Restoring 3 services… PostgreSQL is running, Redis is running, n8n is starting…",
        "Restoring 3 services… PostgreSQL is running, Redis is running, n8n is running…",
        "Restoring 3 services… PostgreSQL is getting its data back, Redis is running, n8n is \
         running…",
        "Restoring 3 services… PostgreSQL is restored, Redis is running, n8n is running…",
        "Restoring 3 services… PostgreSQL is restored, Redis is getting its data back, n8n is \
         running…",
        "Restoring 3 services… PostgreSQL is restored, Redis is restored, n8n is running…",
        "Restoring 3 services… PostgreSQL is restored, Redis is restored, n8n is getting its \
         data back…",
    ]
    .map(String::from)
    .to_vec()
}

#[tokio::test]
async fn a_restore_with_dependencies_is_narrated_step_by_step_to_its_success() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (outcome, narrator, events) = restore(tmp.path(), None).await;
    outcome.expect("restore");
    let mut expected = creating();
    expected.push(
        "Restoring 3 services… PostgreSQL is restored, Redis is restored, n8n is restored…".into(),
    );
    expected
        .push("I've restored your workspace with 3 services: PostgreSQL, Redis, and n8n.".into());
    assert_eq!(status_lines(narrator, &events), expected, "{events:?}");
}

#[tokio::test]
async fn a_failed_restore_is_narrated_through_its_rollback() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (outcome, narrator, events) = restore(tmp.path(), Some("n8n")).await;
    let error = outcome.expect_err("n8n's import fails");
    let mut expected = creating();
    expected.push(
        "Restoring 3 services… PostgreSQL is restored, Redis is restored, n8n failed…".into(),
    );
    expected.push("Rolling back the restore… removing PostgreSQL, Redis, and n8n…".into());
    expected.push(format!(
        "The restore failed at n8n: {}. I rolled it back and removed PostgreSQL, Redis, and \
         n8n, so your workspace is as it was.",
        error.to_string().trim_end_matches('.')
    ));
    assert_eq!(status_lines(narrator, &events), expected, "{events:?}");
}

#[test]
fn a_service_waits_for_its_dependencies_until_they_run() {
    let mut narrator = RestoreNarrator::new(SERVICES.map(|(name, recipe, deps)| {
        (
            backup_core::narrate::ServiceLabel::new(name, recipe),
            deps.iter().map(|d| d.to_string()).collect(),
        )
    }));
    let stages = vec![
        vec!["db".to_string(), "queue".to_string()],
        vec!["n8n".to_string()],
    ];
    narrator.observe(&ProgressEvent::PlanReady { stages });
    for service in ["db", "queue"] {
        narrator.observe(&ProgressEvent::ServiceStarted {
            service: service.into(),
            operation: "create".into(),
        });
    }
    narrator.observe(&ProgressEvent::ServiceFinished {
        service: "db".into(),
        operation: "create".into(),
    });
    assert_eq!(
        narrator.status_line(),
        "Restoring 3 services… PostgreSQL is running, Redis is starting, n8n is waiting for \
         dependencies…"
    );
    narrator.observe(&ProgressEvent::BytesTransferred {
        service: "db".into(),
        artifact: "files".into(),
        done: 25,
        total: Some(100),
    });
    assert_eq!(
        narrator.state("db"),
        Some(&ServiceState::RestoringData { percent: Some(25) })
    );
    assert!(narrator
        .status_line()
        .contains("PostgreSQL is getting its data back (25%)"));
}

#[test]
fn a_rollback_that_cannot_remove_a_service_says_so() {
    let mut narrator = RestoreNarrator::new([(
        backup_core::narrate::ServiceLabel::new("db", "postgres"),
        Vec::new(),
    )]);
    let events = [
        ProgressEvent::PlanReady {
            stages: vec![vec!["db".into()]],
        },
        ProgressEvent::ServiceStarted {
            service: "db".into(),
            operation: "create".into(),
        },
        ProgressEvent::Failed {
            service: "db".into(),
            error: "never got ready".into(),
        },
        ProgressEvent::RollingBack {
            reason: "never got ready".into(),
        },
        ProgressEvent::Failed {
            service: "db".into(),
            error: "rollback could not remove it: host is down".into(),
        },
        ProgressEvent::OperationFailed {
            operation: "restore".into(),
            error: "never got ready".into(),
        },
    ];
    for event in &events {
        narrator.observe(event);
    }
    assert!(narrator.rollback_failed());
    assert_eq!(
        narrator.status_line(),
        "The restore failed at PostgreSQL: never got ready. I tried to roll it back, but \
         could not remove PostgreSQL; please check it by hand."
    );
}

#[test]
fn without_known_dependencies_a_later_stage_waits_for_the_earlier_ones() {
    let plan = backup_core::RestorePlan::from_dependencies([
        ("files", &[][..]),
        ("app", &["files".to_string()][..]),
    ])
    .expect("plan");
    let mut narrator = RestoreNarrator::from_plan(&plan);
    assert_eq!(
        narrator.status_line(),
        "Restoring 2 services… files is waiting to start, app is waiting for dependencies…"
    );
    narrator.observe(&ProgressEvent::ServiceFinished {
        service: "files".into(),
        operation: "create".into(),
    });
    assert_eq!(
        narrator.status_line(),
        "Restoring 2 services… files is running, app is waiting to start…"
    );
}
