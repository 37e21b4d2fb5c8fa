//! PostgreSQL + Redis + a directory that already run, backed up and restored in place.
use std::{path::Path, sync::Arc};

use backup_core::{backup::create_backup, progress::NoProgress, restore::*};
use backupctl::ConfiguredHost;
use serde_json::json;

#[tokio::main]
async fn main() -> backup_core::Result<()> {
    let password = std::env::var("PGPASSWORD").unwrap_or_default();
    let db = json!({"host": "127.0.0.1", "database": "shop", "password": password});
    let host = ConfiguredHost::new("shop")?
        .service("db", "postgres", db)?
        .service("cache", "redis", json!({"host": "127.0.0.1", "port": 6379}))?
        .service("uploads", "directory", json!({"path": "/srv/shop/uploads"}))?;
    let (bundle, progress) = (Path::new("shop.backup.zip"), Arc::new(NoProgress));
    let (registry, request) = (host.registry(), Default::default());
    create_backup(&host, registry, &request, bundle, progress.clone()).await?;
    let options = RestoreOptions::into_existing_services();
    restore_backup(bundle, &host, registry, &options, progress).await?;
    Ok(())
}
