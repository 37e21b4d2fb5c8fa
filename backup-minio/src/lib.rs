//! The minio adapter for backup-core.
