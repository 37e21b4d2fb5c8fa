//! RestorePlan: stages from `dependsOn`, deterministic order, cycle and dependency errors.

use backup_core::plan::{PlanStage, RestorePlan};
use backup_core::snapshot::{ServiceSnapshot, WorkspaceRef, WorkspaceSnapshot};
use backup_core::ErrorKind;

/// Owned `(name, dependsOn)` pairs, so tests can write them as string literals.
fn deps(pairs: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    pairs
        .iter()
        .map(|(name, on)| (name.to_string(), on.iter().map(|d| d.to_string()).collect()))
        .collect()
}

fn plan(pairs: &[(&str, &[&str])]) -> backup_core::Result<RestorePlan> {
    let owned = deps(pairs);
    RestorePlan::from_dependencies(owned.iter().map(|(n, d)| (n.as_str(), d.as_slice())))
}

fn stages(plan: &RestorePlan) -> Vec<Vec<&str>> {
    plan.stages
        .iter()
        .map(|s| s.services.iter().map(String::as_str).collect())
        .collect()
}

#[test]
fn independent_services_share_stage_zero_sorted_by_name() {
    let plan = plan(&[("redis", &[]), ("minio", &[]), ("db", &[])]).expect("plan");
    assert_eq!(stages(&plan), [vec!["db", "minio", "redis"]]);
    assert_eq!(plan.stages[0].index, 0);
    assert_eq!(plan.len(), 3);
    assert_eq!(plan.stage_count(), 1);
}

#[test]
fn a_chain_gives_one_service_per_stage() {
    let plan = plan(&[("c", &["b"]), ("a", &[]), ("b", &["a"])]).expect("plan");
    assert_eq!(stages(&plan), [vec!["a"], vec!["b"], vec!["c"]]);
    assert_eq!(plan.order(), ["a", "b", "c"]);
    let indexes: Vec<usize> = plan.stages.iter().map(|s| s.index).collect();
    assert_eq!(indexes, [0, 1, 2]);
}

#[test]
fn a_diamond_puts_both_middles_in_one_stage() {
    // top depends on left and right, which both depend on base.
    let plan = plan(&[
        ("top", &["left", "right"]),
        ("right", &["base"]),
        ("left", &["base"]),
        ("base", &[]),
    ])
    .expect("plan");
    assert_eq!(
        stages(&plan),
        [vec!["base"], vec!["left", "right"], vec!["top"]]
    );
}

#[test]
fn longest_path_decides_the_stage() {
    // `app` depends on `db` (stage 0) and `migrate` (stage 1): it must wait for stage 2.
    let plan = plan(&[
        ("app", &["db", "migrate"]),
        ("migrate", &["db"]),
        ("db", &[]),
    ])
    .expect("plan");
    assert_eq!(stages(&plan), [vec!["db"], vec!["migrate"], vec!["app"]]);
    assert_eq!(plan.stage_of("app"), Some(2));
    assert_eq!(plan.stage_of("nope"), None);
}

#[test]
fn plan_is_deterministic_regardless_of_input_order() {
    let forward = plan(&[
        ("a", &[]),
        ("b", &["a"]),
        ("c", &["a"]),
        ("d", &["b", "c"]),
        ("e", &[]),
    ])
    .expect("plan");
    let backward = plan(&[
        ("e", &[]),
        ("d", &["c", "b"]),
        ("c", &["a"]),
        ("b", &["a"]),
        ("a", &[]),
    ])
    .expect("plan");
    assert_eq!(forward, backward);
    assert_eq!(
        stages(&forward),
        [vec!["a", "e"], vec!["b", "c"], vec!["d"]]
    );
}

#[test]
fn a_cycle_error_names_the_cycle_members_in_order() {
    let err = plan(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &[])]).expect_err("cycle");
    assert_eq!(err.kind(), ErrorKind::DependencyCycle);
    assert!(err.message().contains("a -> b -> c -> a"), "{err}");
    assert!(!err.message().contains("-> d"), "{err}");
    // The same cycle entered from a different input order is described the same way.
    let again = plan(&[("c", &["a"]), ("b", &["c"]), ("a", &["b"])]).expect_err("cycle");
    assert_eq!(again.message(), err.message());
}

#[test]
fn a_cycle_behind_an_acyclic_prefix_is_found() {
    let err = plan(&[("root", &["x"]), ("x", &["y"]), ("y", &["x"])]).expect_err("cycle");
    assert_eq!(err.kind(), ErrorKind::DependencyCycle);
    assert!(err.message().contains("x -> y -> x"), "{err}");
    assert!(err.hint().is_some());
}

