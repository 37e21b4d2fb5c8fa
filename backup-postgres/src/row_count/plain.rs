//! Counts the rows of each table in a plain SQL dump as it streams.
//!
//! pg_dump writes each table's data as
//!
//! ```text
//! --
//! -- Data for Name: accounts; Type: TABLE DATA; Schema: public; Owner: -
//! --
//!
//! COPY public.accounts (id, name) FROM stdin;
//! 1    alice
//! \.
//! ```
//!
//! A `COPY … FROM stdin;` line counts only right after such a comment (so text inside a
//! function body never does), and every line up to `\.` is one row: COPY text escapes
//! the newlines inside values. Lines are never held whole: only a bounded prefix and
//! suffix of each, so one huge row does not grow memory.

use std::collections::BTreeMap;

use super::CountError;

/// How much of a line's start is kept (enough for any `COPY schema.table` head).
const PREFIX: usize = 4096;
/// How much of a line's end is kept (enough for ` FROM stdin;`).
const SUFFIX: usize = 16;

/// A streaming counter for plain dumps; feed it chunks, then [`finish`](Self::finish).
#[derive(Debug, Default)]
pub(crate) struct PlainCounter {
    line: LineHead,
    state: State,
    rows: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
enum State {
    /// Outside table data; `armed` after a `TABLE DATA` comment.
    #[default]
    Schema,
    Armed,
    Copy {
        table: String,
        rows: u64,
    },
}

/// The start and end of the line being read.
#[derive(Debug, Default)]
struct LineHead {
    prefix: Vec<u8>,
    suffix: Vec<u8>,
    length: usize,
}

impl LineHead {
    fn push(&mut self, bytes: &[u8]) {
        let room = PREFIX.saturating_sub(self.prefix.len());
        self.prefix
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.suffix
            .extend_from_slice(&bytes[bytes.len().saturating_sub(SUFFIX)..]);
        if self.suffix.len() > SUFFIX {
            let cut = self.suffix.len() - SUFFIX;
            self.suffix.drain(..cut);
        }
        self.length += bytes.len();
    }

    fn clear(&mut self) {
        self.prefix.clear();
        self.suffix.clear();
        self.length = 0;
    }

    fn is(&self, text: &[u8]) -> bool {
        self.length == text.len() && self.prefix == text
    }

    fn starts_with(&self, text: &[u8]) -> bool {
        self.prefix.starts_with(text)
    }

    fn ends_with(&self, text: &[u8]) -> bool {
        self.suffix.ends_with(text)
    }
}

impl PlainCounter {
    /// Feeds the next bytes of the dump.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            bytes = match self.state {
                State::Copy { .. } => self.feed_copy(bytes),
                State::Schema | State::Armed => match memchr::memchr(b'\n', bytes) {
                    Some(at) => {
                        self.line.push(&bytes[..at]);
                        self.end_line();
                        &bytes[at + 1..]
                    }
                    None => {
                        self.line.push(bytes);
                        &[]
                    }
                },
            };
        }
    }

    /// Inside COPY data the only line that matters is `\.`: rows are counted a newline at
    /// a time, and only a line's first bytes are kept. Returns the bytes after the data.
    fn feed_copy<'a>(&mut self, mut bytes: &'a [u8]) -> &'a [u8] {
        let State::Copy { rows, .. } = &mut self.state else {
            return bytes;
        };
        while let Some(at) = memchr::memchr(b'\n', bytes) {
            let is_end = if self.line.length == 0 {
                &bytes[..at] == b"\\."
            } else {
                self.line.length + at == 2
                    && [&self.line.prefix[..], &bytes[..at]].concat() == b"\\."
            };
            self.line.clear();
            let rest = &bytes[at + 1..];
            if is_end {
                self.line.push(b"\\.");
                self.end_line();
                return rest;
            }
            *rows += 1;
            bytes = rest;
        }
        if self.line.length < 3 {
            self.line.push(&bytes[..bytes.len().min(3)]);
            self.line.length += bytes.len().saturating_sub(3);
        } else {
            self.line.length += bytes.len();
        }
        &[]
    }

    fn end_line(&mut self) {
        let line = &self.line;
        self.state = match std::mem::take(&mut self.state) {
            State::Copy { table, rows } if line.is(b"\\.") => {
                *self.rows.entry(table).or_insert(0) += rows;
                State::Schema
            }
            copying @ State::Copy { .. } => copying,
            State::Schema | State::Armed if is_data_comment(line) => State::Armed,
            State::Armed if line.is(b"--") || line.length == 0 => State::Armed,
            State::Armed if line.starts_with(b"COPY ") && line.ends_with(b" FROM stdin;") => {
                match copy_table(&line.prefix) {
                    Some(table) => State::Copy { table, rows: 0 },
                    None => State::Schema,
                }
            }
            State::Schema | State::Armed => State::Schema,
        };
        self.line.clear();
    }

    /// The rows of each table, keyed `schema.table`.
    ///
    /// # Errors
    ///
    /// [`CountError::Malformed`] when the dump ends inside table data.
    pub(crate) fn finish(self) -> Result<BTreeMap<String, u64>, CountError> {
        match self.state {
            State::Copy { table, .. } => Err(CountError::Malformed(format!(
                "the dump ends inside the data of {table}"
            ))),
            State::Schema | State::Armed => Ok(self.rows),
        }
    }
}

