//! Workspace import: validation before any change, dependency order, new ids and secrets,
//! force, dry run, overrides, rollback, and no secret in any output.

mod workspace_fixtures;

use std::collections::BTreeMap;
use std::time::Duration;

use backup_core::memory_host::{HostCall, InMemoryHost};
use backup_core::progress::{CollectedProgress, NoProgress};
use backup_core::workspace::{
    export_workspace, import_workspace, validate_import, ExportOptions, ImportOptions,
    ImportOutcome,
};
use backup_core::{ErrorKind, ProgressEvent, WorkspaceSnapshot};
use serde_json::json;
use workspace_fixtures::{
    layered_snapshot, new_deployment, object, planted, registry, service, snapshot, source_host,
    workspace,
};

/// Imports `snapshot` into `target` with the test registry, default options and no
/// progress sink.
async fn import_with_defaults(
    target: &InMemoryHost,
    snapshot: &WorkspaceSnapshot,
) -> backup_core::Result<ImportOutcome> {
    import_workspace(
        target,
        &registry(),
        snapshot,
        &ImportOptions::default(),
        &NoProgress,
    )
    .await
}

fn position(calls: &[HostCall], call: &HostCall) -> usize {
    calls
        .iter()
        .position(|c| c == call)
        .unwrap_or_else(|| panic!("{call:?} not in {calls:?}"))
}

fn created(name: &str) -> HostCall {
    HostCall::Created(name.to_string())
}

fn ready(name: &str) -> HostCall {
    HostCall::Ready(name.to_string())
}

#[tokio::test]
async fn import_creates_every_service_in_dependency_order() {
    let target = InMemoryHost::new(workspace("restore"));
    // A delay on readiness: a dependent starting early would show up in the call order.
    target.set_ready_delay(Duration::from_millis(20));
    let snapshot = layered_snapshot();
    let outcome = import_with_defaults(&target, &snapshot)
        .await
        .expect("import");

    let calls = target.calls();
    for service in &snapshot.services {
        let started = position(&calls, &created(&service.name));
        assert!(position(&calls, &HostCall::Deployed(service.name.clone())) > started);
        for dependency in &service.depends_on {
            assert!(
                position(&calls, &ready(dependency)) < started,
                "{} created before {dependency} was ready: {calls:?}",
                service.name
            );
        }
    }
    let names: Vec<&str> = outcome.created.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["cache", "db", "app", "worker"]);
    assert_eq!(outcome.plan.order(), names);
    assert!(!outcome.dry_run);
    assert!(outcome.removed.is_empty());
    assert!(target.deployments().iter().all(|d| d.status == "running"));
}

