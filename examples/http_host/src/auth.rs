//! Bearer-token authentication (a layer in front of every `/api` route) and the
//! workspace owner check embedders implement.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Who made a request, as the token identified them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// A name for logs and owner checks (never the token).
    pub name: String,
}

/// Decides whether a caller may act on a workspace.
///
/// # Contract
///
/// Called before any handler touches a workspace; `false` makes the request fail with
/// 404 (the workspace's existence is not revealed). It must not block.
#[async_trait]
pub trait OwnerCheck: Send + Sync + 'static {
    /// Whether `caller` owns (may back up and restore) `workspace`.
    async fn may_access(&self, caller: &Caller, workspace: &str) -> bool;
}

/// The example's owner check: the one configured workspace, for every authenticated
/// caller. A platform replaces it with its own membership lookup.
#[derive(Debug, Clone)]
pub struct SingleWorkspace {
    /// The workspace slug callers may use.
    pub slug: String,
}

#[async_trait]
impl OwnerCheck for SingleWorkspace {
    async fn may_access(&self, _caller: &Caller, workspace: &str) -> bool {
        workspace == self.slug
    }
}

/// The accepted bearer token. Debug never shows it.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token; refuses an empty one.
    ///
    /// # Errors
    ///
    /// An empty (or whitespace-only) token.
    pub fn new(text: &str) -> Result<Token, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("the API token is empty".into());
        }
        Ok(Token(Arc::from(text)))
    }

    /// Compares in constant time (no early exit on the first differing byte).
    fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, x) in a.iter().enumerate() {
            diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
        }
        diff == 0
    }
}

/// The layer: a request without `Authorization: Bearer <token>` matching the token is
/// answered 401 here and never reaches a handler; an accepted one carries a [`Caller`].
pub async fn require_token(
    State(token): State<Token>,
    mut request: Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if token.matches(given.trim()) => {
            request.extensions_mut().insert(Caller {
                name: "operator".into(),
            });
            next.run(request).await
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({
                "ok": false,
                "error": {
                    "kind": "unauthorized",
                    "message": "a valid bearer token is required",
                    "hint": "send `Authorization: Bearer <token>` with the token the server was started with",
                    "fieldErrors": [],
                }
            })),
        )
            .into_response(),
    }
}