fn is_data_comment(line: &LineHead) -> bool {
    line.starts_with(b"-- Data for Name: ")
        && line
            .prefix
            .windows(b"; Type: TABLE DATA; ".len())
            .any(|w| w == b"; Type: TABLE DATA; ")
}

/// `schema.table` from `COPY schema.table (…) FROM stdin;`, identifiers unquoted.
fn copy_table(line: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(line.get(5..)?).ok()?;
    let (schema, rest) = identifier(text)?;
    let rest = rest.strip_prefix('.')?;
    let (table, rest) = identifier(rest)?;
    (rest.starts_with(' ')).then(|| format!("{schema}.{table}"))
}

/// One identifier as pg_dump's `fmtId` prints it: `"…"` with `""` for a quote, or bare.
fn identifier(text: &str) -> Option<(String, &str)> {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = quoted.char_indices();
        while let Some((at, c)) = chars.next() {
            if c == '"' {
                if quoted[at + 1..].starts_with('"') {
                    name.push('"');
                    chars.next();
                } else {
                    return Some((name, &quoted[at + 1..]));
                }
            } else {
                name.push(c);
            }
        }
        None
    } else {
        let end = text
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(text.len());
        (end > 0).then(|| (text[..end].to_string(), &text[end..]))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DUMP: &str = "CREATE FUNCTION f() RETURNS void AS $$\n\
COPY public.fake (a) FROM stdin;\n\
$$ LANGUAGE sql;\n\
--\n\
-- Data for Name: accounts; Type: TABLE DATA; Schema: public; Owner: -\n\
--\n\
\n\
COPY public.accounts (id, note) FROM stdin;\n\
1\tline\\none\n\
2\t\\\\.\n\
3\t\\N\n\
\\.\n\
\n\
\n\
--\n\
-- Data for Name: Ünï \"q\"; Type: TABLE DATA; Schema: My Schema; Owner: -\n\
--\n\
\n\
COPY \"My Schema\".\"Ünï \"\"q\"\"\" (x) FROM stdin;\n\
\\.\n\
\n\
-- PostgreSQL database dump complete\n";

    fn count_in_pieces(dump: &str, piece: usize) -> BTreeMap<String, u64> {
        let mut counter = PlainCounter::default();
        for chunk in dump.as_bytes().chunks(piece) {
            counter.feed(chunk);
        }
        counter.finish().unwrap()
    }

    #[test]
    fn rows_are_counted_per_table_whatever_the_chunking() {
        for piece in [1, 2, 3, 7, 64, DUMP.len()] {
            let rows = count_in_pieces(DUMP, piece);
            assert_eq!(rows.get("public.accounts"), Some(&3), "piece {piece}");
            assert_eq!(rows.get("My Schema.Ünï \"q\""), Some(&0), "piece {piece}");
            assert!(!rows.contains_key("public.fake"), "piece {piece}");
        }
    }

    #[test]
    fn a_dump_cut_inside_table_data_is_malformed() {
        let cut = &DUMP[..DUMP.find("3\t").unwrap()];
        let mut counter = PlainCounter::default();
        counter.feed(cut.as_bytes());
        assert!(matches!(counter.finish(), Err(CountError::Malformed(_))));
    }

    #[test]
    fn a_huge_row_keeps_memory_bounded() {
        let mut counter = PlainCounter::default();
        counter.feed(b"--\n-- Data for Name: t; Type: TABLE DATA; Schema: s; Owner: -\n--\n\nCOPY s.t (b) FROM stdin;\n");
        let big = vec![b'x'; 1 << 20];
        for _ in 0..8 {
            counter.feed(&big);
        }
        assert!(counter.line.prefix.len() <= PREFIX);
        counter.feed(b"\n\\.\n");
        assert_eq!(counter.finish().unwrap().get("s.t"), Some(&1));
    }
}
