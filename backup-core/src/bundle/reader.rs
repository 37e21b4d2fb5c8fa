//! [`BundleReader`]: opens a bundle, checks its structure, verifies and reads entries.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use zip::{CompressionMethod, ZipArchive};

use super::central_dir::{self, CentralRecord};
use super::crypto::{missing_key, Decryption, EntryDecryptor, ENCRYPTION_AGE};
use super::entry_name::{path_problem, MANIFEST_PATH};
use super::entry_stream;
use super::local_header::{self, LocalLayout};
use super::local_scan;
use super::manifest::{
    Compression, EntryChecksum, Manifest, ManifestEntry, VerifyReport, ENCRYPTION_NONE,
    MAX_WRAPPED_IDENTITY_BYTES,
};
use super::manifest_read::{read_manifest, TAMPERED_HINT};
use super::source::{BundleSource, FileSource, SourceReader, SOURCE_READ_SIZE};
use super::span_read::{check_checksum, check_stored, read_range};
use crate::snapshot::MAX_SNAPSHOT_BYTES;
use crate::{ByteStream, Error, ErrorKind, ProgressEvent, ProgressSink, Result, WorkspaceSnapshot};

/// Where an entry's stored bytes are in the bundle file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    /// Offset of the first stored byte.
    pub(crate) offset: u64,
    /// Stored bytes.
    pub(crate) size: u64,
    /// CRC-32 of the stored bytes, by the zip central directory.
    pub(crate) crc32: u32,
}

/// Reads a bundle written by [`BundleWriter`](super::BundleWriter).
///
/// [`open`](Self::open) checks the structure (manifest version, entry names, that the
/// entries are exactly those the manifest lists, with the sizes it promises);
/// [`verify`](Self::verify) reads every entry and checks its sha256. A restore calls both
/// before touching any target.
#[derive(Debug)]
pub struct BundleReader {
    source: Arc<dyn BundleSource>,
    manifest: Manifest,
    snapshot: Option<WorkspaceSnapshot>,
    locations: HashMap<String, Location>,
    decryptor: Option<Arc<EntryDecryptor>>,
}

