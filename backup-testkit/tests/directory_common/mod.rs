//! Helpers the directory adapter's test files share: export to bytes, import from bytes,
//! and hand-built tar archives.

#![allow(dead_code)]

use std::path::Path;

use backup_core::artifact::{formats, ArtifactDescriptor, ByteStream};
use backup_core::directory::{self, DirectoryExporter, DirectoryImporter};
use backup_core::{DataExporter, DataImporter, ImportMode, ServiceTarget};
use bytes::Bytes;
use futures::TryStreamExt;
use serde_json::json;

/// A `directory` service at `path` with extra config fields.
pub(crate) fn service_with(path: &Path, extra: serde_json::Value) -> ServiceTarget {
    let mut config = json!({ "path": path });
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            config.insert(key.clone(), value.clone());
        }
    }
    ServiceTarget::local("files", directory::RECIPE, config)
}

/// The descriptor of the adapter's one artifact.
pub(crate) fn tar_descriptor() -> ArtifactDescriptor {
    ArtifactDescriptor::new(directory::ARTIFACT, formats::TAR, "application/x-tar")
}

/// Exports the tree at `path` to bytes.
pub(crate) async fn export_bytes(path: &Path) -> backup_core::Result<Vec<u8>> {
    let svc = service_with(path, json!({}));
    let data = DirectoryExporter.export(&svc, &tar_descriptor()).await?;
    let chunks: Vec<Bytes> = data.stream.try_collect().await?;
    Ok(chunks.concat())
}

/// `bytes` as a stream of 7000-byte chunks.
pub(crate) fn stream_of(bytes: Vec<u8>) -> ByteStream {
    Box::pin(futures::stream::iter(
        bytes
            .chunks(7000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    ))
}

/// Imports `bytes` into `target` with `force` and the extra config fields.
pub(crate) async fn import_bytes(
    target: &Path,
    bytes: Vec<u8>,
    extra: serde_json::Value,
) -> backup_core::Result<()> {
    DirectoryImporter
        .import(
            &service_with(target, extra),
            &tar_descriptor(),
            stream_of(bytes),
            ImportMode { force: true },
        )
        .await
}

/// Builds a tar archive entry by entry.
pub(crate) struct ArchiveBuilder {
    builder: tar::Builder<Vec<u8>>,
}

impl ArchiveBuilder {
    /// An empty archive.
    pub(crate) fn new() -> Self {
        ArchiveBuilder {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(1_600_000_000);
        header
    }

    /// A directory entry.
    pub(crate) fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut header = Self::header(tar::EntryType::Directory, mode, 0);
        self.builder
            .append_data(&mut header, path, std::io::empty())
            .expect("dir entry");
        self
    }

    /// A regular file entry.
    pub(crate) fn file(mut self, path: &str, mode: u32, content: &[u8]) -> Self {
        let mut header = Self::header(tar::EntryType::Regular, mode, content.len() as u64);
        self.builder
            .append_data(&mut header, path, content)
            .expect("file entry");
        self
    }

    /// A symlink entry.
    pub(crate) fn symlink(mut self, path: &str, target: &Path) -> Self {
        let mut header = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.builder
            .append_link(&mut header, path, target)
            .expect("symlink entry");
        self
    }

    /// A hard link entry.
    pub(crate) fn hard_link(mut self, path: &str, target: &str) -> Self {
        let mut header = Self::header(tar::EntryType::Link, 0o644, 0);
        self.builder
            .append_link(&mut header, path, target)
            .expect("hard link entry");
        self
    }

    /// An entry of any other type without data (FIFO, device).
    pub(crate) fn special(mut self, path: &str, kind: tar::EntryType, mode: u32) -> Self {
        let mut header = Self::header(kind, mode, 0);
        self.builder
            .append_data(&mut header, path, std::io::empty())
            .expect("special entry");
        self
    }

    /// The archive's bytes.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.builder.into_inner().expect("tar")
    }
}

/// Everything observable about the tree at `root`, the root included: the `find`
/// listing and the content digest.
pub(crate) fn observe(root: &Path) -> (Vec<String>, String) {
    (
        backup_testkit::tree::find_listing(root),
        backup_testkit::tree::tree_digest(root),
    )
}
