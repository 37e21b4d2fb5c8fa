//! The config of an `s3` / `minio` service and its JSON Schema.

use std::collections::BTreeMap;
use std::path::PathBuf;

use backup_core::{Error, ErrorKind, Result, ServiceTarget};
use serde::Deserialize;
use serde_json::json;

/// Config field holding the access key id (a secret).
pub const ACCESS_KEY_FIELD: &str = "accessKeyId";
/// Config field holding the secret access key (a secret).
pub const SECRET_KEY_FIELD: &str = "secretAccessKey";

/// Default number of requests (objects or parts) in flight.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Default size above which an object is uploaded in parts, and the smallest part size.
pub const DEFAULT_PART_SIZE_MIB: u64 = 8;
/// Default size up to which an object above the part size is staged to a temporary file
/// and uploaded in one PUT (rclone's `--s3-upload-cutoff`).
pub const DEFAULT_SINGLE_PUT_CUTOFF_MIB: u64 = 200;
/// The largest object S3 takes in one PUT: 5 GiB.
pub const MAX_SINGLE_PUT_MIB: u64 = 5120;

/// Which versions an export reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Versions {
    /// The current version of every key (deleted keys are left out).
    #[default]
    Latest,
    /// Every version and delete marker, replayed oldest to newest on import.
    All,
}

/// When an export asks for an object's tags (GetObjectTagging); see [`crate::tags`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ObjectTags {
    /// Only for objects whose GET advertised a tag count (`x-amz-tagging-count`) above
    /// zero, after a sample of each bucket's first objects confirmed the server advertises
    /// it (a server found hiding tags switches the bucket to `always`). One request per
    /// untagged object. Residual risk: a server that never advertises the count and whose
    /// sampled first objects carry no tags loses later objects' tags; choose `always` there.
    #[default]
    Advertised,
    /// For every object, alongside its GET: two requests per object, no reliance on the
    /// server advertising the count.
    Always,
}

/// Config of an `s3` / `minio` service.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct S3Config {
    /// `http(s)://host:port` of the S3 API.
    pub endpoint: String,
    /// Region used for signing (`us-east-1` by default).
    #[serde(default = "default_region")]
    pub region: String,
    /// Path-style requests (`endpoint/bucket/key`), on by default: MinIO and most
    /// self-hosted servers need them.
    #[serde(default = "default_true")]
    pub path_style: bool,
    /// Buckets to back up; empty or missing means every bucket the key can list. On
    /// import, a list of exactly one bucket is the target of every artifact.
    #[serde(default)]
    pub buckets: Vec<String>,
    /// Import target per source bucket (`{"photos": "photos-restored"}`).
    #[serde(default)]
    pub bucket_map: BTreeMap<String, String>,
    /// Only keys starting with this prefix are exported.
    #[serde(default)]
    pub prefix: String,
    /// `latest` (default) or `all` versions.
    #[serde(default)]
    pub versions: Versions,
    /// When tags are asked for on export: `advertised` (default) or `always`.
    #[serde(default)]
    pub object_tags: ObjectTags,
    /// Objects or parts in flight on import (default 4); export reads up to twice as many
    /// small objects ahead.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Objects larger than this many MiB are uploaded in parts of at least this size
    /// (default 8; raised so any object fits in 10,000 parts).
    #[serde(default = "default_part_size")]
    pub part_size_mib: u64,
    /// On import, objects above the part size and up to this many MiB are staged to a
    /// temporary file and uploaded in one PUT (default 200, like rclone; 0 turns staging
    /// off; at most 5120, S3's single-PUT limit). Larger objects go multipart. Staging
    /// uses at most `concurrency × singlePutCutoffMib` of disk in `stagingDir`.
    #[serde(default = "default_single_put_cutoff")]
    pub single_put_cutoff_mib: u64,
    /// Directory for staged objects on import (default: the system temp dir). A
    /// directory of this host, not of the data: never taken from a snapshot.
    #[serde(default)]
    pub staging_dir: Option<PathBuf>,
    /// Access key id (secret).
    pub access_key_id: String,
    /// Secret access key (secret).
    pub secret_access_key: String,
}

fn default_region() -> String {
    "us-east-1".to_string()
}
fn default_true() -> bool {
    true
}
fn default_concurrency() -> usize {
    DEFAULT_CONCURRENCY
}
fn default_part_size() -> u64 {
    DEFAULT_PART_SIZE_MIB
}
fn default_single_put_cutoff() -> u64 {
    DEFAULT_SINGLE_PUT_CUTOFF_MIB
}

