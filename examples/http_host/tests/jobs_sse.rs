//! Long operations as jobs: 202 with an id, progress over SSE with monotonic ids, the
//! final event carrying the backupctl `--json` envelope, resumption with Last-Event-ID;
//! and the repository endpoints around them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{final_result, Workspace};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_job_streams_progress_to_its_final_result_and_resumes_from_last_event_id() {
    let ws = Workspace::new(true, true);
    let server = ws.serve(&["--heartbeat-ms", "50"]);
    let (status, started) = server
        .post(
            "/api/workspaces/shop/backups",
            &json!({"label": "before upgrade"}),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let job = started["job"].as_str().unwrap().to_string();
    let events = server.sse(&job, None).await;
    let ids: Vec<u64> = events.iter().map(|e| e.0).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids not monotonic: {ids:?}"
    );
    assert!(events
        .iter()
        .any(|e| e.1 == "progress" && e.2["event"] == "serviceStarted"));
    let result = final_result(&events);
    assert_eq!(result["command"], "create");
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["result"]["label"], "before upgrade");
    let name = result["result"]["name"].as_str().unwrap().to_string();

    // Resumed after the third event: exactly the events after it, same ids and data.
    let resumed = server.sse(&job, Some(ids[2])).await;
    assert_eq!(resumed, events[3..].to_vec());
    // Resumed after the last: nothing but the stream's end… the result is already sent.
    assert!(server
        .sse(&job, Some(*ids.last().unwrap()))
        .await
        .is_empty());

    let (status, job_status) = server.get(&format!("/api/jobs/{job}")).await;
    assert_eq!(status, 200);
    assert_eq!(job_status["result"], *result);

    let (_, list) = server.get("/api/workspaces/shop/backups").await;
    assert_eq!(list["command"], "list");
    assert_eq!(list["result"][0]["name"], name.as_str());
    let (status, info) = server
        .get(&format!("/api/workspaces/shop/backups/{name}"))
        .await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["result"]["name"], name.as_str());

    let verified = server
        .run_job(
            &format!("/api/workspaces/shop/backups/{name}/verify"),
            &json!({}),
        )
        .await;
    let verified = final_result(&verified);
    assert_eq!(verified["result"][0]["ok"], true, "{verified}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_needs_the_typed_phrase_then_runs_as_a_job() {
    let ws = Workspace::new(false, true);
    let server = ws.serve(&[]);
    let created = server
        .run_job("/api/workspaces/shop/backups", &json!({}))
        .await;
    let name = final_result(&created)["result"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let redis = ws.redis.as_ref().unwrap();
    redis.cli(&["SET", "greeting", "changed"]);
    let restore = format!("/api/workspaces/shop/backups/{name}/restore");

    let (status, plan) = server
        .post(&restore, &json!({"services": ["cache"], "dryRun": true}))
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["result"]["confirmPhrase"], "cache");
    let (status, refused) = server
        .post(&restore, &json!({"services": ["cache"], "confirm": "yes"}))
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["error"]["hint"].as_str().unwrap().contains("cache"));
    assert!(redis.cli(&["GET", "greeting"]).contains("changed"));

    let events = server
        .run_job(
            &restore,
            &json!({"services": ["cache"], "confirm": "cache"}),
        )
        .await;
    let result = final_result(&events);
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["command"], "restore");
    assert!(redis.cli(&["GET", "greeting"]).contains("hello"));

    let (status, pruned) = server
        .post("/api/workspaces/shop/prune", &json!({"dryRun": true}))
        .await;
    assert_eq!(status, 200, "{pruned}");
    assert_eq!(pruned["result"]["dryRun"], true);
    let safety = result["result"]["safetyBundle"].as_str();
    let (status, deleted) = server
        .json(
            Method::DELETE,
            &format!("/api/workspaces/shop/backups/{name}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{deleted}");
    let (_, list) = server.get("/api/workspaces/shop/backups").await;
    let left: Vec<&str> = list["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert!(!left.contains(&name.as_str()));
    assert_eq!(left.len(), usize::from(safety.is_some()));
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_export_everything_streams_a_bundle_and_writes_nothing() {
    let ws = Workspace::new(true, false);
    let server = ws.serve(&["--read-only"]);
    let resp = server
        .request(Method::POST, "/api/workspaces/shop/export-everything")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    let bytes = resp.bytes().await.unwrap();
    let path = ws.dir.path().join("everything.backup.zip");
    std::fs::write(&path, &bytes).unwrap();
    let reader = backup_core::bundle::BundleReader::open(&path)
        .await
        .unwrap();
    let mut services = reader.manifest().includes.services.clone();
    services.sort();
    assert_eq!(services, ["db", "files"]);

    let (_, list) = server.get("/api/workspaces/shop/backups").await;
    assert_eq!(list["result"], json!([]));
    let (status, refused) = server
        .post("/api/workspaces/shop/backups", &json!({}))
        .await;
    assert_eq!(status, 403, "{refused}");
    assert!(refused["error"]["hint"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_job_stream_sends_heartbeats_until_its_result() {
    let ws = Workspace::new(false, false);
    // The directory service's stop command keeps the backup busy (and its stream idle)
    // for a second; heartbeats come every 50 ms.
    let config = std::fs::read_to_string(&ws.config).unwrap();
    let config = config.replacen(
        "recipe = \"directory\"\n",
        "recipe = \"directory\"\nstop = [\"sleep\", \"1\"]\nstart = [\"true\"]\n",
        1,
    );
    std::fs::write(&ws.config, config).unwrap();
    let server = ws.serve(&["--heartbeat-ms", "50"]);
    let (status, started) = server
        .post("/api/workspaces/shop/backups", &json!({}))
        .await;
    assert_eq!(status, 202, "{started}");
    let text = server.sse_text(started["job"].as_str().unwrap()).await;
    assert!(text.contains(": heartbeat\n"), "{text}");
    assert!(
        text.trim_end().ends_with('}'),
        "the stream ends with the result event: {text}"
    );
    assert!(text.contains("event: result"));
}
