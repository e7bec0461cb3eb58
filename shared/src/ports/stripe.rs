//! Stripe's API, for what the system asks of it: Checkout Sessions for
//! signups, billing portal sessions for card updates, and money back for a
//! customer charged without a tenant.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::BoxError;
use serde::{Deserialize, Serialize};

use crate::domain::{
    AcceptedPromotion, CustomerId, EmailAddress, LookupKey, PromotionCode, PromotionCodeId, PromotionOffer,
    SubscriptionId,
};

/// The discount of a Checkout Session: Stripe takes a promotion code given
/// up front (`discounts`) or a field the customer types one in
/// (`allow_promotion_codes`), never both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discount {
    /// Neither.
    None,
    /// `allow_promotion_codes: true`.
    CustomerMayEnterCode,
    /// `discounts: [{promotion_code}]`.
    PromotionCode(PromotionCodeId),
}

impl From<&AcceptedPromotion> for Discount {
    fn from(accepted: &AcceptedPromotion) -> Self {
        Discount::PromotionCode(accepted.id().clone())
    }
}

/// An active price found by lookup key: its id, and the product it sells
/// (what a coupon's `applies_to` names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoldPrice {
    pub id: String,
    pub product: String,
}

/// A subscription-mode Checkout Session to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSessionRequest {
    /// The price for the plan and billing period, found by its lookup key.
    pub price_id: String,
    pub customer_email: EmailAddress,
    pub success_url: String,
    pub cancel_url: String,
    /// Set on the session and on the subscription (`subscription_data`).
    pub metadata: BTreeMap<String, String>,
    pub discount: Discount,
    /// Days free before the first charge (`subscription_data.trial_period_days`).
    pub trial_days: Option<u32>,
    /// With a trial: no card asked for (`payment_method_collection=if_required`),
    /// and what Stripe does when the trial ends without one.
    pub trial_without_card: Option<crate::domain::TrialWithoutCard>,
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
    /// The id of the active price with `lookup_key` in the key's own Stripe
    /// account (its mode); `None` when there is none (the catalog was never
    /// synced to this mode).
    async fn price_by_lookup_key(&self, lookup_key: &LookupKey) -> Result<Option<SoldPrice>, StripeApiError>;

    /// The promotion code a customer typed, as Stripe holds it (matched
    /// without regard to case): the active one if there is one, else the
    /// newest inactive one (so a refusal can say so); `None` when Stripe has
    /// no such code.
    async fn promotion_code(&self, code: &PromotionCode) -> Result<Option<PromotionOffer>, StripeApiError>;
}

/// A refund Stripe made (or had made before) of one payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    /// The PaymentIntent refunded.
    pub payment_intent: String,
    /// The invoice that payment paid.
    pub invoice: String,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: String,
    /// `pending`, `succeeded`, … as Stripe says.
    pub status: String,
}

/// Money back for a subscription that has no tenant to pay for
/// (docs/architecture.md decision 7). Both calls converge: they read what
/// Stripe holds first and do only what is still missing, with idempotency
/// keys derived from the objects, so running them twice, concurrently or a
/// day later has one effect.
#[async_trait]
pub trait MoneyBack: Send + Sync {
    /// Cancels the subscription now (no proration, no final invoice), so
    /// nothing more is charged. One that has ended already is left as it is.
    async fn cancel_subscription(&self, id: &SubscriptionId) -> Result<(), StripeApiError>;

    /// Refunds, in full, every payment the subscription's invoices paid at
    /// or after `paid_since` (all, when `None`) collected that is not
    /// refunded yet, and returns the refunds of all of them (made now or
    /// before). `tenant` goes in each refund's metadata.
    async fn refund_subscription(
        &self,
        id: &SubscriptionId,
        paid_since: Option<i64>,
        tenant: &str,
    ) -> Result<Vec<Refund>, StripeApiError>;
}
