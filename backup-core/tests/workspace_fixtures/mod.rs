//! Shared fixtures for the workspace export/import tests: recipes, hosts and snapshots.
#![allow(dead_code, unreachable_pub)]

use backup_core::host::NewDeployment;
use backup_core::memory_host::InMemoryHost;
use backup_core::recipe::Recipe;
use backup_core::secrets::SecretGenerator;
use backup_core::snapshot::{ServiceSnapshot, WorkspaceRef, WorkspaceSnapshot};
use backup_core::RecipeRegistry;
use serde_json::{json, Map, Value};

/// A distinctive secret value that must never show up in any output.
pub fn planted(service: &str) -> String {
    format!("PLANTED-SECRET-{service}-7f3a9c1e")
}

fn postgres() -> Recipe {
    Recipe::builder(
        "postgres",
        json!({
            "type": "object",
            "properties": {
                "port": { "type": "integer", "minimum": 1, "maximum": 65535 },
                "database": { "type": "string" },
                "password": { "type": "string", "minLength": 12, "maxLength": 40 }
            },
            "required": ["port", "database", "password"],
            "additionalProperties": false
        }),
    )
    .secret("password", SecretGenerator::password())
    .build()
    .expect("postgres recipe")
}

fn redis() -> Recipe {
    Recipe::builder(
        "redis",
        json!({
            "type": "object",
            "properties": {
                "port": { "type": "integer", "minimum": 1, "maximum": 65535 },
                "requirepass": { "type": "string" }
            },
            "required": ["port", "requirepass"]
        }),
    )
    .secret("requirepass", SecretGenerator::Hex(16))
    .build()
    .expect("redis recipe")
}

fn app() -> Recipe {
    Recipe::builder(
        "n8n",
        json!({
            "type": "object",
            "properties": {
                "url": { "type": "string", "pattern": "^https?://" },
                "encryptionKey": { "type": "string" }
            },
            "required": ["url", "encryptionKey"]
        }),
    )
    .secret("encryptionKey", SecretGenerator::password())
    .build()
    .expect("n8n recipe")
}

fn directory() -> Recipe {
    Recipe::builder(
        "directory",
        json!({
            "type": "object",
            "properties": { "path": { "type": "string", "pattern": "^/" } },
            "required": ["path"]
        }),
    )
    .build()
    .expect("directory recipe")
}

/// Registry with `postgres`, `redis`, `n8n` and `directory`.
pub fn registry() -> RecipeRegistry {
    let mut registry = RecipeRegistry::new();
    registry
        .register(postgres())
        .register(redis())
        .register(app())
        .register(directory());
    registry
}

pub fn workspace(slug: &str) -> WorkspaceRef {
    WorkspaceRef {
        slug: slug.to_string(),
        name: format!("Workspace {slug}"),
    }
}

pub fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("fixture config must be an object, got {other}"),
    }
}

pub fn new_deployment(
    name: &str,
    recipe: &str,
    config: Value,
    depends_on: &[&str],
) -> NewDeployment {
    NewDeployment {
        name: name.to_string(),
        recipe: recipe.to_string(),
        config: object(config),
        depends_on: depends_on.iter().map(|d| d.to_string()).collect(),
    }
}

/// A running source workspace: db, cache, app (depends on both), files; real-looking
/// planted secrets in every secret field.
pub fn source_host() -> InMemoryHost {
    InMemoryHost::new(workspace("prod"))
        .with_deployment(new_deployment(
            "db",
            "postgres",
            json!({ "port": 5432, "database": "app", "password": planted("db") }),
            &[],
        ))
        .with_deployment(new_deployment(
            "cache",
            "redis",
            json!({ "port": 6379, "requirepass": planted("cache") }),
            &[],
        ))
        .with_deployment(new_deployment(
            "app",
            "n8n",
            json!({ "url": "https://n8n.example.com", "encryptionKey": planted("app") }),
            &["db", "cache"],
        ))
        .with_deployment(new_deployment(
            "files",
            "directory",
            json!({ "path": "/srv/files" }),
            &[],
        ))
}

pub fn service(name: &str, recipe: &str, config: Value, depends_on: &[&str]) -> ServiceSnapshot {
    ServiceSnapshot {
        recipe: recipe.to_string(),
        name: name.to_string(),
        config: object(config),
        depends_on: depends_on.iter().map(|d| d.to_string()).collect(),
        status: "running".to_string(),
    }
}

pub fn snapshot(services: Vec<ServiceSnapshot>) -> WorkspaceSnapshot {
    WorkspaceSnapshot {
        version: 1,
        exported_at: "2026-01-15T10:30:00Z".to_string(),
        exported_by: "system".to_string(),
        workspace: workspace("prod"),
        services,
        metadata: None,
    }
}

/// db, cache, app -> {db, cache}, worker -> app: three stages.
pub fn layered_snapshot() -> WorkspaceSnapshot {
    snapshot(vec![
        service(
            "worker",
            "n8n",
            json!({ "url": "https://w.example.com" }),
            &["app"],
        ),
        service(
            "app",
            "n8n",
            json!({ "url": "https://n8n.example.com" }),
            &["db", "cache"],
        ),
        service(
            "db",
            "postgres",
            json!({ "port": 5432, "database": "app" }),
            &[],
        ),
        service("cache", "redis", json!({ "port": 6379 }), &[]),
    ])
}
