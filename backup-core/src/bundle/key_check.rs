//! Key checks: a small age file sealed with a passphrase, kept where the passphrase is
//! needed later (a repository's `config.json`), so a wrong passphrase is refused before
//! anything is written or read with it.
//!
//! The sealed content is a fresh random X25519 identity, sealed and opened exactly like a
//! bundle's `wrappedIdentity`: the check costs one scrypt run and proves nothing but that
//! the passphrase is the one it was sealed with.

use crate::error::{Error, ErrorKind, Result};

use super::crypto::{unwrap_identity, wrap_identity, Passphrase, Unwrap};

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
        match unwrap_identity(self, work_factor, key_check) {
            Ok(_) => Ok(()),
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
