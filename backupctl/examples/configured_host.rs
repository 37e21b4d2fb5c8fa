//! PostgreSQL + Redis + a directory that already run, backed up and restored in place.
use backup_core::{progress::NoProgress, restore::*};
use backupctl::ConfiguredHost;
use serde_json::json;

#[tokio::main]
async fn main() -> backup_core::Result<()> {
    let pg = json!({"host": "127.0.0.1", "user": "postgres", "database": "shop", "password": std::env::var("PGPASSWORD").unwrap_or_default()});
    let host = ConfiguredHost::new("shop")?
        .service("db", "postgres", pg)?
        .service("cache", "redis", json!({"host": "127.0.0.1", "port": 6379}))?
        .service("uploads", "directory", json!({"path": "/srv/shop/uploads"}))?;
    let (bundle, progress) = (
        std::path::Path::new("shop.backup.zip"),
        std::sync::Arc::new(NoProgress),
    );
    backup_core::backup::create_backup(
        &host,
        host.registry(),
        &Default::default(),
        bundle,
        progress.clone(),
    )
    .await?;
    let mut options = RestoreOptions {
        recreate_services: false,
        ..Default::default()
    };
    options.import.force = true; // replace the data of the running services
    restore_backup(bundle, &host, host.registry(), &options, progress).await?;
    Ok(())
}
