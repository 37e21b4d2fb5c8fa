//! A Redis Cluster node holds only its own hash slots: backing it up as if it held the
//! whole dataset, or restoring into it, is refused with a clear error.

mod common;

use backup_core::{DataExporter, DataImporter, ErrorKind, ImportMode};
use backup_redis::{RedisExporter, RedisImporter};
use backup_testkit::redis_server::RedisServer;
use common::service;
use serde_json::json;

fn assert_names_the_cluster(error: &backup_core::Error) {
    assert_eq!(error.kind(), ErrorKind::Unsupported, "{error:?}");
    assert!(error.to_string().contains("Cluster"), "{error}");
    assert!(error.hint().is_some(), "{error:?}");
}

#[tokio::test]
async fn a_cluster_node_is_refused_for_export_and_import_in_every_format() {
    let node = RedisServer::builder().arg("cluster-enabled", "yes").start();
    assert!(node.cli(&["INFO", "cluster"]).contains("cluster_enabled:1"));
    let plain = RedisServer::start();
    for format in ["logical", "rdb"] {
        let svc = service(&node, json!({"format": format}));
        let error = RedisExporter
            .artifacts(&svc)
            .await
            .expect_err("a cluster node");
        assert_names_the_cluster(&error);
        // Also when a caller skips `artifacts`.
        let descriptor = RedisExporter
            .artifacts(&service(&plain, json!({"format": format})))
            .await
            .expect("a standalone server")
            .remove(0);
        let error = RedisExporter
            .export(&svc, &descriptor)
            .await
            .expect_err("a cluster node");
        assert_names_the_cluster(&error);
    }
    let logical = RedisExporter
        .artifacts(&service(&plain, json!({"format": "logical"})))
        .await
        .expect("artifacts");
    let error = RedisImporter::new()
        .check(&service(&node, json!({})), &logical, ImportMode::default())
        .await
        .expect_err("restoring into a cluster node");
    assert_names_the_cluster(&error);
}
