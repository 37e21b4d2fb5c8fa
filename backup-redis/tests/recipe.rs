//! The `redis` recipe: schema, secret password, registration.

use backup_core::{ErrorKind, RecipeRegistry};
use serde_json::json;

#[test]
fn the_recipe_validates_configs_and_treats_the_password_as_a_secret() {
    let recipe = backup_redis::recipe().expect("recipe");
    assert_eq!(recipe.slug(), backup_redis::RECIPE);
    assert!(recipe.exporter().is_some() && recipe.importer().is_some());
    let config = json!({
        "host": "127.0.0.1", "port": 6380, "username": "backup", "password": "pw",
        "format": "logical", "databases": [0, 2], "lowerDisklessSyncDelay": false
    });
    recipe
        .validate_config(&config)
        .expect("a full config is valid");
    let error = recipe
        .validate_config(&json!({"port": 6379, "format": "aof"}))
        .expect_err("unknown format");
    assert_eq!(error.kind(), ErrorKind::InvalidConfig);
    assert!(recipe.validate_config(&json!({"hostname": "x"})).is_err());
    assert!(recipe.secret_fields().iter().any(|f| f.name == "password"));
    let stripped = recipe.strip_secrets(config.as_object().expect("object"));
    assert!(!stripped.contains_key("password"));
}

#[test]
fn the_config_defaults_to_logical_on_localhost_6379_and_rejects_databases_with_rdb() {
    let service = backup_core::ServiceTarget::local("r", "redis", json!({}));
    let config = backup_redis::RedisConfig::from_service(&service).expect("defaults");
    assert_eq!(config.port, 6379);
    assert_eq!(config.format, backup_redis::ExportFormat::Logical);
    assert!(!config.lower_diskless_sync_delay);
    let service =
        backup_core::ServiceTarget::local("r", "redis", json!({"format": "rdb", "databases": [1]}));
    let error = backup_redis::RedisConfig::from_service(&service).expect_err("rdb + databases");
    assert_eq!(error.kind(), ErrorKind::InvalidConfig);
    let service = backup_core::ServiceTarget::local("r", "redis", json!({"password": 12345}));
    let error = backup_redis::RedisConfig::from_service(&service).expect_err("bad type");
    assert!(!error.to_string().contains("12345"));
}

#[test]
fn register_adds_the_redis_recipe() {
    let mut registry = RecipeRegistry::new();
    backup_redis::register(&mut registry).expect("register");
    assert!(registry.contains("redis"));
}
