//! Reading `manifest.json` within its bounds: size, nesting, values, entries, metadata.

use std::io::Read;

use zip::{CompressionMethod, ZipArchive};

use super::entry_name::MANIFEST_PATH;
use super::manifest::{Manifest, MANIFEST_FORMAT_VERSION, MANIFEST_LIMITS, MAX_MANIFEST_BYTES};
use super::reader::not_stored;
use super::source::SourceReader;
use crate::json_limits::check_shape;
use crate::{Error, ErrorKind, Result};

/// Reads and parses the bundle's `manifest.json`, never more than
/// [`MAX_MANIFEST_BYTES`] of it.
pub(crate) fn read_manifest(
    archive: &mut ZipArchive<SourceReader>,
    shown: &str,
) -> Result<Manifest> {
    let index = archive.index_for_name(MANIFEST_PATH).ok_or_else(|| {
        Error::integrity(format!(
            "bundle {shown} has no {MANIFEST_PATH}: it is incomplete or not a bundle"
        ))
        .with_hint("a bundle whose export failed has no manifest; use another bundle")
    })?;
    let reading = |e: zip::result::ZipError| {
        Error::integrity(format!("entry {MANIFEST_PATH} cannot be read: {e}"))
    };
    let entry = archive.by_index(index).map_err(reading)?;
    if entry.compression() != CompressionMethod::Stored {
        return Err(not_stored(MANIFEST_PATH, entry.compression()));
    }
    if entry.size() > MAX_MANIFEST_BYTES {
        return Err(manifest_too_large(&format!("{} bytes", entry.size())));
    }
    // The declared size may lie: never read more than the limit (and one byte to tell).
    let mut bytes = Vec::new();
    entry
        .take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::integrity(format!("entry {MANIFEST_PATH} is corrupt: {e}")))?;
    parse_manifest(&bytes)
}

fn manifest_too_large(size: &str) -> Error {
    Error::integrity(format!(
        "entry {MANIFEST_PATH} is {size}, more than the {MAX_MANIFEST_BYTES} bytes a manifest may have"
    ))
    .with_hint(TAMPERED_HINT)
}

/// Parses `manifest.json`: checks its size and shape (nesting, number of values) on the
/// raw bytes, then the format version, then parses it into the typed [`Manifest`]
/// (never into an untyped tree), refusing more entries or metadata than allowed while it
/// reads.
pub(crate) fn parse_manifest(bytes: &[u8]) -> Result<Manifest> {
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(manifest_too_large("larger than that"));
    }
    if let Some(problem) = check_shape(bytes, MANIFEST_LIMITS) {
        return Err(
            Error::integrity(format!("entry {MANIFEST_PATH} is refused: {problem}"))
                .with_hint(TAMPERED_HINT),
        );
    }
    /// Just the version, read without building anything else.
    #[derive(serde::Deserialize)]
    struct VersionProbe {
        #[serde(rename = "formatVersion")]
        format_version: Option<u64>,
    }
    let version = match serde_json::from_slice::<VersionProbe>(bytes) {
        Ok(VersionProbe {
            format_version: Some(version),
        }) => version,
        Ok(_) => return Err(no_version()),
        Err(e) if e.is_data() => return Err(no_version()),
        Err(e) => {
            return Err(Error::integrity(format!(
                "entry {MANIFEST_PATH} is not valid JSON: {e}"
            )))
        }
    };
    if version != u64::from(MANIFEST_FORMAT_VERSION) {
        return Err(Error::new(
            ErrorKind::UnsupportedVersion,
            format!(
                "bundle manifest format version {version} is not supported (this build reads version {MANIFEST_FORMAT_VERSION})"
            ),
        )
        .with_hint("read this bundle with a version of backup-rs that supports its format"));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| Error::integrity(format!("entry {MANIFEST_PATH} is malformed: {e}")))
}

fn no_version() -> Error {
    Error::integrity(format!(
        "entry {MANIFEST_PATH} has no numeric formatVersion"
    ))
}

/// What a user can do about a bundle refused for its shape.
pub(crate) const TAMPERED_HINT: &str =
    "the bundle was not written by this tool or was tampered with; restore from another bundle";
