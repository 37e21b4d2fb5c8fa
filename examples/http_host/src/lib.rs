//! An HTTP host for the backup library, over a workspace described by a `backupctl.toml`
//! ([`backupctl::ConfiguredHost`] and the configured repository): the endpoints of the
//! platforms' seeds, bearer-token auth with an owner check the embedder implements,
//! jobs with progress over server-sent events, and a one-page dashboard.
//!
//! Copy it: [`routes::router`] builds the whole application from an
//! [`state::AppState`] and an [`auth::Token`]; replace [`auth::SingleWorkspace`] with
//! your platform's [`auth::OwnerCheck`].

pub mod auth;
pub mod error;
pub mod jobs;
pub mod routes;
pub mod state;
