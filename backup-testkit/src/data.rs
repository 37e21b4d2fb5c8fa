//! Deterministic test data: bytes that do not compress, from a seed.

/// A xorshift64 generator of poorly compressible bytes: the same seed gives the same bytes.
#[derive(Debug, Clone)]
pub struct PseudoRandom {
    state: u64,
}

impl PseudoRandom {
    /// A generator for `seed` (any value; zero is allowed).
    pub fn new(seed: u64) -> Self {
        PseudoRandom { state: seed | 1 }
    }

    /// Fills `out` with the next bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            chunk.copy_from_slice(&self.state.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// `len` poorly compressible bytes for `seed`.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    PseudoRandom::new(seed).fill(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_other_seeds_differ() {
        assert_eq!(pseudo_random_bytes(1001, 7), pseudo_random_bytes(1001, 7));
        assert_ne!(pseudo_random_bytes(64, 7), pseudo_random_bytes(64, 8));
        assert_eq!(pseudo_random_bytes(13, 1).len(), 13);
    }

    #[test]
    fn filling_in_pieces_continues_the_sequence() {
        let whole = pseudo_random_bytes(64, 3);
        let mut generator = PseudoRandom::new(3);
        let mut first = vec![0u8; 32];
        let mut second = vec![0u8; 32];
        generator.fill(&mut first);
        generator.fill(&mut second);
        assert_eq!([first, second].concat(), whole);
    }
}
