//! Names of bundle entries: building them safely when writing, refusing unsafe ones when
//! reading.

use super::manifest::Compression;
use crate::{Error, ErrorKind, Result};

/// Path of the manifest inside a bundle (always the last entry).
pub const MANIFEST_PATH: &str = "manifest.json";
/// Path of the workspace snapshot inside a bundle.
pub const SNAPSHOT_PATH: &str = "snapshot.json";
/// Folder of the artifact entries.
pub const DATA_DIR: &str = "data";

/// The longest service or artifact name accepted (bytes), well under file-name limits.
const MAX_COMPONENT_LEN: usize = 200;

/// The entry path of an artifact: `data/<service>/<artifact>[.zst]`.
pub(crate) fn data_entry_path(
    service: &str,
    artifact: &str,
    compression: Compression,
    encrypted: bool,
) -> String {
    let suffix = match compression {
        Compression::None => "",
        Compression::Zstd => ".zst",
    };
    let age = if encrypted { ".age" } else { "" };
    format!("{DATA_DIR}/{service}/{artifact}{suffix}{age}")
}

/// Checks that a service or artifact name can be one path component of an entry.
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`] naming `what`, the name and the problem.
pub(crate) fn validate_component(what: &str, name: &str) -> Result<()> {
    if let Some(problem) = component_problem(name) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{what} name {name:?} cannot be stored in a bundle: {problem}"),
        )
        .with_hint("use a name without slashes, backslashes or control characters"));
    }
    Ok(())
}

fn component_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("it is a relative path component")
    } else if name.contains('/') {
        Some("it contains a slash")
    } else if name.contains('\\') {
        Some("it contains a backslash")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if name.len() > MAX_COMPONENT_LEN {
        Some("it is longer than 200 bytes")
    } else {
        None
    }
}

/// Why an entry path read from a bundle is unsafe, or `None` when it is safe.
///
/// Safe means: relative, `/`-separated, no empty, `.` or `..` components, no backslashes,
/// no drive letters and no control characters, so that extracting it can never escape the
/// target directory.
pub(crate) fn path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("the name is empty");
    }
    if path.starts_with('/') {
        return Some("it is an absolute path");
    }
    if path.contains('\\') {
        return Some("it contains a backslash");
    }
    if path.chars().any(char::is_control) {
        return Some("it contains a control character");
    }
    let bytes = path.as_bytes();
    if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
        return Some("it starts with a drive letter");
    }
    for component in path.split('/') {
        match component {
            "" => return Some("it has an empty path component"),
            "." | ".." => return Some("it has a relative path component (path traversal)"),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_absolute_paths_are_refused() {
        for bad in [
            "../x",
            "/abs",
            "data/../../x",
            "data/./x",
            "data//x",
            "data/x/",
            "data\\x",
            "C:/x",
            "",
        ] {
            assert!(path_problem(bad).is_some(), "{bad:?} should be refused");
        }
        for good in ["manifest.json", "data/db/app.dump.zst", "data/a..b/c"] {
            assert_eq!(path_problem(good), None, "{good:?} should be accepted");
        }
    }

    #[test]
    fn components_with_separators_are_refused() {
        for bad in ["", ".", "..", "a/b", "a\\b", "a\nb"] {
            assert!(validate_component("service", bad).is_err(), "{bad:?}");
        }
        assert!(validate_component("service", "db-1.main").is_ok());
    }

    #[test]
    fn data_paths_carry_the_compression_suffix() {
        assert_eq!(
            data_entry_path("db", "app.dump", Compression::Zstd, false),
            "data/db/app.dump.zst"
        );
        assert_eq!(
            data_entry_path("db", "app.dump", Compression::None, false),
            "data/db/app.dump"
        );
    }
}
