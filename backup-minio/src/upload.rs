//! Uploads of one object: a single PUT up to the part size (from memory) or up to the
//! single-PUT cutoff (from a staged file, see [`crate::staging`]), multipart above it with
//! bounded parts in flight, every object checked after upload, a failed multipart upload
//! aborted.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, StorageClass};
use aws_sdk_s3::Client;
use backup_core::{Error, Result};
use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};
use tokio::io::AsyncRead;
use tokio::task::JoinSet;

use crate::client::{s3_error, unparsed_success};
use crate::layout::ObjectRecord;
use crate::tar_in::TarIn;

/// S3's limit on parts per upload.
pub const MAX_PARTS: u64 = 10_000;

/// Where uploads go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The client.
    pub client: Client,
    /// Endpoint, for error messages.
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
}

/// The part size for an object of `size` bytes: at least `min`, a whole number of MiB,
/// and large enough that the object fits in [`MAX_PARTS`] parts.
pub fn part_size_for(size: u64, min: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    needed.max(min)
}

/// The ETag S3 gives a multipart object: md5 of the parts' md5s, `-` part count.
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut md5 = Md5::new();
    for digest in part_md5s {
        md5.update(digest);
    }
    format!("\"{}-{}\"", hex::encode(md5.finalize()), part_md5s.len())
}

