//! Round trips against a real PostgreSQL 15: many kinds of objects in both formats,
//! pgbench data, schema-only exports, forced replacement, several databases.
#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

mod common;

use backup_core::{DataExporter, DataImporter};
use backup_postgres::{PostgresExporter, PostgresImporter};
use backup_testkit::postgres_server::PostgresServer;
use common::{export_all, export_one, import_file, many_object_facts, service, MANY_OBJECTS_SQL};
use serde_json::json;

async fn many_objects_round_trip(format: &str) {
    let server = PostgresServer::start();
    server.create_database("source");
    server.psql("source", MANY_OBJECTS_SQL);
    let dir = tempfile::tempdir().unwrap();

    let exported = export_one(
        &service(&server, "source", json!({"format": format})),
        dir.path(),
    )
    .await
    .unwrap();
    // Counted in the dump's own data, and equal to count(*) in the source: the smoke
    // test against the source itself compares every table with the manifest.
    let rows = &exported.descriptor.metadata["rowCounts"];
    assert_eq!(
        exported.descriptor.metadata["rowCountSource"],
        json!("dump")
    );
    assert_eq!(rows["public.measurements"], json!(400), "{rows}");
    let sub_partitioned = server.psql("source", "SELECT count(*) FROM measurements_2025");
    assert_eq!(
        rows["public.measurements_2025"].to_string(),
        sub_partitioned,
        "{rows}"
    );
    assert_eq!(
        rows["public.animals"],
        json!(1),
        "only the parent's own rows: {rows}"
    );
    assert_eq!(rows["public.cats"], json!(2), "{rows}");
    PostgresImporter::new()
        .smoke_test(&service(&server, "source", json!({})), &exported.descriptor)
        .await
        .unwrap();
    import_file(
        &service(&server, "restored", json!({"format": format})),
        &exported,
        false,
    )
    .await
    .unwrap();
    PostgresImporter::new()
        .smoke_test(
            &service(&server, "restored", json!({})),
            &exported.descriptor,
        )
        .await
        .unwrap();

    assert_eq!(
        server.normalized_dump("source"),
        server.normalized_dump("restored"),
        "plain dumps of source and restored databases differ ({format})"
    );
    assert_eq!(
        server.table_checksums("source"),
        server.table_checksums("restored")
    );
    assert_eq!(
        many_object_facts(&server, "source"),
        many_object_facts(&server, "restored")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn many_object_database_round_trips_with_equal_content_in_custom_format() {
    many_objects_round_trip("custom").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn many_object_database_round_trips_with_equal_content_in_sql_format() {
    many_objects_round_trip("sql").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pgbench_million_rows_round_trip_with_equal_counts_and_checksums() {
    let server = PostgresServer::start();
    server.create_database("bench");
    server.pgbench_init("bench", 10);
    let dir = tempfile::tempdir().unwrap();

    let exported = export_one(&service(&server, "bench", json!({})), dir.path())
        .await
        .unwrap();
    let rows = &exported.descriptor.metadata["rowCounts"];
    assert_eq!(rows["public.pgbench_accounts"], json!(1_000_000), "{rows}");
    import_file(&service(&server, "bench_copy", json!({})), &exported, false)
        .await
        .unwrap();

    assert_eq!(
        server.psql("bench_copy", "SELECT count(*) FROM pgbench_accounts"),
        "1000000"
    );
    assert_eq!(
        server.table_checksums("bench"),
        server.table_checksums("bench_copy")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_only_export_restores_the_schema_with_no_rows() {
    let server = PostgresServer::start();
    server.create_database("source");
    server.psql("source", MANY_OBJECTS_SQL);
    let dir = tempfile::tempdir().unwrap();

    for format in ["custom", "sql"] {
        let target = format!("schema_{format}");
        let exported = export_one(
            &service(
                &server,
                "source",
                json!({"scope": "schema", "format": format}),
            ),
            dir.path(),
        )
        .await
        .unwrap();
        assert_eq!(exported.descriptor.metadata["scope"], json!("schema"));
        assert!(exported.descriptor.metadata.get("rowCounts").is_none());
        import_file(
            &service(&server, &target, json!({"format": format})),
            &exported,
            false,
        )
        .await
        .unwrap();
        let tables = server.psql(
            &target,
            "SELECT count(*) FROM pg_tables WHERE schemaname IN ('public', 'schéma')",
        );
        assert_eq!(tables, "11", "{format}: every table exists");
        assert_eq!(
            server.psql(&target, "SELECT count(*) FROM \"Kunden_ü\""),
            "0"
        );
        assert_eq!(
            server.psql(&target, "SELECT count(*) FROM measurements"),
            "0"
        );
        assert_eq!(
            server.psql(&target, "SELECT count(*) FROM pg_largeobject_metadata"),
            "0"
        );
        assert_eq!(
            server.psql(
                &target,
                "SELECT count(*) FROM pg_indexes WHERE indexname = 'kunden_trgm'"
            ),
            "1"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forced_restore_replaces_an_existing_database_with_the_dump() {
    let server = PostgresServer::start();
    server.create_database("app");
    server.psql(
        "app",
        "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 10);",
    );
    let dir = tempfile::tempdir().unwrap();
    let exported = export_one(&service(&server, "app", json!({})), dir.path())
        .await
        .unwrap();
    server.psql(
        "app",
        "INSERT INTO items SELECT generate_series(11, 20); CREATE TABLE extra (x int);",
    );

    import_file(&service(&server, "app", json!({})), &exported, true)
        .await
        .unwrap();

    assert_eq!(server.psql("app", "SELECT count(*) FROM items"), "10");
    assert_eq!(
        server.psql(
            "app",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'extra'"
        ),
        "0"
    );
    let leftovers = server.psql(
        "postgres",
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'app\\_\\_%'",
    );
    assert_eq!(leftovers, "0", "temporary databases are cleaned up");
}

#[tokio::test(flavor = "multi_thread")]
async fn all_databases_export_one_artifact_per_database_and_restore_each() {
    let server = PostgresServer::start();
    for db in ["alpha", "beta"] {
        server.create_database(db);
        server.psql(
            db,
            &format!("CREATE TABLE t (v text); INSERT INTO t VALUES ('{db}');"),
        );
    }
    let mut all = server.config_json("unused");
    all.as_object_mut().unwrap().remove("database");
    all["allDatabases"] = json!(true);
    let source = backup_core::ServiceTarget::local("all", backup_postgres::RECIPE, all);
    let names: Vec<String> = PostgresExporter::new()
        .artifacts(&source)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(
        names,
        vec!["alpha.dump", "beta.dump"],
        "postgres itself is not exported"
    );

    let dir = tempfile::tempdir().unwrap();
    let exported = export_all(&source, dir.path()).await.unwrap();
    for item in &exported {
        let db = item.descriptor.metadata["database"]
            .as_str()
            .unwrap()
            .to_string();
        let copy = format!("{db}_copy");
        import_file(&service(&server, &copy, json!({})), item, false)
            .await
            .unwrap();
        assert_eq!(server.psql(&copy, "SELECT v FROM t"), db);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_exports_of_different_databases_both_succeed_with_their_own_metadata() {
    let server = PostgresServer::start();
    for (db, rows) in [("left_db", 300), ("right_db", 700)] {
        server.create_database(db);
        server.psql(
            db,
            &format!("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, {rows}) g;"),
        );
    }
    let dir_left = tempfile::tempdir().unwrap();
    let dir_right = tempfile::tempdir().unwrap();
    let left_service = service(&server, "left_db", json!({}));
    let right_service = service(&server, "right_db", json!({"format": "sql"}));
    let (left, right) = tokio::join!(
        export_one(&left_service, dir_left.path()),
        export_one(&right_service, dir_right.path()),
    );
    let (left, right) = (left.unwrap(), right.unwrap());
    assert_eq!(
        left.descriptor.metadata["rowCounts"]["public.t"],
        json!(300)
    );
    assert_eq!(
        right.descriptor.metadata["rowCounts"]["public.t"],
        json!(700)
    );
    import_file(&service(&server, "left_copy", json!({})), &left, false)
        .await
        .unwrap();
    import_file(&service(&server, "right_copy", json!({})), &right, false)
        .await
        .unwrap();
    assert_eq!(
        server.table_checksums("left_db"),
        server.table_checksums("left_copy")
    );
    assert_eq!(
        server.table_checksums("right_db"),
        server.table_checksums("right_copy")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_bin_dir_the_tools_are_found_on_path() {
    let server = PostgresServer::start();
    server.create_database("plain_path");
    server.psql(
        "plain_path",
        "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 25);",
    );
    let on_path = |db: &str| {
        let mut target = service(&server, db, json!({}));
        if let Some(map) = target.config.as_object_mut() {
            map.remove("binDir");
        }
        target
    };
    let dir = tempfile::tempdir().unwrap();
    let exported = export_one(&on_path("plain_path"), dir.path())
        .await
        .unwrap();
    assert_eq!(
        exported.descriptor.metadata["rowCounts"]["public.t"],
        json!(25)
    );
    import_file(&on_path("plain_path_copy"), &exported, false)
        .await
        .unwrap();
    assert_eq!(
        server.psql("plain_path_copy", "SELECT count(*) FROM t"),
        "25"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_are_counted_from_uncompressed_and_compressed_custom_dumps_alike() {
    let server = PostgresServer::start();
    server.create_database("levels");
    server.psql(
        "levels",
        "CREATE TABLE t (id int, note text); \
         INSERT INTO t SELECT g, repeat(E'line\\nbreak', g % 5) FROM generate_series(1, 5000) g; \
         CREATE TABLE empty (id int);",
    );
    let dir = tempfile::tempdir().unwrap();
    for level in [0, 1, 9] {
        let exported = export_one(
            &service(&server, "levels", json!({"compressionLevel": level})),
            dir.path(),
        )
        .await
        .unwrap();
        let meta = &exported.descriptor.metadata;
        assert_eq!(meta["rowCountSource"], json!("dump"), "level {level}");
        assert_eq!(meta["rowCounts"]["public.t"], json!(5000), "level {level}");
        assert_eq!(meta["rowCounts"]["public.empty"], json!(0), "level {level}");
        let target = format!("levels_{level}");
        import_file(&service(&server, &target, json!({})), &exported, false)
            .await
            .unwrap();
        assert_eq!(server.psql(&target, "SELECT count(*) FROM t"), "5000");
    }
}
