//! The Stripe Checkout Session for a held subdomain: the catalog's price,
//! the idempotency key, and Stripe's failures as answers.

use std::collections::BTreeMap;

use http::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::hold::Hold;
use super::trial::TrialDecision;
use super::{ApiAnswer, CheckoutApi, CheckoutRequest};
use crate::domain::trial::TRIAL_METADATA_KEY;
use crate::domain::{AcceptedPromotion, HOLD_METADATA_KEY, LookupKey};
use crate::ports::{CheckoutSessionRequest, Discount, HeldSession, SoldPrice, StripeApiError};

impl Hold {
    /// One hold, one session: the key derives from the hold (its id and its
    /// end, which a repeated request never changes), so the same buyer
    /// asking again, or two of their requests at once, make one session,
    /// and a later hold of theirs a new one (Stripe keeps keys 24 hours).
    fn idempotency_key(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.id.as_str().as_bytes());
        hash.update([0u8]);
        hash.update(self.held.until.to_string().as_bytes());
        format!("checkout-{}", &hex::encode(hash.finalize())[..32])
    }
}

/// How long a price id found by lookup key is trusted: after
/// `tenantctl stripe sync-catalog` moves a key to a new price (and archives
/// the old one), warm functions sell the new one within this.
const PRICE_TTL_SECONDS: i64 = 300;

/// Prices by lookup key, each with the Unix time it was found.
pub(super) type PriceCache = std::sync::Mutex<std::collections::HashMap<LookupKey, (SoldPrice, i64)>>;

