//! Stripe's API, for what the system asks of it: Checkout Sessions for
//! signups and billing portal sessions for card updates.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::BoxError;
use crate::domain::{CustomerId, EmailAddress};

/// A subscription-mode Checkout Session to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSessionRequest {
    /// The catalog's price for the plan, billing period and mode.
    pub price_id: String,
    pub customer_email: EmailAddress,
    pub success_url: String,
    pub cancel_url: String,
    /// Set on the session and on the subscription (`subscription_data`).
    pub metadata: BTreeMap<String, String>,
    pub allow_promotion_codes: bool,
    /// Unix time the session expires (Stripe allows 30 minutes to 24 hours).
    pub expires_at: Option<i64>,
    /// A retried request with this key makes the same session.
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSession {
    pub id: String,
    pub url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StripeApiError {
    /// Network trouble, 429 or 5xx: worth retrying later.
    #[error("Stripe is unavailable")]
    Unavailable(#[source] BoxError),
    /// Stripe refused the request (4xx other than 401/403/429).
    #[error("Stripe refused the request ({status}{}): {message}", code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    Rejected { status: u16, code: Option<String>, message: String },
    /// The API key is wrong or lacks permission: an operator problem.
    #[error("Stripe refused the API key ({status})")]
    Unauthorized { status: u16 },
}

#[async_trait]
pub trait StripeGateway: Send + Sync {
    async fn create_checkout_session(
        &self,
        request: &CheckoutSessionRequest,
    ) -> Result<CreatedSession, StripeApiError>;

    /// A billing portal session URL for `customer`, returning to `return_url`.
    async fn create_portal_session(
        &self,
        customer: &CustomerId,
        return_url: &str,
    ) -> Result<String, StripeApiError>;
}
