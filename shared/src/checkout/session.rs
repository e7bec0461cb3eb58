//! The Stripe Checkout Session for a held subdomain: the catalog's price,
//! the idempotency key, and Stripe's failures as answers.

use std::collections::BTreeMap;

use http::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::hold::Hold;
use super::{ApiAnswer, CheckoutApi, CheckoutRequest};
use crate::domain::HOLD_METADATA_KEY;
use crate::ports::{CheckoutSessionRequest, HeldSession, StripeApiError};

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

    /// Starts the hold's session and records it on the hold. It expires the
    /// margin before the hold does, so a payment Stripe finishes at its
    /// edge still finds the name held for it.
    pub(super) async fn start_session(
        &self,
        request: &CheckoutRequest,
        price_id: String,
        hold: &Hold,
    ) -> ApiAnswer {
        let metadata = BTreeMap::from([
            ("subdomain".to_owned(), request.subdomain.to_string()),
            ("plan".to_owned(), request.plan.key.to_string()),
            ("billing".to_owned(), request.billing.to_string()),
            ("organization".to_owned(), request.organization.to_string()),
            (HOLD_METADATA_KEY.to_owned(), hold.id.to_string()),
        ]);
        let expires_at = hold.held.until - self.settings.hold_margin_seconds;
        let session = CheckoutSessionRequest {
            price_id,
            customer_email: request.email.clone(),
            success_url: self.settings.success_url.clone(),
            cancel_url: self.settings.cancel_url.clone(),
            metadata,
            allow_promotion_codes: true,
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
                ApiAnswer::json(StatusCode::OK, json!({"url": created.url, "id": created.id}))
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
    use crate::domain::{CustomerId, EmailAddress, HoldId, Subdomain};
    use crate::ports::{CreatedSession, StripeGateway, TenantStore};

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
            let answer = f.api.checkout(None, &form("acme", "dana@acme.example")).await;
            assert_eq!(answer.status, status, "{}", answer.body);
            assert!(!answer.body.contains("No such price"), "Stripe's words stay in our logs");
        }
    }
}
