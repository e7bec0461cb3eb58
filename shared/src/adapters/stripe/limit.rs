//! Staying inside Stripe's rate limits: a token bucket in front of every
//! call, and bounded retries with backoff for the answers that say "slow down"
//! (429, `lock_timeout`).
//!
//! Stripe allows 100 read requests per second in live mode and 25 in test
//! mode (the same again for writes). The bucket is per process: each Lambda
//! instance holds its own, so it stops one instance's burst, not the sum of
//! many; the retries absorb the rest.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::stripe::StripeMode;

/// How many requests per second, and how many may go at once after a quiet spell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl RateLimit {
    /// Stripe's documented limit for `mode` (live 100/s, test 25/s), held
    /// in every one-second window: a burst of a tenth of it, refilled at
    /// the rest (a bucket refilled at the full limit lets limit + burst
    /// through in the second after a quiet spell).
    pub fn for_mode(mode: StripeMode) -> Self {
        let limit: u32 = match mode {
            StripeMode::Live => 100,
            StripeMode::Test => 25,
        };
        let burst = (limit / 10).max(1);
        RateLimit { per_second: f64::from(limit - burst), burst }
    }

    /// The most requests any one-second window can see.
    pub fn per_window(&self) -> f64 {
        self.per_second + f64::from(self.burst)
    }
}

/// A token bucket on tokio's clock (so tests can pause time).
#[derive(Debug)]
pub struct TokenBucket {
    limit: RateLimit,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket. A rate that is not a positive number is taken as one
    /// request per second rather than none (a misconfiguration must not stall calls for ever).
    pub fn new(limit: RateLimit) -> Self {
        let per_second =
            if limit.per_second.is_finite() && limit.per_second > 0.0 { limit.per_second } else { 1.0 };
        let limit = RateLimit { per_second, burst: limit.burst.max(1) };
        TokenBucket {
            limit,
            state: Mutex::new(Bucket { tokens: f64::from(limit.burst), refilled_at: Instant::now() }),
        }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes a token now, or says how long until one is due. A waiter that
    /// is told to wait has its token reserved (the count goes negative), so
    /// concurrent waiters queue up behind each other instead of all waking at once.
    fn reserve(&self) -> Duration {
        let mut bucket = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(bucket.refilled_at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.limit.per_second).min(f64::from(self.limit.burst));
        bucket.refilled_at = now;
        bucket.tokens -= 1.0;
        if bucket.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-bucket.tokens / self.limit.per_second)
        }
    }

    /// Waits until a request may be sent.
    pub async fn acquire(&self) {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// A source of jitter: a fraction in `[0, 1)`.
pub trait Jitter: Send + Sync {
    fn fraction(&self) -> f64;
}

/// Jitter from the standard library's per-instance random hash keys (no
/// random-number crate for one number per retry).
#[derive(Debug, Default)]
pub struct RandomJitter;

impl Jitter for RandomJitter {
    fn fraction(&self) -> f64 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(0);
        // 53 bits: what an f64 holds exactly.
        (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Retries for "too many requests": exponential backoff with full jitter,
/// bounded in attempts and in total time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The first backoff's ceiling; each retry doubles it.
    pub base_delay: Duration,
    /// No single backoff is longer.
    pub max_delay: Duration,
    /// No retry starts once this much time has passed since the first attempt.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(4),
            max_elapsed: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn never() -> Self {
        RetryPolicy { max_attempts: 1, ..Self::default() }
    }

    /// How long to wait before attempt `attempt + 1` (after `attempt`
    /// attempts, `elapsed` since the first), or `None` to give up.
    pub fn backoff(&self, attempt: u32, elapsed: Duration, jitter: &dyn Jitter) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let exponent = attempt.saturating_sub(1).min(30);
        let ceiling = self.base_delay.saturating_mul(1 << exponent).min(self.max_delay);
        let delay = ceiling.mul_f64(jitter.fraction().clamp(0.0, 1.0));
        (elapsed.saturating_add(delay) <= self.max_elapsed).then_some(delay)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    struct Fixed(f64);
    impl Jitter for Fixed {
        fn fraction(&self) -> f64 {
            self.0
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_out_no_faster_than_the_limit() {
        let bucket = Arc::new(TokenBucket::new(RateLimit::for_mode(StripeMode::Test)));
        let start = Instant::now();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (bucket, sent) = (bucket.clone(), sent.clone());
                tokio::spawn(async move {
                    bucket.acquire().await;
                    sent.lock().unwrap().push(Instant::now() - start);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let mut sent = sent.lock().unwrap().clone();
        sent.sort();
        // In any one-second window (measured on tokio's paused clock): at
        // most Stripe's 25, the burst already in the bucket included.
        for (i, at) in sent.iter().enumerate() {
            let in_window = sent[i..].iter().take_while(|t| **t < *at + Duration::from_secs(1)).count();
            assert!(in_window <= 25, "{in_window} requests within a second from {at:?}");
        }
        // And no slower than the bucket allows: 98 after the burst of 2, at 23/s.
        let last = sent.last().copied().unwrap();
        let expected = Duration::from_secs_f64(98.0 / 23.0);
        // Tokio's timer counts whole milliseconds.
        assert!(last.abs_diff(expected) <= Duration::from_millis(2), "last went at {last:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_bucket_refills_up_to_its_burst_only() {
        let bucket = TokenBucket::new(RateLimit { per_second: 10.0, burst: 3 });
        for _ in 0..3 {
            assert_eq!(bucket.reserve(), Duration::ZERO);
        }
        assert_eq!(bucket.reserve(), Duration::from_millis(100));
        tokio::time::advance(Duration::from_secs(60)).await;
        // A minute of quiet is worth three requests, not six hundred.
        for _ in 0..3 {
            assert_eq!(bucket.reserve(), Duration::ZERO);
        }
        assert!(bucket.reserve() > Duration::ZERO);
    }

    #[test]
    fn live_mode_allows_four_times_test_mode() {
        assert_eq!(RateLimit::for_mode(StripeMode::Live).per_window(), 100.0);
        assert_eq!(RateLimit::for_mode(StripeMode::Test).per_window(), 25.0);
        let nonsense = TokenBucket::new(RateLimit { per_second: f64::NAN, burst: 0 });
        assert_eq!(nonsense.limit(), RateLimit { per_second: 1.0, burst: 1 });
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_stops_at_the_bounds() {
        let policy = RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            max_elapsed: Duration::from_secs(1),
        };
        let full = Fixed(0.999_999);
        let ceilings: Vec<_> = (1..6)
            .map(|attempt| policy.backoff(attempt, Duration::ZERO, &full).unwrap().as_millis())
            .collect();
        assert_eq!(ceilings, [99, 199, 349, 349, 349]);
        assert_eq!(policy.backoff(6, Duration::ZERO, &full), None, "attempts are bounded");
        assert_eq!(
            policy.backoff(2, Duration::from_millis(900), &full),
            None,
            "a retry that would start after max_elapsed is not made"
        );
        assert_eq!(
            policy.backoff(2, Duration::from_millis(900), &Fixed(0.25)),
            Some(Duration::from_millis(50))
        );
        assert_eq!(RetryPolicy::never().backoff(1, Duration::ZERO, &full), None);
    }

    #[test]
    fn random_jitter_stays_in_range_and_varies() {
        let draws: Vec<f64> = (0..64).map(|_| RandomJitter.fraction()).collect();
        assert!(draws.iter().all(|f| (0.0..1.0).contains(f)));
        assert!(draws.iter().any(|f| *f != draws[0]), "jitter that never varies is no jitter");
    }
}
