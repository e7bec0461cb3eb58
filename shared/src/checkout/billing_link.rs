//! Links to Stripe's billing portal that work when they are read.
//!
//! A portal session lives minutes, a mail is read days later: mails carry a
//! link of ours instead, `{base}/billing/{token}`, whose token names the
//! customer and an expiry and is signed with the tenant key
//! (HMAC-SHA256, its own purpose); `GET /billing/{token}` on the checkout API
//! checks it and only then creates the portal session and redirects. The
//! key's version is in the token, so links mailed before a rotation keep
//! working while the old version is configured.

use std::sync::Arc;

use async_trait::async_trait;
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::domain::CustomerId;
use crate::domain::password::PasswordKey;
use crate::ports::{BillingError, BillingPortal};

const PURPOSE: &str = "billing-link";
/// The checkout API's public URL, under which `/billing/{token}` answers.
pub const BILLING_LINK_BASE: &str = "BILLING_LINK_BASE";
/// How long a mailed link works: Stripe's dunning lasts up to about a month,
/// and a suspended customer may come back later still.
pub const LINK_LIFETIME_SECONDS: i64 = 60 * 24 * 60 * 60;

/// Why a link was refused (one line, nothing secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this link is not one of ours")]
    Malformed,
    #[error("this link has expired")]
    Expired,
    #[error("this link was signed with a key that is no longer configured")]
    UnknownKey,
    #[error("this link's signature does not match")]
    BadSignature,
}

/// Makes and checks billing links.
#[derive(Clone)]
pub struct BillingLinks {
    /// `https://…/billing`, no trailing `/`.
    base: String,
    key: PasswordKey,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for BillingLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingLinks")
            .field("base", &self.base)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl BillingLinks {
    /// Links under `api_base` (the checkout API's URL), signed with `key`.
    pub fn new(api_base: &str, key: PasswordKey, clock: Arc<dyn Clock>) -> Self {
        BillingLinks { base: format!("{}/billing", api_base.trim_end_matches('/')), key, clock }
    }

    /// From [`BILLING_LINK_BASE`] (an `https://` URL; `http://` on loopback for local runs).
    pub fn from_lookup(
        env: &dyn crate::config::Lookup,
        key: PasswordKey,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, crate::config::ConfigError> {
        let raw = crate::config::required(env, BILLING_LINK_BASE)?;
        let base = raw.trim();
        let ok = (base.starts_with("https://")
            || base.starts_with("http://127.0.0.1")
            || base.starts_with("http://localhost"))
            && !base.contains(char::is_whitespace)
            && !base.contains(['?', '#']);
        if !ok {
            return Err(crate::config::ConfigError::Invalid {
                var: BILLING_LINK_BASE,
                reason: "expected the checkout API's https:// URL".into(),
            });
        }
        Ok(BillingLinks::new(base, key, clock))
    }

    /// The link for `customer`, working for [`LINK_LIFETIME_SECONDS`].
    pub fn link_for(&self, customer: &CustomerId) -> String {
        let expires = self.clock.now_unix() + LINK_LIFETIME_SECONDS;
        let version = self.key.current_version();
        let signature =
            hex::encode(self.key.sign(PURPOSE, &signed_text(version, customer.as_str(), expires)));
        format!("{}/{version}.{customer}.{expires}.{signature}", self.base)
    }

    /// The customer a token was made for, if it is ours, unexpired and signed
    /// with a configured key version.
    pub fn verify(&self, token: &str) -> Result<CustomerId, LinkError> {
        let mut parts = token.split('.');
        let (Some(version), Some(customer), Some(expires), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(LinkError::Malformed);
        };
        let customer = CustomerId::parse(customer).map_err(|_| LinkError::Malformed)?;
        let expires: i64 = expires.parse().map_err(|_| LinkError::Malformed)?;
        let signature = hex::decode(signature).map_err(|_| LinkError::Malformed)?;
        let key = self.key.version(version).ok_or(LinkError::UnknownKey)?;
        let expected = key.sign(PURPOSE, &signed_text(version, customer.as_str(), expires));
        if !bool::from(expected.as_slice().ct_eq(&signature)) {
            return Err(LinkError::BadSignature);
        }
        if expires < self.clock.now_unix() {
            return Err(LinkError::Expired);
        }
        Ok(customer)
    }
}

fn signed_text(version: &str, customer: &str, expires: i64) -> String {
    format!("{version}.{customer}.{expires}")
}

/// What the lifecycle mails link to: our link, not a portal session that
/// would be dead by the time it is read.
#[async_trait]
impl BillingPortal for BillingLinks {
    async fn portal_url(&self, customer: &CustomerId) -> Result<String, BillingError> {
        Ok(self.link_for(customer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;

    const NOW: i64 = 1_763_800_100;

    fn links(now: i64, key: &str) -> BillingLinks {
        let key = PasswordKey::parse(key).unwrap();
        BillingLinks::new("https://api.example.com/", key, Arc::new(FixedClock(now)))
    }

    fn token(link: &str) -> &str {
        link.rsplit('/').next().unwrap()
    }

    const KEY: &str = "1:unit-test-password-key-0123456789abcdef";

    #[test]
    fn a_link_names_its_customer_until_it_expires() {
        let customer = CustomerId::parse("cus_QAcme").unwrap();
        let link = links(NOW, KEY).link_for(&customer);
        assert!(link.starts_with("https://api.example.com/billing/1.cus_QAcme."), "{link}");
        assert_eq!(links(NOW + 86_400 * 30, KEY).verify(token(&link)), Ok(customer));
        assert_eq!(links(NOW + LINK_LIFETIME_SECONDS + 1, KEY).verify(token(&link)), Err(LinkError::Expired));
    }

    #[test]
    fn a_tampered_forged_or_unknown_link_is_refused() {
        let link = links(NOW, KEY).link_for(&CustomerId::parse("cus_QAcme").unwrap());
        let verifier = links(NOW, KEY);
        let other = token(&link).replace("cus_QAcme", "cus_QOther");
        assert_eq!(verifier.verify(&other), Err(LinkError::BadSignature));
        let later = token(&link).replacen(&format!(".{}.", NOW + LINK_LIFETIME_SECONDS), ".9999999999.", 1);
        assert_eq!(verifier.verify(&later), Err(LinkError::BadSignature), "the expiry is signed");
        let forged = links(NOW, "1:someone-elses-key-0123456789abcdefghij")
            .link_for(&CustomerId::parse("cus_QAcme").unwrap());
        assert_eq!(verifier.verify(token(&forged)), Err(LinkError::BadSignature));
        for junk in [
            "",
            "a.b.c",
            "1.cus_QAcme.x.00",
            "1.cus_QAcme.1.zz",
            "1.cus_QAcme.1.00.extra",
            "1.not a customer.1.00",
        ] {
            assert_eq!(verifier.verify(junk), Err(LinkError::Malformed), "{junk}");
        }
        assert_eq!(
            links(NOW, "v9:another-key-0123456789abcdefghijklmn").verify(token(&link)),
            Err(LinkError::UnknownKey)
        );
    }

    #[test]
    fn links_mailed_before_a_rotation_work_while_the_old_version_is_kept() {
        let customer = CustomerId::parse("cus_QAcme").unwrap();
        let old = links(NOW, KEY).link_for(&customer);
        let rotated =
            links(NOW, "v2:a-new-password-key-0123456789abcdefgh,1:unit-test-password-key-0123456789abcdef");
        assert_eq!(rotated.verify(token(&old)), Ok(customer.clone()));
        assert!(token(&rotated.link_for(&customer)).starts_with("v2."));
    }
}
