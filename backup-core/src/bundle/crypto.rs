//! age encryption of data entries: what a writer encrypts with ([`Encryption`]) and what
//! a reader decrypts with ([`Decryption`]).
//!
//! Each data entry is compressed first, then encrypted as one age file, so
//! `unzip -p bundle.zip data/db/app.dump.zst.age | age -d -i key.txt | zstd -d` restores
//! it with stock tools. The manifest's sha256 and size are over the stored (encrypted)
//! bytes: listing, `info` and checksum verification need no key. `snapshot.json` and
//! `manifest.json` stay plaintext (they hold configuration and checksums, never secrets),
//! so a restore can be planned before the key is asked for. The age files are written
//! by [`super::age_write`] on ring's ChaCha20-Poly1305 (about twice the age crate's
//! speed) and read by the age crate.
//!
//! A passphrase costs one scrypt run per bundle: the writer generates an age X25519
//! identity for the bundle, encrypts every entry to its recipient, and stores the
//! identity in the manifest's `wrappedIdentity` as an armored age file encrypted with the
//! passphrase (age's scrypt recipient, pinned work factor [`DEFAULT_SCRYPT_WORK_FACTOR`]).
//! That is ciphertext, so the manifest still holds no secret. A reader unwraps it once,
//! on the first entry, and keeps the identity; it refuses a work factor above
//! [`MAX_SCRYPT_WORK_FACTOR`] (in the manifest or the age header) before any scrypt work
//! instead of spending minutes and gigabytes on it. By hand:
//!
//! ```text
//! unzip -p bundle.zip manifest.json | jq -r .wrappedIdentity | age -d > key.txt
//! unzip -p bundle.zip data/db/app.dump.zst.age | age -d -i key.txt | zstd -d > app.dump
//! ```
//!
//! (the first `age -d` asks for the passphrase on the terminal). A bundle without
//! `wrappedIdentity` (written before this scheme) has scrypt age files as entries and
//! still reads with the passphrase.

use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use age::secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::age_frame::AgeWriter;
use super::key_check::UnlockedKey;
use super::manifest::MAX_WRAPPED_IDENTITY_BYTES;
use tokio::sync::oneshot;

use crate::{Error, ErrorKind, Result};

/// The `encryption` value of an entry encrypted as one age file.
pub const ENCRYPTION_AGE: &str = "age";

/// The scrypt work factor (log2 N) a passphrase-encrypted bundle is written with: 2^18,
/// about a quarter of a second and 256 MiB, once per bundle, on a current machine.
pub const DEFAULT_SCRYPT_WORK_FACTOR: u8 = 18;

/// The largest scrypt work factor (log2 N) a reader accepts: 2^20 (1 GiB of memory).
pub const MAX_SCRYPT_WORK_FACTOR: u8 = 20;

/// A passphrase. Never printed: its `Debug` shows `Passphrase(<redacted>)`.
#[derive(Clone)]
pub struct Passphrase(Arc<SecretString>);

impl Passphrase {
    /// Wraps `passphrase`.
    pub fn new(passphrase: impl Into<String>) -> Self {
        Passphrase(Arc::new(SecretString::from(passphrase.into())))
    }

    fn secret(&self) -> SecretString {
        SecretString::from(self.0.expose_secret().to_owned())
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

impl PartialEq for Passphrase {
    fn eq(&self, other: &Self) -> bool {
        self.0.expose_secret() == other.0.expose_secret()
    }
}

impl Eq for Passphrase {}

/// How a writer encrypts data entries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Encryption {
    /// Not at all.
    #[default]
    None,
    /// With a passphrase: entries go to a fresh X25519 identity per bundle, which the
    /// manifest stores wrapped with the passphrase (age scrypt recipient).
    Passphrase {
        /// The passphrase.
        passphrase: Passphrase,
        /// scrypt work factor, log2 N; at most [`MAX_SCRYPT_WORK_FACTOR`].
        work_factor: u8,
    },
    /// To age X25519 recipients (public keys `age1…`): any one identity decrypts.
    Recipients(Vec<String>),
    /// With a passphrase whose key was unlocked once ([`Passphrase::unlock_key_check`],
    /// a repository's key check): entries go to that key's X25519 identity and the
    /// manifest stores its passphrase wrapping as it is, so no scrypt run is paid per
    /// bundle. The bundle opens with the passphrase exactly as an
    /// [`Encryption::Passphrase`] one does.
    PassphraseKey(UnlockedKey),
}

impl Encryption {
    /// A passphrase with the [`DEFAULT_SCRYPT_WORK_FACTOR`].
    pub fn passphrase(passphrase: Passphrase) -> Self {
        Encryption::Passphrase {
            passphrase,
            work_factor: DEFAULT_SCRYPT_WORK_FACTOR,
        }
    }

