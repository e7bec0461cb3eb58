//! Order statistics over samples; medians and percentiles rather than means,
//! so one descheduled sample on a busy 2-core machine does not move a figure.

use std::time::Duration;

/// Samples sorted once, read many times.
#[derive(Debug, Clone)]
pub struct Samples {
    sorted: Vec<f64>,
}

impl Samples {
    /// `None` if there are no samples or one is not a number.
    pub fn new(mut values: Vec<f64>) -> Option<Self> {
        if values.is_empty() || values.iter().any(|v| v.is_nan()) {
            return None;
        }
        values.sort_by(f64::total_cmp);
        Some(Samples { sorted: values })
    }

    pub fn from_durations(durations: &[Duration]) -> Option<Self> {
        Self::new(durations.iter().map(Duration::as_secs_f64).collect())
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Nearest-rank percentile, `p` in 0..=100: the smallest sample with at
    /// least `p`% of the samples at or below it.
    pub fn percentile(&self, p: f64) -> f64 {
        let p = p.clamp(0.0, 100.0);
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    /// The middle sample (mean of the two middle ones for an even count).
    pub fn median(&self) -> f64 {
        let n = self.sorted.len();
        if n % 2 == 1 { self.sorted[n / 2] } else { (self.sorted[n / 2 - 1] + self.sorted[n / 2]) / 2.0 }
    }

    pub fn min(&self) -> f64 {
        self.sorted[0]
    }

    pub fn max(&self) -> f64 {
        self.sorted[self.sorted.len() - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(Samples::new(vec![3.0, 1.0, 2.0]).unwrap().median(), 2.0);
        assert_eq!(Samples::new(vec![4.0, 1.0, 3.0, 2.0]).unwrap().median(), 2.5);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = Samples::new((1..=100).map(f64::from).collect()).unwrap();
        assert_eq!(s.percentile(50.0), 50.0);
        assert_eq!(s.percentile(99.0), 99.0);
        assert_eq!(s.percentile(100.0), 100.0);
        assert_eq!(s.percentile(0.0), 1.0);
        assert_eq!((s.min(), s.max()), (1.0, 100.0));
    }

    #[test]
    fn refuses_no_samples_and_not_a_number() {
        assert!(Samples::new(vec![]).is_none());
        assert!(Samples::new(vec![1.0, f64::NAN]).is_none());
    }
}
