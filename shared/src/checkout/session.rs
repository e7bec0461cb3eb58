//! The Stripe Checkout Session for a held subdomain: the catalog's price,
//! the idempotency key, and Stripe's failures as answers.

use std::collections::BTreeMap;

use http::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{ApiAnswer, CheckoutApi, CheckoutRequest};
use crate::ports::{CheckoutSessionRequest, StripeApiError};

impl CheckoutRequest {
    /// The same form resubmitted within ten minutes gets the same key, so a
    /// retried request makes one session (Stripe keeps keys for 24 hours).
    pub(super) fn derived_idempotency_key(&self, now: i64) -> String {
        let mut hash = Sha256::new();
        for part in [
            self.plan.key.as_str(),
            self.billing.as_str(),
            self.subdomain.as_str(),
            self.organization.as_str(),
            self.email.as_str(),
            &(now / 600).to_string(),
        ] {
            hash.update(part.as_bytes());
            hash.update([0u8]);
        }
        format!("checkout-{}", &hex::encode(hash.finalize())[..32])
    }
}

impl CheckoutApi {
    /// The catalog's price for the plan and billing period in the stage's mode.
    pub(super) fn price_id(&self, request: &CheckoutRequest) -> Result<String, ApiAnswer> {
        let Some(price_id) = self
            .catalog
            .price(&request.plan.key, request.billing)
            .and_then(|price| price.price_id(self.settings.mode))
            .map(str::to_owned)
        else {
            // require_mode at start-up makes this unreachable; answer anyway.
            return Err(ApiAnswer::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no price for this plan in this mode",
            ));
        };
        Ok(price_id)
    }

    /// Starts the session; it expires with the hold, so nobody pays for a
    /// name after their hold ran out.
    pub(super) async fn start_session(
        &self,
        request: &CheckoutRequest,
        price_id: String,
        idempotency_key: String,
        until: i64,
    ) -> ApiAnswer {
        let metadata = BTreeMap::from([
            ("subdomain".to_owned(), request.subdomain.to_string()),
            ("plan".to_owned(), request.plan.key.to_string()),
            ("billing".to_owned(), request.billing.to_string()),
            ("organization".to_owned(), request.organization.to_string()),
        ]);
        let session = CheckoutSessionRequest {
            price_id,
            customer_email: request.email.clone(),
            success_url: self.settings.success_url.clone(),
            cancel_url: self.settings.cancel_url.clone(),
            metadata,
            allow_promotion_codes: true,
            expires_at: Some(until),
            idempotency_key,
        };
        match self.stripe.create_checkout_session(&session).await {
            Ok(created) => ApiAnswer::json(StatusCode::OK, json!({"url": created.url, "id": created.id})),
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
    use http::{HeaderMap, Method};

    use super::super::testing::{NOW, ORIGIN, body, fixture_with, form, from_origin};
    use super::*;
    use crate::domain::{CustomerId, Subdomain};
    use crate::ports::{CreatedSession, StripeGateway, TenantStore};

    #[tokio::test]
    async fn a_checkout_holds_the_name_and_creates_one_session_with_the_catalog_price() {
        let f = fixture_with(None);
        let answer = f
            .api
            .handle(&Method::POST, "/checkout", &from_origin(), &form("acme", "dana@acme.example"))
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
        assert_eq!(sessions[0].expires_at, Some(NOW + 3600), "the session lives as long as the hold");
        let hold = f.store.subdomain_hold(&Subdomain::parse("acme").unwrap(), NOW).await.unwrap().unwrap();
        assert_eq!(hold.until, NOW + 3600);
        assert!(answer.headers.contains(&("access-control-allow-origin", ORIGIN.to_owned())));

        // The same form again (a retried request): the same session.
        let again = f
            .api
            .handle(&Method::POST, "/checkout", &from_origin(), &form("acme", "dana@acme.example"))
            .await;
        assert_eq!(body(&again)["id"], created["id"]);
        assert_eq!(f.stripe.sessions().len(), 1);
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
            let answer = f.api.checkout(&HeaderMap::new(), &form("acme", "dana@acme.example")).await;
            assert_eq!(answer.status, status, "{}", answer.body);
            assert!(!answer.body.contains("No such price"), "Stripe's words stay in our logs");
        }
    }
}
