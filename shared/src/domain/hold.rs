//! Which checkout holds a subdomain while its buyer pays.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::email::EmailAddress;
use super::subdomain::Subdomain;

/// The Checkout Session (and subscription) metadata key that carries the
/// hold, so RecordSignup turns that hold, and no other, into the claim.
pub const HOLD_METADATA_KEY: &str = "hold";

/// A buyer's hold on a subdomain: `hold_` and 32 hex digits, derived from the
/// subdomain and the buyer's e-mail, so the same buyer asking again finds
/// their own hold (and its session) instead of someone else's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HoldId(String);

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("a hold id is `hold_` and 32 lower-case hex digits")]
pub struct InvalidHoldId;

impl HoldId {
    /// What every buyer's hold id starts with (older holds do not).
    pub const PREFIX: &'static str = "hold_";

    pub fn parse(raw: &str) -> Result<Self, InvalidHoldId> {
        let hex = raw.strip_prefix(Self::PREFIX).ok_or(InvalidHoldId)?;
        if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(HoldId(raw.to_owned()))
        } else {
            Err(InvalidHoldId)
        }
    }

    /// The hold of `email` on `subdomain`. The address is compared without
    /// case: `Dana@` and `dana@` are one buyer, not two holds.
    pub fn for_buyer(subdomain: &Subdomain, email: &EmailAddress) -> Self {
        let mut hash = Sha256::new();
        hash.update(subdomain.as_str().as_bytes());
        hash.update([0u8]);
        hash.update(email.as_str().to_ascii_lowercase().as_bytes());
        HoldId(format!("{}{}", Self::PREFIX, &hex::encode(hash.finalize())[..32]))
    }

    /// The hold a completed Checkout Session carries in its metadata; `None`
    /// for a session made before holds were carried, or one whose value is
    /// not a hold id (then it can take only a name nobody holds).
    pub fn from_session(session: &Value) -> Option<Self> {
        let raw = session.get("metadata")?.get(HOLD_METADATA_KEY)?.as_str()?;
        HoldId::parse(raw).ok()
    }
}

string_newtype!(HoldId, InvalidHoldId);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn hold(subdomain: &str, email: &str) -> HoldId {
        HoldId::for_buyer(&Subdomain::parse(subdomain).unwrap(), &EmailAddress::parse(email).unwrap())
    }

    #[test]
    fn one_buyer_and_name_make_one_hold_and_anything_else_another() {
        assert_eq!(hold("acme", "dana@acme.example"), hold("acme", "Dana@ACME.example"));
        assert_ne!(hold("acme", "dana@acme.example"), hold("acme", "gavin@hooli.example"));
        assert_ne!(hold("acme", "dana@acme.example"), hold("acme2", "dana@acme.example"));
        let id = hold("acme", "dana@acme.example");
        assert_eq!(HoldId::parse(id.as_str()), Ok(id));
    }

    #[test]
    fn a_session_carries_its_hold_or_none_and_a_bad_value_is_none() {
        let id = hold("acme", "dana@acme.example");
        let session = json!({"metadata": {"subdomain": "acme", "hold": id.as_str()}});
        assert_eq!(HoldId::from_session(&session), Some(id));
        assert_eq!(HoldId::from_session(&json!({"metadata": {"subdomain": "acme"}})), None);
        assert_eq!(HoldId::from_session(&json!({"metadata": {"hold": "checkout-abc"}})), None);
        assert_eq!(HoldId::parse("hold_ABCDEF0123456789abcdef0123456789"), Err(InvalidHoldId));
    }
}
