//! The bundle: one zip file holding `snapshot.json`, each artifact under `data/`, and
//! `manifest.json` written last.
//!
//! ```text
//! snapshot.json                       the WorkspaceSnapshot
//! data/<service>/<artifact>[.zst][.age]
//!                                     each artifact, zip method STORE, ZIP64 sizes;
//!                                     compression is a zstd stream inside the entry,
//!                                     encryption (optional) one age file around it
//! manifest.json                       written last: format version, id, kind, label, …,
//!                                     and per entry path, size and sha256 of the stored bytes
//! ```
//!
//! Every entry is stored, so stock `unzip` lists, tests and extracts a bundle, and
//! `zstd -d` decompresses a `.zst` entry. [`BundleWriter`] writes forward only (any
//! [`std::io::Write`] sink) and hashes while streaming; [`BundleReader`] refuses anything
//! that is not exactly what the manifest describes.
//!
//! A reader reads through a [`BundleSource`] (a local file, memory, or object storage
//! with ranged reads, see [`BundleReader::open_source`]) in reads of at least
//! [`SOURCE_READ_SIZE`] or exact spans, so no full local copy is needed.
//!
//! With [`BundleOptions::encryption`] each data entry is compressed, then encrypted with
//! age to X25519 recipients: the given public keys, or, with a passphrase, a fresh
//! identity generated for the bundle and stored in the manifest's `wrappedIdentity`
//! encrypted with the passphrase (age scrypt, pinned work factor: one scrypt run per
//! bundle, not per entry). `unzip -p bundle.zip data/db/app.dump.zst.age | age -d -i
//! key.txt | zstd -d` restores an entry with stock tools; with a passphrase, first
//! `unzip -p bundle.zip manifest.json | jq -r .wrappedIdentity | age -d > key.txt` (age
//! asks for the passphrase). Checksums stay over the stored bytes, so listing and checksum
//! verification need no key; `snapshot.json` and `manifest.json` stay plaintext and
//! never hold a secret. [`BundleReader::with_decryption`] gives the reader the key.
//!
//! ```no_run
//! # async fn demo(snapshot: backup_core::WorkspaceSnapshot, data: backup_core::ArtifactData)
//! # -> backup_core::Result<()> {
//! use backup_core::bundle::{BundleOptions, BundleReader, BundleWriter};
//! use backup_core::progress::NoProgress;
//! use backup_core::ArtifactDescriptor;
//!
//! let path = std::path::Path::new("backups/2026-01-01.zip");
//! let mut writer = BundleWriter::create(path, BundleOptions::default()).await?;
//! writer.write_snapshot(&snapshot).await?;
//! let artifact = ArtifactDescriptor::new("app.dump", "postgres/custom", "application/octet-stream");
//! writer.write_artifact("db", &artifact, data, &NoProgress).await?;
//! writer.finish().await?;
//!
//! let reader = BundleReader::open(path).await?;
//! reader.verify(&NoProgress).await?;
//! # Ok(()) }
//! ```

mod age_frame;
pub use age_frame::AgeWriter;
mod age_write;
mod armor;
mod central_dir;
mod crypto;
mod entry_name;
mod entry_stream;
mod key_check;
pub use key_check::UnlockedKey;
mod local_header;
mod local_scan;
mod manifest;
mod manifest_read;
mod publish;
mod reader;
mod source;
mod span_read;
mod writer;
mod zip_thread;

pub use crypto::{
    Decryption, Encryption, EncryptionInfo, EncryptionMethod, Identities, Passphrase,
    DEFAULT_SCRYPT_WORK_FACTOR, ENCRYPTION_AGE, MAX_SCRYPT_WORK_FACTOR,
};
pub use entry_name::{DATA_DIR, MANIFEST_PATH, SNAPSHOT_PATH};
pub use manifest::{
    BundleKind, BundleOptions, Compression, EntryChecksum, Includes, Manifest, ManifestEntry,
    ToolInfo, VerifyReport, ENCRYPTION_NONE, MANIFEST_FORMAT_VERSION, MAX_MANIFEST_BYTES,
    MAX_MANIFEST_DEPTH, MAX_MANIFEST_ENTRIES, MAX_MANIFEST_VALUES, MAX_WRAPPED_IDENTITY_BYTES,
};
pub use reader::BundleReader;
pub use source::{BundleSource, FileSource, MemorySource, SOURCE_READ_SIZE};
pub use writer::BundleWriter;
