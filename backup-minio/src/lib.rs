//! The S3 adapter for backup-core: MinIO and other S3-compatible servers (Garage, Ceph
//! RGW, AWS S3, …), every object with its metadata and tags, all versions on request,
//! verified on import.
//!
//! # Recipes
//!
//! | recipe | what | config |
//! |---|---|---|
//! | `s3`, `minio` | buckets over the S3 API (format `s3/tar`) | see below |
//! | `minio-data` | the server's data directory, with the server stopped | `{ "path": "/data" }` |
//!
//! `s3` / `minio` config: `endpoint` (`http(s)://host:port`), `region` (`us-east-1`),
//! `pathStyle` (`true`), `buckets` (empty: every bucket the key can list), `prefix`,
//! `versions` (`latest` or `all`), `objectTags` (`advertised` or `always`, see [`tags`]),
//! `concurrency` (4), `partSizeMib` (8), `singlePutCutoffMib` (200; 0 turns it off; at
//! most 5120), `stagingDir` (system temp dir; a host setting, never taken from a
//! snapshot), `bucketMap` (import target per source bucket);
//! `accessKeyId` and `secretAccessKey` are secrets (never in a snapshot, manifest, log
//! line or error). Unknown fields are refused.
//!
//! The client uses static credentials, path-style addressing, and request checksums and
//! response validation "when required" (servers that are not AWS reject the extra
//! checksum headers newer SDKs send by default).
//!
//! # Export: one artifact `<bucket>.tar` per bucket
//!
//! A tar that stock `tar` extracts (layout in [`layout`]): a head entry with the bucket's
//! settings, then for each object in key order a record `meta/NNNNNNNN.json` and its bytes
//! at `objects/<key>`; a key that is not a safe path (trailing `/`, `..`, absolute, empty
//! segments, longer than 1024 bytes, or under a key that is itself an object) is stored at
//! `encoded/NNNNNNNN` instead, and its record holds the real key. `end.json` closes the
//! archive: a stream without it is truncated. `tar -xf b.tar objects/` gives the objects
//! as files. Records keep the key, size, ETag, stored checksums, last modified, content
//! type, cache-control, content-encoding, -disposition, -language, expires, user metadata
//! exactly as returned, tags, storage class, and with `versions: all` on a versioned
//! bucket every version (oldest first) with its version id, is-latest and delete markers.
//! Objects under 1 MiB are fetched ahead, whole, up to `2 × concurrency` objects and
//! 16 MiB at a time, while earlier ones are written; larger objects stream one at a time
//! in bounded chunks; the archive keeps key order either way. Bucket settings (versioning; policy,
//! CORS, tags where the server has them; whether lifecycle rules exist) go into the
//! artifact metadata and the head entry.
//!
//! # Import
//!
//! The bucket is created when missing (with versioning when the source had it), and
//! policy, CORS and tags are applied where supported. Objects up to `partSizeMib` are
//! PUT whole from memory; objects above it and up to `singlePutCutoffMib` are staged to a
//! temporary file in `stagingDir` and PUT whole from it (retryable, memory flat; see
//! [`staging`]); larger ones go in parts of at least `partSizeMib` (raised so any object
//! fits in 10,000 parts). `concurrency` objects or parts are in flight: memory is bounded
//! by `concurrency × part size`, staging disk by `concurrency × singlePutCutoffMib`. A
//! multipart upload is completed and checked while the next object's parts go up. Versions are replayed oldest to newest, delete markers
//! included; [`S3Importer::reports`] holds the old→new version-id map. A bucket holding
//! objects is refused unless `force` (which replaces keys in the archive and leaves
//! others). Every object is checked after upload: its size and its ETag against the MD5
//! (or multipart ETag from our own parts) of what was sent. A failed multipart upload is
//! aborted; a failed import without `force` deletes what it uploaded (and the bucket if
//! it created it).
//!
//! # API mode or data-directory mode
//!
//! API mode (`s3` / `minio`) runs against a live server, works with any S3-compatible
//! server and restores into any other (MinIO to Garage), per bucket, with versions; it is
//! not a point-in-time snapshot of the whole server. Data-directory mode (`minio-data`,
//! the core directory adapter) needs the server stopped, copies everything the server
//! keeps (IAM users, policies, server config, erasure-coding layout) exactly, and
//! restores only into the same server software and version.

mod adapter;
pub mod client;
pub mod config;
pub mod export;
pub mod fetch;
pub mod import;
pub mod layout;
pub mod settings;
pub mod staging;
pub mod tags;
pub mod tar_in;
pub mod upload;

