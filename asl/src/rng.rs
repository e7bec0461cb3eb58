//! A tiny PRNG for `States.UUID` and FULL retry jitter. Neither needs
//! cryptographic quality, and the workspace has no `rand`.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock;

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 over an atomic counter, so a shared `&Rng` stays `Sync` and the
/// execution future stays `Send`.
pub(crate) struct Rng(AtomicU64);

impl Rng {
    pub(crate) fn seeded(seed: u64) -> Self {
        Rng(AtomicU64::new(seed))
    }

    /// Seeded from the wall clock and a process-wide counter so that two
    /// executions started in the same nanosecond still differ.
    pub(crate) fn from_time() -> Self {
        static STARTS: AtomicU64 = AtomicU64::new(0);
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        Rng::seeded((clock::now_nanos() as u64) ^ n.wrapping_mul(GAMMA).rotate_left(17))
    }

    pub(crate) fn next_u64(&self) -> u64 {
        let mut z = self.0.fetch_add(GAMMA, Ordering::Relaxed).wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next_f64(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A random (version 4, RFC 4122 variant) UUID in its canonical text form.
    pub(crate) fn uuid_v4(&self) -> String {
        let hi = (self.next_u64() & !0xF000) | 0x4000;
        let lo = (self.next_u64() & !(0b11 << 62)) | (0b10 << 62);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xFFFF,
            hi & 0xFFFF,
            lo >> 48,
            lo & 0xFFFF_FFFF_FFFF
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_have_v4_shape_and_differ() {
        let rng = Rng::from_time();
        let a = rng.uuid_v4();
        let b = rng.uuid_v4();
        assert_ne!(a, b);
        for u in [&a, &b] {
            let parts: Vec<&str> = u.split('-').collect();
            assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), vec![8, 4, 4, 4, 12], "{u}");
            assert!(parts[2].starts_with('4'), "{u}");
            assert!(matches!(parts[3].chars().next(), Some('8' | '9' | 'a' | 'b')), "{u}");
            assert!(u.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn floats_stay_in_unit_interval() {
        let rng = Rng::seeded(7);
        for _ in 0..1000 {
            let f = rng.next_f64();
            assert!((0.0..1.0).contains(&f));
        }
    }
}
