//! [`BundleWriter`]: writes a bundle as one forward-only stream.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::crypto::{EntryEncryptor, PendingWrap, ENCRYPTION_AGE};
use super::entry_name::{data_entry_path, validate_component, MANIFEST_PATH, SNAPSHOT_PATH};
use super::manifest::{
    BundleOptions, Compression, EntryChecksum, Includes, Manifest, ManifestEntry, ToolInfo,
    ENCRYPTION_NONE, MANIFEST_FORMAT_VERSION,
};
use super::manifest_read::parse_manifest;
use super::publish::{already_exists, publish, remove_quietly, PartialFile};
use super::zip_thread::{self, Command, EntryStats, Output};
use crate::snapshot::snapshot_bounds_problem;
use crate::{
    ArtifactData, ArtifactDescriptor, Error, ErrorKind, ProgressEvent, ProgressSink, Result,
    WorkspaceSnapshot,
};

/// Bytes between two [`ProgressEvent::BytesTransferred`] events of one artifact.
const PROGRESS_EVERY: u64 = 8 * 1024 * 1024;

/// Writes a bundle: `snapshot.json`, then each artifact under `data/`, then
/// `manifest.json`.
///
/// The zip is written forward only (data descriptors, no seeking), so any
/// [`Write`] works as the sink. Each artifact is streamed through a bounded channel to a
/// dedicated thread that compresses (optionally), hashes and stores it: memory stays flat
/// however large the artifact. Every entry is stored (zip method STORE), so stock `unzip`
/// reads the bundle; compression is a zstd stream inside the entry.
///
/// A writer made with [`BundleWriter::create`] writes to a hidden temporary file next to
/// the target and renames it only in [`BundleWriter::finish`]. A failed step, [`abort`]
/// or dropping the writer removes the temporary file: a failed or abandoned export never
/// leaves something that looks like a bundle.
///
/// [`abort`]: BundleWriter::abort
pub struct BundleWriter {
    options: BundleOptions,
    id: String,
    created_at: String,
    commands: Option<mpsc::Sender<Command>>,
    outcome: Option<oneshot::Receiver<io::Result<()>>>,
    discard: Arc<AtomicBool>,
    partial: Option<PartialFile>,
    state: State,
    snapshot: Option<EntryChecksum>,
    entries: Vec<ManifestEntry>,
    paths: HashSet<String>,
    encryptor: Option<Arc<EntryEncryptor>>,
    /// A passphrase bundle's identity, being wrapped (scrypt) while the entries stream.
    pending_wrap: Option<PendingWrap>,
}

/// Where a writer is in its life.
#[derive(Debug)]
enum State {
    /// Ready for the next entry.
    Ready,
    /// An entry is being written (if a future is dropped here, the bundle is unusable).
    InEntry,
    /// Something failed; kind and message of the first failure.
    Failed(ErrorKind, String),
    /// `finish` or `abort` ran.
    Closed,
}

