//! One master seed, one stream per component.
//!
//! Each component (cloud delays, interruptions, capacity errors …) draws from its own ChaCha8
//! stream whose seed is derived from the master seed and the component's name, so adding a draw
//! in one component never shifts another's numbers, and a report can name the one seed that
//! reproduces it (turmoil's builder does the same with `rng_seed`).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded random stream of one component.
#[derive(Debug, Clone)]
pub struct Stream(ChaCha8Rng);

/// SplitMix64's finalizer: spreads nearby inputs (seeds 0, 1, 2 …) over all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a of a name: stable across platforms and Rust versions (unlike `DefaultHasher`).
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The seed of `component` under `master`.
pub fn derive(master: u64, component: &str) -> u64 {
    mix(master ^ mix(name_hash(component)))
}

impl Stream {
    /// The stream of `component` under `master`.
    pub fn new(master: u64, component: &str) -> Self {
        Stream(ChaCha8Rng::seed_from_u64(derive(master, component)))
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// Uniform integer in `[min, max]` (`min` when the range is empty).
    pub fn between(&mut self, min: i64, max: i64) -> i64 {
        if max <= min {
            min
        } else {
            self.0.random_range(min..=max)
        }
    }

    /// Exponential with mean `mean` (`None` when the mean is not positive and finite).
    pub fn exponential(&mut self, mean: f64) -> Option<f64> {
        if !(mean.is_finite() && mean > 0.0) {
            return None;
        }
        let u = 1.0 - self.unit();
        Some(-mean * u.ln())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_components_differ() {
        let mut a = Stream::new(7, "cloud");
        let mut b = Stream::new(7, "cloud");
        let mut c = Stream::new(7, "spot");
        let xs: Vec<i64> = (0..5).map(|_| a.between(0, 1000)).collect();
        let ys: Vec<i64> = (0..5).map(|_| b.between(0, 1000)).collect();
        let zs: Vec<i64> = (0..5).map(|_| c.between(0, 1000)).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        assert_ne!(derive(0, "x"), derive(1, "x"));
    }

    #[test]
    fn draws_stay_in_range() {
        let mut s = Stream::new(1, "r");
        for _ in 0..1000 {
            let v = s.between(30_000, 60_000);
            assert!((30_000..=60_000).contains(&v));
            assert!(s.exponential(10.0).unwrap() >= 0.0);
        }
        assert_eq!(s.between(5, 5), 5);
        assert!(s.exponential(0.0).is_none());
    }
}
