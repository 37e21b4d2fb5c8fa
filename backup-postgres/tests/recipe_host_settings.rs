//! `binDir` picks the binaries that run with the password in their environment: it is a
//! host setting of the recipe, so a bundle's snapshot never chooses it.

use serde_json::json;

#[test]
fn bin_dir_from_a_snapshot_is_dropped_unless_the_caller_opts_in() {
    let recipe = backup_postgres::recipe().expect("recipe");
    assert!(recipe.host_settings().iter().any(|s| s == "binDir"));
    let source = json!({ "host": "db", "port": 5432, "binDir": "/usr/lib/postgresql/15/bin" });
    let snapshot = recipe.snapshot_config(source.as_object().expect("object"));
    assert!(!snapshot.contains_key("binDir"));

    let tampered = json!({ "host": "db", "port": 5432, "binDir": "/tmp/evil/bin" });
    let tampered = tampered.as_object().expect("object");
    assert!(!recipe
        .restored_config(tampered, false)
        .contains_key("binDir"));
    assert_eq!(
        recipe.restored_config(tampered, true)["binDir"],
        json!("/tmp/evil/bin")
    );
}
