//! A byte flipped anywhere in the zip structure of a bundle (local headers, data
//! descriptors, central directory) that stock `unzip -t` notices is also refused by
//! `BundleReader::open` + `verify`: a bundle that verifies is a sound zip.

#[path = "bundle_support.rs"]
mod support;

use std::ops::Range;
use std::path::Path;

use backup_core::bundle::{BundleOptions, BundleWriter, Compression};
use backup_core::progress::NoProgress;
use backup_core::{ArtifactData, ErrorKind};
use support::*;

/// A small zstd bundle: snapshot, one artifact.
async fn small_bundle(path: &Path) {
    let options = BundleOptions::default().with_compression(Compression::Zstd);
    let mut writer = BundleWriter::create(path, options).await.expect("create");
    writer.write_snapshot(&snapshot()).await.expect("snapshot");
    writer
        .write_artifact(
            "db",
            &descriptor("app.dump"),
            ArtifactData::from_stream(stream_of(&pseudo_random(2000, 5), 512)),
            &NoProgress,
        )
        .await
        .expect("artifact");
    writer.finish().await.expect("finish");
}

/// The byte ranges of the zip structure: each entry's local header with its name and
/// extra field, each data descriptor, and the central directory with its end records.
fn structure(path: &Path) -> Vec<Range<usize>> {
    let file = std::fs::File::open(path).expect("open");
    let len = usize::try_from(file.metadata().expect("meta").len()).expect("usize");
    let mut archive = zip::ZipArchive::new(file).expect("zip");
    let mut ranges = Vec::new();
    let mut starts: Vec<(usize, usize)> = Vec::new();
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).expect("entry");
        let header = usize::try_from(entry.header_start()).expect("usize");
        let data = usize::try_from(entry.data_start().expect("data start")).expect("usize");
        let end = data + usize::try_from(entry.compressed_size()).expect("usize");
        ranges.push(header..data);
        starts.push((header, end));
    }
    let dir = usize::try_from(archive.central_directory_start()).expect("usize");
    starts.sort_unstable();
    // Between an entry's data and the next header (or the directory): its descriptor.
    for (i, (_, end)) in starts.iter().enumerate() {
        let next = starts.get(i + 1).map_or(dir, |(h, _)| *h);
        ranges.push(*end..next);
    }
    ranges.push(dir..len);
    ranges
}

#[tokio::test]
async fn every_structure_byte_unzip_rejects_is_rejected_by_open_or_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.zip");
    small_bundle(&good).await;
    let (ok, out) = unzip_test(&good);
    assert!(ok, "{out}");
    let bytes = std::fs::read(&good).expect("read");
    let damaged = dir.path().join("damaged.zip");

    let mut unzip_rejected = 0;
    let mut missed = Vec::new();
    for range in structure(&good) {
        for at in range {
            let mut copy = bytes.clone();
            copy[at] ^= 0x01;
            std::fs::write(&damaged, &copy).expect("write");
            if unzip_test(&damaged).0 {
                continue;
            }
            unzip_rejected += 1;
            let refused = match open_checked(&damaged).await {
                Err(err) => {
                    assert!(
                        matches!(
                            err.kind(),
                            ErrorKind::Integrity | ErrorKind::UnsupportedVersion
                        ),
                        "byte {at}: {err}"
                    );
                    true
                }
                Ok(reader) => reader.verify(&NoProgress).await.is_err(),
            };
            if !refused {
                missed.push(at);
            }
        }
    }
    assert!(
        unzip_rejected > 20,
        "only {unzip_rejected} flips rejected by unzip"
    );
    assert!(
        missed.is_empty(),
        "unzip -t rejects these flipped bytes but open + verify accept them: {missed:?}"
    );
}

#[tokio::test]
async fn a_renamed_local_header_is_rejected_naming_the_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("b.zip");
    small_bundle(&path).await;
    let mut bytes = std::fs::read(&path).expect("read");
    // The first occurrence of the name is in its local header.
    let name = b"data/db/app.dump.zst";
    let at = bytes
        .windows(name.len())
        .position(|w| w == name)
        .expect("name");
    bytes[at + 8] = b'X';
    std::fs::write(&path, &bytes).expect("write");
    let err = open_checked(&path).await.expect_err("local header");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(
        err.message().contains("data/db/app.dump.zst") && err.message().contains("local header"),
        "{err}"
    );
}

#[tokio::test]
async fn an_end_record_claiming_2_pow_62_entries_is_refused_without_aborting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("b.zip");
    small_bundle(&path).await;
    let bytes = std::fs::read(&path).expect("read");
    let eocd = bytes
        .windows(4)
        .rposition(|w| w == b"PK\x05\x06")
        .expect("end record");
    let dir_size = u32::from_le_bytes(bytes[eocd + 12..eocd + 16].try_into().expect("4"));
    let dir_offset = u32::from_le_bytes(bytes[eocd + 16..eocd + 20].try_into().expect("4"));

    // A ZIP64 end record and locator claiming 2^62 entries, then an end record that
    // defers to them.
    let mut crafted = bytes[..eocd].to_vec();
    let zip64_at = crafted.len() as u64;
    crafted.extend_from_slice(b"PK\x06\x06");
    crafted.extend_from_slice(&44u64.to_le_bytes());
    crafted.extend_from_slice(&[45, 0, 45, 0]);
    crafted.extend_from_slice(&[0; 8]);
    crafted.extend_from_slice(&(1u64 << 62).to_le_bytes());
    crafted.extend_from_slice(&(1u64 << 62).to_le_bytes());
    crafted.extend_from_slice(&u64::from(dir_size).to_le_bytes());
    crafted.extend_from_slice(&u64::from(dir_offset).to_le_bytes());
    crafted.extend_from_slice(b"PK\x06\x07");
    crafted.extend_from_slice(&[0; 4]);
    crafted.extend_from_slice(&zip64_at.to_le_bytes());
    crafted.extend_from_slice(&1u32.to_le_bytes());
    crafted.extend_from_slice(b"PK\x05\x06");
    crafted.extend_from_slice(&[0; 4]);
    crafted.extend_from_slice(&[0xff; 4]);
    crafted.extend_from_slice(&[0xff; 8]);
    crafted.extend_from_slice(&[0; 2]);
    std::fs::write(&path, &crafted).expect("write");

    let err = open_checked(&path)
        .await
        .expect_err("impossible entry count");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
}
