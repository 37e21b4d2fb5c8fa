//! The postgres adapter for backup-core.