#[test]
fn a_self_dependency_is_a_cycle() {
    let err = plan(&[("db", &["db"]), ("app", &[])]).expect_err("self");
    assert_eq!(err.kind(), ErrorKind::DependencyCycle);
    assert!(err.message().contains("db -> db"), "{err}");
}

#[test]
fn an_unknown_dependency_names_both_services() {
    let err = plan(&[("app", &["postgres"]), ("cache", &[])]).expect_err("unknown");
    assert_eq!(err.kind(), ErrorKind::UnknownDependency);
    assert!(err.message().contains("`app`"), "{err}");
    assert!(err.message().contains("`postgres`"), "{err}");
}

#[test]
fn duplicate_names_are_rejected() {
    let err = plan(&[("db", &[]), ("app", &["db"]), ("db", &[])]).expect_err("dup");
    assert_eq!(err.kind(), ErrorKind::InvalidSnapshot);
    assert!(err.message().contains("`db`"), "{err}");
}

#[test]
fn an_empty_input_gives_an_empty_plan() {
    let plan = plan(&[]).expect("plan");
    assert!(plan.is_empty());
    assert_eq!(plan.len(), 0);
    assert!(plan.order().is_empty());
}

#[test]
fn a_plan_serialises_to_json_for_dry_run_output() {
    let plan = plan(&[("app", &["db"]), ("db", &[])]).expect("plan");
    let json = serde_json::to_value(&plan).expect("serialise");
    assert_eq!(
        json,
        serde_json::json!({
            "stages": [
                { "index": 0, "services": ["db"] },
                { "index": 1, "services": ["app"] }
            ]
        })
    );
    let back: RestorePlan = serde_json::from_value(json).expect("parse");
    assert_eq!(back, plan);
    assert_eq!(
        plan.stage_names(),
        vec![vec!["db".to_string()], vec!["app".to_string()]]
    );
}

#[test]
fn a_plan_is_built_from_a_snapshot() {
    let service = |name: &str, on: &[&str]| ServiceSnapshot {
        recipe: "directory".into(),
        name: name.into(),
        config: Default::default(),
        depends_on: on.iter().map(|d| d.to_string()).collect(),
        status: "running".into(),
    };
    let snapshot = WorkspaceSnapshot {
        version: 1,
        exported_at: "2026-01-01T00:00:00Z".into(),
        exported_by: "system".into(),
        workspace: WorkspaceRef {
            slug: "w".into(),
            name: "W".into(),
        },
        services: vec![
            service("n8n", &["postgres", "redis"]),
            service("redis", &[]),
            service("postgres", &[]),
        ],
        metadata: None,
    };
    let plan = RestorePlan::from_snapshot(&snapshot).expect("plan");
    assert_eq!(
        plan.stages,
        [
            PlanStage {
                index: 0,
                services: vec!["postgres".into(), "redis".into()]
            },
            PlanStage {
                index: 1,
                services: vec!["n8n".into()]
            }
        ]
    );
}

#[test]
fn ten_thousand_services_are_planned_correctly() {
    // 100 chains of 100 services, plus every 10th service also depending on the head of
    // the previous chain (fan-in across chains).
    let mut owned: Vec<(String, Vec<String>)> = Vec::new();
    for chain in 0..100 {
        for link in 0..100 {
            let mut on = Vec::new();
            if link > 0 {
                on.push(format!("s{chain:03}-{:03}", link - 1));
            }
            if chain > 0 && link % 10 == 0 {
                on.push(format!("s{:03}-000", chain - 1));
            }
            owned.push((format!("s{chain:03}-{link:03}"), on));
        }
    }
    let plan =
        RestorePlan::from_dependencies(owned.iter().map(|(n, d)| (n.as_str(), d.as_slice())))
            .expect("plan");
    assert_eq!(plan.len(), 10_000);
    // Every service comes after all of its dependencies.
    let position: std::collections::HashMap<&str, usize> = plan
        .order()
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n, i))
        .collect();
    let stage_of: std::collections::HashMap<&str, usize> = plan
        .stages
        .iter()
        .flat_map(|s| s.services.iter().map(move |n| (n.as_str(), s.index)))
        .collect();
    for (name, on) in &owned {
        for dependency in on {
            assert!(position[dependency.as_str()] < position[name.as_str()]);
            assert!(stage_of[dependency.as_str()] < stage_of[name.as_str()]);
        }
    }
    // Chain 99 link 99: heads are at stages 0..=99 (head of chain c at stage c), link l of
    // chain c at stage c + l.
    assert_eq!(plan.stage_count(), 199);
}