impl BundleReader {
    /// Opens the bundle at `path`, reads `manifest.json` and `snapshot.json`, and checks
    /// the structure.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::UnsupportedVersion`] for a manifest format version this build does
    ///   not read;
    /// - [`ErrorKind::Integrity`] for a file that is not a complete zip (truncated), a
    ///   missing or malformed manifest, entries missing from the zip or not listed in the
    ///   manifest, duplicate names, unsafe names (`..`, absolute, backslashes, empty
    ///   components), an entry whose size differs from the manifest, an entry not stored
    ///   with method STORE, a zip local header or data descriptor that differs from the
    ///   central directory (name, flags, method, CRC-32, sizes), entries that overlap, an
    ///   end of central directory record that disagrees with the directory, a manifest or
    ///   snapshot over its size, nesting or value limits (see
    ///   [`MAX_MANIFEST_BYTES`](super::MAX_MANIFEST_BYTES) and its siblings), or a
    ///   `snapshot.json` that does not match its checksum. Every message names the entry
    ///   and the problem;
    /// - the I/O error (with its kind) if the file cannot be read.
    pub async fn open(path: &Path) -> Result<Self> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let source = FileSource::open(&path)
                .map_err(|e| Error::io(format!("opening bundle {}", path.display()), e))?;
            open_blocking(Arc::new(source))
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Io, format!("opening the bundle panicked: {e}")))?
    }

    /// Opens the bundle `source` reads (a file, memory, object storage) with the same
    /// checks as [`open`](Self::open); every later read ([`verify`](Self::verify),
    /// [`open_entry`](Self::open_entry)) goes through it too, in reads of up to
    /// [`SOURCE_READ_SIZE`](super::SOURCE_READ_SIZE) bytes, from blocking threads only.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open); I/O errors are those `source` returns.
    pub async fn open_source(source: Arc<dyn BundleSource>) -> Result<Self> {
        tokio::task::spawn_blocking(move || open_blocking(source))
            .await
            .map_err(|e| Error::new(ErrorKind::Io, format!("opening the bundle panicked: {e}")))?
    }

    /// The bundle file, when the bundle is a local file.
    pub fn path(&self) -> Option<&Path> {
        self.source.local_path()
    }

    /// Where the bundle's bytes come from.
    pub fn source(&self) -> &Arc<dyn BundleSource> {
        &self.source
    }

    /// Gives the reader the key of an encrypted bundle: [`verify`](Self::verify) then
    /// decrypts every entry (checking age's authentication and the decompressed size),
    /// and [`open_entry`](Self::open_entry) delivers plaintext. A passphrase refuses a
    /// scrypt work factor above [`MAX_SCRYPT_WORK_FACTOR`](super::MAX_SCRYPT_WORK_FACTOR),
    /// and unwraps the bundle's identity (one scrypt run) on the first entry it decrypts.
    pub fn with_decryption(mut self, decryption: Decryption) -> Self {
        self.decryptor = Some(Arc::new(decryption.decryptor(
            self.manifest.encryption.as_ref(),
            self.manifest.wrapped_identity.as_deref(),
        )));
        self
    }

    /// Whether any data entry is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.manifest
            .entries
            .iter()
            .any(|e| e.encryption == ENCRYPTION_AGE)
    }

    /// Refuses an encrypted bundle when no key was given (see
    /// [`with_decryption`](Self::with_decryption)).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::PermissionDenied`] naming the first encrypted entry, with a hint
    /// saying what to pass.
    pub fn ensure_decryptable(&self) -> Result<()> {
        if self.decryptor.is_some() {
            return Ok(());
        }
        match self
            .manifest
            .entries
            .iter()
            .find(|e| e.encryption == ENCRYPTION_AGE)
        {
            Some(entry) => Err(missing_key(&entry.path)),
            None => Ok(()),
        }
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The workspace snapshot, when the bundle holds one.
    pub fn snapshot(&self) -> Option<&WorkspaceSnapshot> {
        self.snapshot.as_ref()
    }

    /// Reads every entry once and checks its size and sha256 against the manifest
    /// (`snapshot.json` included), its CRC-32 against the zip directory (so a bundle
    /// that verifies also passes `unzip -t`; [`open`](Self::open) already checked every
    /// local header against the directory), and that a compressed entry decompresses to
    /// exactly its `uncompressedSize` (so a bundle that verifies reads back whole with
    /// [`open_entry`](Self::open_entry); decompressed bytes are counted and dropped,
    /// never more than that size, within a zstd window of at most 128 MiB), emitting [`ProgressEvent::Verified`] per entry and
    /// [`ProgressEvent::Finished`] at the end.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Integrity`] naming the first entry whose bytes are changed (a flipped
    /// byte) or missing (a truncated file), or that does not decrypt (age
    /// authentication) or decompress to its size; [`ErrorKind::PermissionDenied`] when
    /// the key given does not decrypt an entry; [`ErrorKind::ResourceExhausted`] for a
    /// passphrase work factor over the bound; [`ErrorKind::Unsupported`] for an unknown
    /// encryption; I/O errors reading the file.
    ///
    /// Without a key ([`with_decryption`](Self::with_decryption)), encrypted entries are
    /// checked by their stored bytes only (size, sha256, CRC-32) and listed in
    /// [`VerifyReport::not_decrypted`].
    pub async fn verify(&self, progress: &dyn ProgressSink) -> Result<VerifyReport> {
        // The snapshot is stored as is; data entries are read as `open_entry` reads them.
        let mut expected: Vec<(EntryChecksum, Option<ManifestEntry>)> = Vec::new();
        expected.extend(self.manifest.snapshot.clone().map(|s| (s, None)));
        expected.extend(self.manifest.entries.iter().map(|e| {
            let checksum = EntryChecksum {
                path: e.path.clone(),
                size: e.size,
                sha256: e.sha256.clone(),
            };
            (checksum, Some(e.clone()))
        }));
        let mut report = VerifyReport::default();
        for (want, mut data) in expected {
            if let Some(entry) = &data {
                check_readable(entry)?;
                if entry.encryption == ENCRYPTION_AGE && self.decryptor.is_none() {
                    // No key: the stored bytes only.
                    report.not_decrypted.push(entry.path.clone());
                    data = None;
                }
            }
            let location = self.location(&want.path)?;
            let source = Arc::clone(&self.source);
            let checksum = want.clone();
            let decryptor = self.decryptor.clone();
            tokio::task::spawn_blocking(move || match data {
                Some(entry) => entry_stream::check(source, &entry, location, decryptor.as_deref()),
                None => check_stored(source.as_ref(), &checksum, location),
            })
            .await
            .map_err(|e| {
                Error::new(ErrorKind::Io, format!("verifying the bundle panicked: {e}"))
            })??;
            progress.event(&ProgressEvent::Verified {
                path: want.path.clone(),
                size: want.size,
            });
            report.total_bytes += want.size;
            report.entries.push(want);
        }
        progress.event(&ProgressEvent::Finished {
            operation: "verify".to_owned(),
        });
        Ok(report)
    }

    /// Opens one entry's bytes as a stream, decompressed, with size and sha256 checked on
    /// the fly: if the stored bytes do not match the manifest, the stream ends with an
    /// [`ErrorKind::Integrity`] error item (recover it with [`Error::io`]) instead of
    /// ending quietly.
    ///
    /// The stream never delivers more than the entry's `uncompressedSize`: as soon as the
    /// decompressed output would exceed it, the stream ends with an integrity error
    /// (a decompression bomb whose stored bytes match the manifest passes
    /// [`verify`](Self::verify), but cannot flood an importer). The zstd decoder refuses
    /// frames asking for a window over 128 MiB.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] for an entry this bundle's manifest does not list,
    /// [`ErrorKind::PermissionDenied`] for an encrypted entry and no key (a wrong key ends
    /// the stream with that kind), [`ErrorKind::Unsupported`] for an unknown encryption,
    /// and an error if the reading thread cannot start.
    pub fn open_entry(&self, entry: &ManifestEntry) -> Result<ByteStream> {
        let ours = self.manifest.entry(&entry.path).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("the bundle's manifest does not list entry {}", entry.path),
            )
        })?;
        check_readable(ours)?;
        if ours.encryption == ENCRYPTION_AGE && self.decryptor.is_none() {
            return Err(missing_key(&ours.path));
        }
        let location = self.location(&ours.path)?;
        entry_stream::spawn(
            Arc::clone(&self.source),
            ours.clone(),
            location,
            self.decryptor.clone(),
        )
    }

    fn location(&self, path: &str) -> Result<Location> {
        self.locations
            .get(path)
            .copied()
            .ok_or_else(|| Error::integrity(format!("entry {path} is missing from the bundle")))
    }
}

