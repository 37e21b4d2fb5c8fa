//! A 200 MB directory service downloaded and uploaded again through the data endpoints,
//! with the server's peak memory far below the data size (streamed, never buffered).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Workspace;
use futures::StreamExt;
use reqwest::Method;
use tokio::io::AsyncWriteExt;

const DATA: u64 = 200 * 1024 * 1024;

/// Writes `size` bytes of incompressible-looking data (xorshift).
fn write_noise(path: &std::path::Path, size: u64) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..size / block.len() as u64 {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        out.write_all(&block).unwrap();
    }
    out.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_200_mb_download_and_upload_keep_server_memory_flat() {
    let ws = Workspace::new(false, false);
    write_noise(&ws.files.join("big.bin"), DATA);
    let server = ws.serve(&[]);
    let before = server.peak_rss();

    // Download to a file, chunk by chunk.
    let resp = export_files(&server).await;
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    let artifact = resp.headers()["x-artifact-name"]
        .to_str()
        .unwrap()
        .to_string();
    let download = ws.dir.path().join("files.download");
    let mut file = tokio::fs::File::create(&download).await.unwrap();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        file.write_all(&chunk.unwrap()).await.unwrap();
    }
    file.flush().await.unwrap();
    let size = std::fs::metadata(&download).unwrap().len();
    assert!(size > DATA, "the artifact holds the 200 MB file: {size}");

    // Change the service, then upload the download back as a streamed multipart body.
    std::fs::remove_file(ws.files.join("big.bin")).unwrap();
    std::fs::write(ws.files.join("a.txt"), "changed\n").unwrap();
    let file = tokio::fs::File::open(&download).await.unwrap();
    let query = format!("artifact={artifact}&force=true");
    let (status, body) = server
        .import_data("files", &query, &content_type, file_stream(file))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["bytes"], size);
    assert_eq!(
        std::fs::metadata(ws.files.join("big.bin")).unwrap().len(),
        DATA
    );
    assert_eq!(
        std::fs::read_to_string(ws.files.join("a.txt")).unwrap(),
        "alpha\n"
    );

    let peak = server.peak_rss();
    eprintln!(
        "server peak RSS: {} MiB (at start {} MiB)",
        peak >> 20,
        before >> 20
    );
    assert!(
        peak < 64 * 1024 * 1024,
        "server peak RSS {peak} (at start {before}) is not far below the {DATA} bytes moved"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_over_the_size_limit_is_413() {
    let ws = Workspace::new(false, false);
    std::fs::write(ws.files.join("big.bin"), vec![1u8; 3 << 20]).unwrap();
    let server = ws.serve(&["--max-upload-bytes", "1048576"]);
    let resp = export_files(&server).await;
    let artifact = resp.headers()["x-artifact-name"]
        .to_str()
        .unwrap()
        .to_string();
    let data = resp.bytes().await.unwrap();
    let query = format!("artifact={artifact}&force=true");
    let (status, body) = server
        .import_data(
            "files",
            &query,
            "application/x-tar",
            futures::stream::iter([Ok(data)]),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["kind"], "resource-exhausted");
    // The service kept its data (the directory importer stages before swapping).
    assert_eq!(
        std::fs::metadata(ws.files.join("big.bin")).unwrap().len(),
        3 << 20
    );
}

/// `POST …/deployments/files/export-data`.
async fn export_files(server: &common::Server) -> reqwest::Response {
    let path = "/api/workspaces/shop/deployments/files/export-data";
    server.request(Method::POST, path).send().await.unwrap()
}

/// A file as a stream of 64 KiB chunks.
fn file_stream(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    futures::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    })
}
