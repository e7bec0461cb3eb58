//! A coupon typed on the signup form: looked up at Stripe and checked for
//! the plan before anything is held, so a refused one leaves no hold and no
//! Checkout Session behind.

use std::collections::BTreeMap;

use http::StatusCode;

use super::{ApiAnswer, CheckoutApi, CheckoutRequest};
use crate::domain::{AcceptedPromotion, CouponUse, PromotionCode};
use crate::ports::StripeApiError;

impl CheckoutApi {
    /// The promotion code `code`, accepted for the request's plan (whose
    /// Stripe product is `product`), or the answer saying why not: a 400
    /// naming the coupon and the reason, or Stripe's trouble.
    pub(super) async fn promotion(
        &self,
        request: &CheckoutRequest,
        code: &PromotionCode,
        product: &str,
    ) -> Result<AcceptedPromotion, ApiAnswer> {
        let found = match self.stripe.promotion_code(code).await {
            Ok(found) => found,
            Err(error @ StripeApiError::Unavailable(_)) => {
                tracing::warn!(error = %crate::telemetry::error_chain(&error), "coupon not looked up");
                return Err(ApiAnswer::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the payment provider is unavailable; try again shortly",
                ));
            }
            Err(error) => {
                tracing::error!(error = %crate::telemetry::error_chain(&error), "Stripe refused the coupon look-up");
                return Err(ApiAnswer::error(
                    StatusCode::BAD_GATEWAY,
                    "the payment provider refused to look up the coupon; we have been told",
                ));
            }
        };
        // The form is parsed against the catalog, so the price is there.
        let amount = self.catalog.price(&request.plan.key, request.billing).map_or(0, |p| p.amount);
        let purchase =
            CouponUse { product, plan_name: &request.plan.name, amount, currency: self.catalog.currency() };
        AcceptedPromotion::check(code, found, &purchase, self.clock.now_unix()).map_err(|refusal| {
            tracing::info!(%refusal, plan = %request.plan.key, "coupon refused");
            ApiAnswer::fields(StatusCode::BAD_REQUEST, BTreeMap::from([("coupon", refusal.to_string())]))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use serde_json::json;

    use super::super::testing::{NOW, body, fixture_with};
    use super::*;
    use crate::adapters::local::LocalStripe;
    use crate::domain::{CustomerId, LookupKey, PromotionOffer, Subdomain};
    use crate::ports::{CheckoutSessionRequest, CreatedSession, SoldPrice, StripeGateway, TenantStore};

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// `WELCOME10` for Pro, `BASIC5` for Basic only.
    fn coupons(stripe: &LocalStripe) {
        stripe
            .create_coupon(&form(&[
                ("id", "welcome"),
                ("percent_off", "10"),
                ("applies_to[products][0]", "tenancy_pro"),
            ]))
            .unwrap();
        stripe
            .create_promotion_code(&form(&[("coupon", "welcome"), ("code", "WELCOME10")]), "2024-06-20")
            .unwrap();
        stripe
            .create_coupon(&form(&[
                ("id", "basic5"),
                ("amount_off", "500"),
                ("currency", "cad"),
                ("applies_to[products][0]", "tenancy_basic"),
            ]))
            .unwrap();
        stripe
            .create_promotion_code(&form(&[("coupon", "basic5"), ("code", "BASIC5")]), "2024-06-20")
            .unwrap();
    }

    fn signup(subdomain: &str, coupon: Option<&str>) -> Vec<u8> {
        json!({"plan": "pro", "billing": "biennial", "subdomain": subdomain, "organization": "Acme Robotics",
            "email": "dana@acme.example", "coupon": coupon})
        .to_string()
        .into_bytes()
    }

    #[tokio::test]
    async fn a_valid_coupon_goes_on_the_session_instead_of_the_code_field() {
        let f = fixture_with(None);
        coupons(&f.stripe);
        let answer = f.api.checkout(None, &signup("acme", Some("welcome10"))).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let session = &f.stripe.sessions()[0];
        assert_eq!(session.price_id, "price_1QProBiennialCAD");
        assert_eq!(session.promotion_code.as_deref(), Some("promo_local000001"));
        assert!(!session.allow_promotion_codes);
        assert_eq!(session.metadata["coupon"], "WELCOME10");
        // The same buyer with another coupon: their open checkout has other choices.
        let other = f.api.checkout(None, &signup("acme", Some("BASIC5"))).await;
        assert_eq!(other.status, StatusCode::BAD_REQUEST, "BASIC5 is not for Pro: {}", other.body);
        let none = f.api.checkout(None, &signup("acme", None)).await;
        assert_eq!(none.status, StatusCode::CONFLICT, "{}", none.body);
        let same = f.api.checkout(None, &signup("acme", Some("WELCOME10"))).await;
        assert_eq!(body(&same)["id"], body(&answer)["id"], "the same session back");
    }

    #[tokio::test]
    async fn a_refused_coupon_is_a_400_naming_it_and_holds_nothing() {
        let f = fixture_with(None);
        coupons(&f.stripe);
        for (coupon, message) in
            [("BASIC5", "coupon `BASIC5` is not for the Pro plan"), ("NOPE", "coupon `NOPE` does not exist")]
        {
            let answer = f.api.checkout(None, &signup("acme", Some(coupon))).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST);
            assert_eq!(body(&answer), json!({"errors": {"coupon": message}}));
        }
        assert!(f.stripe.sessions().is_empty());
        let acme = Subdomain::parse("acme").unwrap();
        assert!(f.store.subdomain_hold(&acme, NOW).await.unwrap().is_none());
        // Blank is no coupon.
        let blank = f.api.checkout(None, &signup("acme", Some("  "))).await;
        assert_eq!(blank.status, StatusCode::OK, "{}", blank.body);
        assert!(f.stripe.sessions()[0].allow_promotion_codes);
    }

    #[tokio::test]
    async fn a_code_with_a_minimum_is_refused_for_a_cheaper_term_before_stripe_would_refuse_it() {
        let f = fixture_with(None);
        f.stripe.create_coupon(&form(&[("id", "loyal"), ("percent_off", "15")])).unwrap();
        f.stripe
            .create_promotion_code(
                &form(&[
                    ("coupon", "loyal"),
                    ("code", "LOYAL15"),
                    ("restrictions[minimum_amount]", "100000"),
                    ("restrictions[minimum_amount_currency]", "cad"),
                ]),
                "2024-06-20",
            )
            .unwrap();
        let cheap = f.api.checkout(None, &signup("acme", Some("LOYAL15"))).await;
        assert_eq!(cheap.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body(&cheap),
            json!({"errors": {"coupon": "coupon `LOYAL15` needs a purchase of at least 1000.00 CAD"}})
        );
        let three_years = json!({"plan": "ultimate", "billing": "triennial", "subdomain": "acme",
            "organization": "Acme Robotics", "email": "dana@acme.example", "coupon": "LOYAL15"});
        let answer = f.api.checkout(None, three_years.to_string().as_bytes()).await;
        assert_eq!(answer.status, StatusCode::OK, "1800.00 CAD: {}", answer.body);
        assert_eq!(f.stripe.sessions()[0].price_id, "price_1QUltimateTriennialCAD");
    }

    /// The stand-in, with promotion codes that cannot be looked up.
    struct NoCoupons(Arc<LocalStripe>, fn() -> StripeApiError);

    #[async_trait]
    impl StripeGateway for NoCoupons {
        async fn create_checkout_session(
            &self,
            request: &CheckoutSessionRequest,
        ) -> Result<CreatedSession, StripeApiError> {
            self.0.create_checkout_session(request).await
        }
        async fn create_portal_session(&self, c: &CustomerId, r: &str) -> Result<String, StripeApiError> {
            self.0.create_portal_session(c, r).await
        }
        async fn price_by_lookup_key(&self, key: &LookupKey) -> Result<Option<SoldPrice>, StripeApiError> {
            self.0.price_by_lookup_key(key).await
        }
        async fn promotion_code(&self, _: &PromotionCode) -> Result<Option<PromotionOffer>, StripeApiError> {
            Err((self.1)())
        }
    }

    #[tokio::test]
    async fn stripe_trouble_looking_a_coupon_up_is_not_the_buyers_fault() {
        let cases: [(fn() -> StripeApiError, StatusCode); 2] = [
            (|| StripeApiError::Unavailable("timeout".into()), StatusCode::SERVICE_UNAVAILABLE),
            (|| StripeApiError::Unauthorized { status: 401 }, StatusCode::BAD_GATEWAY),
        ];
        for (error, status) in cases {
            let clock: Arc<dyn crate::clock::Clock> = Arc::new(crate::clock::FixedClock(NOW));
            let local = Arc::new(LocalStripe::open(None, "http://127.0.0.1", clock).unwrap());
            let f = fixture_with(Some(Arc::new(NoCoupons(local.clone(), error))));
            let answer = f.api.checkout(None, &signup("acme", Some("WELCOME10"))).await;
            assert_eq!(answer.status, status, "{}", answer.body);
            assert!(local.sessions().is_empty());
            assert!(f.store.subdomain_hold(&Subdomain::parse("acme").unwrap(), NOW).await.unwrap().is_none());
        }
    }
}