    /// X25519 recipients, checked.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] for an empty list or a key that is not an age X25519
    /// public key (`age1…`).
    pub fn recipients<I, S>(keys: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut parsed = Vec::new();
        for key in keys {
            let key = key.as_ref().trim();
            let recipient = age::x25519::Recipient::from_str(key).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("{key:?} is not an age X25519 recipient: {e}"),
                )
                .with_hint("a recipient is a public key starting with age1 (age-keygen -y key.txt prints it)")
            })?;
            parsed.push(recipient.to_string());
        }
        if parsed.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "encryption to recipients needs at least one recipient",
            ));
        }
        Ok(Encryption::Recipients(parsed))
    }

    /// Whether entries are encrypted.
    pub fn is_enabled(&self) -> bool {
        !matches!(self, Encryption::None)
    }

    /// What the manifest records (never a secret).
    fn info(&self) -> Option<EncryptionInfo> {
        match self {
            Encryption::None => None,
            Encryption::Passphrase { work_factor, .. } => Some(EncryptionInfo {
                scheme: ENCRYPTION_AGE.to_owned(),
                method: EncryptionMethod::Passphrase,
                work_factor: Some(*work_factor),
                recipients: Vec::new(),
            }),
            Encryption::Recipients(keys) => Some(EncryptionInfo {
                scheme: ENCRYPTION_AGE.to_owned(),
                method: EncryptionMethod::Recipients,
                work_factor: None,
                recipients: keys.clone(),
            }),
            Encryption::PassphraseKey(key) => Some(EncryptionInfo {
                scheme: ENCRYPTION_AGE.to_owned(),
                method: EncryptionMethod::Passphrase,
                work_factor: key.work_factor(),
                recipients: Vec::new(),
            }),
        }
    }

    /// The encryptor entries are written with, built once per bundle. A passphrase
    /// generates a fresh X25519 identity the entries are encrypted to, and starts its one
    /// scrypt run (wrapping that identity with the passphrase) on a thread of its own: the
    /// wrapped identity is only needed for the manifest, so the run overlaps the entries'
    /// streaming and never blocks the async runtime.
    pub(crate) fn encryptor(&self) -> Result<Option<(Arc<EntryEncryptor>, Option<PendingWrap>)>> {
        let mut pending = None;
        let recipients: Vec<age::x25519::Recipient> = match self {
            Encryption::None => return Ok(None),
            Encryption::Passphrase {
                passphrase,
                work_factor,
            } => {
                if *work_factor == 0 || *work_factor > MAX_SCRYPT_WORK_FACTOR {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "scrypt work factor {work_factor} is outside 1..={MAX_SCRYPT_WORK_FACTOR}: readers would refuse the bundle"
                        ),
                    ));
                }
                let identity = age::x25519::Identity::generate();
                let recipient = identity.to_public();
                pending = Some(PendingWrap::start(
                    identity,
                    passphrase.clone(),
                    *work_factor,
                )?);
                vec![recipient]
            }
            Encryption::Recipients(keys) => {
                let mut out = Vec::new();
                for key in keys {
                    let recipient = age::x25519::Recipient::from_str(key).map_err(|e| {
                        Error::new(ErrorKind::InvalidInput, format!("recipient {key}: {e}"))
                    })?;
                    out.push(recipient);
                }
                out
            }
            Encryption::PassphraseKey(key) => {
                pending = Some(PendingWrap::Ready(key.wrapped().to_owned()));
                vec![key.recipient()]
            }
        };
        let encryptor = Arc::new(EntryEncryptor {
            recipients,
            info: self.info(),
        });
        Ok(Some((encryptor, pending)))
    }
}

/// A passphrase bundle's wrapped identity: done earlier (an unlocked key's), or being
/// wrapped (one scrypt run) on its own thread.
pub(crate) enum PendingWrap {
    /// The armored age file, already at hand.
    Ready(String),
    /// The thread's answer, to come.
    Running(oneshot::Receiver<Result<String>>),
}

impl fmt::Debug for PendingWrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PendingWrap")
    }
}

