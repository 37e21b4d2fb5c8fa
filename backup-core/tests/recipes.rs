//! Recipes and the registry: schema validation with JSON pointers, secrets, unknown slugs.

use backup_core::recipe::Recipe;
use backup_core::secrets::SecretGenerator;
use backup_core::{ErrorKind, RecipeRegistry};
use serde_json::json;

fn db_recipe() -> Recipe {
    Recipe::builder(
        "postgres",
        json!({
            "type": "object",
            "properties": {
                "host": { "type": "string" },
                "port": { "type": "integer", "minimum": 1, "maximum": 65535 },
                "password": { "type": "string", "minLength": 12 },
                "replicas": { "type": "array", "items": { "type": "string" } }
            },
            "required": ["host", "port", "password"],
            "additionalProperties": false
        }),
    )
    .secret("password", SecretGenerator::password())
    .data_export_description("pg_dump of each database")
    .build()
    .expect("recipe")
}

#[test]
fn a_valid_config_passes() {
    db_recipe()
        .validate_config(&json!({ "host": "db", "port": 5432, "password": "long-enough-secret" }))
        .expect("valid");
}

#[test]
fn every_failing_field_is_reported_with_its_json_pointer() {
    let err = db_recipe()
        .validate_config(&json!({ "host": 5, "port": 70000, "replicas": ["a", 3], "extra": true }))
        .expect_err("invalid");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    let pointers: Vec<&str> = err
        .field_errors()
        .iter()
        .map(|f| f.pointer.as_str())
        .collect();
    for expected in ["/host", "/port", "/replicas/1"] {
        assert!(
            pointers.contains(&expected),
            "{expected} missing from {pointers:?}"
        );
    }
    let messages = err.to_string();
    assert!(
        messages.contains("password"),
        "missing required field not named: {messages}"
    );
    assert!(
        messages.contains("extra"),
        "unexpected field not named: {messages}"
    );
}

#[test]
fn validation_errors_never_quote_a_secret_value() {
    let planted = "hunter2";
    let err = db_recipe()
        .validate_config(&json!({ "host": "db", "port": 5432, "password": planted }))
        .expect_err("too short");
    assert_eq!(err.field_errors()[0].pointer, "/password");
    assert!(!format!("{err} {err:?}").contains(planted));
}

#[test]
fn secrets_are_stripped_and_regenerated() {
    let recipe = db_recipe();
    let config = json!({ "host": "db", "port": 5432, "password": "original-password-1" });
    let config = config.as_object().expect("object").clone();
    let mut stripped = recipe.strip_secrets(&config);
    assert!(!stripped.contains_key("password"));
    assert_eq!(stripped["host"], json!("db"));
    recipe.generate_secrets(&mut stripped);
    let new = stripped["password"].as_str().expect("generated");
    assert_ne!(new, "original-password-1");
    recipe
        .validate_config(&serde_json::Value::Object(stripped.clone()))
        .expect("a regenerated config is valid");
}

#[test]
fn unknown_slug_error_lists_the_known_ones() {
    let mut registry = RecipeRegistry::new();
    registry.register(db_recipe());
    backup_core::directory::register(&mut registry).expect("directory");
    let err = registry.get("mysql").expect_err("unknown");
    assert_eq!(err.kind(), ErrorKind::UnknownRecipe);
    assert!(err.message().contains("mysql"));
    let hint = err.hint().expect("hint");
    assert!(
        hint.contains("directory") && hint.contains("postgres"),
        "{hint}"
    );
    assert_eq!(registry.slugs(), vec!["directory", "postgres"]);
}

#[test]
fn a_schema_that_does_not_compile_is_refused() {
    let err = Recipe::builder("broken", json!({ "type": 12 }))
        .build()
        .expect_err("bad schema");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn slugs_must_be_lowercase_words() {
    let err = Recipe::builder("Not A Slug", json!({}))
        .build()
        .expect_err("bad slug");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn snapshot_configs_mark_unset_secrets_and_drop_host_settings() {
    let recipe = Recipe::builder("cache", json!({ "type": "object" }))
        .secret("password", SecretGenerator::password())
        .secret("token", SecretGenerator::Hex(8))
        .host_setting("binDir")
        .build()
        .expect("recipe");
    let source =
        json!({ "port": 6379, "password": null, "token": "t0ken-value", "binDir": "/opt/bin" });
    let snapshot = recipe.snapshot_config(source.as_object().expect("object"));
    assert_eq!(
        serde_json::Value::Object(snapshot.clone()),
        json!({ "port": 6379, "password": backup_core::recipe::UNSET_SECRET })
    );
    let restored = recipe.restored_config(&snapshot, false);
    assert!(!restored.contains_key("password"), "no password invented");
    assert_eq!(restored["token"].as_str().map(str::len), Some(16));
    assert!(!restored.contains_key("binDir"));
    // A snapshot never supplies a secret: a value in it is replaced.
    let mut forged = snapshot;
    forged.insert("token".into(), json!("from-the-bundle"));
    assert_ne!(
        recipe.restored_config(&forged, false)["token"],
        json!("from-the-bundle")
    );
}
