//! The manifest: what a bundle holds, written last as `manifest.json`.

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::crypto::{Encryption, EncryptionInfo};
use crate::json_limits::JsonLimits;
use crate::ArtifactDescriptor;

/// The manifest format version this build writes and reads.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

/// The largest `manifest.json` read or written (a manifest takes a few KiB per entry).
pub const MAX_MANIFEST_BYTES: u64 = 32 * 1024 * 1024;
/// Most data entries a manifest lists.
pub const MAX_MANIFEST_ENTRIES: usize = 50_000;
/// Deepest JSON nesting in a manifest (room for artifact metadata nested
/// [`MAX_METADATA_DEPTH`](crate::artifact::MAX_METADATA_DEPTH) levels).
pub const MAX_MANIFEST_DEPTH: usize = 64;
/// Most JSON values (object keys included) in a manifest: what bounds the memory a
/// manifest takes once parsed, whatever its bytes hold.
pub const MAX_MANIFEST_VALUES: usize = 2_000_000;

/// The bounds a manifest's bytes are checked against before they are parsed.
pub(crate) const MANIFEST_LIMITS: JsonLimits = JsonLimits {
    max_depth: MAX_MANIFEST_DEPTH,
    max_values: MAX_MANIFEST_VALUES,
    max_text_bytes: MAX_MANIFEST_BYTES as usize,
};

/// Describes a whole bundle: identity, why it was made, and every entry with its checksum.
///
/// Serialised as camelCase JSON into `manifest.json`, the last entry of the bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Manifest format version; only [`MANIFEST_FORMAT_VERSION`] is read.
    pub format_version: u32,
    /// Unique id of the bundle (UUID v4).
    pub id: String,
    /// When the bundle was written, RFC 3339 in UTC.
    pub created_at: String,
    /// A user's label (`before-upgrade`); labelled bundles are never pruned.
    #[serde(default)]
    pub label: Option<String>,
    /// What the bundle is for, in the user's words.
    #[serde(default)]
    pub purpose: Option<String>,
    /// Who made it: a user, a schedule, or a safety backup before a restore.
    pub kind: BundleKind,
    /// Why it was made (`before restore of bundle …`, `daily schedule`).
    #[serde(default)]
    pub reason: Option<String>,
    /// The tool that wrote the bundle.
    pub tool: ToolInfo,
    /// What the bundle contains, at a glance.
    pub includes: Includes,
    /// Size and checksum of `snapshot.json`, when the bundle holds one.
    #[serde(default)]
    pub snapshot: Option<EntryChecksum>,
    /// Every data entry, in the order written; at most [`MAX_MANIFEST_ENTRIES`].
    #[serde(default, deserialize_with = "bounded_entries")]
    pub entries: Vec<ManifestEntry>,
    /// How the data entries are encrypted (absent when they are not): the method and
    /// public parameters only, never a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionInfo>,
    /// With a passphrase: the bundle's age X25519 identity (which every data entry is
    /// encrypted to) as an armored age file encrypted with the passphrase (scrypt, the
    /// work factor of [`encryption`](Self::encryption)). Ciphertext, never a secret; at
    /// most [`MAX_WRAPPED_IDENTITY_BYTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapped_identity: Option<String>,
}

/// The longest [`Manifest::wrapped_identity`] a reader accepts (one armored age file
/// holding one identity is well under 1 KiB).
pub const MAX_WRAPPED_IDENTITY_BYTES: usize = 4096;

/// Deserializes the entry list, refusing more than [`MAX_MANIFEST_ENTRIES`] while it
/// reads.
fn bounded_entries<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<ManifestEntry>, D::Error> {
    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = Vec<ManifestEntry>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of manifest entries")
        }

        fn visit_seq<A: SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut entries = Vec::new();
            while let Some(entry) = seq.next_element()? {
                if entries.len() == MAX_MANIFEST_ENTRIES {
                    return Err(de::Error::custom(format!(
                        "the manifest lists more than {MAX_MANIFEST_ENTRIES} entries"
                    )));
                }
                entries.push(entry);
            }
            Ok(entries)
        }
    }
    deserializer.deserialize_seq(Entries)
}

impl Manifest {
    /// The entry stored at `path`, if any.
    pub fn entry(&self, path: &str) -> Option<&ManifestEntry> {
        self.entries.iter().find(|e| e.path == path)
    }

    /// The entries of one service, in the order written.
    pub fn entries_of<'a>(&'a self, service: &'a str) -> impl Iterator<Item = &'a ManifestEntry> {
        self.entries.iter().filter(move |e| e.service == service)
    }

