//! Abandoned S3 multipart uploads. A writer killed mid-upload leaves parts the server
//! keeps (and bills) but `object_store` cannot list, so [`Repository::check`] asks the
//! server itself (`ListMultipartUploads`, signed with `object_store`'s own SigV4 signer)
//! and [`Repository::prune`] aborts them.
//!
//! [`Repository::check`]: crate::Repository::check
//! [`Repository::prune`]: crate::Repository::prune

use backup_core::{Error, ErrorKind, Result};
use jiff::Timestamp;
use object_store::aws::AwsAuthorizer;
use object_store::client::{ClientOptions, HttpConnector, HttpRequestBody, ReqwestConnector};
use object_store::multipart::MultipartStore;
use object_store::path::Path;

use crate::error::store_error;
use crate::storage::{build_s3, S3Options};

/// Pages of 1,000 uploads read at most (a bound on a hostile or broken server).
const MAX_PAGES: usize = 100;
/// The largest listing page accepted, in bytes.
const MAX_PAGE_BYTES: usize = 4 << 20;

/// An incomplete multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IncompleteUpload {
    /// The object key it would create.
    pub key: String,
    /// The server's upload id.
    pub upload_id: String,
    /// When it was started.
    pub initiated: Timestamp,
}

/// The incomplete multipart uploads under `prefix` in the bucket; `None` when the server
/// does not implement `ListMultipartUploads` (HTTP 501).
pub(crate) async fn list(
    options: &S3Options,
    prefix: &str,
) -> Result<Option<Vec<IncompleteUpload>>> {
    let s3 = build_s3(options)?;
    let credential = s3
        .credentials()
        .get_credential()
        .await
        .map_err(|e| store_error("reading the S3 credentials", e))?;
    let region = options.region.as_deref().unwrap_or("us-east-1");
    let endpoint = options
        .endpoint
        .clone()
        .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
    let base = format!("{}/{}", endpoint.trim_end_matches('/'), options.bucket);
    let client = ReqwestConnector::default()
        .connect(&ClientOptions::new().with_allow_http(endpoint.starts_with("http://")))
        .map_err(|e| store_error("connecting to S3", e))?;
    let mut uploads = Vec::new();
    let mut markers: Option<(String, String)> = None;
    for _ in 0..MAX_PAGES {
        let mut url = format!("{base}?max-uploads=1000&prefix={}&uploads=", encode(prefix));
        if let Some((key, id)) = &markers {
            url.push_str(&format!(
                "&key-marker={}&upload-id-marker={}",
                encode(key),
                encode(id)
            ));
        }
        let mut request = http::Request::builder()
            .method("GET")
            .uri(&url)
            .body(HttpRequestBody::empty())
            .map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("S3 endpoint {endpoint}: {e}"),
                )
            })?;
        AwsAuthorizer::new(&credential, "s3", region)
            .try_authorize(&mut request, None)
            .map_err(|e| store_error("signing ListMultipartUploads", e))?;
        let response = client.execute(request).await.map_err(|e| {
            Error::new(ErrorKind::Io, format!("listing multipart uploads: {e}"))
                .with_hint("check the endpoint and that the server is reachable")
        })?;
        let status = response.status();
        let body = read_bounded(response.into_body().bytes_stream()).await?;
        let text = String::from_utf8_lossy(&body);
        if status.as_u16() == 501 {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(Error::new(
                if status.as_u16() == 403 {
                    ErrorKind::PermissionDenied
                } else {
                    ErrorKind::Io
                },
                format!(
                    "listing multipart uploads in bucket `{}`: HTTP {status} {}",
                    options.bucket,
                    element(&text, "Code").unwrap_or_default()
                ),
            )
            .with_hint("the credentials need s3:ListBucketMultipartUploads on the bucket"));
        }
        let page = parse_page(&text);
        uploads.extend(page.uploads);
        match page.next {
            Some(next) => markers = Some(next),
            None => return Ok(Some(uploads)),
        }
    }
    Err(Error::new(
        ErrorKind::ResourceExhausted,
        format!(
            "more than {} incomplete multipart uploads in bucket `{}`",
            MAX_PAGES * 1000,
            options.bucket
        ),
    )
    .with_hint("add a lifecycle rule AbortIncompleteMultipartUpload to the bucket"))
}

