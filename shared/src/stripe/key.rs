//! Stripe API keys, and the guard that keeps test and live apart
//! (docs/architecture.md decision 9): a live stage never runs with a test key, nor the
//! reverse.

use std::fmt;

use super::mode::StripeMode;

/// A secret (`sk_…`) or restricted (`rk_…`) API key. Never printed.
#[derive(Clone)]
pub struct StripeSecretKey {
    value: String,
    mode: StripeMode,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidStripeKey {
    #[error("Stripe key must start with sk_test_, sk_live_, rk_test_ or rk_live_")]
    Prefix,
    #[error("Stripe key is too short or has characters other than letters, digits and `_`")]
    Malformed,
    #[error("Stripe mode is {stage} but the key is a {key} key; use the {stage}-mode key for this stage")]
    WrongMode { stage: StripeMode, key: StripeMode },
}

impl StripeSecretKey {
    pub fn parse(raw: &str) -> Result<Self, InvalidStripeKey> {
        let value = raw.trim();
        let mode = if value.starts_with("sk_test_") || value.starts_with("rk_test_") {
            StripeMode::Test
        } else if value.starts_with("sk_live_") || value.starts_with("rk_live_") {
            StripeMode::Live
        } else {
            return Err(InvalidStripeKey::Prefix);
        };
        // Stripe's keys are ASCII letters, digits and `_`; anything else
        // could not be sent in an `Authorization` header either.
        if value.len() < 16 || !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(InvalidStripeKey::Malformed);
        }
        Ok(StripeSecretKey { value: value.to_owned(), mode })
    }

    /// Parses the key and refuses one of the other mode.
    pub fn for_mode(raw: &str, stage: StripeMode) -> Result<Self, InvalidStripeKey> {
        let key = Self::parse(raw)?;
        if key.mode != stage {
            return Err(InvalidStripeKey::WrongMode { stage, key: key.mode });
        }
        Ok(key)
    }

    pub fn mode(&self) -> StripeMode {
        self.mode
    }

    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for StripeSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StripeSecretKey({} ***)", self.mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_refuses_the_other_modes_key() {
        let test = "sk_test_51Habc0123456789";
        let live = "sk_live_51Habc0123456789";
        assert_eq!(StripeSecretKey::for_mode(test, StripeMode::Test).unwrap().mode(), StripeMode::Test);
        assert_eq!(StripeSecretKey::for_mode(live, StripeMode::Live).unwrap().mode(), StripeMode::Live);
        assert_eq!(
            StripeSecretKey::for_mode(test, StripeMode::Live).unwrap_err(),
            InvalidStripeKey::WrongMode { stage: StripeMode::Live, key: StripeMode::Test }
        );
        let message = StripeSecretKey::for_mode(live, StripeMode::Test).unwrap_err().to_string();
        assert_eq!(
            message,
            "Stripe mode is test but the key is a live key; use the test-mode key for this stage"
        );
        assert!(!message.contains("51Habc"));
        assert!(StripeSecretKey::for_mode("rk_live_51Habc0123456789", StripeMode::Live).is_ok());
    }

    #[test]
    fn other_strings_are_not_keys_and_keys_are_never_printed() {
        for bad in [
            "",
            "pk_test_51Habc0123456789",
            "whsec_abc",
            "sk_test_",
            "sk_test_51Habc 0123456789",
            "sk_test_51Habc01234é6789",
        ] {
            assert!(StripeSecretKey::parse(bad).is_err(), "{bad}");
        }
        let key = StripeSecretKey::parse("sk_test_51Habc0123456789").unwrap();
        assert_eq!(format!("{key:?}"), "StripeSecretKey(test ***)");
    }
}
