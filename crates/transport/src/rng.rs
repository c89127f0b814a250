//! Seedable randomness: every random choice in protolab (query ids, source ports, impairment)
//! comes from an RNG built here, so that a run can be replayed with `--seed`.

pub use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Builds an RNG from `seed`, or from the operating system when there is none.
///
/// Returns the seed actually used, so a program can print it and the run can be repeated.
pub fn seeded(seed: Option<u64>) -> (StdRng, u64) {
    let seed = seed.unwrap_or_else(|| rand::rng().random());
    (StdRng::seed_from_u64(seed), seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers() {
        let (mut a, sa) = seeded(Some(7));
        let (mut b, _) = seeded(Some(sa));
        let xs: Vec<u64> = (0..8).map(|_| a.random()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.random()).collect();
        assert_eq!(sa, 7);
        assert_eq!(xs, ys);
    }
}
