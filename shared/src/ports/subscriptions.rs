//! Stripe's subscriptions, re-read from Stripe's API: the source of truth a
//! tenant's desired state is derived from (docs/architecture.md decision 4). An event's
//! payload is only a trigger and a snapshot of some past moment.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StripeApiError;
use crate::domain::{BillingPeriod, CustomerId, SubscriptionId, SubscriptionStatus};

/// A subscription as Stripe holds it now (retrieved with `items.data.price`
/// and `latest_invoice` expanded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionSnapshot {
    pub id: SubscriptionId,
    pub customer: CustomerId,
    pub status: SubscriptionStatus,
    /// The first item's price: the plan and billing period.
    pub price_id: Option<String>,
    /// That price's lookup key, when it has one.
    pub price_lookup_key: Option<String>,
    /// The term that price's `recurring` interval bills, when it is one
    /// the catalog sells (`year` × 2 and `month` × 24 are both biennial).
    #[serde(default)]
    pub price_term: Option<BillingPeriod>,
    /// End of the current period (Unix seconds): the subscription's own or,
    /// in newer API versions, the first item's.
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    /// `pause_collection` is set: invoices are not collected for now.
    pub collection_paused: bool,
    pub trial_end: Option<i64>,
    /// When the subscription ended (cancelled), if it has.
    pub ended_at: Option<i64>,
    /// Ours carry the checkout's metadata (`subdomain`, `plan`, …).
    pub metadata: BTreeMap<String, String>,
    pub latest_invoice: Option<InvoiceSnapshot>,
}

/// The subscription's latest invoice, as far as the tenant cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceSnapshot {
    pub id: String,
    /// `draft`, `open`, `paid`, `uncollectible` or `void`.
    pub status: Option<String>,
    /// End of the period it bills (the first line's, else the invoice's).
    pub period_end: Option<i64>,
    /// Start of that period: for an unpaid invoice, when what was paid ended.
    #[serde(default)]
    pub period_start: Option<i64>,
}

#[async_trait]
pub trait SubscriptionSource: Send + Sync {
    /// The subscription as Stripe holds it now; `Ok(None)` when Stripe has
    /// no such subscription (404 `resource_missing`).
    async fn subscription(&self, id: &SubscriptionId)
    -> Result<Option<SubscriptionSnapshot>, StripeApiError>;

    /// Every subscription not canceled that carries `metadata_key` (ours
    /// carry `subdomain`), newest first: what reconciliation holds the
    /// tenant records against, so a customer charged with no tenant is found.
    async fn live_subscriptions_with(
        &self,
        metadata_key: &str,
    ) -> Result<Vec<SubscriptionSnapshot>, StripeApiError>;
}
