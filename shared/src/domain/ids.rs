//! Identifiers: Stripe's (checked by prefix and alphabet) and our tenant id.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{kind} must be `{prefix}` followed by up to 250 letters, digits or underscores")]
pub struct InvalidId {
    kind: &'static str,
    prefix: &'static str,
}

fn check_stripe_id(raw: &str, kind: &'static str, prefix: &'static str) -> Result<String, InvalidId> {
    let valid = raw.strip_prefix(prefix).is_some_and(|rest| {
        !rest.is_empty() && rest.len() <= 250 && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    });
    if valid { Ok(raw.to_owned()) } else { Err(InvalidId { kind, prefix }) }
}

macro_rules! stripe_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, InvalidId> {
                check_stripe_id(raw, $kind, $prefix).map($name)
            }
        }

        string_newtype!($name, InvalidId);
    };
}

stripe_id!(
    /// A Stripe customer (`cus_…`).
    CustomerId, "customer id", "cus_"
);
stripe_id!(
    /// A Stripe subscription (`sub_…`).
    SubscriptionId, "subscription id", "sub_"
);
stripe_id!(
    /// A Stripe Checkout Session (`cs_…`).
    CheckoutSessionId, "checkout session id", "cs_"
);
stripe_id!(
    /// A Stripe promotion code object (`promo_…`), not the code a customer types.
    PromotionCodeId, "promotion code id", "promo_"
);

/// Our id for a tenant: `tnt_` and 20 hex digits derived from the checkout
/// session that paid for it, so every retry of a signup names the same tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn for_checkout(session: &CheckoutSessionId) -> Self {
        Self::derived_from(session.as_str())
    }

    /// For a checkout so broken it has no session id: keyed by its event.
    pub fn for_event(event: &crate::stripe::StripeEventId) -> Self {
        Self::derived_from(event.as_str())
    }

    fn derived_from(seed: &str) -> Self {
        TenantId(format!("tnt_{}", &hex::encode(Sha256::digest(seed.as_bytes()))[..20]))
    }

    /// A number derived from the id, the same on every build and platform
    /// (std's hasher is seeded per process): where the tenant starts looking
    /// for a load balancer with room and a free rule priority, so launches
    /// that run together start apart instead of racing for one place.
    pub fn spread(&self) -> u64 {
        // FNV-1a, then SplitMix64's finaliser: FNV alone leaves ids that
        // differ in their last digits close together in the high bits.
        let z = fnv1a(self.0.as_bytes());
        let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        let valid = raw.strip_prefix("tnt_").is_some_and(|rest| {
            rest.len() == 20 && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if valid {
            Ok(TenantId(raw.to_owned()))
        } else {
            Err(InvalidId { kind: "tenant id", prefix: "tnt_" })
        }
    }
}

string_newtype!(TenantId, InvalidId);

/// FNV-1a: small, and stable across builds and platforms.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_ids_are_checked_by_prefix_and_alphabet() {
        assert!(CustomerId::parse("cus_QAcmeR0b0t1cs").is_ok());
        assert!(SubscriptionId::parse("sub_1QAcme").is_ok());
        assert!(CheckoutSessionId::parse("cs_test_a1Acme").is_ok());
        assert!(CustomerId::parse("sub_1").is_err());
        assert!(CustomerId::parse("cus_").is_err());
        assert!(CustomerId::parse("cus_a b").is_err());
        assert_eq!(
            SubscriptionId::parse("x").unwrap_err().to_string(),
            "subscription id must be `sub_` followed by up to 250 letters, digits or underscores"
        );
    }

    #[test]
    fn tenant_id_is_stable_per_checkout_and_round_trips() {
        let session = CheckoutSessionId::parse("cs_test_a1Acme").unwrap();
        let id = TenantId::for_checkout(&session);
        assert_eq!(id, TenantId::for_checkout(&session));
        assert_ne!(id, TenantId::for_checkout(&CheckoutSessionId::parse("cs_test_other").unwrap()));
        assert_eq!(TenantId::parse(id.as_str()).unwrap(), id);
        assert!(TenantId::parse("tnt_XYZ").is_err());
    }
}