impl PendingWrap {
    /// Starts wrapping `identity` with `passphrase` on a new thread.
    fn start(
        identity: age::x25519::Identity,
        passphrase: Passphrase,
        work_factor: u8,
    ) -> Result<Self> {
        let (tx, rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("bundle-scrypt".into())
            .spawn(move || {
                // The writer may have been abandoned meanwhile; nobody waits then.
                let _ = tx.send(wrap_identity(&identity, &passphrase, work_factor));
            })
            .map_err(|e| {
                Error::new(
                    ErrorKind::ResourceExhausted,
                    format!("cannot start the thread that wraps the bundle key: {e}"),
                )
            })?;
        Ok(PendingWrap::Running(rx))
    }

    /// The wrapped identity (armored age file), once the scrypt run is done.
    ///
    /// # Errors
    ///
    /// When wrapping failed or its thread died.
    pub(crate) async fn wait(self) -> Result<String> {
        match self {
            PendingWrap::Ready(wrapped) => Ok(wrapped),
            PendingWrap::Running(rx) => rx.await.unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorKind::Io,
                    "the thread wrapping the bundle key with the passphrase stopped",
                ))
            }),
        }
    }
}

/// Encrypts `identity` with `passphrase` (age scrypt, `work_factor`) as an armored age
/// file: what the manifest stores as `wrappedIdentity`.
pub(super) fn wrap_identity(
    identity: &age::x25519::Identity,
    passphrase: &Passphrase,
    work_factor: u8,
) -> Result<String> {
    let fail = |e: &dyn fmt::Display| {
        Error::new(
            ErrorKind::Io,
            format!("wrapping the bundle key with the passphrase: {e}"),
        )
    };
    let mut recipient = age::scrypt::Recipient::new(passphrase.secret());
    recipient.set_work_factor(work_factor);
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .map_err(|e| fail(&e))?;
    let mut writer = encryptor.wrap_output(Vec::new()).map_err(|e| fail(&e))?;
    writer
        .write_all(format!("{}\n", identity.to_string().expose_secret()).as_bytes())
        .map_err(|e| fail(&e))?;
    let bytes = writer.finish().map_err(|e| fail(&e))?;
    Ok(super::armor::encode(&bytes))
}

/// How a bundle's entries are encrypted, as the manifest records it (public data only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionInfo {
    /// `"age"`.
    pub scheme: String,
    /// Passphrase or recipients.
    pub method: EncryptionMethod,
    /// The scrypt work factor (log2 N) of a passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_factor: Option<u8>,
    /// The recipients' public keys (`age1…`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
}

/// What decrypts a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncryptionMethod {
    /// A passphrase (age scrypt).
    Passphrase,
    /// Any identity of the listed X25519 recipients.
    Recipients,
}

/// Encrypts entries as age files to X25519 recipients (ring's ChaCha20-Poly1305, see
/// [`super::age_write`]); shared by the entries of one bundle.
pub(crate) struct EntryEncryptor {
    recipients: Vec<age::x25519::Recipient>,
    info: Option<EncryptionInfo>,
}

impl fmt::Debug for EntryEncryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EntryEncryptor")
    }
}

impl EntryEncryptor {
    /// What the manifest records about the method (public data only).
    pub(crate) fn info(&self) -> Option<EncryptionInfo> {
        self.info.clone()
    }

    /// Starts one age file (a fresh file key and nonce) on `output`.
    pub(crate) fn wrap<W: Write>(&self, output: W) -> io::Result<AgeWriter<W>> {
        AgeWriter::new(output, &self.recipients)
    }

    /// Encrypts framed `batches` (see [`super::age_frame::Framer`]) as one age file
    /// (a fresh file key and nonce), sealing them in place, giving `send` the header and
    /// then each sealed batch.
    pub(crate) fn encrypt_batches(
        &self,
        batches: impl IntoIterator<Item = Vec<u8>>,
        send: &mut dyn FnMut(Vec<u8>) -> io::Result<()>,
    ) -> io::Result<()> {
        super::age_frame::encrypt_batches(&self.recipients, batches, send)
    }
}

/// X25519 identities (secret keys). Never printed: `Debug` shows only how many.
#[derive(Clone)]
pub struct Identities(Arc<Vec<age::x25519::Identity>>);

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identities({} keys, <redacted>)", self.0.len())
    }
}

