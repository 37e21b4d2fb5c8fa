//! The `podman` recipe: its config schema, and host settings that never come from a bundle.
#![allow(clippy::unwrap_used)]

use serde_json::json;

#[test]
fn the_recipe_accepts_a_deployment_config_and_refuses_a_relative_quadlet_dir() {
    let recipe = backup_podman::recipe().unwrap();
    assert_eq!(recipe.slug(), backup_podman::RECIPE);
    let good = json!({
        "quadletDir": "/etc/containers/systemd/nextcloud",
        "volumes": ["nextcloud-db", "systemd-data"],
        "stopContainers": true,
        "rootless": false,
        "podman": "/usr/bin/podman",
        "podmanArgs": ["--root", "/var/lib/alt"],
    });
    recipe.validate_config(&good).unwrap();
    for bad in [
        json!({ "quadletDir": "relative/dir" }),
        json!({ "volumes": ["v"] }),
        json!({ "quadletDir": "/q", "volumes": ["../escape"] }),
    ] {
        assert!(recipe.validate_config(&bad).is_err(), "{bad} was accepted");
    }
}

#[test]
fn the_podman_program_and_its_arguments_are_host_settings_never_taken_from_a_bundle() {
    let recipe = backup_podman::recipe().unwrap();
    let config = json!({
        "quadletDir": "/q",
        "podman": "/opt/evil/podman",
        "podmanArgs": ["--root", "/elsewhere"],
    });
    let snapshot = recipe.snapshot_config(config.as_object().unwrap());
    assert!(!snapshot.contains_key("podman") && !snapshot.contains_key("podmanArgs"));
    let restored = recipe.restored_config(config.as_object().unwrap(), false);
    assert!(!restored.contains_key("podman") && !restored.contains_key("podmanArgs"));
    assert_eq!(restored["quadletDir"], "/q");
}
