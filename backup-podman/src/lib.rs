//! The podman adapter for backup-core.
