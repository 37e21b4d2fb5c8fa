//! A hostile or stuck endpoint: replies nested without end, huge counts and lengths, and
//! silence end in a clear error, never in an aborted process or a hang.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use backup_core::{DataExporter, ErrorKind};
use backup_redis::RedisExporter;
use futures::StreamExt;
use serde_json::json;

/// What the fake server does after a command.
enum Answer {
    /// Send these bytes and read the next command.
    Reply(Vec<u8>),
    /// Send these bytes, then hold the connection open without a word.
    ThenSilence(Vec<u8>),
}

/// A fake "redis" on 127.0.0.1 answering each command (its arguments) with `answer`.
/// Returns the port; the listener thread lives until the test process ends.
fn fake_server(answer: fn(&[String]) -> Answer) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream, answer));
        }
    });
    port
}

fn serve(stream: TcpStream, answer: fn(&[String]) -> Answer) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(args) = read_command(&mut reader) {
        match answer(&args) {
            Answer::Reply(bytes) => {
                if writer.write_all(&bytes).is_err() {
                    return;
                }
            }
            Answer::ThenSilence(bytes) => {
                let _ = writer.write_all(&bytes);
                // Keep the connection open, say nothing, until the client gives up.
                let mut sink = [0u8; 1024];
                while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
                return;
            }
        }
    }
}

/// Reads one `*n` / `$len` command as the client sends it.
fn read_command(reader: &mut impl BufRead) -> Option<Vec<String>> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let count: usize = line.trim().strip_prefix('*')?.parse().ok()?;
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let len: usize = line.trim().strip_prefix('$')?.parse().ok()?;
        let mut arg = vec![0u8; len + 2];
        reader.read_exact(&mut arg).ok()?;
        arg.truncate(len);
        args.push(String::from_utf8_lossy(&arg).to_uppercase());
    }
    Some(args)
}

fn bulk(text: &str) -> Vec<u8> {
    format!("${}\r\n{text}\r\n", text.len()).into_bytes()
}

/// A plain standalone redis 7 as far as `INFO` goes.
fn info_reply(args: &[String]) -> Vec<u8> {
    match args.get(1).map(String::as_str) {
        Some("SERVER") => bulk("# Server\r\nredis_version:7.0.15\r\nrun_id:fake\r\n"),
        Some("CLUSTER") => bulk("# Cluster\r\ncluster_enabled:0\r\n"),
        _ => bulk("# Section\r\n"),
    }
}

