//! Import of one `s3/tar` archive into a bucket.

use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use aws_sdk_s3::Client;
use backup_core::{ByteStream, Error, ErrorKind, Result};
use bytes::BytesMut;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;
use tokio::task::JoinSet;

use crate::client::s3_error;
use crate::layout::{
    meta_entry, ArchiveEnd, ArchiveHead, ObjectRecord, END_ENTRY, HEAD_ENTRY, LAYOUT_VERSION,
    MAX_JSON_ENTRY,
};
use crate::settings;
use crate::staging::Staging;
use crate::tar_in::TarIn;
use crate::upload::{put_multipart, put_small, Target};

/// An old version id and the one its replay got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionMapping {
    /// Position of the record in the archive (replay order).
    pub seq: u64,
    /// The key.
    pub key: String,
    /// Version id in the source bucket.
    pub old: String,
    /// Version id in the target bucket (`None` when the target is not versioned).
    pub new: Option<String>,
    /// A delete marker.
    pub delete_marker: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// The source bucket named in the archive.
    pub source_bucket: String,
    /// The bucket written.
    pub bucket: String,
    /// Whether the bucket was created.
    pub created_bucket: bool,
    /// Objects (versions) uploaded.
    pub objects: u64,
    /// Delete markers replayed.
    pub delete_markers: u64,
    /// Bytes uploaded.
    pub bytes: u64,
    /// Old to new version ids, in replay order (all-versions archives only).
    pub versions: Vec<VersionMapping>,
}

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportJob {
    /// The client.
    pub client: Client,
    /// Endpoint, for errors.
    pub endpoint: String,
    /// Region, for bucket creation.
    pub region: String,
    /// Target bucket.
    pub bucket: String,
    /// Replace existing keys.
    pub force: bool,
    /// Objects or parts in flight.
    pub concurrency: usize,
    /// Largest object PUT whole from memory, and smallest part size.
    pub part_size: u64,
    /// Objects above `part_size` and up to this are staged to a file in `staging_dir`
    /// and PUT whole (see [`crate::staging`]); larger ones go multipart. At or below
    /// `part_size` (0, say), nothing is staged.
    pub single_put_cutoff: u64,
    /// Where the import's staging directory is created (`None`: the system temp dir).
    pub staging_dir: Option<std::path::PathBuf>,
}

impl ImportJob {
    /// The import's staging directory, when objects may be staged (the cutoff is above
    /// the part size).
    ///
    /// # Errors
    ///
    /// When it cannot be created (hint naming `stagingDir`).
    pub fn staging(&self) -> Result<Option<Staging>> {
        if self.single_put_cutoff <= self.part_size {
            return Ok(None);
        }
        Staging::create(self.staging_dir.as_deref()).map(Some)
    }
}

/// Whether `bucket` exists; errors other than "not found" fail.
pub async fn bucket_exists(client: &Client, bucket: &str, endpoint: &str) -> Result<bool> {
    match client.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
        Err(e) => Err(s3_error(
            e,
            format!("looking up bucket `{bucket}`"),
            endpoint,
        )),
    }
}

/// Whether `bucket` holds any object or version.
pub async fn bucket_is_empty(client: &Client, bucket: &str, endpoint: &str) -> Result<bool> {
    let out = client
        .list_objects_v2()
        .bucket(bucket)
        .max_keys(1)
        .send()
        .await
        .map_err(|e| s3_error(e, format!("listing bucket `{bucket}`"), endpoint))?;
    Ok(out.contents().is_empty())
}

/// Refuses a bucket holding objects unless `force`.
pub async fn ensure_usable(
    client: &Client,
    bucket: &str,
    endpoint: &str,
    force: bool,
) -> Result<()> {
    if force || !bucket_exists(client, bucket, endpoint).await? {
        return Ok(());
    }
    if bucket_is_empty(client, bucket, endpoint).await? {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::AlreadyExists,
            format!("bucket `{bucket}` on {endpoint} already holds objects"),
        )
        .with_hint("restore with force to replace keys that exist (other keys stay), or restore into an empty bucket (bucketMap)"))
    }
}