impl Identities {
    /// Parses an age identity file's text: one `AGE-SECRET-KEY-1…` per line, `#` comments
    /// and blank lines ignored.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`] naming the line (never its content) that is not an
    /// X25519 identity, or for a text with none.
    pub fn parse(text: &str) -> Result<Self> {
        let mut keys = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = age::x25519::Identity::from_str(line).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("line {} of the identities is not an age X25519 identity", number + 1),
                )
                .with_hint("an identity file holds lines starting with AGE-SECRET-KEY-1 (age-keygen writes one)")
            })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "no age identity found (lines starting with AGE-SECRET-KEY-1)",
            ));
        }
        Ok(Identities(Arc::new(keys)))
    }

    /// Reads and parses an identity file (as written by `age-keygen`).
    ///
    /// # Errors
    ///
    /// The I/O error reading `path`, or [`Identities::parse`]'s errors.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading identity file {}", path.display()), e))?;
        Self::parse(&text).map_err(|e| e.context(format!("identity file {}", path.display())))
    }

    /// The public keys (`age1…`) of these identities.
    pub fn public_keys(&self) -> Vec<String> {
        self.0.iter().map(|i| i.to_public().to_string()).collect()
    }
}

/// What a reader decrypts entries with.
#[derive(Debug, Clone)]
pub enum Decryption {
    /// The passphrase the bundle was written with.
    Passphrase(Passphrase),
    /// Identities, one of which matches a recipient of the bundle.
    Identities(Identities),
}

impl Decryption {
    fn what(&self) -> &'static str {
        match self {
            Decryption::Passphrase(_) => "the given passphrase",
            Decryption::Identities(_) => "the given identities",
        }
    }

    /// The decryptor entries are read with, built once per reader. A passphrase with the
    /// manifest's `wrappedIdentity` unlocks that identity on first use (one scrypt run per
    /// reader); without one (an older bundle) each entry is an scrypt age file.
    pub(crate) fn decryptor(
        &self,
        info: Option<&EncryptionInfo>,
        wrapped_identity: Option<&str>,
    ) -> EntryDecryptor {
        let keys = match (self, wrapped_identity) {
            (Decryption::Passphrase(passphrase), Some(wrapped)) => Keys::Wrapped {
                passphrase: passphrase.clone(),
                work_factor: info.and_then(|i| i.work_factor),
                wrapped: wrapped.to_owned(),
                unlocked: OnceLock::new(),
            },
            (Decryption::Passphrase(passphrase), None) => {
                let mut identity = age::scrypt::Identity::new(passphrase.secret());
                identity.set_max_work_factor(MAX_SCRYPT_WORK_FACTOR);
                Keys::Identities(vec![Box::new(identity)])
            }
            (Decryption::Identities(keys), _) => Keys::Identities(
                keys.0
                    .iter()
                    .map(|k| Box::new(k.clone()) as Box<dyn age::Identity + Send + Sync>)
                    .collect(),
            ),
        };
        EntryDecryptor {
            keys,
            what: self.what(),
        }
    }
}

/// The keys an [`EntryDecryptor`] opens entries with.
enum Keys {
    /// Identities tried on every entry.
    Identities(Vec<Box<dyn age::Identity + Send + Sync>>),
    /// The bundle's identity, wrapped with a passphrase; unlocked once, on first use.
    Wrapped {
        passphrase: Passphrase,
        work_factor: Option<u8>,
        wrapped: String,
        unlocked: OnceLock<std::result::Result<age::x25519::Identity, Unwrap>>,
    },
}

/// Why the wrapped identity could not be unlocked (kept so every entry reports it).
#[derive(Debug, Clone)]
pub(super) enum Unwrap {
    WrongKey,
    ExcessiveWork(u8),
    Invalid(String),
}

/// Decrypts the armored `wrapped` identity with `passphrase`, refusing a work factor
/// above [`MAX_SCRYPT_WORK_FACTOR`] (in the manifest or the age header) before any
/// scrypt work.
pub(super) fn unwrap_identity(
    passphrase: &Passphrase,
    work_factor: Option<u8>,
    wrapped: &str,
) -> std::result::Result<age::x25519::Identity, Unwrap> {
    use age::DecryptError as D;
    use std::io::Read;
    if let Some(claimed) = work_factor.filter(|w| *w > MAX_SCRYPT_WORK_FACTOR) {
        return Err(Unwrap::ExcessiveWork(claimed));
    }
    if wrapped.len() > MAX_WRAPPED_IDENTITY_BYTES {
        return Err(Unwrap::Invalid(format!(
            "it is longer than {MAX_WRAPPED_IDENTITY_BYTES} bytes"
        )));
    }
    let mut identity = age::scrypt::Identity::new(passphrase.secret());
    identity.set_max_work_factor(MAX_SCRYPT_WORK_FACTOR);
    let bytes = super::armor::decode(wrapped)
        .ok_or_else(|| Unwrap::Invalid("it is not age ASCII armor".to_owned()))?;
    let decryptor = age::Decryptor::new(&bytes[..]);
    let mut reader = decryptor
        .and_then(|d| d.decrypt(std::iter::once(&identity as &dyn age::Identity)))
        .map_err(|e| match e {
            D::NoMatchingKeys | D::DecryptionFailed | D::KeyDecryptionFailed => Unwrap::WrongKey,
            D::ExcessiveWork { required, .. } => Unwrap::ExcessiveWork(required),
            other => Unwrap::Invalid(other.to_string()),
        })?;
    let mut text = String::new();
    (&mut reader)
        .take(MAX_WRAPPED_IDENTITY_BYTES as u64)
        .read_to_string(&mut text)
        .map_err(|e| Unwrap::Invalid(e.to_string()))?;
    age::x25519::Identity::from_str(text.trim())
        .map_err(|_| Unwrap::Invalid("it does not hold an age X25519 identity".to_owned()))
}