#[tokio::test]
async fn imported_services_get_new_ids_and_new_secrets() {
    let source = source_host();
    let registry = registry();
    let snapshot = export_workspace(&source, &registry, &ExportOptions::default())
        .await
        .expect("export");
    let target = InMemoryHost::new(workspace("elsewhere"));
    let outcome = import_workspace(
        &target,
        &registry,
        &snapshot,
        &ImportOptions::default(),
        &NoProgress,
    )
    .await
    .expect("import");
    assert_eq!(outcome.created.len(), 4);
    for deployment in &outcome.created {
        let original = source.get(&deployment.name).expect("source deployment");
        assert_ne!(
            deployment.id, original.id,
            "{} kept its id",
            deployment.name
        );
        assert_eq!(deployment.depends_on, original.depends_on);
        assert_eq!(
            target.get(&deployment.name).expect("stored").id,
            deployment.id
        );
    }
    let secret_fields = [
        ("db", "password"),
        ("cache", "requirepass"),
        ("app", "encryptionKey"),
    ];
    for (name, field) in secret_fields {
        let deployment = outcome
            .created
            .iter()
            .find(|d| d.name == name)
            .expect("created");
        let secret = deployment.config[field].as_str().expect("secret present");
        assert!(secret.len() >= 32, "{name}.{field} too short");
        assert_ne!(secret, planted(name), "{name}.{field} was not regenerated");
        let stored = target.get(name).expect("stored");
        assert_eq!(stored.config[field], deployment.config[field]);
    }
    // Non-secret config came from the snapshot.
    assert_eq!(
        target.get("files").expect("files").config["path"],
        "/srv/files"
    );
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_returns_the_plan() {
    let target = InMemoryHost::new(workspace("t")).with_deployment(new_deployment(
        "db",
        "postgres",
        json!({ "port": 5432, "database": "old", "password": planted("old-db") }),
        &[],
    ));
    let before = target.deployments();
    let options = ImportOptions {
        dry_run: true,
        force: true,
        ..ImportOptions::default()
    };
    let progress = CollectedProgress::new();
    let outcome = import_workspace(
        &target,
        &registry(),
        &layered_snapshot(),
        &options,
        &progress,
    )
    .await
    .expect("dry run");
    assert!(outcome.dry_run);
    assert!(outcome.created.is_empty());
    assert_eq!(outcome.removed, ["db"], "what force would remove");
    assert_eq!(
        outcome.plan.stage_names(),
        [vec!["cache", "db"], vec!["app"], vec!["worker"]]
    );
    assert!(target.calls().is_empty());
    assert_eq!(target.deployments(), before);
    assert!(progress.events().contains(&ProgressEvent::PlanReady {
        stages: outcome.plan.stage_names()
    }));
    let validated = validate_import(&target, &registry(), &layered_snapshot(), &options)
        .await
        .expect("validate");
    assert_eq!(validated, outcome.plan);
}

#[tokio::test]
async fn an_unknown_recipe_is_rejected_listing_unknown_and_known_slugs() {
    let target = InMemoryHost::new(workspace("t"));
    let snapshot = snapshot(vec![
        service(
            "db",
            "postgres",
            json!({ "port": 5432, "database": "a" }),
            &[],
        ),
        service("search", "elasticsearch", json!({}), &[]),
        service("mail", "mailpit", json!({}), &[]),
    ]);
    let err = validate_import(&target, &registry(), &snapshot, &ImportOptions::default())
        .await
        .expect_err("unknown recipes");
    assert_eq!(err.kind(), ErrorKind::UnknownRecipe);
    assert!(err.message().contains("`elasticsearch`"), "{err}");
    assert!(err.message().contains("`mailpit`"), "{err}");
    let hint = err.hint().expect("hint");
    for known in ["directory", "n8n", "postgres", "redis"] {
        assert!(hint.contains(known), "{hint}");
    }
    let pointers: Vec<&str> = err
        .field_errors()
        .iter()
        .map(|e| e.pointer.as_str())
        .collect();
    assert_eq!(pointers, ["/services/1/recipe", "/services/2/recipe"]);
    assert!(target.calls().is_empty());
}

#[tokio::test]
async fn invalid_configs_report_every_field_error_with_pointers() {
    let target = InMemoryHost::new(workspace("t"));
    let snapshot = snapshot(vec![
        service(
            "db",
            "postgres",
            json!({ "port": 99999, "database": "a" }),
            &[],
        ),
        service("cache", "redis", json!({ "port": 6379 }), &[]),
        service("app", "n8n", json!({ "url": "ftp://nope" }), &["db"]),
    ]);
    let progress = CollectedProgress::new();
    let err = import_workspace(
        &target,
        &registry(),
        &snapshot,
        &ImportOptions::default(),
        &progress,
    )
    .await
    .expect_err("invalid");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        err.message().contains("`db`") && err.message().contains("`app`"),
        "{err}"
    );
    let pointers: Vec<&str> = err
        .field_errors()
        .iter()
        .map(|e| e.pointer.as_str())
        .collect();
    assert_eq!(
        pointers,
        ["/services/0/config/port", "/services/2/config/url"]
    );
    assert!(
        target.calls().is_empty(),
        "nothing may change before validation passes"
    );
    assert!(matches!(
        progress.events().as_slice(),
        [ProgressEvent::OperationFailed { operation, .. }] if operation == "import"
    ));
}

