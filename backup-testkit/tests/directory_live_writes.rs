//! A directory export never publishes a bundle whose tar disagrees with the files: a file
//! that changes while it is read fails the export, and no bundle is left at the path.

mod directory_common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backup_core::backup::{write_bundle, ServiceExport};
use backup_core::bundle::BundleOptions;
use backup_core::directory::DirectoryExporter;
use backup_core::progress::NoProgress;
use backup_core::ErrorKind;
use backup_testkit::data::pseudo_random_bytes;
use directory_common::service_with;
use serde_json::json;

/// Appends to `path` from another thread until dropped.
struct Appender {
    stop: Arc<AtomicBool>,
    appends: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Appender {
    fn start(path: std::path::PathBuf) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let appends = Arc::new(AtomicU64::new(0));
        let (stop_flag, counter) = (Arc::clone(&stop), Arc::clone(&appends));
        let thread = std::thread::spawn(move || {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .expect("open for append");
            while !stop_flag.load(Ordering::SeqCst) {
                file.write_all(&[b'+'; 4096]).expect("append");
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let appender = Appender {
            stop,
            appends,
            thread: Some(thread),
        };
        let started = Instant::now();
        while appender.appends.load(Ordering::SeqCst) == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "appender never ran"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        appender
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_appended_to_during_export_fails_the_export_and_publishes_no_bundle() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = tmp.path().join("source");
    std::fs::create_dir_all(source.join("logs")).expect("mkdir");
    std::fs::write(source.join("a-config.toml"), b"x = 1\n").expect("write");
    let log = source.join("logs/app.log");
    std::fs::write(&log, pseudo_random_bytes(24 << 20, 17)).expect("write");
    let bundles = tmp.path().join("bundles");
    std::fs::create_dir_all(&bundles).expect("mkdir");
    let path = bundles.join("live.backup.zip");

    let appender = Appender::start(log.clone());
    let services = vec![ServiceExport {
        target: service_with(&source, json!({})),
        exporter: Arc::new(DirectoryExporter),
    }];
    let result = write_bundle(
        &path,
        BundleOptions::default(),
        None,
        &services,
        &NoProgress,
    )
    .await;
    let appended = appender.appends.load(Ordering::SeqCst);
    drop(appender);

    let err = result.expect_err("an export of a file being appended to must fail");
    assert!(appended > 1, "the writer did not run during the export");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(err.message().contains("changed while it was read"), "{err}");
    assert!(err.message().contains("app.log"), "{err}");
    assert!(err.hint().is_some_and(|h| h.contains("stop")), "{err}");
    assert!(!path.exists(), "a bundle was published");
    let left: Vec<_> = std::fs::read_dir(&bundles)
        .expect("list")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_stays_still_is_archived_with_exactly_its_length() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = tmp.path().join("source");
    std::fs::create_dir_all(&source).expect("mkdir");
    let content = pseudo_random_bytes(3 << 20, 5);
    std::fs::write(source.join("data.bin"), &content).expect("write");
    let bytes = directory_common::export_bytes(&source)
        .await
        .expect("export");
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut found = false;
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        if entry.path().expect("path").ends_with("data.bin") {
            assert_eq!(entry.header().size().expect("size"), content.len() as u64);
            let mut read = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut read).expect("read");
            assert_eq!(read, content);
            found = true;
        }
    }
    assert!(found);
}