/// Decrypts entries; shared by a reader's threads.
pub(crate) struct EntryDecryptor {
    keys: Keys,
    what: &'static str,
}

impl fmt::Debug for EntryDecryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryDecryptor({})", self.what)
    }
}

impl EntryDecryptor {
    /// Reads the age header of `input` and unlocks its payload. The error names `entry`
    /// and, for a key that does not fit, what to pass instead.
    pub(crate) fn open<'a, R: io::Read + 'a>(
        &self,
        input: R,
        entry: &str,
    ) -> Result<age::stream::StreamReader<R>> {
        let decryptor = age::Decryptor::new(input).map_err(|e| self.error(e, entry))?;
        match &self.keys {
            Keys::Identities(identities) => decryptor
                .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
                .map_err(|e| self.error(e, entry)),
            Keys::Wrapped {
                passphrase,
                work_factor,
                wrapped,
                unlocked,
            } => {
                let identity = unlocked
                    .get_or_init(|| unwrap_identity(passphrase, *work_factor, wrapped))
                    .as_ref()
                    .map_err(|why| self.unwrap_error(why, entry))?;
                decryptor
                    .decrypt(std::iter::once(identity as &dyn age::Identity))
                    .map_err(|e| self.error(e, entry))
            }
        }
    }

    fn unwrap_error(&self, why: &Unwrap, entry: &str) -> Error {
        match why {
            Unwrap::WrongKey => self.error(age::DecryptError::DecryptionFailed, entry),
            Unwrap::ExcessiveWork(required) => self.error(
                age::DecryptError::ExcessiveWork {
                    required: *required,
                    target: MAX_SCRYPT_WORK_FACTOR,
                },
                entry,
            ),
            Unwrap::Invalid(why) => Error::integrity(format!(
                "entry {entry} cannot be decrypted: the manifest's wrappedIdentity is not a valid age file: {why}"
            ))
            .with_hint("the bundle was not written by this tool or was tampered with"),
        }
    }

    fn error(&self, e: age::DecryptError, entry: &str) -> Error {
        use age::DecryptError as D;
        match e {
            D::NoMatchingKeys | D::DecryptionFailed | D::KeyDecryptionFailed => Error::new(
                ErrorKind::WrongKey,
                format!("entry {entry} cannot be decrypted with {} (wrong passphrase or identity)", self.what),
            )
            .with_hint(KEY_HINT),
            D::ExcessiveWork { required, .. } => Error::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "entry {entry} asks for scrypt work factor {required}, more than the {MAX_SCRYPT_WORK_FACTOR} this reader accepts"
                ),
            )
            .with_hint("the bundle was not written by this tool or was tampered with"),
            D::Io(e) => Error::io(format!("reading encrypted entry {entry}"), e),
            other => Error::integrity(format!("entry {entry} is not a valid age file: {other}"))
                .with_hint("the bundle was not written by this tool or was tampered with"),
        }
    }
}

/// What to do about a missing or wrong key.
pub(crate) const KEY_HINT: &str = "pass the key the bundle was encrypted with: the passphrase (Decryption::Passphrase) or an identity file for one of its recipients (Decryption::Identities); the manifest's `encryption` says which";

/// The error for an encrypted entry read without a key.
pub(crate) fn missing_key(entry: &str) -> Error {
    Error::new(
        ErrorKind::WrongKey,
        format!("entry {entry} is encrypted with age and no key was given"),
    )
    .with_hint(KEY_HINT)
}