#[tokio::test]
async fn a_name_conflict_is_rejected_without_force_and_nothing_changes() {
    let target = InMemoryHost::new(workspace("t"))
        .with_deployment(new_deployment("db", "postgres", json!({}), &[]))
        .with_deployment(new_deployment("cache", "redis", json!({}), &[]))
        .with_deployment(new_deployment("unrelated", "directory", json!({}), &[]));
    let before = target.deployments();
    let err = import_with_defaults(&target, &layered_snapshot())
        .await
        .expect_err("conflict");
    assert_eq!(err.kind(), ErrorKind::NameConflict);
    assert!(err.message().contains("`cache`, `db`"), "{err}");
    assert!(!err.message().contains("unrelated"), "{err}");
    assert!(err.hint().unwrap_or("").contains("force"), "{err}");
    assert!(target.calls().is_empty());
    assert_eq!(target.deployments(), before);
}

#[tokio::test]
async fn with_force_existing_deployments_are_removed_first() {
    let target = InMemoryHost::new(workspace("t"))
        .with_deployment(new_deployment("db", "postgres", json!({}), &[]))
        .with_deployment(new_deployment("app", "n8n", json!({}), &["db"]))
        .with_deployment(new_deployment("unrelated", "directory", json!({}), &[]));
    let old_db = target.get("db").expect("db");
    let options = ImportOptions {
        force: true,
        ..ImportOptions::default()
    };
    let outcome = import_workspace(
        &target,
        &registry(),
        &layered_snapshot(),
        &options,
        &NoProgress,
    )
    .await
    .expect("import");
    // Dependents removed before their dependencies, and all before any creation.
    assert_eq!(outcome.removed, ["app", "db"]);
    let calls = target.calls();
    assert_eq!(
        calls[..2],
        [
            HostCall::Removed("app".into()),
            HostCall::Removed("db".into())
        ]
    );
    assert_ne!(target.get("db").expect("new db").id, old_db.id);
    assert!(
        target.get("unrelated").is_some(),
        "unrelated deployments stay"
    );
    assert_eq!(target.deployments().len(), 5);
}

#[tokio::test]
async fn an_unknown_depends_on_target_is_rejected_naming_both() {
    let target = InMemoryHost::new(workspace("t"));
    let snapshot = snapshot(vec![service(
        "app",
        "n8n",
        json!({ "url": "https://a.example" }),
        &["postgres"],
    )]);
    let err = import_with_defaults(&target, &snapshot)
        .await
        .expect_err("unknown dependency");
    assert_eq!(err.kind(), ErrorKind::UnknownDependency);
    assert!(
        err.message().contains("`app`") && err.message().contains("`postgres`"),
        "{err}"
    );
    assert!(target.calls().is_empty());
}

#[tokio::test]
async fn a_dependency_cycle_is_rejected_naming_the_cycle() {
    let target = InMemoryHost::new(workspace("t"));
    let snapshot = snapshot(vec![
        service(
            "app",
            "n8n",
            json!({ "url": "https://a.example" }),
            &["worker"],
        ),
        service(
            "worker",
            "n8n",
            json!({ "url": "https://w.example" }),
            &["app"],
        ),
        service(
            "db",
            "postgres",
            json!({ "port": 5432, "database": "a" }),
            &[],
        ),
    ]);
    let err = import_with_defaults(&target, &snapshot)
        .await
        .expect_err("cycle");
    assert_eq!(err.kind(), ErrorKind::DependencyCycle);
    assert!(err.message().contains("app -> worker -> app"), "{err}");
    assert!(target.calls().is_empty());
}

#[tokio::test]
async fn duplicate_service_names_and_unsupported_versions_are_rejected() {
    let target = InMemoryHost::new(workspace("t"));
    let mut dup = layered_snapshot();
    dup.services.push(service(
        "db",
        "postgres",
        json!({ "port": 1, "database": "b" }),
        &[],
    ));
    let err = validate_import(&target, &registry(), &dup, &ImportOptions::default())
        .await
        .expect_err("duplicate");
    assert_eq!(err.kind(), ErrorKind::InvalidSnapshot);
    assert_eq!(err.field_errors()[0].pointer, "/services/4/name");

    let mut future = layered_snapshot();
    future.version = 3;
    let err = validate_import(&target, &registry(), &future, &ImportOptions::default())
        .await
        .expect_err("version");
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion);
    assert!(err.message().contains("version 3"), "{err}");
}