impl std::fmt::Debug for BundleWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleWriter")
            .field("id", &self.id)
            .field("state", &self.state)
            .field("partial", &self.partial)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl BundleWriter {
    /// Starts a bundle that will be stored at `path`.
    ///
    /// Bytes go to `<dir>/.<name>.partial-<uuid>` in the same directory;
    /// [`finish`](Self::finish) fsyncs that file and renames it to `path`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if `path` has no file name, [`ErrorKind::AlreadyExists`]
    /// if something already exists at `path`, and the I/O error (with its kind) if the
    /// temporary file cannot be created.
    pub async fn create(path: &Path, options: BundleOptions) -> Result<Self> {
        let name = path.file_name().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("bundle path {} has no file name", path.display()),
            )
        })?;
        if tokio::fs::symlink_metadata(path).await.is_ok() {
            return Err(already_exists(path));
        }
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".partial-{}", uuid::Uuid::new_v4()));
        let temp = dir.join(temp_name);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .await
            .map_err(|e| {
                Error::io(
                    format!("creating temporary bundle file {}", temp.display()),
                    e,
                )
            })?
            .into_std()
            .await;
        let partial = PartialFile {
            temp,
            target: path.to_path_buf(),
        };
        let mut writer = Self::start(Output::File(file), Some(partial), options);
        if let State::Failed(kind, message) = &writer.state {
            let err = Error::new(*kind, message.clone());
            writer.discard_output();
            return Err(err);
        }
        Ok(writer)
    }

    /// Starts a bundle written to any sink, seekable or not (stdout, a pipe, an upload body).
    ///
    /// Nothing is renamed or removed: on failure the sink has received a partial zip with
    /// no manifest, which [`BundleReader::open`](super::BundleReader::open) refuses.
    pub fn to_writer<W: Write + Send + 'static>(sink: W, options: BundleOptions) -> Self {
        Self::start(Output::Stream(Box::new(sink)), None, options)
    }

    fn start(output: Output, partial: Option<PartialFile>, options: BundleOptions) -> Self {
        let discard = Arc::new(AtomicBool::new(false));
        let (commands, outcome, state) = match zip_thread::spawn(output, Arc::clone(&discard)) {
            Ok((tx, rx)) => (Some(tx), Some(rx), State::Ready),
            Err(e) => (
                None,
                None,
                State::Failed(
                    ErrorKind::ResourceExhausted,
                    format!("cannot start the bundle writer thread: {e}"),
                ),
            ),
        };
        let (encryptor, pending_wrap, state) = match options.encryption.encryptor() {
            Ok(Some((encryptor, pending_wrap))) => (Some(encryptor), pending_wrap, state),
            Ok(None) => (None, None, state),
            Err(e) => (None, None, State::Failed(e.kind(), e.message().to_owned())),
        };
        let created_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned());
        BundleWriter {
            options,
            id: uuid::Uuid::new_v4().to_string(),
            created_at,
            commands,
            outcome,
            discard,
            partial,
            state,
            snapshot: None,
            entries: Vec::new(),
            paths: HashSet::new(),
            encryptor,
            pending_wrap,
        }
    }

    /// The bundle's id, as it will appear in the manifest.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The entries written so far.
    pub fn entries(&self) -> &[ManifestEntry] {
        &self.entries
    }

    /// Writes `snapshot.json` (uncompressed, so any tool can read it).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] if a snapshot was already written or the writer failed
    /// before; I/O errors of the sink (which also fail the bundle).
    pub async fn write_snapshot(&mut self, snapshot: &WorkspaceSnapshot) -> Result<()> {
        self.ensure_ready()?;
        if self.snapshot.is_some() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "the bundle already holds a snapshot.json",
            ));
        }
        let json = snapshot.to_json()?;
        if let Some(problem) = snapshot_bounds_problem(&json) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("refusing to write a snapshot.json readers would refuse: {problem}"),
            ));
        }
        let stats = self
            .write_small_entry(SNAPSHOT_PATH, Bytes::from(json))
            .await?;
        self.snapshot = Some(EntryChecksum {
            path: SNAPSHOT_PATH.to_owned(),
            size: stats.stored_size,
            sha256: stats.sha256,
        });
        Ok(())
    }

    /// Streams `data` into `data/<service>/<artifact.name>[.zst]`.
    ///
    /// The stored bytes are hashed while streaming (no second pass), progress is reported
    /// as [`ProgressEvent::BytesTransferred`], and once the stream has ended
    /// `data.late_metadata` is awaited and merged into the entry's artifact metadata.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for a service or artifact name that is not a safe path
    /// component, or an entry already written. An error item in the stream, a failing
    /// late-metadata future or a sink error fails this call *and* the bundle: the temporary
    /// file is removed at once and [`finish`](Self::finish) refuses.
    pub async fn write_artifact(
        &mut self,
        service: &str,
        artifact: &ArtifactDescriptor,
        data: ArtifactData,
        progress: &dyn ProgressSink,
    ) -> Result<ManifestEntry> {
        self.ensure_ready()?;
        validate_component("service", service)?;
        validate_component("artifact", &artifact.name)?;
        let compression = self.options.compression;
        let path = data_entry_path(
            service,
            &artifact.name,
            compression,
            self.encryptor.is_some(),
        );
        if self.paths.contains(&path) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("the bundle already holds entry {path}"),
            )
            .with_hint("give each artifact of a service a distinct name"));
        }
        let zstd_level = match compression {
            Compression::None => None,
            Compression::Zstd => Some(self.options.zstd_level),
        };

        self.state = State::InEntry;
        self.send(Command::Begin {
            path: path.clone(),
            large_file: true,
            zstd_level,
            encrypt: self.encryptor.clone(),
        })
        .await?;

        let ArtifactData {
            mut stream,
            late_metadata,
        } = data;
        let mut done: u64 = 0;
        let mut reported: u64 = 0;
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => {
                    if chunk.is_empty() {
                        continue;
                    }
                    done += chunk.len() as u64;
                    self.send(Command::Chunk(chunk)).await?;
                    if done - reported >= PROGRESS_EVERY {
                        reported = done;
                        progress.event(&transferred(service, &artifact.name, done, None));
                    }
                }
                Err(e) => {
                    let err = Error::io(
                        format!("exporting artifact {} of service {service}", artifact.name),
                        e,
                    );
                    return Err(self.fail(err));
                }
            }
        }
        drop(stream);
        let stats = self.end_entry().await?;

        let mut descriptor = artifact.clone();
        if let Some(late) = late_metadata {
            match late.await {
                Ok(extra) => descriptor.metadata.extend(extra),
                Err(e) => {
                    let err = e.context(format!(
                        "metadata of artifact {} of service {service}",
                        artifact.name
                    ));
                    return Err(self.fail(err));
                }
            }
        }
        if let Some(problem) = descriptor.metadata_problem() {
            let err = Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "metadata of artifact {} of service {service} is too large for a bundle: {problem}",
                    artifact.name
                ),
            )
            .with_hint("the adapter must report less metadata");
            return Err(self.fail(err));
        }
        progress.event(&transferred(service, &artifact.name, done, Some(done)));

        let entry = ManifestEntry {
            path: path.clone(),
            service: service.to_owned(),
            artifact: descriptor,
            size: stats.stored_size,
            sha256: stats.sha256,
            uncompressed_size: stats.uncompressed_size,
            compression,
            encryption: if self.encryptor.is_some() {
                ENCRYPTION_AGE.to_owned()
            } else {
                ENCRYPTION_NONE.to_owned()
            },
        };
        self.paths.insert(path);
        self.entries.push(entry.clone());
        self.state = State::Ready;
        Ok(entry)
    }

    /// Writes `manifest.json` last and completes the zip; for a writer made with
    /// [`create`](Self::create), fsyncs the file and renames it to its final path.
    ///
    /// # Errors
    ///
    /// Refuses (with the kind of the first failure) if any earlier step failed or was
    /// interrupted; [`ErrorKind::InvalidInput`] for a bundle with neither a snapshot nor an
    /// artifact; [`ErrorKind::AlreadyExists`] if something appeared at the final path
    /// meanwhile; I/O errors of the sink. On error no file is left at the final path and
    /// the temporary file is removed.
    pub async fn finish(mut self) -> Result<Manifest> {
        self.ensure_ready()?;
        if self.snapshot.is_none() && self.entries.is_empty() {
            let err = Error::new(
                ErrorKind::InvalidInput,
                "refusing to finish an empty bundle (no snapshot and no artifact)",
            )
            .with_hint("write the snapshot or at least one artifact before finishing");
            return Err(self.fail(err));
        }
        let wrapped_identity = match self.pending_wrap.take() {
            Some(pending) => match pending.wait().await {
                Ok(wrapped) => Some(wrapped),
                Err(e) => return Err(self.fail(e)),
            },
            None => None,
        };
        let manifest = self.manifest(wrapped_identity);
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("serialising the manifest: {e}"),
            )
        })?;
        // Write only a manifest this library reads back: the same size, shape and entry
        // bounds a reader applies.
        if let Err(e) = parse_manifest(&json) {
            let err = Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "refusing to write a manifest readers would refuse: {}",
                    e.message()
                ),
            )
            .with_hint("write fewer entries or less artifact metadata per bundle");
            return Err(self.fail(err));
        }
        self.write_small_entry(MANIFEST_PATH, Bytes::from(json))
            .await?;
        self.send(Command::Finish).await?;
        self.commands = None;
        let outcome = match self.outcome.take() {
            Some(rx) => rx.await.unwrap_or_else(|_| Err(thread_gone())),
            None => Err(thread_gone()),
        };
        if let Err(e) = outcome {
            let err = Error::io("completing the bundle", e);
            return Err(self.fail(err));
        }
        if let Some(partial) = self.partial.take() {
            let result = tokio::task::spawn_blocking(move || publish(&partial))
                .await
                .unwrap_or_else(|e| {
                    Err(Error::new(
                        ErrorKind::Io,
                        format!("publishing the bundle panicked: {e}"),
                    ))
                });
            if let Err(err) = result {
                self.state = State::Closed;
                return Err(err);
            }
        }
        self.state = State::Closed;
        Ok(manifest)
    }

    /// Abandons the bundle: stops the writer thread and removes the temporary file.
    ///
    /// For a writer made with [`to_writer`](Self::to_writer), the sink keeps whatever it
    /// already received (a zip without manifest, which readers refuse).
    pub async fn abort(mut self) {
        self.discard_output();
        self.state = State::Closed;
    }

    /// The manifest as it stands, with a passphrase bundle's wrapped identity.
    fn manifest(&self, wrapped_identity: Option<String>) -> Manifest {
        let mut services: Vec<String> = Vec::new();
        for entry in &self.entries {
            if !services.contains(&entry.service) {
                services.push(entry.service.clone());
            }
        }
        let encryption = self.encryptor.as_ref().and_then(|e| e.info());
        Manifest {
            format_version: MANIFEST_FORMAT_VERSION,
            id: self.id.clone(),
            created_at: self.created_at.clone(),
            label: self.options.label.clone(),
            purpose: self.options.purpose.clone(),
            kind: self.options.kind,
            reason: self.options.reason.clone(),
            tool: ToolInfo::current(),
            includes: Includes {
                config: self.snapshot.is_some(),
                services,
            },
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
            encryption,
            wrapped_identity,
        }
    }

    fn ensure_ready(&self) -> Result<()> {
        match &self.state {
            State::Ready => Ok(()),
            State::InEntry => Err(Error::new(
                ErrorKind::InvalidInput,
                "the bundle is unusable: an earlier entry was interrupted",
            )
            .with_hint("abort this bundle and write a new one")),
            State::Failed(kind, message) => Err(Error::new(
                *kind,
                format!("the bundle failed earlier and cannot be completed: {message}"),
            )
            .with_hint("abort this bundle and write a new one")),
            State::Closed => Err(Error::new(
                ErrorKind::InvalidInput,
                "the bundle is already finished or aborted",
            )),
        }
    }

    /// Writes a small, uncompressed, non-ZIP64 entry in one chunk.
    async fn write_small_entry(&mut self, path: &str, bytes: Bytes) -> Result<EntryStats> {
        self.state = State::InEntry;
        self.send(Command::Begin {
            path: path.to_owned(),
            large_file: false,
            zstd_level: None,
            encrypt: None,
        })
        .await?;
        self.send(Command::Chunk(bytes)).await?;
        let stats = self.end_entry().await?;
        self.paths.insert(path.to_owned());
        self.state = State::Ready;
        Ok(stats)
    }

    async fn end_entry(&mut self) -> Result<EntryStats> {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.send(Command::End(reply_tx)).await?;
        match reply_rx.await {
            Ok(stats) => Ok(stats),
            Err(_) => {
                let err = self.thread_error().await;
                Err(self.fail(err))
            }
        }
    }

    /// Sends one command; if the thread has stopped, fails the bundle with its error.
    async fn send(&mut self, command: Command) -> Result<()> {
        let sent = match &self.commands {
            Some(tx) => tx.send(command).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        let err = self.thread_error().await;
        Err(self.fail(err))
    }

    /// Why the writer thread stopped.
    async fn thread_error(&mut self) -> Error {
        let outcome = match self.outcome.take() {
            Some(rx) => rx.await.unwrap_or_else(|_| Err(thread_gone())),
            None => Err(thread_gone()),
        };
        match outcome {
            Err(e) => Error::io("writing the bundle", e),
            Ok(()) => Error::new(ErrorKind::Io, "the bundle writer stopped unexpectedly"),
        }
    }

    /// Marks the bundle failed, drops its output, and returns `err` for the caller.
    fn fail(&mut self, err: Error) -> Error {
        self.state = State::Failed(err.kind(), err.message().to_owned());
        self.discard_output();
        err
    }

    /// Stops the thread's output and removes the temporary file (synchronous, for `Drop`).
    fn discard_output(&mut self) {
        self.discard.store(true, Ordering::Release);
        self.commands = None;
        if let Some(partial) = self.partial.take() {
            remove_quietly(&partial.temp);
        }
    }
}

impl Drop for BundleWriter {
    fn drop(&mut self) {
        if !matches!(self.state, State::Closed) || self.partial.is_some() {
            self.discard_output();
        }
    }
}

fn transferred(service: &str, artifact: &str, done: u64, total: Option<u64>) -> ProgressEvent {
    ProgressEvent::BytesTransferred {
        service: service.to_owned(),
        artifact: artifact.to_owned(),
        done,
        total,
    }
}

fn thread_gone() -> io::Error {
    io::Error::other("the bundle writer thread stopped")
}
