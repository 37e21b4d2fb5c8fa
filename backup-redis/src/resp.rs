//! A small RESP2 client over [`tokio::net::TcpStream`]: commands, pipelining, and bulk
//! strings streamed in both directions so a large value is never held in several copies.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use backup_core::{Error, ErrorKind, Result};

use crate::config::RedisConfig;
use crate::errors::reply_error;

/// Longest status/error/header line accepted from a server.
const MAX_LINE: usize = 64 * 1024;
/// Largest reply [`RespReader::read_reply`] buffers, counting every bulk and status payload
/// and the memory of every element; larger values must be streamed.
pub(crate) const MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;
/// Deepest nesting of arrays accepted in one reply (Redis itself replies with at most a
/// few levels).
pub(crate) const MAX_DEPTH: usize = 32;
/// Most elements, over all nesting levels, accepted in one reply.
pub(crate) const MAX_ELEMENTS: usize = 1 << 20;
/// How long a TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Buffer size of each direction.
const IO_BUFFER: usize = 256 * 1024;
/// Largest piece of a buffered bulk string allocated ahead of the bytes arriving.
const BULK_STEP: usize = 64 * 1024;

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

/// The error for a connection on which nothing moved for `timeout`.
pub(crate) fn idle_timeout_error(endpoint: &Endpoint, timeout: Duration, what: &str) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "redis at {endpoint} {what} for {} s: idle timeout (idleTimeoutSeconds) reached",
            timeout.as_secs()
        ),
    )
    .with_hint("the server is stuck, overloaded or not a redis server; if it is only slow, raise `idleTimeoutSeconds` in the service config")
}

/// The reading half of a connection.
#[derive(Debug)]
pub(crate) struct RespReader {
    inner: BufReader<OwnedReadHalf>,
    endpoint: Endpoint,
    idle_timeout: Duration,
}

/// The writing half of a connection.
#[derive(Debug)]
pub(crate) struct RespWriter {
    inner: BufWriter<OwnedWriteHalf>,
    endpoint: Endpoint,
    idle_timeout: Duration,
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
        let idle_timeout = config.idle_timeout();
        let mut conn = Connection {
            reader: RespReader {
                inner: BufReader::with_capacity(IO_BUFFER, read),
                endpoint: endpoint.clone(),
                idle_timeout,
            },
            writer: RespWriter {
                inner: BufWriter::with_capacity(IO_BUFFER, write),
                endpoint,
                idle_timeout,
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
        let mut text = [0u8; HEADER_MAX];
        let header = header(b'*', n as u64, &mut text);
        self.raw(header).await
    }

    /// Buffers one whole bulk string.
    pub(crate) async fn bulk(&mut self, arg: &[u8]) -> Result<()> {
        self.bulk_header(arg.len() as u64).await?;
        self.raw(arg).await?;
        self.raw(b"\r\n").await
    }

    /// Buffers `$len\r\n`: the caller then writes exactly `len` bytes and `\r\n`.
    pub(crate) async fn bulk_header(&mut self, len: u64) -> Result<()> {
        let mut text = [0u8; HEADER_MAX];
        let header = header(b'$', len, &mut text);
        self.raw(header).await
    }

    /// Buffers raw bytes. Bytes that fit in the buffer are only copied: no I/O, so no
    /// idle clock is started for them (a pipelined import buffers millions of pieces).
    pub(crate) async fn raw(&mut self, bytes: &[u8]) -> Result<()> {
        if self.inner.buffer().len() + bytes.len() <= IO_BUFFER {
            return self
                .inner
                .write_all(bytes)
                .await
                .map_err(|e| connection_lost(&self.endpoint, "sending", e));
        }
        match tokio::time::timeout(self.idle_timeout, self.inner.write_all(bytes)).await {
            Ok(done) => done.map_err(|e| connection_lost(&self.endpoint, "sending", e)),
            Err(_) => Err(idle_timeout_error(
                &self.endpoint,
                self.idle_timeout,
                "took nothing we sent",
            )),
        }
    }

    /// Sends everything buffered.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        match tokio::time::timeout(self.idle_timeout, self.inner.flush()).await {
            Ok(done) => done.map_err(|e| connection_lost(&self.endpoint, "sending", e)),
            Err(_) => Err(idle_timeout_error(
                &self.endpoint,
                self.idle_timeout,
                "took nothing we sent",
            )),
        }
    }
}

