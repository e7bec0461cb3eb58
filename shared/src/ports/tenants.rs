//! The tenant table (DynamoDB in AWS). Every write that creates or changes
//! something is conditional (DESIGN.md decision 3).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::BoxError;
use crate::domain::{CustomerId, Subdomain, SubscriptionId, TenantId, TenantRecord};
use crate::stripe::StripeEventId;

/// A checkout's short hold on a subdomain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubdomainHold {
    pub hold_id: String,
    pub until: i64,
}

/// A Stripe event about a subscription no tenant has: kept for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmatchedEvent {
    pub event_id: StripeEventId,
    pub event_type: String,
    pub subscription: Option<SubscriptionId>,
    pub customer: Option<CustomerId>,
    pub created: i64,
    pub recorded_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("subdomain `{subdomain}` is held by another tenant")]
    SubdomainTaken { subdomain: Subdomain, holder: TenantId },
    /// Someone else is checking out with this subdomain right now.
    #[error("subdomain `{subdomain}` is held for another checkout until {until}")]
    SubdomainHeld { subdomain: Subdomain, until: i64 },
    /// Someone else wrote the tenant since it was read; read again and retry.
    #[error("tenant {tenant} changed concurrently (expected version {expected})")]
    VersionConflict { tenant: TenantId, expected: u64 },
    #[error("tenant store unavailable")]
    Unavailable(#[source] BoxError),
    #[error("tenant store holds an unreadable item `{key}`: {reason}")]
    Corrupt { key: String, reason: String },
}

/// What inserting a tenant found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    New,
    /// A record with that id was already there (a retried step); here it is.
    Existing(Box<TenantRecord>),
}

#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Claims `subdomain` for `tenant`; claiming it again for the same tenant
    /// succeeds, for another tenant fails with [`StoreError::SubdomainTaken`].
    async fn claim_subdomain(&self, subdomain: &Subdomain, tenant: &TenantId) -> Result<(), StoreError>;

    /// Releases the claim if `tenant` holds it; otherwise changes nothing.
    async fn release_subdomain(&self, subdomain: &Subdomain, tenant: &TenantId) -> Result<(), StoreError>;

    async fn subdomain_holder(&self, subdomain: &Subdomain) -> Result<Option<TenantId>, StoreError>;

    /// Holds `subdomain` for a checkout until `until` (Unix seconds), so two
    /// people cannot both start paying for one name. Fails if a tenant holds
    /// it, or another checkout's hold has not expired at `now`; holding again
    /// with the same `hold_id` extends it.
    async fn hold_subdomain(
        &self,
        subdomain: &Subdomain,
        hold_id: &str,
        until: i64,
        now: i64,
    ) -> Result<(), StoreError>;

    /// The current checkout hold on `subdomain`, if one is unexpired at `now`.
    async fn subdomain_hold(
        &self,
        subdomain: &Subdomain,
        now: i64,
    ) -> Result<Option<SubdomainHold>, StoreError>;

    /// Creates the record unless one with its id exists.
    async fn insert_tenant(&self, record: &TenantRecord) -> Result<Inserted, StoreError>;

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError>;

    /// Writes `record` if the stored version is `record.version - 1` and the
    /// stored `last_event_created` is not newer than the record's (so a late
    /// event can never move a tenant back, whatever the caller read).
    async fn replace_tenant(&self, record: &TenantRecord) -> Result<(), StoreError>;

    /// The tenant of a Stripe subscription. The AWS index behind this is
    /// eventually consistent: a tenant recorded a moment ago may be missing.
    async fn find_by_subscription(
        &self,
        subscription: &SubscriptionId,
    ) -> Result<Option<TenantRecord>, StoreError>;

    /// Records an event for an unknown subscription; recording it again
    /// changes nothing.
    async fn record_unmatched_event(&self, event: &UnmatchedEvent) -> Result<(), StoreError>;

    async fn list_unmatched_events(&self) -> Result<Vec<UnmatchedEvent>, StoreError>;

    /// Every tenant (operator views and the local state page).
    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError>;
}
