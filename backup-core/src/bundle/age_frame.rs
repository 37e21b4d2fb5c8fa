//! An age payload laid out in batches that are sealed in place: [`Framer`] copies
//! plaintext into batches of whole chunks with room for each chunk's tag, so the stage
//! that encrypts them ([`BatchSealer`]) seals the very buffers it is handed and passes
//! them on, with no copy of its own. [`AgeWriter`] puts the two together behind
//! [`std::io::Write`].

use std::io::{self, Write};
use std::str::FromStr;

use super::age_write::{self, PayloadSealer, CHUNK, FRAME, TAG};
use crate::{Error, ErrorKind, Result};

/// Lays plaintext out as an age payload's frames: each chunk's bytes, then [`TAG`] bytes
/// of room for its tag. Hands on a batch once it holds `batch_size` bytes of whole
/// frames *and* more plaintext has come, so a batch it hands on never holds the final
/// chunk; [`Framer::finish`] returns the batch that does.
pub(crate) struct Framer {
    batch: Vec<u8>,
    /// Plaintext bytes in the batch's last (open) chunk.
    fill: usize,
    batch_size: usize,
}

impl Framer {
    /// A framer handing on batches of about `batch_size` bytes (at least one chunk).
    pub(crate) fn new(batch_size: usize) -> Self {
        let batch_size = batch_size.max(FRAME);
        Framer {
            batch: Self::new_batch(batch_size),
            fill: 0,
            batch_size,
        }
    }

    fn new_batch(batch_size: usize) -> Vec<u8> {
        Vec::with_capacity(batch_size.div_ceil(FRAME) * FRAME)
    }

    /// Appends `buf`, giving each batch that is complete (and not the last) to `ready`.
    pub(crate) fn write(
        &mut self,
        mut buf: &[u8],
        ready: &mut dyn FnMut(Vec<u8>) -> io::Result<()>,
    ) -> io::Result<()> {
        while !buf.is_empty() {
            if self.fill == CHUNK {
                // More plaintext after a full chunk: that chunk is not the last one.
                self.batch.resize(self.batch.len() + TAG, 0);
                self.fill = 0;
                if self.batch.len() >= self.batch_size {
                    let next = Self::new_batch(self.batch_size);
                    ready(std::mem::replace(&mut self.batch, next))?;
                }
            }
            let n = (CHUNK - self.fill).min(buf.len());
            self.batch.extend_from_slice(&buf[..n]);
            self.fill += n;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// The final batch: whatever is left, its last chunk closed (an empty chunk when
    /// nothing was written at all, as age requires).
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.batch.resize(self.batch.len() + TAG, 0);
        self.batch
    }
}

/// Seals a [`Framer`]'s batches in place, holding each back until the next one comes
/// (or the end): only then is it known whether its last chunk is the file's last.
pub(crate) struct BatchSealer {
    sealer: PayloadSealer,
    held: Option<Vec<u8>>,
}

impl BatchSealer {
    /// Seals with `sealer` (from [`age_write::start`]).
    pub(crate) fn new(sealer: PayloadSealer) -> Self {
        BatchSealer { sealer, held: None }
    }

    /// Takes the next batch; returns the one before it, sealed.
    pub(crate) fn push(&mut self, batch: Vec<u8>) -> io::Result<Option<Vec<u8>>> {
        match self.held.replace(batch) {
            Some(mut before) => {
                self.sealer.seal_frames(&mut before, false)?;
                Ok(Some(before))
            }
            None => Ok(None),
        }
    }

    /// Seals the held batch as the final one (an empty final chunk if no batch came:
    /// the stage before stopped early, and reports why itself).
    pub(crate) fn finish(mut self) -> io::Result<Vec<u8>> {
        let mut last = self.held.take().unwrap_or_else(|| vec![0; TAG]);
        self.sealer.seal_frames(&mut last, true)?;
        Ok(last)
    }
}

/// Encrypts framed `batches` (from a [`Framer`]) as one age file to `recipients`, giving
/// `send` the header, then each batch sealed in place.
pub(crate) fn encrypt_batches(
    recipients: &[age::x25519::Recipient],
    batches: impl IntoIterator<Item = Vec<u8>>,
    send: &mut dyn FnMut(Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    let (header, sealer) = age_write::start(recipients)?;
    send(header)?;
    let mut sealer = BatchSealer::new(sealer);
    for batch in batches {
        if let Some(sealed) = sealer.push(batch)? {
            send(sealed)?;
        }
    }
    send(sealer.finish()?)
}

/// Plaintext a writer collects before sealing and writing it.
const WRITER_BATCH: usize = 4 * CHUNK;

/// One age v1 file being written to X25519 recipients, encrypted with ring's
/// ChaCha20-Poly1305: a fresh random file key and nonce per file, readable by the age
/// crate and by `age -d -i identity`. Memory stays at a few 64 KiB chunks however much
/// is written.
///
/// [`AgeWriter::finish`] must be called: without it the file is truncated and no age
/// reader accepts it.
pub struct AgeWriter<W: Write> {
    output: W,
    framer: Framer,
    sealer: BatchSealer,
}

impl<W: Write> std::fmt::Debug for AgeWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgeWriter")
    }
}

impl<W: Write> AgeWriter<W> {
    /// Starts an age file to the X25519 recipients `keys` (`age1…`) on `output`, writing
    /// its header.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for no key or a key that is not an age X25519
    /// recipient; an I/O error writing the header.
    pub fn to_recipients<I, S>(output: W, keys: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let recipients = keys
            .into_iter()
            .map(|key| {
                age::x25519::Recipient::from_str(key.as_ref().trim()).map_err(|e| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!("{:?} is not an age X25519 recipient: {e}", key.as_ref()),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if recipients.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "an age file needs at least one recipient",
            ));
        }
        Self::new(output, &recipients).map_err(|e| Error::io("starting an age file", e))
    }

    /// Starts an age file to `recipients` on `output`, writing its header.
    pub(crate) fn new(mut output: W, recipients: &[age::x25519::Recipient]) -> io::Result<Self> {
        let (header, sealer) = age_write::start(recipients)?;
        output.write_all(&header)?;
        Ok(AgeWriter {
            output,
            framer: Framer::new(WRITER_BATCH),
            sealer: BatchSealer::new(sealer),
        })
    }

    /// Seals and writes the rest, ending the file; returns the output.
    ///
    /// # Errors
    ///
    /// The output's write error.
    pub fn finish(self) -> io::Result<W> {
        let AgeWriter {
            mut output,
            framer,
            mut sealer,
        } = self;
        if let Some(sealed) = sealer.push(framer.finish())? {
            output.write_all(&sealed)?;
        }
        output.write_all(&sealer.finish()?)?;
        Ok(output)
    }
}

impl<W: Write> Write for AgeWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let AgeWriter {
            output,
            framer,
            sealer,
        } = self;
        framer.write(buf, &mut |batch| match sealer.push(batch)? {
            Some(sealed) => output.write_all(&sealed),
            None => Ok(()),
        })?;
        Ok(buf.len())
    }

    /// Flushes the output; plaintext of a chunk not yet full stays buffered.
    fn flush(&mut self) -> io::Result<()> {
        self.output.flush()
    }
}