/// Refuses an entry this build cannot read (an unknown encryption).
fn check_readable(entry: &ManifestEntry) -> Result<()> {
    if entry.encryption != ENCRYPTION_NONE && entry.encryption != ENCRYPTION_AGE {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "entry {} is encrypted with {:?}; this build reads only unencrypted and age-encrypted entries",
                entry.path, entry.encryption
            ),
        ));
    }
    Ok(())
}

/// What a user can do about a damaged bundle.
pub(crate) const DAMAGED_HINT: &str =
    "the bundle file is damaged or incomplete; restore from another copy or another bundle";

fn open_blocking(source: Arc<dyn BundleSource>) -> Result<BundleReader> {
    let shown = source.describe();
    let file_len = source.len();
    // One buffered reader for the zip crate, one for our own walk of the directory and
    // the local headers: both read the end of the file in one window.
    let mut scan = SourceReader::whole(Arc::clone(&source), SOURCE_READ_SIZE, true);
    let zip_reader = SourceReader::whole(Arc::clone(&source), SOURCE_READ_SIZE, true);
    let mut archive = ZipArchive::new(zip_reader).map_err(|e| not_a_zip(&source, &shown, &e))?;
    if archive.offset() != 0 {
        return Err(Error::integrity(format!(
            "bundle {shown} has {} unexpected bytes before its first entry",
            archive.offset()
        )));
    }

    let dir_start = archive.central_directory_start();
    let records = central_dir::raw_records(&mut scan, dir_start)
        .map_err(|e| Error::io(format!("reading the entry list of bundle {shown}"), e))?;
    let names = checked_names(&archive, &records, &shown)?;
    let layouts = check_local_headers(&mut scan, &names, &records, dir_start)?;
    let manifest = read_manifest(&mut archive, &shown)?;
    let locations = check_entries(&mut archive, &names, &manifest, file_len)?;
    for (path, location) in &locations {
        if layouts.get(path.as_str()).map(|l| l.data_start) != Some(location.offset) {
            return Err(Error::integrity(format!(
                "entry {path}: its local header and the zip reader disagree on where its data starts"
            ))
            .with_hint(DAMAGED_HINT));
        }
    }

    let snapshot = match &manifest.snapshot {
        None => None,
        Some(want) => {
            let location = locations.get(&want.path).copied().ok_or_else(|| {
                Error::integrity(format!("entry {} is missing from the bundle", want.path))
            })?;
            if want.size > MAX_SNAPSHOT_BYTES {
                return Err(Error::integrity(format!(
                    "entry {} is {} bytes, more than the {MAX_SNAPSHOT_BYTES} bytes a snapshot may have",
                    want.path, want.size
                ))
                .with_hint(TAMPERED_HINT));
            }
            let bytes = read_range(source.as_ref(), &want.path, location)?;
            let sha256 = hex::encode(Sha256::digest(&bytes));
            check_checksum(want, bytes.len() as u64, &sha256)?;
            Some(
                WorkspaceSnapshot::from_json(&bytes)
                    .map_err(|e| e.context(format!("entry {} of bundle {shown}", want.path)))?,
            )
        }
    };

    Ok(BundleReader {
        source,
        manifest,
        snapshot,
        locations,
        decryptor: None,
    })
}