/// Aborts one upload (its parts are deleted). An upload already gone is not an error.
pub(crate) async fn abort(options: &S3Options, upload: &IncompleteUpload) -> Result<()> {
    let s3 = build_s3(options)?;
    match s3
        .abort_multipart(&Path::from(upload.key.as_str()), &upload.upload_id)
        .await
    {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(store_error(
            format!("aborting the multipart upload of {}", upload.key),
            e,
        )),
    }
}

/// Reads a listing page, refusing it as soon as it passes [`MAX_PAGE_BYTES`]: a hostile
/// or broken server cannot make the reader hold more than that.
async fn read_bounded(
    mut stream: futures::stream::BoxStream<
        'static,
        std::result::Result<bytes::Bytes, object_store::client::HttpError>,
    >,
) -> Result<Vec<u8>> {
    use futures::StreamExt;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("reading the multipart upload listing: {e}"),
            )
        })?;
        if body.len() + chunk.len() > MAX_PAGE_BYTES {
            return Err(Error::integrity(format!(
                "the multipart upload listing is larger than {MAX_PAGE_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// One page of a `ListMultipartUploadsResult`.
struct Page {
    uploads: Vec<IncompleteUpload>,
    /// The markers of the next page, when the listing is truncated.
    next: Option<(String, String)>,
}

fn parse_page(xml: &str) -> Page {
    let mut uploads = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<Upload>") {
        let after = &rest[start + "<Upload>".len()..];
        let Some(end) = after.find("</Upload>") else {
            break;
        };
        let block = &after[..end];
        if let (Some(key), Some(upload_id)) = (element(block, "Key"), element(block, "UploadId")) {
            let initiated = element(block, "Initiated")
                .and_then(|t| t.parse::<Timestamp>().ok())
                .unwrap_or(Timestamp::UNIX_EPOCH);
            uploads.push(IncompleteUpload {
                key,
                upload_id,
                initiated,
            });
        }
        rest = &after[end..];
    }
    let truncated = element(xml, "IsTruncated").is_some_and(|t| t == "true");
    let next = match (
        truncated,
        element(xml, "NextKeyMarker"),
        element(xml, "NextUploadIdMarker"),
    ) {
        (true, Some(key), Some(id)) if !key.is_empty() => Some((key, id)),
        _ => None,
    };
    Page { uploads, next }
}

/// The unescaped text of the first `<name>…</name>` in `xml`.
fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(unescape(&xml[start..end]))
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Percent-encodes a query value the way SigV4 canonicalises it.
fn encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_page_yields_its_uploads_and_next_markers() {
        let xml = "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>\
            <NextKeyMarker>b/x&amp;y</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>\
            <Upload><Key>b/one</Key><UploadId>u1</UploadId><Initiated>2026-11-30T01:02:03.000Z</Initiated></Upload>\
            <Upload><Key>b/x&amp;y</Key><UploadId>u2</UploadId><Initiated>bad</Initiated></Upload>\
            </ListMultipartUploadsResult>";
        let page = parse_page(xml);
        assert_eq!(page.uploads.len(), 2);
        assert_eq!(page.uploads[0].key, "b/one");
        assert_eq!(
            page.uploads[0].initiated,
            "2026-11-30T01:02:03Z".parse::<Timestamp>().expect("ts")
        );
        assert_eq!(page.uploads[1].key, "b/x&y");
        assert_eq!(page.uploads[1].initiated, Timestamp::UNIX_EPOCH);
        assert_eq!(page.next, Some(("b/x&y".to_owned(), "u2".to_owned())));
        let last = parse_page("<R><IsTruncated>false</IsTruncated></R>");
        assert!(last.uploads.is_empty() && last.next.is_none());
    }

    #[test]
    fn query_values_are_encoded_as_sigv4_expects() {
        assert_eq!(encode("a b/c+d~e"), "a%20b%2Fc%2Bd~e");
    }
}
