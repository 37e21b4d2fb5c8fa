//! Damaging bundles on purpose, to test that readers and restores refuse them.

use std::path::Path;

use backup_core::bundle::ManifestEntry;

/// Flips one byte in the middle of `entry`'s stored data inside the bundle file, leaving
/// the zip structure intact (so only the checksum can tell).
///
/// Reads the whole bundle: meant for the small bundles of tests.
///
/// # Panics
///
/// When the bundle cannot be read or written, or the entry is not found.
pub fn flip_byte_inside_entry(bundle: &Path, entry: &ManifestEntry) {
    let mut bytes = std::fs::read(bundle).unwrap_or_else(|e| panic!("read bundle: {e}"));
    // A local file header is 30 bytes, then the name, then the extra field, then the data;
    // the extra field's length is the header's last two bytes.
    let name = entry.path.as_bytes();
    let at = bytes
        .windows(name.len())
        .position(|w| w == name)
        .unwrap_or_else(|| panic!("entry `{}` not found in the bundle", entry.path));
    assert!(at >= 30, "entry name found before any local header");
    let extra_len = usize::from(u16::from_le_bytes([bytes[at - 2], bytes[at - 1]]));
    let offset = at + name.len() + extra_len + (entry.size as usize / 2);
    assert!(offset < bytes.len(), "entry too small to corrupt");
    bytes[offset] ^= 0x55;
    std::fs::write(bundle, bytes).unwrap_or_else(|e| panic!("write bundle: {e}"));
}