fn service(port: u16, extra: serde_json::Value) -> backup_core::ServiceTarget {
    let mut config = json!({"host": "127.0.0.1", "port": port});
    if let (Some(base), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    backup_core::ServiceTarget::local("hostile", backup_redis::RECIPE, config)
}

/// Asks the fake server for `INFO` (what every operation starts with) and returns the error.
async fn info_error(answer: fn(&[String]) -> Answer) -> backup_core::Error {
    let port = fake_server(answer);
    RedisExporter
        .artifacts(&service(port, json!({})))
        .await
        .expect_err("a hostile reply must fail")
}

#[tokio::test]
async fn arrays_nested_a_million_deep_are_refused_without_overflowing_the_stack() {
    let error = info_error(|_| {
        let mut reply = b"*1\r\n".repeat(1_000_000);
        reply.extend_from_slice(b":1\r\n");
        Answer::Reply(reply)
    })
    .await;
    assert_eq!(error.kind(), ErrorKind::Integrity, "{error:?}");
    assert!(error.to_string().contains("nested deeper than"), "{error}");
}

#[tokio::test]
async fn an_array_announcing_billions_of_elements_is_refused_before_reading_them() {
    let error = info_error(|_| Answer::ThenSilence(b"*4000000000\r\n".to_vec())).await;
    assert_eq!(error.kind(), ErrorKind::Integrity, "{error:?}");
    assert!(error.to_string().contains("elements"), "{error}");
}

#[tokio::test]
async fn many_small_arrays_adding_up_to_too_many_elements_are_refused() {
    let error = info_error(|_| {
        // 2000 arrays of 1000 integers: each array is fine, the reply is not.
        let mut reply = b"*2000\r\n".to_vec();
        let inner = [b"*1000\r\n".to_vec(), b":1\r\n".repeat(1000)].concat();
        for _ in 0..2000 {
            reply.extend_from_slice(&inner);
        }
        Answer::Reply(reply)
    })
    .await;
    assert_eq!(error.kind(), ErrorKind::Integrity, "{error:?}");
    assert!(error.to_string().contains("elements"), "{error}");
}

#[tokio::test]
async fn a_bulk_string_announcing_gigabytes_is_refused_before_it_is_allocated() {
    let error = info_error(|_| Answer::ThenSilence(b"$8000000000\r\n".to_vec())).await;
    assert_eq!(error.kind(), ErrorKind::Integrity, "{error:?}");
    assert!(error.to_string().contains("larger than"), "{error}");
}

#[tokio::test]
async fn a_server_that_accepts_and_goes_silent_fails_with_the_idle_timeout() {
    let port = fake_server(|_| Answer::ThenSilence(Vec::new()));
    let start = Instant::now();
    let error = RedisExporter
        .artifacts(&service(port, json!({"idleTimeoutSeconds": 1})))
        .await
        .expect_err("silence must time out");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error:?}");
    assert!(error.to_string().contains("idle timeout"), "{error}");
    assert!(error
        .hint()
        .is_some_and(|h| h.contains("idleTimeoutSeconds")));
}

/// A server that starts a diskless RDB transfer and stops sending after its header.
fn stalls_mid_rdb(args: &[String]) -> Answer {
    match args.first().map(String::as_str) {
        Some("INFO") => Answer::Reply(info_reply(args)),
        Some("REPLCONF") => Answer::Reply(b"+OK\r\n".to_vec()),
        Some("SYNC") => {
            let mut reply = b"+FULLRESYNC 0000000000000000000000000000000000000000 0\r\n".to_vec();
            reply.extend_from_slice(b"$EOF:");
            reply.extend_from_slice(&[b'x'; 40]);
            reply.extend_from_slice(b"\r\nREDIS0010");
            Answer::ThenSilence(reply)
        }
        _ => Answer::Reply(b"-ERR unknown command\r\n".to_vec()),
    }
}

#[tokio::test]
async fn a_replication_stream_that_goes_silent_fails_with_the_idle_timeout() {
    let port = fake_server(stalls_mid_rdb);
    let svc = service(port, json!({"format": "rdb", "idleTimeoutSeconds": 1}));
    let artifacts = RedisExporter.artifacts(&svc).await.expect("artifacts");
    let start = Instant::now();
    let data = RedisExporter
        .export(&svc, &artifacts[0])
        .await
        .expect("the transfer starts");
    let mut stream = data.stream;
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        if let Err(e) = chunk {
            failure = Some(e);
            break;
        }
    }
    let failure = failure.expect("the stream must end with an error");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(failure.to_string().contains("idle timeout"), "{failure}");
}

#[tokio::test]
async fn a_server_silent_after_sync_fails_the_export_with_the_idle_timeout() {
    let port = fake_server(|args| match args.first().map(String::as_str) {
        Some("SYNC") => Answer::ThenSilence(Vec::new()),
        _ => stalls_mid_rdb(args),
    });
    let svc = service(port, json!({"format": "rdb", "idleTimeoutSeconds": 1}));
    let artifacts = RedisExporter.artifacts(&svc).await.expect("artifacts");
    let error = RedisExporter
        .export(&svc, &artifacts[0])
        .await
        .expect_err("silence after SYNC must time out");
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error:?}");
    assert!(error.to_string().contains("idle timeout"), "{error}");
}