/// Imports the archive in `data` into `job.bucket`.
///
/// Without `force`, a failed import removes what it uploaded (and the bucket, if it
/// created it); with `force`, keys replaced before the failure stay replaced. Objects
/// above the part size and up to the single-PUT cutoff are staged to files in a
/// directory made for this import (at most `concurrency` of them at once, so at most
/// `concurrency × cutoff` bytes of disk), removed when the import ends, either way.
///
/// # Errors
///
/// A malformed or truncated archive, a refused target, or a failed upload or check.
pub async fn import_archive(job: &ImportJob, data: ByteStream) -> Result<ImportReport> {
    let reader = tokio_util::io::StreamReader::new(data.map_err(std::io::Error::other));
    let reader = tokio::io::BufReader::with_capacity(256 * 1024, reader);
    let mut tar = TarIn::new(reader);
    let head: ArchiveHead = json_entry(&mut tar, HEAD_ENTRY).await?;
    if head.layout_version != LAYOUT_VERSION {
        return Err(Error::new(
            ErrorKind::UnsupportedVersion,
            format!(
                "s3/tar layout version {} is not supported",
                head.layout_version
            ),
        )
        .with_hint(format!("this version reads layout {LAYOUT_VERSION}")));
    }
    // Before the bucket is touched: a staging directory that cannot be made fails first.
    let staging = job.staging()?;
    ensure_usable(&job.client, &job.bucket, &job.endpoint, job.force).await?;
    let target = Target {
        client: job.client.clone(),
        endpoint: job.endpoint.clone(),
        bucket: job.bucket.clone(),
    };
    let mut report = ImportReport {
        source_bucket: head.bucket.clone(),
        bucket: job.bucket.clone(),
        ..ImportReport::default()
    };
    if !bucket_exists(&job.client, &job.bucket, &job.endpoint).await? {
        create_bucket(job).await?;
        report.created_bucket = true;
    }
    let mut created = Vec::new();
    let result = async {
        settings::apply(&job.client, &job.bucket, &head.settings, &job.endpoint).await?;
        let staging = staging.as_ref();
        replay(job, &target, staging, &mut tar, &mut report, &mut created).await
    }
    .await;
    // Every upload has ended: the staged files go with the directory.
    drop(staging);
    if let Err(e) = result {
        if !job.force {
            roll_back(job, &created, report.created_bucket).await;
        }
        return Err(e.context(format!(
            "importing bucket `{}` into `{}`",
            head.bucket, job.bucket
        )));
    }
    Ok(report)
}

async fn create_bucket(job: &ImportJob) -> Result<()> {
    let mut request = job.client.create_bucket().bucket(&job.bucket);
    if job.region != "us-east-1" {
        request = request.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(job.region.as_str()))
                .build(),
        );
    }
    request.send().await.map_err(|e| {
        s3_error(
            e,
            format!("creating bucket `{}`", job.bucket),
            &job.endpoint,
        )
    })?;
    Ok(())
}

async fn json_entry<T: serde::de::DeserializeOwned, R: AsyncRead + Unpin>(
    tar: &mut TarIn<R>,
    expected: &str,
) -> Result<T> {
    let entry = tar
        .next()
        .await?
        .ok_or_else(|| Error::integrity(format!("the archive ends before `{expected}`")))?;
    if entry.name != expected {
        return Err(Error::integrity(format!(
            "expected `{expected}` in the archive, found `{}`",
            entry.name
        )));
    }
    let body = tar.read_small(MAX_JSON_ENTRY).await?;
    serde_json::from_slice(&body)
        .map_err(|e| Error::integrity(format!("`{expected}` is not valid: {e}")))
}

/// One object (or marker) this import created: what a rollback deletes.
type Created = (String, Option<String>);
type Uploaded = (ObjectRecord, Option<String>);

