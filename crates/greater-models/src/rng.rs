//! SplitMix64, the one seeded generator of the workspace: random test and benchmark weights,
//! synthetic token ids, and per-step seeds of the optimiser all come from here, so the constants
//! live once.
//!
//! Reference: Steele, Lea and Flood, "Fast splittable pseudorandom number generators" (2014);
//! the constants are those of `java.util.SplittableRandom`.

/// A tiny, portable, seeded generator, so random weights are identical on every platform and
/// backend without pulling a RNG crate into the model layer. The field is the state.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The state increment (the golden ratio in 64-bit fixed point, `2^64 / φ`, made odd).
    pub const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(Self::GAMMA);
        mix64(self.0)
    }

    /// Uniform in `[0, 1)`, from the top 24 bits.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// SplitMix64's output function: a bijective mix of 64 bits (two xor-shift-multiply rounds).
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An independent seed for item `index` of a stream seeded with `seed` (e.g. optimisation step
/// `index` of a run), so a resumed run draws the same numbers as an uninterrupted one.
pub fn derive_seed(seed: u64, index: u64) -> u64 {
    mix64(seed ^ index.wrapping_mul(SplitMix64::GAMMA))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_output_of_seed_zero_is_the_published_one() {
        // The reference implementation's first value for seed 0.
        assert_eq!(SplitMix64(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn derived_seeds_are_the_values_runs_were_made_with() {
        // Values of greater-opt's former `step_seed`, so existing checkpoints resume unchanged.
        assert_eq!(derive_seed(0, 1), 0xE220_A839_7B1D_CDAF);
        assert_eq!(derive_seed(42, 3), 0x5FD3_0D2F_CBEF_75E3);
        assert_eq!(derive_seed(7, 0), 0x12AE_3023_7B17_DF14);
    }

    #[test]
    fn floats_are_in_the_unit_interval() {
        let mut r = SplitMix64(5);
        assert!((0..1000).map(|_| r.next_f32()).all(|x| (0.0..1.0).contains(&x)));
    }
}
