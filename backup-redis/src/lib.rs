//! The redis adapter for backup-core.
