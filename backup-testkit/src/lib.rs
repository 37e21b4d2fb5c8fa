//! Conformance suite and test helpers for backup adapters.
//!
//! Every adapter runs the public async functions of [`conformance`] against a real server
//! started by the test itself (see [`postgres_server`], [`redis_server`]).

pub mod alloc;
pub mod conformance;
pub mod data;
pub mod podman;
pub mod ports;
pub mod postgres_server;
pub mod redis_server;
pub mod rootless;
pub mod s3_server;
pub mod tamper;
pub mod toml_text;
pub mod tree;
