//! Exponential backoff with jitter (1 s doubling to 5 min, each delay ±20 %), and the
//! refresh interval's ±10 % jitter. Jitter spreads pods that failed together, so a
//! recovering server is not hit by all of them in the same second.

use std::cell::Cell;
use std::time::Duration;

pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Default, Clone)]
pub struct Backoff {
    attempts: u32,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff::default()
    }

    /// The delay before the next attempt; each call doubles the base.
    pub fn next_delay(&mut self) -> Duration {
        let base = BACKOFF_MIN
            .saturating_mul(1u32 << self.attempts.min(16))
            .min(BACKOFF_MAX);
        self.attempts = self.attempts.saturating_add(1);
        jitter(base, 0.2).clamp(BACKOFF_MIN.mul_f64(0.8), BACKOFF_MAX)
    }

    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

/// `d` scaled by a random factor in `[1 - spread, 1 + spread]`.
pub fn jitter(d: Duration, spread: f64) -> Duration {
    d.mul_f64(1.0 - spread + 2.0 * spread * unit())
}

/// A uniform number in `[0, 1)`. Not for secrets: xorshift seeded from the std hasher's
/// random keys, the time and the pid.
pub fn unit() -> f64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(seed());
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.finish() | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_one_second_to_five_minutes() {
        let mut b = Backoff::new();
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        assert!(
            delays[0] >= Duration::from_millis(800) && delays[0] <= Duration::from_millis(1200)
        );
        assert!(
            delays[3] >= Duration::from_millis(6400) && delays[3] <= Duration::from_millis(9600)
        );
        assert!(delays.iter().all(|d| *d <= BACKOFF_MAX));
        assert!(delays[11] >= Duration::from_secs(240));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(1200));
    }

    #[test]
    fn jitter_stays_in_range_and_varies() {
        let d = Duration::from_secs(100);
        let samples: Vec<Duration> = (0..200).map(|_| jitter(d, 0.1)).collect();
        assert!(
            samples
                .iter()
                .all(|s| *s >= Duration::from_secs(90) && *s <= Duration::from_secs(110))
        );
        assert!(samples.iter().any(|s| *s < Duration::from_secs(97)));
        assert!(samples.iter().any(|s| *s > Duration::from_secs(103)));
    }
}