#[tokio::test]
async fn a_failure_creating_the_third_service_rolls_back_the_first_two() {
    let target = InMemoryHost::new(workspace("t")).with_deployment(new_deployment(
        "unrelated",
        "directory",
        json!({}),
        &[],
    ));
    target.fail_on_create("c");
    let snapshot = snapshot(vec![
        service("a", "directory", json!({ "path": "/a" }), &[]),
        service("b", "directory", json!({ "path": "/b" }), &["a"]),
        service("c", "directory", json!({ "path": "/c" }), &["b"]),
    ]);
    let progress = CollectedProgress::new();
    let err = import_workspace(
        &target,
        &registry(),
        &snapshot,
        &ImportOptions::default(),
        &progress,
    )
    .await
    .expect_err("injected failure");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.message().contains("creating `c`"), "{err}");
    let calls = target.calls();
    assert_eq!(
        calls[calls.len() - 2..],
        [HostCall::Removed("b".into()), HostCall::Removed("a".into())]
    );
    let left: Vec<String> = target.deployments().into_iter().map(|d| d.name).collect();
    assert_eq!(left, ["unrelated"]);
    let events = progress.events();
    assert!(events
        .iter()
        .any(|e| matches!(e, ProgressEvent::Failed { service, .. } if service == "c")));
    assert!(events
        .iter()
        .any(|e| matches!(e, ProgressEvent::RollingBack { .. })));
    assert!(!events
        .iter()
        .any(|e| matches!(e, ProgressEvent::Finished { .. })));
}

#[tokio::test]
async fn a_service_that_never_becomes_ready_is_rolled_back_too() {
    let target = InMemoryHost::new(workspace("t"));
    target.fail_on_ready("db");
    let err = import_with_defaults(&target, &layered_snapshot())
        .await
        .expect_err("not ready");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.message().contains("`db`"), "{err}");
    assert!(
        target.deployments().is_empty(),
        "{:?}",
        target.deployments()
    );
    // Stage 0 was cache and db; nothing of stage 1 started.
    assert!(!target.calls().contains(&created("app")));
}

#[tokio::test]
async fn config_overrides_are_applied_before_validation() {
    let target = InMemoryHost::new(workspace("t"));
    // The snapshot's `port` is invalid; the override fixes it and moves the files.
    let snapshot = snapshot(vec![
        service(
            "db",
            "postgres",
            json!({ "port": 0, "database": "app" }),
            &[],
        ),
        service("files", "directory", json!({ "path": "/srv/files" }), &[]),
    ]);
    let mut overrides = BTreeMap::new();
    overrides.insert("db".to_string(), object(json!({ "port": 15432 })));
    overrides.insert(
        "files".to_string(),
        object(json!({ "path": "/mnt/restore/files" })),
    );
    let options = ImportOptions {
        config_overrides: overrides,
        ..ImportOptions::default()
    };
    let outcome = import_workspace(&target, &registry(), &snapshot, &options, &NoProgress)
        .await
        .expect("import");
    assert_eq!(outcome.created.len(), 2);
    assert_eq!(target.get("db").expect("db").config["port"], 15432);
    assert_eq!(
        target.get("files").expect("files").config["path"],
        "/mnt/restore/files"
    );

    let mut stray = ImportOptions::default();
    stray
        .config_overrides
        .insert("ghost".into(), object(json!({ "path": "/x" })));
    let err = validate_import(&target, &registry(), &snapshot, &stray)
        .await
        .expect_err("override of unknown service");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("`ghost`"), "{err}");
}

