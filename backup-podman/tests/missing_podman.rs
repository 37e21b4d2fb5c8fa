//! A live test on a machine without podman fails, naming the binary and scripts/test.sh
//! (it never passes by skipping). Alone in its binary: it changes PATH.
#![allow(clippy::unwrap_used)]

use backup_testkit::podman::PodmanEnv;

#[test]
fn a_live_test_without_podman_fails_naming_it_and_scripts_test_sh() {
    let empty = tempfile::tempdir().unwrap();
    // SAFETY of the environment change: this binary runs only this test.
    std::env::set_var("PATH", empty.path());
    let panic = std::panic::catch_unwind(PodmanEnv::start).unwrap_err();
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap();
    assert!(message.contains("`podman`"), "{message}");
    assert!(message.contains("scripts/test.sh"), "{message}");
}
