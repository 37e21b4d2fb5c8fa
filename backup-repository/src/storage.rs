//! Where a repository lives, and its `config.json`.

use std::path::PathBuf;
use std::sync::Arc;

use backup_core::bundle::EncryptionInfo;
use backup_core::{Error, ErrorKind, Result};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

/// The repository format this build writes and reads.
pub const REPOSITORY_FORMAT_VERSION: u32 = 1;

/// Where a repository lives.
#[derive(Debug, Clone)]
pub enum Storage {
    /// A directory on local disk.
    Local(PathBuf),
    /// A bucket (and optional prefix) on S3-compatible object storage.
    S3(S3Options),
    /// Any other `object_store` backend the host builds itself: Google Cloud Storage
    /// (cargo feature `gcp`), Azure Blob Storage (feature `azure`), or a store wrapped
    /// with the host's own retry or throttling. Every path lives under `prefix`.
    Store {
        /// The store.
        store: Arc<dyn ObjectStore>,
        /// Key prefix inside the store (empty for its root).
        prefix: String,
        /// Where it is, for messages (e.g. `gs://bucket/backups`); never a credential.
        location: String,
    },
}

/// S3-compatible storage. Credentials not given here are taken from the environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, …).
///
/// Requests use path-style addressing and send no extra checksum headers (only what the
/// protocol requires), which S3-compatible servers accept.
#[derive(Clone, Default)]
pub struct S3Options {
    /// Bucket name (must exist).
    pub bucket: String,
    /// Key prefix inside the bucket (empty for the bucket root).
    pub prefix: String,
    /// Endpoint URL, e.g. `http://127.0.0.1:9000`; `None` for AWS.
    pub endpoint: Option<String>,
    /// Region (`us-east-1` when `None`).
    pub region: Option<String>,
    /// Access key id (from the environment when `None`).
    pub access_key_id: Option<String>,
    /// Secret access key (from the environment when `None`). Never logged.
    pub secret_access_key: Option<String>,
    /// Allow plain `http://` endpoints (always allowed for loopback addresses).
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

fn is_loopback(endpoint: &str) -> bool {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint);
    rest.starts_with("127.") || rest.starts_with("localhost") || rest.starts_with("[::1]")
}

/// The S3 store of `o`: path style, endpoint, region and credentials as given, the rest
/// from the environment.
pub(crate) fn build_s3(o: &S3Options) -> Result<AmazonS3> {
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(&o.bucket)
        .with_virtual_hosted_style_request(false)
        .with_region(o.region.clone().unwrap_or_else(|| "us-east-1".into()));
    if let Some(endpoint) = &o.endpoint {
        b = b
            .with_endpoint(endpoint)
            .with_allow_http(o.allow_http || is_loopback(endpoint));
    }
    if let Some(key) = &o.access_key_id {
        b = b.with_access_key_id(key);
    }
    if let Some(secret) = &o.secret_access_key {
        b = b.with_secret_access_key(secret);
    }
    b.build().map_err(|e| {
        crate::error::store_error(format!("configuring bucket `{}`", o.bucket), e)
            .with_hint("check the bucket name, endpoint and region")
    })
}

impl Storage {
    /// Builds the object store and the key prefix every path lives under.
    pub(crate) fn build(&self, create_dir: bool) -> Result<(Arc<dyn ObjectStore>, String)> {
        match self {
            Storage::Local(dir) => {
                if create_dir {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        Error::io(
                            format!("creating repository directory {}", dir.display()),
                            e,
                        )
                    })?;
                } else if !dir.is_dir() {
                    return Err(no_repository(&dir.display().to_string()));
                }
                let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| {
                    crate::error::store_error(format!("opening {}", dir.display()), e)
                })?;
                Ok((Arc::new(store), String::new()))
            }
            Storage::S3(o) => {
                let store = build_s3(o)?;
                let prefix = o.prefix.trim_matches('/').to_string();
                Ok((Arc::new(store), prefix))
            }
            Storage::Store { store, prefix, .. } => {
                Ok((Arc::clone(store), prefix.trim_matches('/').to_string()))
            }
        }
    }

    /// Where, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Storage::Local(dir) => dir.display().to_string(),
            Storage::S3(o) => format!("s3://{}/{}", o.bucket, o.prefix.trim_matches('/')),
            Storage::Store { location, .. } => location.clone(),
        }
    }
}

pub(crate) fn no_repository(at: &str) -> Error {
    Error::new(ErrorKind::NotFound, format!("no repository at {at}"))
        .with_hint("create one with Repository::init, or check the path / bucket and prefix")
}

/// `config.json`: what identifies a repository and how its bundles are written. It never
/// holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryConfig {
    /// Repository format version.
    pub format_version: u32,
    /// Repository id (a UUID).
    pub id: String,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    /// Encryption parameters: method, scrypt work factor, recipients' public keys; never
    /// a secret (`None`: bundles are not encrypted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionInfo>,
    /// For a passphrase repository: a small age file sealed with the passphrase
    /// ([`backup_core::bundle::Passphrase::seal_key_check`]), so a wrong passphrase is
    /// refused before a bundle is written with it. Holds no secret; absent in
    /// repositories created before it existed (then a wrong passphrase is found at the
    /// first read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_check: Option<String>,
}