#[tokio::test]
async fn no_error_or_progress_text_contains_a_planted_secret() {
    let registry = registry();
    let mut texts: Vec<String> = Vec::new();

    // 1. An override sets a secret to an invalid value (too long): validation fails.
    let target = InMemoryHost::new(workspace("t"));
    let bad_secret = format!("{}{}", planted("db"), "y".repeat(40));
    let mut options = ImportOptions::default();
    options.config_overrides.insert(
        "db".into(),
        object(json!({ "password": bad_secret, "port": "PLANTED-SECRET-port" })),
    );
    texts.push(format!("{options:?}"));
    let progress = CollectedProgress::new();
    let err = import_workspace(&target, &registry, &layered_snapshot(), &options, &progress)
        .await
        .expect_err("invalid secret");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    texts.push(err.to_string());
    texts.push(format!("{err:?}"));
    texts.extend(
        progress
            .events()
            .iter()
            .map(|e| serde_json::to_string(e).expect("json")),
    );

    // 2. A valid planted secret, then a failure and a rollback.
    let target = InMemoryHost::new(workspace("t"));
    target.fail_on_ready("app");
    let mut options = ImportOptions::default();
    options
        .config_overrides
        .insert("db".into(), object(json!({ "password": planted("db") })));
    let progress = CollectedProgress::new();
    let err = import_workspace(&target, &registry, &layered_snapshot(), &options, &progress)
        .await
        .expect_err("rollback");
    texts.push(err.to_string());
    texts.push(format!("{err:?}"));
    texts.extend(
        progress
            .events()
            .iter()
            .map(|e| serde_json::to_string(e).expect("json")),
    );
    texts.push(format!("{:?}", target.deployments()));

    // 3. A successful import: the outcome's Debug redacts the secrets it holds.
    let target = InMemoryHost::new(workspace("t"));
    let progress = CollectedProgress::new();
    let outcome = import_workspace(&target, &registry, &layered_snapshot(), &options, &progress)
        .await
        .expect("import");
    assert_eq!(
        outcome
            .created
            .iter()
            .find(|d| d.name == "db")
            .expect("db")
            .config["password"],
        planted("db")
    );
    texts.push(format!("{outcome:?}"));
    texts.extend(
        progress
            .events()
            .iter()
            .map(|e| serde_json::to_string(e).expect("json")),
    );

    assert!(texts.len() > 10);
    for text in &texts {
        assert!(!text.contains("PLANTED-SECRET"), "secret leaked: {text}");
    }
}

#[tokio::test]
async fn a_successful_import_reports_progress_for_every_service() {
    let target = InMemoryHost::new(workspace("t"));
    let progress = CollectedProgress::new();
    import_workspace(
        &target,
        &registry(),
        &layered_snapshot(),
        &ImportOptions::default(),
        &progress,
    )
    .await
    .expect("import");
    let events = progress.events();
    assert!(matches!(
        events.first(),
        Some(ProgressEvent::PlanReady { .. })
    ));
    assert_eq!(
        events.last(),
        Some(&ProgressEvent::Finished {
            operation: "import".into()
        })
    );
    for name in ["cache", "db", "app", "worker"] {
        assert!(events.contains(&ProgressEvent::ServiceStarted {
            service: name.into(),
            operation: "create".into()
        }));
        assert!(events.contains(&ProgressEvent::ServiceFinished {
            service: name.into(),
            operation: "create".into()
        }));
    }
}

#[tokio::test]
async fn services_of_one_stage_run_concurrently_up_to_max_concurrency() {
    // Stage 0 is cache and db. With room for both, db is created before cache is ready;
    // with max_concurrency 1, each is ready before the next one is created.
    let call_order = |max_concurrency: usize| async move {
        let target = InMemoryHost::new(workspace("t"));
        target.set_ready_delay(Duration::from_millis(30));
        let options = ImportOptions {
            max_concurrency,
            ..ImportOptions::default()
        };
        import_workspace(
            &target,
            &registry(),
            &layered_snapshot(),
            &options,
            &NoProgress,
        )
        .await
        .expect("import");
        target.calls()
    };
    let calls = call_order(4).await;
    assert!(
        position(&calls, &created("db")) < position(&calls, &ready("cache")),
        "{calls:?}"
    );
    let calls = call_order(1).await;
    assert!(
        position(&calls, &ready("cache")) < position(&calls, &created("db")),
        "{calls:?}"
    );

    let zero = ImportOptions {
        max_concurrency: 0,
        ..ImportOptions::default()
    };
    let target = InMemoryHost::new(workspace("t"));
    let err = validate_import(&target, &registry(), &layered_snapshot(), &zero)
        .await
        .expect_err("zero concurrency");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}