/// The longest header: a type byte, 20 digits and `\r\n`.
const HEADER_MAX: usize = 24;

/// `prefix`, `n` in decimal and `\r\n`, written into `text` (no allocation).
fn header(prefix: u8, mut n: u64, text: &mut [u8; HEADER_MAX]) -> &[u8] {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = digits.len() - start;
    text[0] = prefix;
    text[1..=len].copy_from_slice(&digits[start..]);
    text[len + 1..len + 3].copy_from_slice(b"\r\n");
    &text[..len + 3]
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

    /// Returns buffered bytes, reading from the socket when none are buffered, within the
    /// idle timeout. Empty means the connection closed.
    async fn fill(&mut self, what: &str) -> Result<&[u8]> {
        // Bytes already buffered need no read, so no idle clock.
        if self.inner.buffer().is_empty() {
            match tokio::time::timeout(self.idle_timeout, self.inner.fill_buf()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(connection_lost(&self.endpoint, what, e)),
                Err(_) => {
                    return Err(idle_timeout_error(
                        &self.endpoint,
                        self.idle_timeout,
                        &format!("sent nothing while we were {what}"),
                    ))
                }
            }
        }
        Ok(self.inner.buffer())
    }

    fn closed(&self) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            format!("redis at {} closed the connection", self.endpoint),
        )
        .with_hint("check the server's log: it may have restarted, or refused the client")
    }

    /// Reads one line up to `\n`, without the line ending. EOF is an error.
    pub(crate) async fn read_line(&mut self) -> Result<Vec<u8>> {
        let mut line = Vec::new();
        loop {
            let (used, done) = {
                let buf = self.fill("reading a reply").await?;
                if buf.is_empty() {
                    return Err(self.closed());
                }
                let (take, used, done) = match buf.iter().position(|&b| b == b'\n') {
                    Some(pos) => (pos, pos + 1, true),
                    None => (buf.len(), buf.len(), false),
                };
                if line.len() + take > MAX_LINE {
                    return Err(self.protocol_error("a reply line is too long"));
                }
                line.extend_from_slice(&buf[..take]);
                (used, done)
            };
            self.inner.consume(used);
            if done {
                break;
            }
        }
        while line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(line)
    }

    fn protocol_error(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::Integrity,
            format!("redis at {} sent an invalid reply: {what}", self.endpoint),
        )
        .with_hint("check that host and port point at a redis server")
    }

    fn parse_int(&self, digits: &[u8]) -> Result<i64> {
        std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| self.protocol_error("a length or integer is not a number"))
    }

    /// Reads one whole reply, without recursion: arrays nest at most [`MAX_DEPTH`] deep,
    /// hold at most [`MAX_ELEMENTS`] elements in all, and the reply takes at most
    /// [`MAX_REPLY_BYTES`] of memory. Larger bulk strings must be streamed with
    /// [`read_bulk_header`](Self::read_bulk_header).
    pub(crate) async fn read_reply(&mut self) -> Result<Reply> {
        /// An array still being filled.
        struct Open {
            items: Vec<Reply>,
            remaining: usize,
        }
        let mut open: Vec<Open> = Vec::new();
        let mut elements = 0usize;
        let mut budget = MAX_REPLY_BYTES;
        loop {
            let line = self.read_line().await?;
            let Some((&kind, rest)) = line.split_first() else {
                return Err(self.protocol_error("empty reply line"));
            };
            elements += 1;
            if elements > MAX_ELEMENTS {
                return Err(
                    self.protocol_error(&format!("a reply has more than {MAX_ELEMENTS} elements"))
                );
            }
            self.charge(&mut budget, std::mem::size_of::<Reply>() + rest.len())?;
            let mut value = match kind {
                b'+' => Reply::Status(String::from_utf8_lossy(rest).into_owned()),
                b'-' => Reply::Error(String::from_utf8_lossy(rest).into_owned()),
                b':' => Reply::Integer(self.parse_int(rest)?),
                b'$' => match usize::try_from(self.parse_int(rest)?) {
                    Err(_) => Reply::Bulk(None),
                    Ok(len) => {
                        self.charge(&mut budget, len)?;
                        Reply::Bulk(Some(self.read_bulk_body(len).await?))
                    }
                },
                b'*' => match usize::try_from(self.parse_int(rest)?) {
                    Err(_) => Reply::Array(None),
                    Ok(0) => Reply::Array(Some(Vec::new())),
                    Ok(len) => {
                        if open.len() >= MAX_DEPTH {
                            return Err(self.protocol_error(&format!(
                                "arrays nested deeper than {MAX_DEPTH} levels"
                            )));
                        }
                        if len > MAX_ELEMENTS - elements {
                            return Err(self.protocol_error(&format!(
                                "a reply announces more than {MAX_ELEMENTS} elements"
                            )));
                        }
                        open.push(Open {
                            items: Vec::with_capacity(len.min(1024)),
                            remaining: len,
                        });
                        continue;
                    }
                },
                _ => return Err(self.protocol_error("unknown reply type")),
            };
            // Put the finished value into its array, closing every array it completes.
            loop {
                let Some(top) = open.last_mut() else {
                    return Ok(value);
                };
                top.items.push(value);
                top.remaining -= 1;
                if top.remaining > 0 {
                    break;
                }
                let Some(done) = open.pop() else {
                    return Err(self.protocol_error("unbalanced arrays"));
                };
                value = Reply::Array(Some(done.items));
            }
        }
    }

    fn charge(&self, budget: &mut usize, bytes: usize) -> Result<()> {
        *budget = budget.checked_sub(bytes).ok_or_else(|| {
            self.protocol_error(&format!(
                "a reply is larger than {} MiB",
                MAX_REPLY_BYTES / (1024 * 1024)
            ))
        })?;
        Ok(())
    }

    /// Reads `len` bytes and the CRLF after them, allocating only as bytes arrive.
    async fn read_bulk_body(&mut self, len: usize) -> Result<Bytes> {
        let mut body = Vec::with_capacity(len.min(BULK_STEP));
        while body.len() < len {
            let used = {
                let want = len - body.len();
                let buf = self.fill("reading a reply").await?;
                if buf.is_empty() {
                    return Err(self.closed());
                }
                let n = buf.len().min(want);
                body.extend_from_slice(&buf[..n]);
                n
            };
            self.inner.consume(used);
        }
        self.read_crlf().await?;
        Ok(Bytes::from(body))
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
    /// buffered, within the idle timeout). Empty means the connection closed.
    pub(crate) async fn read_some(&mut self, max: usize) -> Result<&[u8]> {
        let buf = self.fill("receiving data").await?;
        let n = buf.len().min(max);
        Ok(&buf[..n])
    }

    /// Marks `n` bytes returned by [`read_some`](Self::read_some) as used.
    pub(crate) fn consume(&mut self, n: usize) {
        self.inner.consume(n);
    }

    /// Reads the CRLF that ends a bulk string.
    pub(crate) async fn read_crlf(&mut self) -> Result<()> {
        let mut crlf = Vec::with_capacity(2);
        while crlf.len() < 2 {
            let used = {
                let buf = self.fill("receiving data").await?;
                if buf.is_empty() {
                    return Err(self.closed());
                }
                let n = buf.len().min(2 - crlf.len());
                crlf.extend_from_slice(&buf[..n]);
                n
            };
            self.inner.consume(used);
        }
        if crlf != b"\r\n" {
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

#[cfg(test)]
mod tests {
    use super::{header, HEADER_MAX};

    #[test]
    fn headers_are_the_decimal_length_between_the_type_byte_and_crlf() {
        for (prefix, n) in [
            (b'*', 0u64),
            (b'$', 9),
            (b'$', 10),
            (b'*', 5),
            (b'$', 1 << 40),
        ] {
            let mut text = [0u8; HEADER_MAX];
            let expected = format!("{}{n}\r\n", prefix as char);
            assert_eq!(header(prefix, n, &mut text), expected.as_bytes());
        }
        let mut text = [0u8; HEADER_MAX];
        assert_eq!(
            header(b'$', u64::MAX, &mut text),
            format!("${}\r\n", u64::MAX).as_bytes()
        );
    }
}