/// Checks every entry's local header (and data descriptor) against its central record,
/// and that no two entries overlap or run into the central directory; returns where each
/// entry's data starts, by name.
fn check_local_headers<'a>(
    file: &mut SourceReader,
    names: &'a [String],
    records: &[CentralRecord],
    dir_start: u64,
) -> Result<HashMap<&'a str, LocalLayout>> {
    let mut layouts = HashMap::with_capacity(records.len());
    for (name, record) in names.iter().zip(records) {
        let layout = local_header::check(file, record, dir_start)
            .map_err(|e| Error::io(format!("reading the local header of entry {name}"), e))?
            .map_err(|problem| {
                Error::integrity(format!(
                    "entry {name}: its zip local header does not match the central directory: {problem}"
                ))
                .with_hint(DAMAGED_HINT)
            })?;
        layouts.insert(name.as_str(), layout);
    }
    let mut spans: Vec<(u64, u64, &str)> = layouts
        .iter()
        .map(|(name, l)| (l.data_start, l.end, *name))
        .collect();
    spans.sort_unstable();
    let mut previous: Option<(u64, &str)> = None;
    for (start, end, name) in spans {
        if let Some((previous_end, previous_name)) = previous {
            if start < previous_end {
                return Err(Error::integrity(format!(
                    "entries {previous_name} and {name} overlap in the zip file"
                ))
                .with_hint(TAMPERED_HINT));
            }
        }
        if end > dir_start {
            return Err(Error::integrity(format!(
                "entry {name} runs into the zip central directory"
            ))
            .with_hint(DAMAGED_HINT));
        }
        previous = Some((end, name));
    }
    Ok(layouts)
}

/// Every entry name, checked: UTF-8, safe, unique.
fn checked_names(
    archive: &ZipArchive<SourceReader>,
    records: &[CentralRecord],
    shown: &str,
) -> Result<Vec<String>> {
    let mut names = Vec::with_capacity(records.len());
    let mut seen = HashSet::new();
    for record in records {
        let name = String::from_utf8(record.name.clone()).map_err(|e| {
            Error::integrity(format!(
                "bundle entry {:?} has a name that is not UTF-8",
                String::from_utf8_lossy(e.as_bytes())
            ))
        })?;
        if let Some(problem) = path_problem(&name) {
            return Err(Error::integrity(format!(
                "bundle entry {name:?} has an unsafe name: {problem}"
            ))
            .with_hint("the bundle was not written by this tool or was tampered with"));
        }
        if !seen.insert(name.clone()) {
            return Err(Error::integrity(format!(
                "bundle holds more than one entry named {name:?} (duplicate entry names)"
            ))
            .with_hint("the bundle was not written by this tool or was tampered with"));
        }
        names.push(name);
    }
    if names.len() != archive.len() {
        return Err(Error::integrity(format!(
            "bundle {shown} has an inconsistent entry list ({} records, {} entries)",
            names.len(),
            archive.len()
        )));
    }
    Ok(names)
}