impl CheckoutApi {
    /// The stage's price for the plan and billing period: the active price
    /// with the catalog's lookup key in the key's own Stripe account
    /// (`GET /v1/prices?lookup_keys[]=…&active=true`), cached per process.
    pub(super) async fn price(&self, request: &CheckoutRequest) -> Result<SoldPrice, ApiAnswer> {
        let Some(price) = self.catalog.price(&request.plan.key, request.billing) else {
            // The form is parsed against the catalog, so this is unreachable; answer anyway.
            return Err(ApiAnswer::error(StatusCode::INTERNAL_SERVER_ERROR, "no price for this plan"));
        };
        let key = &price.lookup_key;
        let now = self.clock.now_unix();
        if let Some(price) = self.cached_price(key, now) {
            return Ok(price);
        }
        match self.stripe.price_by_lookup_key(key).await {
            Ok(Some(price)) => {
                if let Ok(mut cache) = self.prices.lock() {
                    cache.insert(key.clone(), (price.clone(), now));
                }
                Ok(price)
            }
            Ok(None) => {
                tracing::error!(lookup_key = %key, "no active Stripe price with this lookup key: run `tenantctl stripe sync-catalog`");
                Err(ApiAnswer::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this plan cannot be bought right now; we have been told",
                ))
            }
            Err(error) => {
                tracing::warn!(lookup_key = %key, error = %crate::telemetry::error_chain(&error), "price not found by lookup key");
                Err(ApiAnswer::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the payment provider is unavailable; try again shortly",
                ))
            }
        }
    }

    fn cached_price(&self, key: &LookupKey, now: i64) -> Option<SoldPrice> {
        let cache = self.prices.lock().ok()?;
        let (price, found) = cache.get(key)?;
        (now - found < PRICE_TTL_SECONDS).then(|| price.clone())
    }

    /// Forgets every price found: Stripe refused one (archived since).
    fn forget_prices(&self) {
        if let Ok(mut cache) = self.prices.lock() {
            cache.clear();
        }
    }

    /// Starts the hold's session and records it on the hold. It expires the
    /// margin before the hold does, so a payment Stripe finishes at its
    /// edge still finds the name held for it. With an accepted coupon the
    /// session carries it; without, the customer may type one on Stripe's
    /// page (Stripe takes one or the other).
    pub(super) async fn start_session(
        &self,
        request: &CheckoutRequest,
        price_id: String,
        promotion: Option<&AcceptedPromotion>,
        hold: &Hold,
        trial: &TrialDecision,
    ) -> ApiAnswer {
        let mut metadata = BTreeMap::from([
            ("subdomain".to_owned(), request.subdomain.to_string()),
            ("plan".to_owned(), request.plan.key.to_string()),
            ("billing".to_owned(), request.billing.to_string()),
            ("organization".to_owned(), request.organization.to_string()),
            (HOLD_METADATA_KEY.to_owned(), hold.id.to_string()),
        ]);
        if let Some(accepted) = promotion {
            metadata.insert("coupon".to_owned(), accepted.code().to_owned());
        }
        if let Some(days) = trial.days {
            metadata.insert(TRIAL_METADATA_KEY.to_owned(), days.to_string());
        }
        let discount = promotion.map_or(Discount::CustomerMayEnterCode, Discount::from);
        let expires_at = hold.held.until - self.settings.hold_margin_seconds;
        let session = CheckoutSessionRequest {
            price_id,
            customer_email: request.email.clone(),
            success_url: self.settings.success_url.clone(),
            cancel_url: self.settings.cancel_url.clone(),
            metadata,
            discount,
            trial_days: trial.days,
            trial_without_card: trial.days.and(self.catalog.trial_without_card(&request.plan.key)),
            expires_at: Some(expires_at),
            idempotency_key: hold.idempotency_key(),
        };
        match self.stripe.create_checkout_session(&session).await {
            Ok(created) => {
                let held = HeldSession { id: created.id.clone(), url: created.url.clone(), expires_at };
                if let Err(error) = self.store.record_hold_session(&request.subdomain, &hold.id, &held).await
                {
                    // The buyer has their session; asking again makes the
                    // same one (same key) and records it then.
                    tracing::warn!(error = %crate::telemetry::error_chain(&error), "hold session not recorded");
                }
                let mut answer = json!({"url": created.url, "id": created.id});
                trial.add_to(&mut answer);
                ApiAnswer::json(StatusCode::OK, answer)
            }
            Err(StripeApiError::Rejected { code, message, .. })
                if message.contains("email") || code.as_deref() == Some("email_invalid") =>
            {
                ApiAnswer::fields(StatusCode::BAD_REQUEST, BTreeMap::from([("email", message)]))
            }
            Err(error @ StripeApiError::Unavailable(_)) => {
                tracing::warn!(error = %crate::telemetry::error_chain(&error), "Stripe unavailable");
                ApiAnswer::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the payment provider is unavailable; try again shortly",
                )
            }
            Err(error) => {
                // A price archived since it was found (a sync moved its key)
                // is refused; the next checkout asks again.
                self.forget_prices();
                tracing::error!(error = %crate::telemetry::error_chain(&error), "Stripe refused the checkout");
                ApiAnswer::error(
                    StatusCode::BAD_GATEWAY,
                    "the payment provider refused the checkout; we have been told",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use http::Method;

    use super::super::testing::{NOW, ORIGIN, body, fixture_with, form, from_origin};
    use super::*;
    use crate::domain::{
        CustomerId, EmailAddress, HoldId, LookupKey, PromotionCode, PromotionOffer, Subdomain,
    };
    use crate::ports::{CreatedSession, SoldPrice, StripeGateway, TenantStore};

    #[tokio::test]
    async fn a_checkout_holds_the_name_and_creates_one_session_with_the_catalog_price() {
        let f = fixture_with(None);
        let answer = f
            .api
            .handle(&Method::POST, "/checkout", &from_origin(), &form("acme", "dana@acme.example"), None)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let created = body(&answer);
        assert!(created["url"].as_str().unwrap().contains("/local/stripe/checkout/cs_test_"));
        let sessions = f.stripe.sessions();
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].price_id, "price_1QProAnnualCAD");
        assert_eq!(sessions[0].customer_email, "dana@acme.example");
        assert_eq!(sessions[0].metadata["subdomain"], "acme");
        assert_eq!(sessions[0].metadata["plan"], "pro");
        assert_eq!(sessions[0].metadata["billing"], "annual");
        assert_eq!(sessions[0].metadata["organization"], "Acme Robotics");
        let acme = Subdomain::parse("acme").unwrap();
        let dana = EmailAddress::parse("dana@acme.example").unwrap();
        assert_eq!(sessions[0].metadata["hold"], HoldId::for_buyer(&acme, &dana).as_str());
        assert_eq!(sessions[0].expires_at, Some(NOW + 3600), "the session lives hold_seconds");
        let hold = f.store.subdomain_hold(&acme, NOW).await.unwrap().unwrap();
        assert_eq!(hold.until, NOW + 3600 + 15 * 60, "the hold outlives it by the margin");
        let recorded = hold.session.unwrap();
        assert_eq!(
            (recorded.id.as_str(), recorded.expires_at),
            (created["id"].as_str().unwrap(), NOW + 3600)
        );
        assert!(answer.headers.contains(&("access-control-allow-origin", ORIGIN.to_owned())));

        // The same form again (a retried request): the same session.
        let again = f
            .api
            .handle(&Method::POST, "/checkout", &from_origin(), &form("acme", "dana@acme.example"), None)
            .await;
        assert_eq!(body(&again)["id"], created["id"]);
        assert_eq!(f.stripe.sessions().len(), 1);
    }

    /// The stand-in, counting the prices asked for, or knowing none.
    struct CountingPrices {
        inner: Arc<crate::adapters::local::LocalStripe>,
        asked: std::sync::atomic::AtomicU32,
        none: bool,
    }

    #[async_trait]
    impl StripeGateway for CountingPrices {
        async fn create_checkout_session(
            &self,
            request: &CheckoutSessionRequest,
        ) -> Result<CreatedSession, StripeApiError> {
            self.inner.create_checkout_session(request).await
        }
        async fn create_portal_session(&self, c: &CustomerId, r: &str) -> Result<String, StripeApiError> {
            self.inner.create_portal_session(c, r).await
        }
        async fn price_by_lookup_key(&self, key: &LookupKey) -> Result<Option<SoldPrice>, StripeApiError> {
            self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if self.none { Ok(None) } else { self.inner.price_by_lookup_key(key).await }
        }
        async fn promotion_code(
            &self,
            code: &PromotionCode,
        ) -> Result<Option<PromotionOffer>, StripeApiError> {
            self.inner.promotion_code(code).await
        }
    }

    #[tokio::test]
    async fn the_price_is_found_by_lookup_key_once_per_process() {
        let clock: Arc<dyn crate::clock::Clock> = Arc::new(crate::clock::FixedClock(NOW));
        let local =
            Arc::new(crate::adapters::local::LocalStripe::open(None, "http://127.0.0.1", clock).unwrap());
        for none in [false, true] {
            let counting = Arc::new(CountingPrices { inner: local.clone(), asked: Default::default(), none });
            let f = fixture_with(Some(counting.clone()));
            let first = f.api.checkout(None, &form("acme", "dana@acme.example")).await;
            let second = f.api.checkout(None, &form("globex", "eve@globex.example")).await;
            let asked = counting.asked.load(std::sync::atomic::Ordering::SeqCst);
            if none {
                assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE, "{}", first.body);
                assert!(!first.body.contains("sync-catalog"), "the operator's words stay in our logs");
                assert_eq!(asked, 2, "a missing price is asked for again");
            } else {
                assert_eq!((first.status, second.status), (StatusCode::OK, StatusCode::OK), "{}", first.body);
                assert_eq!(asked, 1, "the second checkout uses the cached price");
                let prices: Vec<String> = local.sessions().iter().map(|s| s.price_id.clone()).collect();
                assert_eq!(prices, ["price_1QProAnnualCAD", "price_1QProAnnualCAD"]);
            }
        }
    }

    struct FailingStripe(fn() -> StripeApiError);

    #[async_trait]
    impl StripeGateway for FailingStripe {
        async fn create_checkout_session(
            &self,
            _: &CheckoutSessionRequest,
        ) -> Result<CreatedSession, StripeApiError> {
            Err((self.0)())
        }
        async fn create_portal_session(&self, _: &CustomerId, _: &str) -> Result<String, StripeApiError> {
            Err((self.0)())
        }
        async fn price_by_lookup_key(&self, _: &LookupKey) -> Result<Option<SoldPrice>, StripeApiError> {
            Ok(Some(SoldPrice { id: "price_1QProAnnualCAD".into(), product: "tenancy_pro".into() }))
        }
        async fn promotion_code(&self, _: &PromotionCode) -> Result<Option<PromotionOffer>, StripeApiError> {
            Err((self.0)())
        }
    }

    #[tokio::test]
    async fn stripe_errors_become_clear_answers() {
        let cases: [(fn() -> StripeApiError, StatusCode); 3] = [
            (|| StripeApiError::Unavailable("timeout".into()), StatusCode::SERVICE_UNAVAILABLE),
            (|| StripeApiError::Unauthorized { status: 401 }, StatusCode::BAD_GATEWAY),
            (
                || StripeApiError::Rejected {
                    status: 400,
                    code: Some("resource_missing".into()),
                    message: "No such price".into(),
                },
                StatusCode::BAD_GATEWAY,
            ),
        ];
        for (error, status) in cases {
            let f = fixture_with(Some(Arc::new(FailingStripe(error))));
            let answer = f.api.checkout(None, &form("acme", "dana@acme.example")).await;
            assert_eq!(answer.status, status, "{}", answer.body);
            assert!(!answer.body.contains("No such price"), "Stripe's words stay in our logs");
        }
    }
}
