//! The router: every `/api` route behind the bearer-token layer, the dashboard page.

pub mod bundles;
pub mod data;
pub mod everything;
pub mod jobs;
pub mod workspace;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::response::Html;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::auth::{require_token, Token};
use crate::state::AppState;

/// The dashboard: one static page, no build step. It holds no data; every request it
/// makes carries the bearer token the operator types in.
const DASHBOARD: &str = include_str!("../../static/index.html");

/// `GET /api/agent-tools`: the agent tool definitions (`backupWorkspace`,
/// `restoreWorkspace`, `exportAppData`, `importAppData`) with their input and output
/// JSON Schemas, from `backup_core::agent_tools`.
async fn agent_tools() -> Json<Vec<backup_core::agent_tools::ToolDefinition>> {
    Json(backup_core::agent_tools::tools())
}

/// The whole application.
pub fn router(state: AppState, token: Token) -> Router {
    let ws = "/api/workspaces/{ws}";
    let api = Router::new()
        .route(&format!("{ws}/export"), get(workspace::export))
        .route(&format!("{ws}/import"), post(workspace::import))
        .route(
            &format!("{ws}/deployments/{{service}}/export-data"),
            post(data::export_data).get(data::export_data),
        )
        .route(
            &format!("{ws}/deployments/{{service}}/import-data"),
            post(data::import_data).layer(DefaultBodyLimit::disable()),
        )
        .route(
            &format!("{ws}/export-everything"),
            post(everything::export_everything),
        )
        .route(
            &format!("{ws}/backups"),
            get(bundles::list).post(bundles::create),
        )
        .route(
            &format!("{ws}/backups/{{bundle}}"),
            get(bundles::info).delete(bundles::delete),
        )
        .route(
            &format!("{ws}/backups/{{bundle}}/download"),
            get(bundles::download),
        )
        .route(
            &format!("{ws}/backups/{{bundle}}/verify"),
            post(bundles::verify),
        )
        .route(
            &format!("{ws}/backups/{{bundle}}/restore"),
            post(bundles::restore),
        )
        .route(&format!("{ws}/prune"), post(bundles::prune))
        .route("/api/agent-tools", get(agent_tools))
        .route("/api/jobs/{job}", get(jobs::status))
        .route("/api/jobs/{job}/events", get(jobs::events))
        .route_layer(middleware::from_fn_with_state(token, require_token));
    Router::new()
        .route("/", get(|| async { Html(DASHBOARD) }))
        .merge(api)
        .with_state(state)
}