use std::sync::Arc;

use backup_core::directory::{DirectoryExporter, DirectoryImporter};
use backup_core::secrets::SecretGenerator;
use backup_core::{Recipe, RecipeRegistry, Result};

pub use adapter::{artifact_bucket, S3Exporter, S3Importer, CONTENT_TYPE};
pub use config::{
    config_schema, ObjectTags, S3Config, Versions, ACCESS_KEY_FIELD, SECRET_KEY_FIELD,
};
pub use import::{ImportReport, VersionMapping};

/// The generic S3 recipe's slug.
pub const RECIPE: &str = "s3";
/// The MinIO preset's slug (the same adapter).
pub const MINIO: &str = "minio";
/// The data-directory recipe's slug.
pub const MINIO_DATA: &str = "minio-data";

fn api_recipe(slug: &str, description: &str) -> Result<Recipe> {
    Recipe::builder(slug, config_schema())
        .description(description)
        .secret(ACCESS_KEY_FIELD, SecretGenerator::Alphanumeric(20))
        .secret(SECRET_KEY_FIELD, SecretGenerator::Alphanumeric(40))
        .host_setting("stagingDir")
        .exporter(Arc::new(S3Exporter))
        .importer(Arc::new(S3Importer::new()))
        .data_export_description(
            "one s3/tar archive per bucket: objects in key order with their metadata, tags \
             and (optionally) every version, plus the bucket's settings",
        )
        .build()
}

/// The `s3` recipe.
///
/// # Errors
///
/// Only if the built-in schema failed to compile, which tests rule out.
pub fn recipe() -> Result<Recipe> {
    api_recipe(
        RECIPE,
        "Buckets of an S3-compatible server, over the S3 API",
    )
}

/// The `minio` recipe (the S3 adapter under MinIO's name).
///
/// # Errors
///
/// As [`recipe`].
pub fn minio_recipe() -> Result<Recipe> {
    api_recipe(MINIO, "Buckets of a MinIO server, over the S3 API")
}

/// The `minio-data` recipe: the server's data directory through the core directory
/// adapter (the server must be stopped; `create_backup` stops it through the host).
///
/// # Errors
///
/// As [`recipe`].
pub fn data_dir_recipe() -> Result<Recipe> {
    Recipe::builder(MINIO_DATA, backup_core::directory::config_schema())
        .description("The data directory of a MinIO (or other object store) server, stopped")
        .exporter(Arc::new(DirectoryExporter))
        .importer(Arc::new(DirectoryImporter))
        .host_setting("keepSetuid")
        .data_export_description(
            "a tar of the server's whole data directory, taken with the server stopped",
        )
        .build()
}

/// Registers `s3`, `minio` and `minio-data`.
///
/// # Errors
///
/// As [`recipe`].
pub fn register(registry: &mut RecipeRegistry) -> Result<()> {
    registry.register(recipe()?);
    registry.register(minio_recipe()?);
    registry.register(data_dir_recipe()?);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recipes_validate_configs_and_mark_credentials_secret() {
        let r = recipe().unwrap();
        let config = json!({"endpoint": "http://127.0.0.1:9000", "accessKeyId": "a",
            "secretAccessKey": "b", "buckets": ["photos"], "versions": "all"});
        r.validate_config(&config).unwrap();
        assert!(r
            .validate_config(
                &json!({"endpoint": "ftp://x", "accessKeyId": "a", "secretAccessKey": "b"})
            )
            .is_err());
        assert!(r
            .validate_config(&json!({"endpoint": "http://x", "accessKeyId": "a", "secretAccessKey": "b", "bogus": 1}))
            .is_err());
        let secrets: Vec<_> = r.secret_fields().iter().map(|s| s.name.clone()).collect();
        assert!(secrets.contains(&ACCESS_KEY_FIELD.to_string()));
        assert!(secrets.contains(&SECRET_KEY_FIELD.to_string()));
        data_dir_recipe()
            .unwrap()
            .validate_config(&json!({"path": "/data"}))
            .unwrap();
    }

    #[test]
    fn config_debug_hides_credentials() {
        let config: S3Config = serde_json::from_value(json!({"endpoint": "http://x",
            "accessKeyId": "AKIDSECRET", "secretAccessKey": "TOPSECRET"}))
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("TOPSECRET") && !shown.contains("AKIDSECRET"));
    }
}