    /// Sum of the stored sizes of all entries (and of `snapshot.json`).
    pub fn stored_bytes(&self) -> u64 {
        let data: u64 = self.entries.iter().map(|e| e.size).sum();
        data + self.snapshot.as_ref().map_or(0, |s| s.size)
    }
}

/// Who made a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BundleKind {
    /// Asked for by a user.
    #[default]
    Manual,
    /// Made by a schedule or a guard before a destructive operation.
    Automatic,
    /// Taken of the current state right before a restore, for rollback.
    Safety,
}

/// How an entry's bytes are stored inside its (always STORE) zip entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// The artifact's bytes as they are.
    None,
    /// One zstd stream (`.zst`), readable with the stock `zstd` tool.
    #[default]
    Zstd,
}

/// The program that wrote a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolInfo {
    /// Program name, `backup-rs`.
    pub name: String,
    /// Its version.
    pub version: String,
}

impl ToolInfo {
    /// This library.
    pub fn current() -> Self {
        ToolInfo {
            name: "backup-rs".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// What a bundle contains, at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Includes {
    /// Whether the bundle holds the workspace config (`snapshot.json`).
    pub config: bool,
    /// Services whose data the bundle holds, in the order first written.
    pub services: Vec<String>,
}

/// Path, size and checksum of a bundle entry that is not artifact data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryChecksum {
    /// Path inside the bundle.
    pub path: String,
    /// Stored size in bytes.
    pub size: u64,
    /// Lower-case hex sha256 of the stored bytes.
    pub sha256: String,
}

/// One artifact stored in a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestEntry {
    /// Path inside the bundle: `data/<service>/<artifact>[.zst]`.
    pub path: String,
    /// The service the artifact belongs to.
    pub service: String,
    /// What the artifact is (name, format, content type, source version), with any
    /// metadata the exporter reported after its stream ended merged in.
    pub artifact: ArtifactDescriptor,
    /// Stored bytes (after compression).
    pub size: u64,
    /// Lower-case hex sha256 of the stored bytes.
    pub sha256: String,
    /// Bytes of the artifact before compression.
    pub uncompressed_size: u64,
    /// How the stored bytes are compressed.
    pub compression: Compression,
    /// How the stored bytes are encrypted: `"none"`, or `"age"` (one age file holding
    /// the compressed bytes; see [`Manifest::encryption`] for how).
    pub encryption: String,
}

/// The encryption value of an unencrypted entry.
pub const ENCRYPTION_NONE: &str = "none";

/// How a bundle is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleOptions {
    /// A user's label, see [`Manifest::label`].
    pub label: Option<String>,
    /// What the bundle is for, see [`Manifest::purpose`].
    pub purpose: Option<String>,
    /// Who makes it.
    pub kind: BundleKind,
    /// Why it is made, see [`Manifest::reason`].
    pub reason: Option<String>,
    /// Compression of artifact entries (`snapshot.json` and `manifest.json` are never
    /// compressed).
    pub compression: Compression,
    /// zstd level when [`Compression::Zstd`] (1–22; 3 is zstd's default).
    pub zstd_level: i32,
    /// Encryption of data entries (`snapshot.json` and `manifest.json` stay plaintext).
    pub encryption: Encryption,
}

impl Default for BundleOptions {
    fn default() -> Self {
        BundleOptions {
            label: None,
            purpose: None,
            kind: BundleKind::Manual,
            reason: None,
            compression: Compression::Zstd,
            zstd_level: 3,
            encryption: Encryption::None,
        }
    }
}

impl BundleOptions {
    /// Sets the label.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Sets the purpose.
    pub fn with_purpose(mut self, purpose: impl Into<String>) -> Self {
        self.purpose = Some(purpose.into());
        self
    }

    /// Sets the kind.
    pub fn with_kind(mut self, kind: BundleKind) -> Self {
        self.kind = kind;
        self
    }

    /// Sets the reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Sets the compression of artifact entries.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Sets the zstd level.
    pub fn with_zstd_level(mut self, level: i32) -> Self {
        self.zstd_level = level;
        self
    }

    /// Sets the encryption of data entries.
    pub fn with_encryption(mut self, encryption: Encryption) -> Self {
        self.encryption = encryption;
        self
    }
}

/// What [`BundleReader::verify`](super::BundleReader::verify) checked.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// Every entry whose size and sha256 matched, `snapshot.json` first.
    pub entries: Vec<EntryChecksum>,
    /// Sum of the verified stored sizes.
    pub total_bytes: u64,
    /// Encrypted entries checked by their stored bytes only (size, sha256, CRC-32)
    /// because the reader has no key: not decrypted, their decompressed size unchecked.
    pub not_decrypted: Vec<String>,
}