impl std::fmt::Debug for S3Config {
    // Credentials never appear in Debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("buckets", &self.buckets)
            .field("prefix", &self.prefix)
            .field("versions", &self.versions)
            .field("object_tags", &self.object_tags)
            .field("concurrency", &self.concurrency)
            .field("part_size_mib", &self.part_size_mib)
            .field("single_put_cutoff_mib", &self.single_put_cutoff_mib)
            .field("staging_dir", &self.staging_dir)
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// Reads the config of a service.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] naming the problem (never a secret's value).
    pub fn from_service(service: &ServiceTarget) -> Result<Self> {
        let config: S3Config = serde_json::from_value(service.config.clone()).map_err(|e| {
            Error::new(
                ErrorKind::InvalidConfig,
                format!("config of S3 service `{}` is invalid: {e}", service.name),
            )
            .with_hint(
                "required: endpoint, accessKeyId, secretAccessKey; versions is `latest` or \
                 `all`, objectTags is `advertised` or `always`; concurrency, partSizeMib and \
                 singlePutCutoffMib (0 to 5120) are whole numbers",
            )
        })?;
        if !(config.endpoint.starts_with("http://") || config.endpoint.starts_with("https://")) {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "endpoint of S3 service `{}` must start with http:// or https://",
                    service.name
                ),
            ));
        }
        if config.access_key_id.is_empty() || config.secret_access_key.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!("S3 service `{}` has no credentials", service.name),
            )
            .with_hint("set accessKeyId and secretAccessKey (secrets of the recipe)"));
        }
        config.check_staging(&service.name)?;
        Ok(config)
    }

    fn check_staging(&self, service: &str) -> Result<()> {
        if self.single_put_cutoff_mib > MAX_SINGLE_PUT_MIB {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "singlePutCutoffMib of S3 service `{service}` is {} MiB, above S3's \
                     single-PUT limit of {MAX_SINGLE_PUT_MIB} MiB (5 GiB)",
                    self.single_put_cutoff_mib
                ),
            )
            .with_hint(format!(
                "set singlePutCutoffMib between 0 (stage nothing, upload in parts) and \
                 {MAX_SINGLE_PUT_MIB}; the default is {DEFAULT_SINGLE_PUT_CUTOFF_MIB}"
            )));
        }
        if self
            .staging_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!("stagingDir of S3 service `{service}` is empty"),
            )
            .with_hint("name a directory with room for concurrency × singlePutCutoffMib, or leave stagingDir out for the system temp dir"));
        }
        Ok(())
    }

    /// Number of requests in flight, at least 1.
    pub fn concurrency(&self) -> usize {
        self.concurrency.clamp(1, 64)
    }

    /// The smallest part size, in bytes (at least 5 MiB, S3's minimum).
    pub fn part_size(&self) -> u64 {
        self.part_size_mib.max(5) * 1024 * 1024
    }

    /// The single-PUT cutoff in bytes: objects above [`S3Config::part_size`] and up to
    /// this are staged to a file and PUT whole; 0 when staging is off.
    pub fn single_put_cutoff(&self) -> u64 {
        self.single_put_cutoff_mib * 1024 * 1024
    }

    /// The bucket an artifact of `source` is imported into.
    pub fn target_bucket(&self, source: &str) -> String {
        if let Some(target) = self.bucket_map.get(source) {
            return target.clone();
        }
        match self.buckets.as_slice() {
            [only] => only.clone(),
            _ => source.to_string(),
        }
    }
}

/// The JSON Schema of [`S3Config`].
pub fn config_schema() -> serde_json::Value {
    let bucket = json!({ "type": "string", "minLength": 3, "maxLength": 63, "pattern": "^[a-z0-9][a-z0-9.-]*[a-z0-9]$" });
    json!({
        "type": "object",
        "properties": {
            "endpoint": { "type": "string", "pattern": "^https?://" },
            "region": { "type": "string", "minLength": 1 },
            "pathStyle": { "type": "boolean" },
            "buckets": { "type": "array", "items": bucket },
            "bucketMap": { "type": "object", "additionalProperties": bucket },
            "prefix": { "type": "string" },
            "versions": { "enum": ["latest", "all"] },
            "objectTags": { "enum": ["advertised", "always"] },
            "concurrency": { "type": "integer", "minimum": 1, "maximum": 64 },
            "partSizeMib": { "type": "integer", "minimum": 5, "maximum": 5120 },
            "singlePutCutoffMib": { "type": "integer", "minimum": 0, "maximum": MAX_SINGLE_PUT_MIB },
            "stagingDir": { "type": "string", "minLength": 1 },
            "accessKeyId": { "type": "string", "minLength": 1 },
            "secretAccessKey": { "type": "string", "minLength": 1 }
        },
        "required": ["endpoint", "accessKeyId", "secretAccessKey"],
        "additionalProperties": false
    })
}
