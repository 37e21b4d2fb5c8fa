//! The example's endpoints through a real HTTP client, against the running binary and
//! real PostgreSQL, Redis and directory services.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Workspace, TOKEN};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn requests_without_the_right_token_are_401_before_any_handler() {
    let ws = Workspace::new(false, false);
    let server = ws.serve(&[]);
    let paths = [
        (Method::GET, "/api/workspaces/shop/backups"),
        (Method::GET, "/api/workspaces/shop/export"),
        (Method::POST, "/api/workspaces/shop/backups"),
        (Method::DELETE, "/api/workspaces/shop/backups/latest"),
        // A workspace that does not exist: still 401, not 404 (no handler ran).
        (Method::GET, "/api/workspaces/nope/backups"),
        (Method::GET, "/api/jobs/00000000/events"),
    ];
    for (method, path) in paths {
        for auth in [None, Some("Bearer wrong-token"), Some("Basic abc")] {
            let mut req = server.client.request(method.clone(), server.url(path));
            if let Some(auth) = auth {
                req = req.header("authorization", auth);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 401, "{method} {path} with {auth:?}");
            let text = resp.text().await.unwrap();
            assert!(!text.contains(TOKEN));
            let body: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(body["error"]["kind"], "unauthorized");
        }
    }
    // The POST made no backup: nothing reached the handler.
    let (status, list) = server.get("/api/workspaces/shop/backups").await;
    assert_eq!(status, 200);
    assert_eq!(list["result"], json!([]));
    // With the token, another workspace is not found (the owner check).
    let (status, _) = server.get("/api/workspaces/nope/backups").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_export_then_import_round_trips_with_409_unless_force() {
    let ws = Workspace::new(true, true);
    let server = ws.serve(&[]);
    let (status, exported) = server.get("/api/workspaces/shop/export").await;
    assert_eq!(status, 200, "{exported}");
    assert_eq!(exported["command"], "export-snapshot");
    let snapshot = &exported["result"];
    let mut names: Vec<&str> = snapshot["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["cache", "db", "files"]);

    let resp = server
        .request(Method::GET, "/api/workspaces/shop/export?download=true")
        .send()
        .await
        .unwrap();
    let disposition = resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    let downloaded: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(downloaded["services"], snapshot["services"]);

    let (status, conflict) = server.post("/api/workspaces/shop/import", snapshot).await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["error"]["kind"], "name-conflict");
    let (status, imported) = server
        .post("/api/workspaces/shop/import?force=true", snapshot)
        .await;
    assert_eq!(status, 200, "{imported}");
    assert_eq!(
        imported["result"]["replaces"],
        json!(["cache", "db", "files"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_snapshot_is_422_with_field_errors_and_pointers() {
    let ws = Workspace::new(true, false);
    let server = ws.serve(&[]);
    let (_, exported) = server.get("/api/workspaces/shop/export").await;
    let mut snapshot = exported["result"].clone();
    let services = snapshot["services"].as_array_mut().unwrap();
    let db = services.iter().position(|s| s["name"] == "db").unwrap();
    services[db]["config"]["port"] = json!("not a port");
    let (status, body) = server
        .post("/api/workspaces/shop/import?force=true", &snapshot)
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["ok"], false);
    assert_eq!(body["error"]["kind"], "invalid-config");
    let fields: Vec<&str> = body["error"]["fieldErrors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&format!("/services/{db}/config/port").as_str()),
        "{fields:?}"
    );

    let (status, body) = server
        .json(
            Method::POST,
            "/api/workspaces/shop/import",
            Some(&json!("not json object")),
        )
        .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_data_export_download_imports_back_from_a_multipart_upload() {
    let ws = Workspace::new(true, false);
    let server = ws.serve(&[]);
    let resp = server
        .request(
            Method::POST,
            "/api/workspaces/shop/deployments/db/export-data",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let headers = resp.headers().clone();
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let content_type = headers["content-type"].to_str().unwrap().to_string();
    let artifact = headers["x-artifact-name"].to_str().unwrap().to_string();
    let dump = resp.bytes().await.unwrap();
    assert!(!dump.is_empty());
    assert_ne!(content_type, "");

    let pg = ws.pg.as_ref().unwrap();
    pg.psql("shop", "DELETE FROM items WHERE id > 10;");
    let query = |force: bool| format!("artifact={artifact}&force={force}");
    let (refuse, replace) = (query(false), query(true));
    let upload = || futures::stream::iter([Ok(dump.clone())]);
    let (status, refused) = server
        .import_data("db", &refuse, &content_type, upload())
        .await;
    assert_eq!(
        status, 409,
        "an import into a database with data needs force: {refused}"
    );
    let (status, body) = server
        .import_data("db", &replace, &content_type, upload())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["bytes"], dump.len());
    let count = pg.psql("shop", "SELECT count(*) FROM items;");
    assert!(count.contains("500"), "{count}");
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_tool_definitions_are_served_with_their_schemas() {
    let ws = Workspace::new(false, false);
    let server = ws.serve(&[]);
    let (status, tools) = server.get("/api/agent-tools").await;
    assert_eq!(status, 200, "{tools}");
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for wanted in [
        "backupWorkspace",
        "restoreWorkspace",
        "exportAppData",
        "importAppData",
    ] {
        assert!(names.contains(&wanted), "{names:?}");
    }
    for tool in tools.as_array().unwrap() {
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        assert!(tool["outputSchema"].is_object(), "{tool}");
    }
}
