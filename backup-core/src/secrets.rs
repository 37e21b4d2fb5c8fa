//! Generating new secret values for services restored from a snapshot.

use rand::distr::{Alphanumeric, SampleString};
use rand::RngCore;

/// How a secret is generated on import.
#[derive(Clone)]
pub enum SecretGenerator {
    /// Random letters and digits of this length.
    Alphanumeric(usize),
    /// This many random bytes, hex-encoded.
    Hex(usize),
    /// A custom function.
    Custom(fn() -> String),
}

impl std::fmt::Debug for SecretGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretGenerator::Alphanumeric(n) => write!(f, "Alphanumeric({n})"),
            SecretGenerator::Hex(n) => write!(f, "Hex({n})"),
            SecretGenerator::Custom(_) => f.write_str("Custom"),
        }
    }
}

impl SecretGenerator {
    /// A 32-character alphanumeric password: safe in URLs and connection strings.
    pub fn password() -> Self {
        SecretGenerator::Alphanumeric(32)
    }

    /// Makes a new value from the OS random source.
    pub fn generate(&self) -> String {
        match self {
            SecretGenerator::Alphanumeric(len) => {
                Alphanumeric.sample_string(&mut rand::rng(), *len)
            }
            SecretGenerator::Hex(len) => {
                let mut bytes = vec![0u8; *len];
                rand::rng().fill_bytes(&mut bytes);
                hex::encode(bytes)
            }
            SecretGenerator::Custom(make) => make(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_have_the_requested_shape_and_differ() {
        let a = SecretGenerator::password().generate();
        let b = SecretGenerator::password().generate();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        let h = SecretGenerator::Hex(16).generate();
        assert_eq!(h.len(), 32);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
