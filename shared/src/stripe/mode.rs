//! Test mode and live mode are kept apart everywhere (docs/architecture.md decision 9).

use std::fmt;
use std::str::FromStr;

/// Which of Stripe's two worlds a deployment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripeMode {
    Test,
    Live,
}

impl StripeMode {
    /// Whether an event's `livemode` flag belongs to this mode.
    pub fn accepts_livemode(self, livemode: bool) -> bool {
        livemode == matches!(self, StripeMode::Live)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StripeMode::Test => "test",
            StripeMode::Live => "live",
        }
    }
}

impl fmt::Display for StripeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Stripe mode must be `test` or `live`, got `{0}`")]
pub struct InvalidStripeMode(String);

impl FromStr for StripeMode {
    type Err = InvalidStripeMode;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim() {
            "test" => Ok(StripeMode::Test),
            "live" => Ok(StripeMode::Live),
            other => Err(InvalidStripeMode(other.chars().take(32).collect())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_modes_and_refuses_anything_else() {
        assert_eq!("test".parse(), Ok(StripeMode::Test));
        assert_eq!(" live\n".parse(), Ok(StripeMode::Live));
        assert!("Live".parse::<StripeMode>().is_err());
        assert!("".parse::<StripeMode>().is_err());
    }

    #[test]
    fn live_endpoint_refuses_test_events_and_the_reverse() {
        assert!(StripeMode::Live.accepts_livemode(true));
        assert!(!StripeMode::Live.accepts_livemode(false));
        assert!(StripeMode::Test.accepts_livemode(false));
        assert!(!StripeMode::Test.accepts_livemode(true));
    }
}