async fn replay<R: AsyncRead + Unpin>(
    job: &ImportJob,
    target: &Target,
    staging: Option<&Staging>,
    tar: &mut TarIn<R>,
    report: &mut ImportReport,
    created: &mut Vec<Created>,
) -> Result<()> {
    let mut tasks = Tasks {
        uploads: JoinSet::new(),
        finishing: JoinSet::new(),
    };
    let outcome = replay_entries(job, target, staging, tar, report, created, &mut tasks).await;
    // Every upload ends (and aborts its own multipart upload) before we return.
    let mut first_error = outcome.err();
    for set in [&mut tasks.uploads, &mut tasks.finishing] {
        while let Some(done) = set.join_next().await {
            match flatten(done) {
                Ok(uploaded) => record_upload(report, created, uploaded),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    // Uploads of different keys finish in any order; the report lists replay order.
    report.versions.sort_by_key(|v| v.seq);
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn flatten<T>(done: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    done.map_err(|e| Error::new(ErrorKind::Io, format!("upload task failed: {e}")))?
}

fn record_upload(report: &mut ImportReport, created: &mut Vec<Created>, (record, new): Uploaded) {
    report.objects += 1;
    report.bytes += record.size;
    if let Some(old) = &record.version_id {
        report.versions.push(VersionMapping {
            seq: record.seq,
            key: record.key.clone(),
            old: old.clone(),
            new: new.clone(),
            delete_marker: record.delete_marker,
        });
    }
    created.push((record.key, new));
}

async fn drain(
    in_flight: &mut JoinSet<Result<Uploaded>>,
    report: &mut ImportReport,
    created: &mut Vec<Created>,
    keep: usize,
) -> Result<()> {
    while in_flight.len() > keep {
        if let Some(done) = in_flight.join_next().await {
            record_upload(report, created, flatten(done)?);
        }
    }
    Ok(())
}

/// Uploads running while the archive is read on.
struct Tasks {
    /// Whole-object PUTs: each holds its object's bytes, in memory or in a staged file.
    uploads: JoinSet<Result<Uploaded>>,
    /// Completions and checks of multipart uploads whose parts are stored: no data held,
    /// so they overlap the next object's parts.
    finishing: JoinSet<Result<Uploaded>>,
}

async fn replay_entries<R: AsyncRead + Unpin>(
    job: &ImportJob,
    target: &Target,
    staging: Option<&Staging>,
    tar: &mut TarIn<R>,
    report: &mut ImportReport,
    created: &mut Vec<Created>,
    tasks: &mut Tasks,
) -> Result<()> {
    let in_flight = &mut tasks.uploads;
    let mut seq = 0u64;
    let mut last_key: Option<String> = None;
    loop {
        let expected = meta_entry(seq + 1);
        let Some(entry) = tar.next().await? else {
            return Err(Error::integrity(format!(
                "the archive ends without `{END_ENTRY}`: it is truncated"
            )));
        };
        if entry.name == END_ENTRY {
            let body = tar.read_small(MAX_JSON_ENTRY).await?;
            let end: ArchiveEnd = serde_json::from_slice(&body)
                .map_err(|e| Error::integrity(format!("`{END_ENTRY}` is not valid: {e}")))?;
            if end.records != seq {
                return Err(Error::integrity(format!(
                    "the archive says it holds {} records but {seq} were read",
                    end.records
                )));
            }
            if tar.next().await?.is_some() {
                return Err(Error::integrity(format!("entries after `{END_ENTRY}`")));
            }
            tar.finish().await?;
            return Ok(());
        }
        if entry.name != expected {
            return Err(Error::integrity(format!(
                "expected `{expected}` in the archive, found `{}`",
                entry.name
            )));
        }
        let body = tar.read_small(MAX_JSON_ENTRY).await?;
        let record: ObjectRecord = serde_json::from_slice(&body)
            .map_err(|e| Error::integrity(format!("`{expected}` is not valid: {e}")))?;
        seq += 1;
        // Versions of one key are replayed in order: wait for the previous one.
        let same_key = last_key.as_deref() == Some(record.key.as_str());
        last_key = Some(record.key.clone());
        if same_key {
            drain(in_flight, report, created, 0).await?;
            drain(&mut tasks.finishing, report, created, 0).await?;
        }
        if record.delete_marker {
            replay_delete_marker(target, record, report, created).await?;
            continue;
        }
        let data = tar
            .next()
            .await?
            .ok_or_else(|| Error::integrity(format!("the data of `{}` is missing", record.key)))?;
        if Some(&data.name) != record.path.as_ref() || data.size != record.size {
            return Err(Error::integrity(format!(
                "the data entry `{}` ({} bytes) does not match the record of `{}` ({} bytes)",
                data.name, data.size, record.key, record.size
            )));
        }
        if record.size <= job.part_size {
            drain(in_flight, report, created, job.concurrency - 1).await?;
            let mut buf = BytesMut::with_capacity(record.size as usize);
            tar.read_into(&mut buf, record.size).await?;
            let target = target.clone();
            in_flight.spawn(async move {
                let version = put_small(&target, &record, buf.freeze()).await?;
                Ok((record, version))
            });
        } else if let Some(staging) = staging.filter(|_| record.size <= job.single_put_cutoff) {
            // At most `concurrency` staged files at once, this one included.
            drain(in_flight, report, created, job.concurrency - 1).await?;
            let staged = staging.stage(tar, &record).await?;
            let target = target.clone();
            in_flight.spawn(async move {
                let version = staged.put(&target, &record).await?;
                Ok((record, version))
            });
        } else {
            // Parts hold data: the whole-object PUTs end first, so at most `concurrency`
            // parts' or objects' bytes are held at once.
            drain(in_flight, report, created, 0).await?;
            drain(&mut tasks.finishing, report, created, job.concurrency - 1).await?;
            let upload =
                put_multipart(target, &record, tar, job.part_size, job.concurrency).await?;
            tasks.finishing.spawn(async move {
                let version = upload.finish().await?;
                Ok((record, version))
            });
        }
    }
}

async fn replay_delete_marker(
    target: &Target,
    record: ObjectRecord,
    report: &mut ImportReport,
    created: &mut Vec<Created>,
) -> Result<()> {
    let out = target
        .client
        .delete_object()
        .bucket(&target.bucket)
        .key(&record.key)
        .send()
        .await
        .map_err(|e| {
            s3_error(
                e,
                format!("replaying the delete marker of `{}`", record.key),
                &target.endpoint,
            )
        })?;
    let new = out.version_id().map(str::to_string);
    report.delete_markers += 1;
    if let Some(old) = &record.version_id {
        report.versions.push(VersionMapping {
            seq: record.seq,
            key: record.key.clone(),
            old: old.clone(),
            new: new.clone(),
            delete_marker: true,
        });
    }
    created.push((record.key, new));
    Ok(())
}

/// Deletes what a failed import created; best effort (the error that caused it wins).
async fn roll_back(job: &ImportJob, created: &[Created], created_bucket: bool) {
    for (key, version) in created.iter().rev() {
        let _ = job
            .client
            .delete_object()
            .bucket(&job.bucket)
            .key(key)
            .set_version_id(version.clone())
            .send()
            .await;
    }
    if created_bucket {
        let _ = job.client.delete_bucket().bucket(&job.bucket).send().await;
    }
}
