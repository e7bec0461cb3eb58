//! Time as a port, so signature tolerance and ordering can be tested.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, as Stripe writes `created` and `t=`.
pub trait Clock: Send + Sync {
    fn now_unix(&self) -> i64;

    /// Milliseconds since the epoch, for delays shorter than a second.
    fn now_millis(&self) -> i64 {
        self.now_unix().saturating_mul(1000)
    }
}

/// The UTC calendar date of a Unix time, `2026-12-11` (for mails).
pub fn utc_date(unix: i64) -> String {
    use aws_smithy_types::date_time::{DateTime, Format};
    let stamp = DateTime::from_secs(unix).fmt(Format::DateTime).unwrap_or_default();
    stamp.split('T').next().unwrap_or_default().to_owned()
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(elapsed) => i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX),
            // A clock set before 1970 is broken; every timestamp will look
            // like it is from the future and be refused, which is the safe way.
            Err(_) => 0,
        }
    }

    fn now_millis(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(elapsed) => i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
            Err(_) => 0,
        }
    }
}

/// A clock that always says the same time (tests, vectors, replay).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now_unix(&self) -> i64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unix_time_reads_as_its_utc_date() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_798_761_599), "2026-12-31");
        assert_eq!(utc_date(1_798_761_600), "2027-01-01");
        assert_eq!(utc_date(-1), "1969-12-31");
    }
}
