//! Bucket settings a restore needs: versioning, and where the server supports them the
//! bucket policy, CORS rules and tags. Servers that do not implement one (moto and s3s-fs
//! lack some) leave it out, and the settings say which were unavailable.

use std::collections::BTreeMap;

use aws_sdk_s3::types::{
    BucketVersioningStatus, CorsConfiguration, CorsRule, Tag, Tagging, VersioningConfiguration,
};
use aws_sdk_s3::Client;
use backup_core::Result;
use serde::{Deserialize, Serialize};

use crate::client::{not_implemented, raw_xml_field, s3_error, unparsed_success};

/// One CORS rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cors {
    /// Rule id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Allowed headers.
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// Allowed methods.
    #[serde(default)]
    pub allowed_methods: Vec<String>,
    /// Allowed origins.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Exposed headers.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Max age in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<i32>,
}

/// The bucket's settings, recorded in the artifact's metadata and archive head.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketSettings {
    /// `Enabled`, `Suspended`, or `None` when versioning was never turned on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<String>,
    /// The bucket policy document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// CORS rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cors: Vec<Cors>,
    /// Bucket tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Whether the bucket has lifecycle rules (recorded, not restored: set them again).
    #[serde(default)]
    pub has_lifecycle_rules: bool,
    /// Settings the server did not implement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<String>,
}

impl BucketSettings {
    /// Whether versioning is on.
    pub fn versioned(&self) -> bool {
        self.versioning.as_deref() == Some("Enabled")
    }
}

/// Reads the settings of `bucket`. Versioning must be readable; the rest is optional.
///
/// # Errors
///
/// When the bucket cannot be read (missing, denied, unreachable).
pub async fn read(client: &Client, bucket: &str, endpoint: &str) -> Result<BucketSettings> {
    let what = format!("reading the settings of bucket `{bucket}`");
    let mut settings = BucketSettings::default();
    match client.get_bucket_versioning().bucket(bucket).send().await {
        Ok(out) => settings.versioning = out.status().map(|s| s.as_str().to_string()),
        Err(e) if not_implemented(&e) => settings.unavailable.push("versioning".into()),
        // A 200 answer the SDK cannot parse (moto's empty `GetBucketVersioningResponse`
        // for a bucket that was never versioned): no versioning.
        Err(e) if unparsed_success(&e).is_some() => {
            settings.versioning = unparsed_success(&e).and_then(|r| raw_xml_field(r, "Status"))
        }
        Err(e) => return Err(s3_error(e, what, endpoint)),
    }
    match client.get_bucket_policy().bucket(bucket).send().await {
        Ok(out) => settings.policy = out.policy().map(str::to_string),
        Err(e) => optional(&mut settings, "policy", e, &what, endpoint)?,
    }
    match client.get_bucket_cors().bucket(bucket).send().await {
        Ok(out) => settings.cors = out.cors_rules().iter().map(cors_from).collect(),
        Err(e) => optional(&mut settings, "cors", e, &what, endpoint)?,
    }
    match client.get_bucket_tagging().bucket(bucket).send().await {
        Ok(out) => {
            settings.tags = out
                .tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()
        }
        Err(e) => optional(&mut settings, "tags", e, &what, endpoint)?,
    }
    match client
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => settings.has_lifecycle_rules = !out.rules().is_empty(),
        Err(e) => optional(&mut settings, "lifecycle", e, &what, endpoint)?,
    }
    Ok(settings)
}

/// A missing or unimplemented optional setting is recorded; other errors fail.
fn optional<E>(
    settings: &mut BucketSettings,
    name: &str,
    err: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    what: &str,
    endpoint: &str,
) -> Result<()>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_sdk_s3::error::ProvideErrorMetadata;
    match err.code() {
        Some(c) if c.starts_with("NoSuch") => Ok(()),
        _ if matches!(err, aws_sdk_s3::error::SdkError::ServiceError(_)) => {
            // Servers differ in how they refuse sub-resources they lack; a real
            // failure (credentials, network) already showed on the versioning request.
            settings.unavailable.push(name.to_string());
            Ok(())
        }
        _ => Err(s3_error(err, what, endpoint)),
    }
}

fn cors_from(rule: &CorsRule) -> Cors {
    Cors {
        id: rule.id().map(str::to_string),
        allowed_headers: rule.allowed_headers().to_vec(),
        allowed_methods: rule.allowed_methods().to_vec(),
        allowed_origins: rule.allowed_origins().to_vec(),
        expose_headers: rule.expose_headers().to_vec(),
        max_age_seconds: rule.max_age_seconds(),
    }
}

/// Applies `settings` to `bucket`: versioning must succeed; policy, CORS and tags are
/// applied where the server implements them.
///
/// # Errors
///
/// When versioning cannot be set, or a setting the server implements is refused.
pub async fn apply(
    client: &Client,
    bucket: &str,
    settings: &BucketSettings,
    endpoint: &str,
) -> Result<()> {
    let what = format!("setting up bucket `{bucket}`");
    if settings.versioned() {
        let conf = VersioningConfiguration::builder()
            .status(BucketVersioningStatus::Enabled)
            .build();
        client
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(conf)
            .send()
            .await
            .map_err(|e| s3_error(e, &what, endpoint))?;
    }
    if let Some(policy) = &settings.policy {
        let result = client
            .put_bucket_policy()
            .bucket(bucket)
            .policy(policy)
            .send()
            .await;
        tolerate(result.map(drop), &what, endpoint)?;
    }
    if !settings.cors.is_empty() {
        let mut conf = CorsConfiguration::builder();
        for c in &settings.cors {
            let rule = CorsRule::builder()
                .set_id(c.id.clone())
                .set_allowed_headers(Some(c.allowed_headers.clone()))
                .set_allowed_methods(Some(c.allowed_methods.clone()))
                .set_allowed_origins(Some(c.allowed_origins.clone()))
                .set_expose_headers(Some(c.expose_headers.clone()))
                .set_max_age_seconds(c.max_age_seconds)
                .build()
                .map_err(|e| backup_core::Error::integrity(format!("CORS rule: {e}")))?;
            conf = conf.cors_rules(rule);
        }
        let conf = conf
            .build()
            .map_err(|e| backup_core::Error::integrity(format!("CORS rules: {e}")))?;
        let result = client
            .put_bucket_cors()
            .bucket(bucket)
            .cors_configuration(conf)
            .send()
            .await;
        tolerate(result.map(drop), &what, endpoint)?;
    }
    if !settings.tags.is_empty() {
        let tagging = tagging(&settings.tags)?;
        let result = client
            .put_bucket_tagging()
            .bucket(bucket)
            .tagging(tagging)
            .send()
            .await;
        tolerate(result.map(drop), &what, endpoint)?;
    }
    Ok(())
}

fn tolerate<E>(
    result: std::result::Result<
        (),
        aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    >,
    what: &str,
    endpoint: &str,
) -> Result<()>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(()) => Ok(()),
        Err(e) if not_implemented(&e) => Ok(()),
        Err(e) => Err(s3_error(e, what, endpoint)),
    }
}

/// A tag set.
///
/// # Errors
///
/// When a tag is malformed (the SDK's builder refuses it).
pub fn tagging(tags: &BTreeMap<String, String>) -> Result<Tagging> {
    let mut set = Vec::with_capacity(tags.len());
    for (k, v) in tags {
        set.push(
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| backup_core::Error::integrity(format!("tag `{k}`: {e}")))?,
        );
    }
    Tagging::builder()
        .set_tag_set(Some(set))
        .build()
        .map_err(|e| backup_core::Error::integrity(format!("tags: {e}")))
}
