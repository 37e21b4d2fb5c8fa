//! Key checks: a small age file sealed with a passphrase, kept where the passphrase is
//! needed later (a repository's `config.json`), so a wrong passphrase is refused before
//! anything is written or read with it.
//!
//! The sealed content is a fresh random X25519 identity, sealed and opened exactly like a
//! bundle's `wrappedIdentity`: the check costs one scrypt run and proves that the
//! passphrase is the one it was sealed with. Unlocked ([`Passphrase::unlock_key_check`]),
//! the identity is a key bundles can be encrypted to ([`Encryption::PassphraseKey`]), with
//! the key check itself as their `wrappedIdentity`: one scrypt run per repository opened,
//! none per bundle, and every bundle still opens with the passphrase alone.
//!
//! [`Encryption::PassphraseKey`]: super::Encryption::PassphraseKey

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};

use super::crypto::{unwrap_identity, wrap_identity, Passphrase, Unwrap};

/// A passphrase-wrapped X25519 identity, unlocked: what
/// [`Passphrase::unlock_key_check`] returns. `Debug` never shows the secret.
#[derive(Clone)]
pub struct UnlockedKey(Arc<Unlocked>);

struct Unlocked {
    identity: age::x25519::Identity,
    wrapped: String,
    work_factor: Option<u8>,
}

impl UnlockedKey {
    /// The public key bundles are encrypted to.
    pub(crate) fn recipient(&self) -> age::x25519::Recipient {
        self.0.identity.to_public()
    }

    /// The key check it was unlocked from (armored age file; no secret).
    pub fn wrapped(&self) -> &str {
        &self.0.wrapped
    }

    /// The scrypt work factor recorded for it.
    pub fn work_factor(&self) -> Option<u8> {
        self.0.work_factor
    }
}

impl fmt::Debug for UnlockedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnlockedKey")
            .field("recipient", &self.recipient().to_string())
            .finish_non_exhaustive()
    }
}

impl PartialEq for UnlockedKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.wrapped == other.0.wrapped && self.0.work_factor == other.0.work_factor
    }
}

impl Eq for UnlockedKey {}

impl Passphrase {
    /// Seals a key check with this passphrase at scrypt `work_factor` (one scrypt run;
    /// call it off the async runtime's worker threads). The armored result holds no secret.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`] if age cannot encrypt.
    pub fn seal_key_check(&self, work_factor: u8) -> Result<String> {
        wrap_identity(&age::x25519::Identity::generate(), self, work_factor)
    }

    /// Checks this passphrase against a key check [`seal_key_check`](Self::seal_key_check)
    /// made (one scrypt run, refused above [`super::MAX_SCRYPT_WORK_FACTOR`] before any
    /// work). `what` names the thing the passphrase is for, in the error.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::WrongKey`] "wrong passphrase for …";
    /// [`ErrorKind::ResourceExhausted`] for an excessive work factor;
    /// [`ErrorKind::Integrity`] for a key check that is not a valid age file.
    pub fn open_key_check(
        &self,
        key_check: &str,
        work_factor: Option<u8>,
        what: &str,
    ) -> Result<()> {
        self.unlock_key_check(key_check, work_factor, what)
            .map(|_| ())
    }

    /// As [`open_key_check`](Self::open_key_check), and returns the identity the check
    /// seals, to encrypt bundles to ([`super::Encryption::PassphraseKey`]).
    ///
    /// # Errors
    ///
    /// As [`open_key_check`](Self::open_key_check).
    pub fn unlock_key_check(
        &self,
        key_check: &str,
        work_factor: Option<u8>,
        what: &str,
    ) -> Result<UnlockedKey> {
        match unwrap_identity(self, work_factor, key_check) {
            Ok(identity) => Ok(UnlockedKey(Arc::new(Unlocked {
                identity,
                wrapped: key_check.to_owned(),
                work_factor,
            }))),
            Err(Unwrap::WrongKey) => Err(Error::new(
                ErrorKind::WrongKey,
                format!("wrong passphrase for {what}"),
            )
            .with_hint("give the passphrase it was created with; nothing was written or read")),
            Err(Unwrap::ExcessiveWork(required)) => Err(Error::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "the key check of {what} asks for scrypt work factor {required}, more than the {} this build accepts",
                    super::MAX_SCRYPT_WORK_FACTOR
                ),
            )
            .with_hint("it was not written by this tool or was tampered with")),
            Err(Unwrap::Invalid(why)) => Err(Error::integrity(format!(
                "the key check of {what} is not a valid age file: {why}"
            ))
            .with_hint("it was not written by this tool or was tampered with")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sealing_passphrase_opens_its_key_check_and_another_is_refused() {
        let right = Passphrase::new("right horse");
        let sealed = right.seal_key_check(10).expect("seal");
        assert!(!sealed.contains("right horse"));
        right
            .open_key_check(&sealed, Some(10), "the test")
            .expect("the sealing passphrase opens it");
        let err = Passphrase::new("wrong horse")
            .open_key_check(&sealed, Some(10), "the test")
            .expect_err("another passphrase is refused");
        assert_eq!(err.kind(), ErrorKind::WrongKey);
        assert!(
            err.to_string().contains("wrong passphrase for the test"),
            "{err}"
        );
        let err = right
            .open_key_check("not armor", Some(10), "the test")
            .expect_err("garbage is refused");
        assert_eq!(err.kind(), ErrorKind::Integrity);
    }
}