/// Checks that the zip holds exactly the entries the manifest lists, stored, with the
/// promised sizes, and returns where each one's bytes are.
fn check_entries(
    archive: &mut ZipArchive<SourceReader>,
    names: &[String],
    manifest: &Manifest,
    file_len: u64,
) -> Result<HashMap<String, Location>> {
    let mut expected: Vec<(&str, u64)> = Vec::new();
    expected.extend(manifest.snapshot.iter().map(|s| (s.path.as_str(), s.size)));
    expected.extend(manifest.entries.iter().map(|e| (e.path.as_str(), e.size)));

    let mut listed: HashSet<&str> = HashSet::from([MANIFEST_PATH]);
    for (path, _) in &expected {
        if let Some(problem) = path_problem(path) {
            return Err(Error::integrity(format!(
                "the manifest lists entry {path:?} with an unsafe name: {problem}"
            )));
        }
        if !listed.insert(path) {
            return Err(Error::integrity(format!(
                "the manifest lists entry {path:?} more than once"
            )));
        }
    }
    for (path, _) in &expected {
        if archive.index_for_name(path).is_none() {
            return Err(Error::integrity(format!(
                "entry {path} listed in the manifest is missing from the bundle"
            ))
            .with_hint(DAMAGED_HINT));
        }
    }
    if let Some(extra) = names.iter().find(|n| !listed.contains(n.as_str())) {
        return Err(Error::integrity(format!(
            "bundle holds entry {extra} that the manifest does not list (unexpected entry)"
        ))
        .with_hint("the bundle was not written by this tool or was tampered with"));
    }

    if let Some(wrapped) = &manifest.wrapped_identity {
        if wrapped.len() > MAX_WRAPPED_IDENTITY_BYTES {
            return Err(Error::integrity(format!(
                "the manifest's wrappedIdentity holds {} bytes, more than the {MAX_WRAPPED_IDENTITY_BYTES} a wrapped key needs",
                wrapped.len()
            ))
            .with_hint("the bundle was not written by this tool or was tampered with"));
        }
    }
    for entry in &manifest.entries {
        if entry.encryption == ENCRYPTION_AGE && manifest.encryption.is_none() {
            return Err(Error::integrity(format!(
                "entry {} is encrypted with age but the manifest does not say how (no `encryption`)",
                entry.path
            ))
            .with_hint("the bundle was not written by this tool or was tampered with"));
        }
        if entry.compression == Compression::None
            && entry.encryption == ENCRYPTION_NONE
            && entry.uncompressed_size != entry.size
        {
            return Err(Error::integrity(format!(
                "the manifest says uncompressed entry {} holds {} bytes and decompresses to {}",
                entry.path, entry.size, entry.uncompressed_size
            ))
            .with_hint("the bundle was not written by this tool or was tampered with"));
        }
    }

    let mut locations = HashMap::with_capacity(expected.len());
    for (path, size) in expected {
        let index = archive
            .index_for_name(path)
            .ok_or_else(|| Error::integrity(format!("entry {path} is missing from the bundle")))?;
        let entry = archive
            .by_index_raw(index)
            .map_err(|e| Error::integrity(format!("entry {path} cannot be read: {e}")))?;
        if entry.compression() != CompressionMethod::Stored {
            return Err(not_stored(path, entry.compression()));
        }
        if entry.encrypted() {
            return Err(Error::integrity(format!(
                "entry {path} is encrypted with zip encryption, which bundles never use"
            )));
        }
        if entry.compressed_size() != size || entry.size() != size {
            return Err(Error::integrity(format!(
                "entry {path} holds {} bytes but the manifest says {size}",
                entry.compressed_size()
            ))
            .with_hint(DAMAGED_HINT));
        }
        let offset = entry.data_start().ok_or_else(|| {
            Error::integrity(format!("entry {path} has no readable local header"))
        })?;
        if offset.checked_add(size).is_none_or(|end| end > file_len) {
            return Err(Error::integrity(format!(
                "entry {path} is truncated: its {size} bytes run past the end of the file"
            ))
            .with_hint(DAMAGED_HINT));
        }
        locations.insert(
            path.to_owned(),
            Location {
                offset,
                size,
                crc32: entry.crc32(),
            },
        );
    }
    Ok(locations)
}

/// The error for a file the zip crate cannot open; names the entry a truncated bundle
/// ends in when its local headers show it.
fn not_a_zip(source: &Arc<dyn BundleSource>, shown: &str, cause: &zip::result::ZipError) -> Error {
    if let zip::result::ZipError::Io(e) = cause {
        if !matches!(
            e.kind(),
            io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
        ) {
            // The source failed (a network error), not the bundle.
            return Error::io(
                format!("reading bundle {shown}"),
                io::Error::new(e.kind(), e.to_string()),
            );
        }
    }
    let whole = SourceReader::span(Arc::clone(source), 0, source.len(), SOURCE_READ_SIZE);
    let last = local_scan::last_entry_name(whole).ok().flatten();
    let message = match last {
        Some(entry) => format!(
            "bundle {shown} is truncated or corrupt: it has no zip central directory and ends inside entry {entry} ({cause})"
        ),
        None => format!(
            "bundle {shown} is not a complete zip archive (truncated or corrupt): {cause}"
        ),
    };
    Error::integrity(message).with_hint(DAMAGED_HINT)
}

pub(crate) fn not_stored(path: &str, method: CompressionMethod) -> Error {
    Error::integrity(format!(
        "entry {path} uses zip compression method {method:?}; bundle entries are always STORE"
    ))
    .with_hint("the bundle was not written by this tool or was tampered with")
}
