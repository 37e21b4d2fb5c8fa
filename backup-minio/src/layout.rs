//! The `s3/tar` archive layout: entry names, per-object records and tar headers.
//!
//! ```text
//! s3-backup.json        first: format version, bucket, its settings, export options
//! meta/00000001.json    the record of object (version) 1: key, size, ETag, metadata, …
//! objects/<key>         its bytes, at the key itself when the key is a safe path
//! encoded/00000002      the bytes of object 2, whose key is no safe path
//! meta/00000003.json    a delete marker: a record without bytes
//! …
//! end.json              last: counts and bytes; an archive without it is truncated
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the layout written by this crate.
pub const LAYOUT_VERSION: u32 = 1;
/// The first entry.
pub const HEAD_ENTRY: &str = "s3-backup.json";
/// The last entry.
pub const END_ENTRY: &str = "end.json";
/// Directory of per-object records.
pub const META_DIR: &str = "meta/";
/// Directory of objects stored under their key.
pub const OBJECTS_DIR: &str = "objects/";
/// Directory of objects whose key is no safe path.
pub const ENCODED_DIR: &str = "encoded/";
/// Longest key stored under its own name (stock tar handles longer, but file systems
/// limit a path to 4096 bytes).
pub const MAX_PLAIN_KEY_BYTES: usize = 1024;
/// Largest JSON entry the importer reads (records, head, end).
pub const MAX_JSON_ENTRY: u64 = 16 * 1024 * 1024;

/// The first entry: what was exported and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveHead {
    /// [`LAYOUT_VERSION`].
    pub layout_version: u32,
    /// The source bucket.
    pub bucket: String,
    /// Only keys with this prefix were exported.
    pub prefix: String,
    /// Whether every version was exported (`true`) or only the latest.
    pub all_versions: bool,
    /// Bucket settings (see [`crate::settings::BucketSettings`]).
    pub settings: crate::settings::BucketSettings,
}

/// The last entry: what the archive holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveEnd {
    /// Records (objects, versions and delete markers).
    pub records: u64,
    /// Delete markers among them.
    pub delete_markers: u64,
    /// Bytes of object data.
    pub bytes: u64,
}

/// One object version as the server returned it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRecord {
    /// Position in the archive, from 1.
    pub seq: u64,
    /// The object's key, exactly.
    pub key: String,
    /// Tar path of the bytes; `None` for a delete marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// ETag as returned (with quotes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Stored checksums by algorithm (`CRC32`, `CRC32C`, `CRC64NVME`, `SHA1`, `SHA256`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checksums: BTreeMap<String, String>,
    /// Last-Modified, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// Content-Type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Cache-Control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// Content-Encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// Content-Disposition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    /// Content-Language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// Expires, as the server sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// User metadata (`x-amz-meta-*`) exactly as returned.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Object tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Storage class, when the server reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Version id, when versions were exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Whether this was the current version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_latest: Option<bool>,
    /// A delete marker (no bytes).
    #[serde(default)]
    pub delete_marker: bool,
}

/// Name of the record entry of object `seq`.
pub fn meta_entry(seq: u64) -> String {
    format!("{META_DIR}{seq:08}.json")
}

/// Tracks written object paths so a key never needs a file where a directory is
/// (`a` then `a/b`): keys arrive sorted, so only files that are prefixes of the current
/// key can matter, and they form a stack.
#[derive(Debug, Default)]
pub struct PathPlanner {
    files: Vec<String>,
}

impl PathPlanner {
    /// The tar path for the bytes of `key` (record `seq`).
    pub fn path_for(&mut self, key: &str, seq: u64) -> String {
        while self
            .files
            .last()
            .is_some_and(|f| !key.starts_with(f.as_str()))
        {
            self.files.pop();
        }
        let under_file = self
            .files
            .iter()
            .any(|f| key.len() > f.len() && key.as_bytes()[f.len()] == b'/');
        if !is_safe_path(key) || under_file {
            return format!("{ENCODED_DIR}{seq:08}");
        }
        if self.files.last().map(String::as_str) != Some(key) {
            self.files.push(key.to_string());
        }
        format!("{OBJECTS_DIR}{key}")
    }
}

/// Whether stock `tar` extracts `key` to `objects/<key>` unchanged: relative, no empty,
/// `.` or `..` segment, no trailing `/`, no NUL or backslash, each segment at most 255
/// bytes and the key at most [`MAX_PLAIN_KEY_BYTES`].
pub fn is_safe_path(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_PLAIN_KEY_BYTES
        && !key.contains(['\0', '\\'])
        && key
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && s.len() <= 255)
}

/// The tar header bytes (with a GNU long-name entry first when needed) of a regular file
/// at `path` of `size` bytes, modified at `mtime` (seconds since the epoch).
///
/// # Errors
///
/// When the tar crate refuses the path.
pub fn file_header(path: &str, size: u64, mtime: u64) -> std::io::Result<Vec<u8>> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    let mut builder = tar::Builder::new(Vec::with_capacity(1024));
    // The data follows separately: with an empty reader only the header(s) are written.
    builder.append_data(&mut header, path, std::io::empty())?;
    // Taken out before the builder is dropped: `into_inner` would append the two
    // end-of-archive blocks.
    Ok(std::mem::take(builder.get_mut()))
}

/// Zero bytes padding `size` to the 512-byte block.
pub fn padding(size: u64) -> usize {
    let rest = (size % 512) as usize;
    if rest == 0 {
        0
    } else {
        512 - rest
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_keys_are_encoded() {
        for key in [
            "",
            "a/",
            "/abs",
            "a//b",
            "../up",
            "a/./b",
            "x\\y",
            &"k".repeat(2000),
        ] {
            assert!(!is_safe_path(key), "{key:?}");
        }
        for key in ["a", "dir/sub/file.txt", "ünï cødé +%.txt", "a b"] {
            assert!(is_safe_path(key), "{key:?}");
        }
    }

    #[test]
    fn a_key_under_a_file_key_is_encoded() {
        let mut p = PathPlanner::default();
        assert_eq!(p.path_for("a", 1), "objects/a");
        assert_eq!(p.path_for("a", 2), "objects/a");
        assert_eq!(p.path_for("a.txt", 3), "objects/a.txt");
        assert_eq!(p.path_for("a/b", 4), "encoded/00000004");
        assert_eq!(p.path_for("b/c", 5), "objects/b/c");
    }

    #[test]
    fn long_paths_get_a_gnu_long_name() {
        let path = format!("objects/{}", "d/".repeat(100) + "f");
        let bytes = file_header(&path, 10, 0).unwrap();
        assert_eq!(bytes.len(), 512 * 3);
        let short = file_header("objects/x", 10, 0).unwrap();
        assert_eq!(short.len(), 512);
    }
}