fn md5_of(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// Percent-encodes a tag set as the `x-amz-tagging` header wants it.
pub fn encode_tags(tags: &BTreeMap<String, String>) -> Option<String> {
    fn enc(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
    (!tags.is_empty()).then(|| {
        tags.iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn metadata(record: &ObjectRecord) -> Option<HashMap<String, String>> {
    (!record.metadata.is_empty()).then(|| {
        record
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

fn storage_class(record: &ObjectRecord) -> Option<StorageClass> {
    record
        .storage_class
        .as_deref()
        .filter(|c| *c != "STANDARD")
        .map(StorageClass::from)
}

fn expires(record: &ObjectRecord) -> Option<DateTime> {
    record
        .expires
        .as_deref()
        .and_then(|e| DateTime::from_str(e, DateTimeFormat::HttpDate).ok())
}

/// Uploads an object held in memory (at most one part size) with one PUT and checks it.
/// Returns the new version id.
///
/// # Errors
///
/// When the server refuses or the stored object differs.
pub async fn put_small(
    target: &Target,
    record: &ObjectRecord,
    data: Bytes,
) -> Result<Option<String>> {
    let md5 = md5_of(&data);
    let size = data.len() as u64;
    put_whole(target, record, ByteStream::from(data), size, md5).await
}

/// Uploads `body` (`size` bytes whose MD5 is `md5`) as `record`'s object with one PUT,
/// with all its metadata and tags, and checks the stored size and ETag. Returns the new
/// version id. `body` must be retryable (in memory, or read from a file) for the SDK to
/// retry the PUT.
///
/// # Errors
///
/// When the server refuses or the stored object differs.
pub async fn put_whole(
    target: &Target,
    record: &ObjectRecord,
    body: ByteStream,
    size: u64,
    md5: [u8; 16],
) -> Result<Option<String>> {
    let etag = format!("\"{}\"", hex::encode(md5));
    #[allow(deprecated)]
    let out = target
        .client
        .put_object()
        .bucket(&target.bucket)
        .key(&record.key)
        .body(body)
        .content_length(size as i64)
        .set_content_type(record.content_type.clone())
        .set_cache_control(record.cache_control.clone())
        .set_content_encoding(record.content_encoding.clone())
        .set_content_disposition(record.content_disposition.clone())
        .set_content_language(record.content_language.clone())
        .set_expires(expires(record))
        .set_metadata(metadata(record))
        .set_tagging(encode_tags(&record.tags))
        .set_storage_class(storage_class(record))
        .send()
        .await
        .map_err(|e| s3_error(e, uploading(target, record), &target.endpoint))?;
    let version = out.version_id().map(str::to_string);
    verify(target, record, size, &etag, version.as_deref()).await?;
    Ok(version)
}

fn uploading(target: &Target, record: &ObjectRecord) -> String {
    format!("uploading `{}` to bucket `{}`", record.key, target.bucket)
}

/// Checks the stored object's size and ETag against what was sent.
async fn verify(
    target: &Target,
    record: &ObjectRecord,
    size: u64,
    etag: &str,
    version: Option<&str>,
) -> Result<()> {
    let head = target
        .client
        .head_object()
        .bucket(&target.bucket)
        .key(&record.key)
        // `null` is the version of an object in an unversioned bucket; moto refuses it.
        .set_version_id(version.filter(|v| *v != "null").map(str::to_string))
        .send()
        .await
        .map_err(|e| {
            s3_error(
                e,
                format!("checking `{}` after upload", record.key),
                &target.endpoint,
            )
        })?;
    let stored_size = u64::try_from(head.content_length().unwrap_or(-1)).ok();
    let stored_etag = head.e_tag().unwrap_or("");
    if stored_size != Some(size) || stored_etag.trim_matches('"') != etag.trim_matches('"') {
        return Err(Error::integrity(format!(
            "`{}` in bucket `{}` was stored as {stored_size:?} bytes with ETag {stored_etag}, \
             but {size} bytes with ETag {etag} were sent",
            record.key, target.bucket
        )));
    }
    Ok(())
}

/// Streams the current tar entry (`record.size` bytes) as a multipart upload with at
/// most `concurrency` parts in flight; aborts the upload when a part fails. Returns the
/// upload with every part stored, for [`Finish::finish`] to complete and check: that
/// holds no data, so it may run while the next object's parts are uploaded.
///
/// # Errors
///
/// When reading the archive, starting the upload or a part fails.
pub async fn put_multipart<R: AsyncRead + Unpin>(
    target: &Target,
    record: &ObjectRecord,
    tar: &mut TarIn<R>,
    min_part: u64,
    concurrency: usize,
) -> Result<Finish> {
    let created = target
        .client
        .create_multipart_upload()
        .bucket(&target.bucket)
        .key(&record.key)
        .set_content_type(record.content_type.clone())
        .set_cache_control(record.cache_control.clone())
        .set_content_encoding(record.content_encoding.clone())
        .set_content_disposition(record.content_disposition.clone())
        .set_content_language(record.content_language.clone())
        .set_metadata(metadata(record))
        .set_tagging(encode_tags(&record.tags))
        .set_storage_class(storage_class(record))
        .send()
        .await
        .map_err(|e| s3_error(e, uploading(target, record), &target.endpoint))?;
    let Some(upload_id) = created.upload_id().map(str::to_string) else {
        return Err(Error::integrity(format!(
            "{}: the server returned no upload id",
            uploading(target, record)
        )));
    };
    let finish = Finish {
        target: target.clone(),
        record: record.clone(),
        upload_id,
        parts: Vec::new(),
    };
    match upload_parts(&finish, tar, min_part, concurrency).await {
        Ok(parts) => Ok(Finish { parts, ..finish }),
        Err(e) => {
            finish.abort().await;
            Err(e)
        }
    }
}

/// A multipart upload whose parts are all stored: number, ETag and MD5 of each.
#[derive(Debug)]
pub struct Finish {
    target: Target,
    record: ObjectRecord,
    upload_id: String,
    parts: Vec<(i32, String, [u8; 16])>,
}

impl Finish {
    /// Completes the upload and checks the stored object (size, and the ETag against the
    /// parts' MD5s); aborts the upload on failure. Returns the new version id.
    ///
    /// # Errors
    ///
    /// When the completion or the check fails.
    pub async fn finish(self) -> Result<Option<String>> {
        match self.complete().await {
            Ok(version) => Ok(version),
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    async fn abort(&self) {
        let _ = self
            .target
            .client
            .abort_multipart_upload()
            .bucket(&self.target.bucket)
            .key(&self.record.key)
            .upload_id(&self.upload_id)
            .send()
            .await;
    }

    async fn complete(&self) -> Result<Option<String>> {
        let (target, record) = (&self.target, &self.record);
        let parts = self
            .parts
            .iter()
            .map(|(n, etag, _)| CompletedPart::builder().part_number(*n).e_tag(etag).build())
            .collect::<Vec<_>>();
        let md5s: Vec<[u8; 16]> = self.parts.iter().map(|(_, _, m)| *m).collect();
        let completed = target
            .client
            .complete_multipart_upload()
            .bucket(&target.bucket)
            .key(&record.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        let version = match completed {
            Ok(out) => out.version_id().map(str::to_string),
            // The check below tells whether the object really is there.
            Err(e) if unparsed_success(&e).is_some() => unparsed_success(&e)
                .and_then(|r| r.headers().get("x-amz-version-id"))
                .map(str::to_string),
            Err(e) => return Err(s3_error(e, uploading(target, record), &target.endpoint)),
        };
        verify(
            target,
            record,
            record.size,
            &multipart_etag(&md5s),
            version.as_deref(),
        )
        .await?;
        Ok(version)
    }
}

type Part = (i32, String, [u8; 16]);

/// Uploads one part; its MD5 is computed on a blocking thread while it is sent.
async fn upload_part(
    target: Target,
    key: String,
    id: String,
    part: i32,
    data: Bytes,
) -> Result<Part> {
    let for_md5 = data.clone();
    let md5 = tokio::task::spawn_blocking(move || md5_of(&for_md5));
    let sent = target
        .client
        .upload_part()
        .bucket(&target.bucket)
        .key(&key)
        .upload_id(id)
        .part_number(part)
        .content_length(data.len() as i64)
        .body(ByteStream::from(data))
        .send();
    let (md5, out) = tokio::join!(md5, sent);
    let out = out.map_err(|e| {
        s3_error(
            e,
            format!("uploading part {part} of `{key}`"),
            &target.endpoint,
        )
    })?;
    let md5 =
        md5.map_err(|e| Error::new(backup_core::ErrorKind::Io, format!("MD5 task failed: {e}")))?;
    Ok((part, out.e_tag().unwrap_or_default().to_string(), md5))
}

async fn upload_parts<R: AsyncRead + Unpin>(
    upload: &Finish,
    tar: &mut TarIn<R>,
    min_part: u64,
    concurrency: usize,
) -> Result<Vec<Part>> {
    let record = &upload.record;
    let part_size = part_size_for(record.size, min_part);
    let mut in_flight: JoinSet<Result<Part>> = JoinSet::new();
    let mut done: Vec<Part> = Vec::new();
    let mut left = record.size;
    let mut number = 0i32;
    let outcome: Result<()> = async {
        while left > 0 {
            while in_flight.len() >= concurrency {
                if let Some(part) = in_flight.join_next().await {
                    done.push(joined(part)?);
                }
            }
            let n = left.min(part_size);
            let mut buf = BytesMut::with_capacity(n as usize);
            tar.read_into(&mut buf, n).await?;
            left -= n;
            number += 1;
            in_flight.spawn(upload_part(
                upload.target.clone(),
                record.key.clone(),
                upload.upload_id.clone(),
                number,
                buf.freeze(),
            ));
        }
        Ok(())
    }
    .await;
    // Every part task ends before the upload is completed or aborted.
    while let Some(part) = in_flight.join_next().await {
        match joined(part) {
            Ok(part) => done.push(part),
            Err(e) => {
                if outcome.is_ok() {
                    return Err(e);
                }
            }
        }
    }
    outcome?;
    done.sort_by_key(|(n, _, _)| *n);
    Ok(done)
}

fn joined<T>(joined: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    joined.map_err(|e| {
        Error::new(
            backup_core::ErrorKind::Io,
            format!("upload task failed: {e}"),
        )
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_object_fits_in_ten_thousand_parts() {
        let min = 8 * 1024 * 1024;
        assert_eq!(part_size_for(100, min), min);
        for size in [min * 10_000, min * 10_000 + 1, 5 * 1024u64.pow(4)] {
            let part = part_size_for(size, min);
            assert!(size.div_ceil(part) <= MAX_PARTS, "{size}");
            assert_eq!(part % (1024 * 1024), 0);
        }
    }

    #[test]
    fn tags_are_percent_encoded() {
        let tags = BTreeMap::from([("a b".to_string(), "x=y&z".to_string())]);
        assert_eq!(encode_tags(&tags).as_deref(), Some("a%20b=x%3Dy%26z"));
    }
}
