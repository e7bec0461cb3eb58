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

    /// One that only checks links (the checkout API, which answers them
    /// and need not know its own URL); the links it would make are relative.
    pub fn checker(key: PasswordKey, clock: Arc<dyn Clock>) -> Self {
        BillingLinks::new("", key, clock)
    }

    /// From [`BILLING_LINK_BASE`] (an `https://` URL; `http://` on loopback for local runs).
    pub fn from_lookup(
        env: &dyn crate::config::Lookup,
        key: PasswordKey,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, crate::config::ConfigError> {
        Ok(BillingLinks::new(&api_base(env)?, key, clock))
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

/// The checkout API's public URL from [`BILLING_LINK_BASE`] (an `https://`
/// URL; `http://` on loopback for local runs), without a trailing `/`.
pub fn api_base(env: &dyn crate::config::Lookup) -> Result<String, crate::config::ConfigError> {
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
    Ok(base.trim_end_matches('/').to_owned())
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

impl super::CheckoutApi {
    /// `GET /billing/{token}`: a link from a mail, checked; only then a
    /// portal session is made for its customer, and the browser sent there.
    pub(super) async fn billing_portal(&self, token: &str) -> super::ApiAnswer {
        use http::StatusCode;

        use super::ApiAnswer;
        let Some((links, return_url)) = &self.billing else {
            return ApiAnswer::error(StatusCode::NOT_FOUND, "no such route");
        };
        let customer = match links.verify(token) {
            Ok(customer) => customer,
            Err(LinkError::Expired) => {
                return ApiAnswer::page(
                    StatusCode::GONE,
                    "This link has expired. Sign in to your workspace to manage billing, or reply to the mail \
                     that brought you here.",
                );
            }
            // Which check failed is for the log, not for whoever is guessing.
            Err(refused) => {
                tracing::warn!(reason = %refused, "billing link refused");
                return ApiAnswer::page(StatusCode::NOT_FOUND, "This link is not valid.");
            }
        };
        match self.stripe.create_portal_session(&customer, return_url).await {
            Ok(url) => ApiAnswer::see_other(&url),
            Err(error) => {
                tracing::error!(customer = %customer, error = %crate::telemetry::error_chain(&error), "portal session");
                ApiAnswer::page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Billing is unavailable for a moment. Please try the link again in a minute.",
                )
            }
        }
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

    /// A Stripe that cannot be reached.
    struct DownStripe;

    #[async_trait]
    impl crate::ports::StripeGateway for DownStripe {
        async fn create_checkout_session(
            &self,
            _: &crate::ports::CheckoutSessionRequest,
        ) -> Result<crate::ports::CreatedSession, crate::ports::StripeApiError> {
            Err(crate::ports::StripeApiError::Unavailable("down".into()))
        }

        async fn create_portal_session(
            &self,
            _: &CustomerId,
            _: &str,
        ) -> Result<String, crate::ports::StripeApiError> {
            Err(crate::ports::StripeApiError::Unavailable("down".into()))
        }
        async fn price_by_lookup_key(
            &self,
            _: &crate::domain::LookupKey,
        ) -> Result<Option<crate::ports::SoldPrice>, crate::ports::StripeApiError> {
            Err(crate::ports::StripeApiError::Unavailable("down".into()))
        }
        async fn promotion_code(
            &self,
            _: &crate::domain::PromotionCode,
        ) -> Result<Option<crate::domain::PromotionOffer>, crate::ports::StripeApiError> {
            Err(crate::ports::StripeApiError::Unavailable("down".into()))
        }
    }

    #[tokio::test]
    async fn following_a_link_makes_the_portal_session_only_then_and_refuses_bad_links() {
        use http::{HeaderMap, Method, StatusCode};

        use crate::checkout::testing::{fixture_later, fixture_with};
        let get = async |api: &crate::checkout::CheckoutApi, token: &str| {
            api.handle(&Method::GET, &format!("/billing/{token}"), &HeaderMap::new(), b"", None).await
        };
        let customer = CustomerId::parse("cus_QAcme").unwrap();
        let key = PasswordKey::parse(KEY).unwrap();
        let mailed = links(crate::checkout::testing::NOW, KEY).link_for(&customer);
        let fixture = fixture_with(None);
        let api = |f: crate::checkout::testing::Fixture, now: i64| {
            let links = BillingLinks::new("https://api.example.com", key.clone(), Arc::new(FixedClock(now)));
            f.api.with_billing_links(links, "https://app.example.com/account")
        };
        let later = crate::checkout::testing::NOW + 20 * 86_400;
        let read_later = api(fixture_later(&fixture, later), later);
        let answer = get(&read_later, token(&mailed)).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        let location = &answer.headers.iter().find(|(name, _)| *name == "location").unwrap().1;
        assert_eq!(location, "http://127.0.0.1:8787/billing-portal/cus_QAcme");
        let forged = token(&mailed).replace("cus_QAcme", "cus_QOther");
        assert_eq!(get(&read_later, &forged).await.status, StatusCode::NOT_FOUND);
        let too_late = crate::checkout::testing::NOW + LINK_LIFETIME_SECONDS + 1;
        let expired = api(fixture_later(&fixture, too_late), too_late);
        assert_eq!(get(&expired, token(&mailed)).await.status, StatusCode::GONE);
        // Stripe down: the customer is asked to try again, nothing leaks.
        let down = crate::checkout::testing::fixture_with(Some(Arc::new(DownStripe)));
        let down = api(down, later);
        let answer = get(&down, token(&mailed)).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!answer.body.contains("down"));
        // A stage without billing links does not answer the route.
        assert_eq!(get(&fixture.api, token(&mailed)).await.status, StatusCode::NOT_FOUND);
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
