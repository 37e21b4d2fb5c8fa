//! A small RESP2 client over [`tokio::net::TcpStream`]: commands, pipelining, and bulk
//! strings streamed in both directions so a large value is never held in several copies.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use backup_core::{Error, ErrorKind, Result};

use crate::config::RedisConfig;
use crate::errors::reply_error;

/// Longest status/error/header line accepted from a server.
const MAX_LINE: usize = 64 * 1024;
/// Largest bulk string [`RespReader::read_reply`] buffers; larger ones must be streamed.
const MAX_BUFFERED_BULK: usize = 64 * 1024 * 1024;
/// How long a TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Buffer size of each direction.
const IO_BUFFER: usize = 256 * 1024;

/// One reply from the server.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    /// `+OK` and friends.
    Status(String),
    /// `-ERR …`: kept as text, mapped to an [`Error`] by the caller.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$n` bulk string, `None` for nil.
    Bulk(Option<Bytes>),
    /// `*n` array, `None` for nil.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as an error if it is one, for `context`.
    pub(crate) fn into_result(self, context: &str) -> Result<Reply> {
        match self {
            Reply::Error(message) => Err(reply_error(context, &message)),
            other => Ok(other),
        }
    }

    /// The bulk or status text, lossily decoded.
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Reply::Status(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// Where a connection goes, for error messages (never credentials).
#[derive(Debug, Clone)]
pub(crate) struct Endpoint(pub(crate) String);

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Maps an I/O error on an established connection to an [`ErrorKind::Unavailable`] error.
pub(crate) fn connection_lost(endpoint: &Endpoint, what: &str, source: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("connection to redis at {endpoint} lost while {what}: {source}"),
    )
    .with_hint("check that the redis server is still running and reachable, then retry")
    .with_source(source)
}

/// The reading half of a connection.
#[derive(Debug)]
pub(crate) struct RespReader {
    inner: BufReader<OwnedReadHalf>,
    endpoint: Endpoint,
}

/// The writing half of a connection.
#[derive(Debug)]
pub(crate) struct RespWriter {
    inner: BufWriter<OwnedWriteHalf>,
    endpoint: Endpoint,
}

/// A connection: both halves, usable together for request/response or split for pipelines.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) reader: RespReader,
    pub(crate) writer: RespWriter,
}

impl Connection {
    /// Connects to the server of `config` and authenticates when a password is set.
    pub(crate) async fn open(config: &RedisConfig) -> Result<Connection> {
        let endpoint = Endpoint(format!("{}:{}", config.host, config.port));
        let connect = TcpStream::connect((config.host.as_str(), config.port));
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!("connecting to redis at {endpoint} timed out"),
                )
                .with_hint("check host, port and firewalls"))
            }
            Ok(Err(e)) => {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!("cannot connect to redis at {endpoint}: {e}"),
                )
                .with_hint("check that redis-server is running and that host and port are right")
                .with_source(e))
            }
            Ok(Ok(stream)) => stream,
        };
        // Small commands must not wait for Nagle; large transfers fill whole segments anyway.
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let mut conn = Connection {
            reader: RespReader {
                inner: BufReader::with_capacity(IO_BUFFER, read),
                endpoint: endpoint.clone(),
            },
            writer: RespWriter {
                inner: BufWriter::with_capacity(IO_BUFFER, write),
                endpoint,
            },
        };
        if let Some(password) = &config.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &config.username {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            conn.command(&args).await?.into_result("authenticating")?;
        } else if let Some(user) = &config.username {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!("username `{user}` is set but no password"),
            )
            .with_hint("set `password` for the ACL user"));
        }
        Ok(conn)
    }

    /// Where this connection goes.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.reader.endpoint
    }

    /// Sends one command and reads its reply (which may be an error reply).
    pub(crate) async fn command(&mut self, args: &[&[u8]]) -> Result<Reply> {
        self.writer.command(args).await?;
        self.writer.flush().await?;
        self.reader.read_reply().await
    }

    /// Sends one command and fails on an error reply, naming `context`.
    pub(crate) async fn call(&mut self, context: &str, args: &[&[u8]]) -> Result<Reply> {
        self.command(args).await?.into_result(context)
    }
}

impl RespWriter {
    /// Buffers one command (nothing is sent before [`flush`](Self::flush) or a full buffer).
    pub(crate) async fn command(&mut self, args: &[&[u8]]) -> Result<()> {
        self.array_header(args.len()).await?;
        for arg in args {
            self.bulk(arg).await?;
        }
        Ok(())
    }

    /// Buffers `*n\r\n`.
    pub(crate) async fn array_header(&mut self, n: usize) -> Result<()> {
        self.raw(format!("*{n}\r\n").as_bytes()).await
    }

    /// Buffers one whole bulk string.
    pub(crate) async fn bulk(&mut self, arg: &[u8]) -> Result<()> {
        self.bulk_header(arg.len() as u64).await?;
        self.raw(arg).await?;
        self.raw(b"\r\n").await
    }

    /// Buffers `$len\r\n`: the caller then writes exactly `len` bytes and `\r\n`.
    pub(crate) async fn bulk_header(&mut self, len: u64) -> Result<()> {
        self.raw(format!("${len}\r\n").as_bytes()).await
    }

