//! Free trials: at most one per customer.
//!
//! A customer is known at checkout only by the e-mail address they type, so
//! the one trial is tracked per address, normalised so that the same
//! mailbox written another way (`Dana+2@Acme.example`) counts as one. The
//! Stripe customer the trial ended up on is recorded with it when the
//! checkout is paid. The address itself is not stored: the key is its hash.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::email::EmailAddress;
use super::hold::HoldId;
use super::ids::{CustomerId, TenantId};

/// Stripe's limit on `subscription_data.trial_period_days`.
pub const MAX_TRIAL_DAYS: u32 = 730;

/// A plan whose trial is taken without a card: Checkout asks for no payment
/// method (`payment_method_collection=if_required`), and when the trial ends
/// with none on file Stripe pauses or cancels the subscription
/// (`subscription_data.trial_settings.end_behavior.missing_payment_method`);
/// convergence then suspends or removes the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialWithoutCard {
    Pause,
    Cancel,
}

impl TrialWithoutCard {
    /// Stripe's word for it (as the catalog spells it too).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pause" => Some(TrialWithoutCard::Pause),
            "cancel" => Some(TrialWithoutCard::Cancel),
            _ => None,
        }
    }
}

/// The Checkout Session metadata key that says the session carries a trial
/// (its value is the number of days), so the paid checkout records it used.
pub const TRIAL_METADATA_KEY: &str = "trial_days";

/// How long before a trial ends its reminder goes out: Stripe sends
/// `customer.subscription.trial_will_end` three days before; an hour more
/// absorbs the event's delivery and the clocks' difference.
pub const TRIAL_REMINDER_SECONDS: i64 = 3 * 24 * 60 * 60 + 60 * 60;

/// Whose trial: the hash of a normalised e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrialKey(String);

impl TrialKey {
    /// The key of `email`'s mailbox: compared without regard to case, and
    /// without a `+tag` after the local part (a mailbox takes mail for
    /// every tag, so each tag is not another customer).
    pub fn for_email(email: &EmailAddress) -> TrialKey {
        let lowered = email.as_str().to_ascii_lowercase();
        let (local, domain) = lowered.rsplit_once('@').unwrap_or(("", lowered.as_str()));
        let local = local.split_once('+').map_or(local, |(mailbox, _tag)| mailbox);
        let local = if local.is_empty() { "+" } else { local };
        let digest = Sha256::digest(format!("{local}@{domain}").as_bytes());
        TrialKey(hex::encode(&digest[..16]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TrialKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A trial a checkout is about to give: held for that checkout while its
/// session is open, so two checkouts of one customer cannot both give one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialReservation {
    pub key: TrialKey,
    pub hold: HoldId,
    /// When the reservation lapses unless the checkout was paid (the hold's end).
    pub until: i64,
}

/// A trial given: by which paid checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialUse {
    pub tenant: TenantId,
    pub customer: CustomerId,
    pub used_at: i64,
}

/// What a checkout may give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrialOffer {
    /// Reserved for this checkout (now, or by the same buyer's earlier request).
    Reserved,
    /// The customer had their trial.
    Used(TrialUse),
    /// Another open checkout of the customer holds it until then.
    InAnotherCheckout { until: i64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(raw: &str) -> TrialKey {
        TrialKey::for_email(&EmailAddress::parse(raw).unwrap())
    }

    #[test]
    fn one_mailbox_written_differently_is_one_trial_key() {
        assert_eq!(key("dana@acme.example"), key("Dana@ACME.example"));
        assert_eq!(key("dana@acme.example"), key("dana+trial2@acme.example"));
        assert_ne!(key("dana@acme.example"), key("dana@hooli.example"));
        assert_ne!(key("dana@acme.example"), key("dana.b@acme.example"));
        assert!(!key("dana@acme.example").as_str().contains("dana"), "the address is not kept");
    }
}
