//! What a Redis target holds now, for the dry run of a safe restore.

use backup_core::Result;

use crate::resp::{info_fields, Connection};
use crate::server::server_info;

/// What the server holds now: keys per database (only databases with keys) and the
/// dataset's memory (`used_memory_dataset`), for the dry run of a safe restore.
pub(crate) async fn held_data(conn: &mut Connection) -> Result<Vec<backup_core::HeldData>> {
    let info = server_info(conn).await?;
    let mut held: Vec<backup_core::HeldData> = info
        .keyspace
        .iter()
        .map(|(db, keys)| backup_core::HeldData {
            kind: "keys".into(),
            name: format!("db{db}"),
            size: None,
            count: Some(*keys),
        })
        .collect();
    let memory = conn
        .call("INFO", &[b"INFO", b"memory"])
        .await?
        .text()
        .unwrap_or_default();
    let dataset = info_fields(&memory)
        .find(|(key, _)| *key == "used_memory_dataset")
        .and_then(|(_, value)| value.trim().parse::<u64>().ok());
    held.push(backup_core::HeldData {
        kind: "memory".into(),
        name: "dataset".into(),
        size: dataset,
        count: Some(info.total_keys()),
    });
    Ok(held)
}