    /// Buffers raw bytes.
    pub(crate) async fn raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.inner
            .write_all(bytes)
            .await
            .map_err(|e| connection_lost(&self.endpoint, "sending", e))
    }

    /// Sends everything buffered.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        self.inner
            .flush()
            .await
            .map_err(|e| connection_lost(&self.endpoint, "sending", e))
    }
}

/// What a bulk-string header announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BulkHeader {
    /// `$-1`: nil.
    Nil,
    /// `$n`: `n` bytes and a CRLF follow.
    Len(u64),
}

impl RespReader {
    /// Where this connection goes.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Reads one line up to `\n`, without the line ending. EOF is an error.
    pub(crate) async fn read_line(&mut self) -> Result<Vec<u8>> {
        let mut line = Vec::new();
        let n = (&mut self.inner)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| connection_lost(&self.endpoint, "reading a reply", e))?;
        if n == 0 {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("redis at {} closed the connection", self.endpoint),
            )
            .with_hint("check the server's log: it may have restarted, or refused the client"));
        }
        if line.last() != Some(&b'\n') {
            return Err(self.protocol_error("a reply line is too long or truncated"));
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        Ok(line)
    }

    fn protocol_error(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::Integrity,
            format!("redis at {} sent an invalid reply: {what}", self.endpoint),
        )
    }

    fn parse_int(&self, digits: &[u8]) -> Result<i64> {
        std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| self.protocol_error("a length or integer is not a number"))
    }

    /// Reads one whole reply. Bulk strings larger than 64 MiB are refused: stream them
    /// with [`read_bulk_header`](Self::read_bulk_header) instead.
    pub(crate) async fn read_reply(&mut self) -> Result<Reply> {
        let line = self.read_line().await?;
        let Some((&kind, rest)) = line.split_first() else {
            return Err(self.protocol_error("empty reply line"));
        };
        match kind {
            b'+' => Ok(Reply::Status(String::from_utf8_lossy(rest).into_owned())),
            b'-' => Ok(Reply::Error(String::from_utf8_lossy(rest).into_owned())),
            b':' => Ok(Reply::Integer(self.parse_int(rest)?)),
            b'$' => {
                let len = self.parse_int(rest)?;
                if len < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                if len > MAX_BUFFERED_BULK {
                    return Err(self.protocol_error("unexpectedly large bulk reply"));
                }
                let mut buf = vec![0u8; len + 2];
                self.inner
                    .read_exact(&mut buf)
                    .await
                    .map_err(|e| connection_lost(&self.endpoint, "reading a reply", e))?;
                buf.truncate(len);
                Ok(Reply::Bulk(Some(Bytes::from(buf))))
            }
            b'*' => {
                let len = self.parse_int(rest)?;
                if len < 0 {
                    return Ok(Reply::Array(None));
                }
                let mut items = Vec::with_capacity(usize::try_from(len.min(4096)).unwrap_or(0));
                for _ in 0..len {
                    items.push(Box::pin(self.read_reply()).await?);
                }
                Ok(Reply::Array(Some(items)))
            }
            _ => Err(self.protocol_error("unknown reply type")),
        }
    }

    /// Reads the header of a bulk reply that the caller then streams with
    /// [`read_some`](Self::read_some) and closes with [`read_crlf`](Self::read_crlf).
    ///
    /// An error reply is returned as an error mapped for `context`.
    pub(crate) async fn read_bulk_header(&mut self, context: &str) -> Result<BulkHeader> {
        let line = self.read_line().await?;
        match line.split_first() {
            Some((b'$', rest)) => {
                let len = self.parse_int(rest)?;
                Ok(u64::try_from(len).map_or(BulkHeader::Nil, BulkHeader::Len))
            }
            Some((b'-', rest)) => Err(reply_error(context, &String::from_utf8_lossy(rest))),
            _ => Err(self.protocol_error("expected a bulk string")),
        }
    }

    /// Reads the integer reply of `context`.
    pub(crate) async fn read_integer(&mut self, context: &str) -> Result<i64> {
        match self.read_reply().await?.into_result(context)? {
            Reply::Integer(n) => Ok(n),
            _ => Err(self.protocol_error("expected an integer")),
        }
    }

    /// Returns up to `max` buffered bytes (reading more from the socket if none are
    /// buffered). Empty means the connection closed.
    pub(crate) async fn read_some(&mut self, max: usize) -> Result<&[u8]> {
        let buf = self
            .inner
            .fill_buf()
            .await
            .map_err(|e| connection_lost(&self.endpoint, "receiving data", e))?;
        let n = buf.len().min(max);
        Ok(&buf[..n])
    }

    /// Marks `n` bytes returned by [`read_some`](Self::read_some) as used.
    pub(crate) fn consume(&mut self, n: usize) {
        self.inner.consume(n);
    }

    /// Reads the CRLF that ends a streamed bulk string.
    pub(crate) async fn read_crlf(&mut self) -> Result<()> {
        let mut crlf = [0u8; 2];
        self.inner
            .read_exact(&mut crlf)
            .await
            .map_err(|e| connection_lost(&self.endpoint, "receiving data", e))?;
        if &crlf != b"\r\n" {
            return Err(self.protocol_error("a bulk string does not end with CRLF"));
        }
        Ok(())
    }
}

/// Splits a bulk `INFO` reply into its `key:value` fields.
pub(crate) fn info_fields(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
}
