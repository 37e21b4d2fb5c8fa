//! The S3 client: static credentials, path-style addressing, checksums only when required,
//! and S3 errors turned into errors a user can act on.

use std::fmt::Display;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::Client;
use backup_core::{Error, ErrorKind};

use crate::config::S3Config;

/// Builds a client for `config`. Credentials come from the config's secret fields only.
pub fn client(config: &S3Config) -> Client {
    let credentials = Credentials::new(
        config.access_key_id.clone(),
        config.secret_access_key.clone(),
        None,
        None,
        "backup-minio",
    );
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(config.region.clone()))
        .endpoint_url(config.endpoint.trim_end_matches('/'))
        .force_path_style(config.path_style)
        .credentials_provider(credentials)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(120))
                .build(),
        )
        .build();
    Client::from_conf(conf)
}

/// S3 error codes that mean the server refused a checksum header or value.
const CHECKSUM_CODES: &[&str] = &[
    "XAmzContentSHA256Mismatch",
    "BadDigest",
    "InvalidDigest",
    "InvalidChecksum",
];

/// Turns an SDK error of the request `what` (e.g. "listing bucket `b`") on `endpoint`
/// into an error with a hint. Never includes credentials.
pub fn s3_error<E>(
    err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    what: impl Display,
    endpoint: &str,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            return Error::new(
                ErrorKind::Unavailable,
                format!(
                    "{what}: cannot reach the S3 endpoint {endpoint}: {}",
                    DisplayErrorContext(&err)
                ),
            )
            .with_hint(
                "check the endpoint URL (scheme, host, port) and that the server is running and \
                 reachable from this machine",
            );
        }
        SdkError::ServiceError(_) => {}
        _ => {
            return Error::new(
                ErrorKind::Unavailable,
                format!("{what} on {endpoint} failed: {}", DisplayErrorContext(&err)),
            )
        }
    }
    let status = err
        .raw_response()
        .map(|r| r.status().as_u16().to_string())
        .unwrap_or_default();
    let code = match err.code() {
        Some(code) => code.to_string(),
        None => format!("HTTP {status}"),
    };
    let message = match err.message() {
        Some(m) if !m.is_empty() => m.to_string(),
        // Without a message the SDK's context (which may include the raw answer) is the
        // only clue: keep its start.
        _ => DisplayErrorContext(&err)
            .to_string()
            .chars()
            .take(300)
            .collect(),
    };
    classify(&code, &message, what, endpoint)
}

/// The error for an S3 error `code` with the server's `message`.
pub(crate) fn classify(code: &str, message: &str, what: impl Display, endpoint: &str) -> Error {
    let lower = format!("{code} {message}").to_lowercase();
    match code {
        "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "InvalidSecurity"
        | "InvalidToken"
        | "AuthorizationHeaderMalformed" => Error::new(
            ErrorKind::PermissionDenied,
            format!("{what}: {endpoint} refused the credentials ({code})"),
        )
        .with_hint(
            "check accessKeyId and secretAccessKey, and that region matches the server's \
             (it is part of the signature)",
        ),
        "AccessDenied" | "AllAccessDisabled" => Error::new(
            ErrorKind::PermissionDenied,
            format!("{what}: access denied by {endpoint}"),
        )
        .with_hint(
            "the access key lacks a permission: export needs s3:ListBucket, \
             s3:ListBucketVersions, s3:GetObject, s3:GetObjectVersion, s3:GetObjectTagging and \
             s3:GetBucket*; import needs s3:CreateBucket, s3:PutObject, s3:PutObjectTagging, \
             s3:PutBucketVersioning, s3:AbortMultipartUpload",
        ),
        "NoSuchBucket" => Error::new(
            ErrorKind::NotFound,
            format!("{what}: the bucket does not exist on {endpoint}"),
        )
        .with_hint("check the bucket name in `buckets` (names are case-sensitive)"),
        "NoSuchKey" | "NoSuchVersion" => Error::new(
            ErrorKind::NotFound,
            format!("{what}: no such object on {endpoint}"),
        ),
        _ if CHECKSUM_CODES.contains(&code) || lower.contains("checksum") => Error::new(
            ErrorKind::Unsupported,
            format!("{what}: {endpoint} rejected a checksum header ({code}: {message})"),
        )
        .with_hint(
            "the server does not accept the checksum headers of newer S3 clients; this adapter \
             sends them only when an operation requires them, so the server may need an update",
        ),
        "SlowDown" | "ServiceUnavailable" | "InternalError" | "RequestTimeout" => Error::new(
            ErrorKind::Unavailable,
            format!("{what}: {endpoint} is overloaded or failing ({code}: {message})"),
        )
        .with_hint("retry later, or lower `concurrency`"),
        _ => Error::new(
            ErrorKind::Unavailable,
            format!("{what}: {endpoint} answered {code}: {message}"),
        ),
    }
}

/// The raw answer of a request that succeeded (2xx) but whose body the SDK could not
/// parse. moto 5 names the XML root of some answers `<Operation>Response` where S3 (and
/// the SDK) expect e.g. `VersioningConfiguration`; callers read the fields they need
/// from the raw answer instead.
pub fn unparsed_success<E>(
    err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<&aws_sdk_s3::config::http::HttpResponse> {
    match err {
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => err
            .raw_response()
            .filter(|r| (200..300).contains(&r.status().as_u16())),
        _ => None,
    }
}

/// The text of an XML element `<name>…</name>` in a raw answer's body.
pub fn raw_xml_field(
    response: &aws_sdk_s3::config::http::HttpResponse,
    name: &str,
) -> Option<String> {
    let body = std::str::from_utf8(response.body().bytes()?).ok()?;
    let start = body.find(&format!("<{name}>"))? + name.len() + 2;
    let end = body[start..].find(&format!("</{name}>"))? + start;
    Some(body[start..end].to_string())
}

/// Whether the server said it does not implement the request (moto, s3s-fs and some
/// S3-compatible servers lack bucket sub-resources).
pub fn not_implemented<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    matches!(
        err.code(),
        Some(
            "NotImplemented"
                | "NoSuchLifecycleConfiguration"
                | "NoSuchBucketPolicy"
                | "NoSuchCORSConfiguration"
                | "NoSuchTagSet"
                | "NoSuchTagSetError"
                | "MethodNotAllowed"
                | "XNotImplemented"
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_errors_hint_at_the_keys_and_region() {
        let e = classify("SignatureDoesNotMatch", "x", "listing buckets", "http://h");
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(e.hint().unwrap_or_default().contains("secretAccessKey"));
    }

    #[test]
    fn checksum_rejections_are_named() {
        let e = classify(
            "InvalidArgument",
            "x-amz-checksum-crc32 not supported",
            "put",
            "http://h",
        );
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("checksum"));
    }

    #[test]
    fn missing_buckets_and_denials_have_hints() {
        assert_eq!(
            classify("NoSuchBucket", "", "list", "e").kind(),
            ErrorKind::NotFound
        );
        let denied = classify("AccessDenied", "", "list", "e");
        assert_eq!(denied.kind(), ErrorKind::PermissionDenied);
        assert!(denied.hint().unwrap_or_default().contains("s3:GetObject"));
    }
}
