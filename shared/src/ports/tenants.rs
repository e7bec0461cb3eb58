//! The tenant table (DynamoDB in AWS). Every write that creates or changes
//! something is conditional (docs/architecture.md decision 3).

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
    #[serde(default)]
    pub reason: UnmatchedReason,
}

/// Why no tenant took an event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmatchedReason {
    /// One of our subscriptions whose tenant never appeared (its checkout
    /// event did not arrive while the lifecycle execution retried).
    #[default]
    NoTenant,
    /// A subscription the business sold some other way: dropped at dispatch.
    NotOurs,
}

/// Who may act on a tenant's infrastructure right now (one converge at a time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    /// Unix seconds; the lease is free from this instant on.
    pub expires_at: i64,
}

/// What asking for a tenant's lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    Acquired,
    /// Another owner holds it and it has not expired.
    HeldBy(Lease),
}

/// What an event did to its tenant, kept for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrailOutcome {
    /// It moved the desired state to a new generation.
    Applied,
    /// Stripe already said the same (or newer) when it was applied: nothing changed.
    Superseded,
    /// The same event again (a redelivery or a retried step).
    Duplicate,
    /// Not for a tenant in that state (e.g. FAILED), or not ours.
    Ignored,
}

/// One processed event in a tenant's audit trail: an item of its own, so the
/// tenant item does not grow with its history (DynamoDB items stop at 400 KB).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailEntry {
    pub tenant: TenantId,
    pub event_id: String,
    pub event_type: String,
    /// The event's own `created`.
    pub created: i64,
    pub recorded_at: i64,
    pub outcome: TrailOutcome,
    /// The generation it produced (Applied) or found (otherwise).
    pub generation: u64,
    pub note: String,
}

impl TrailEntry {
    /// The order [`TenantStore::trail`] promises: by `recorded_at`, then the
    /// event's `created`, then its id, whatever order the items come in.
    pub fn sort_oldest_first(entries: &mut [TrailEntry]) {
        entries.sort_by(|a, b| {
            (a.recorded_at, a.created, &a.event_id).cmp(&(b.recorded_at, b.created, &b.event_id))
        });
    }
}

/// What reserving a mail found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailSlot {
    /// This caller holds the reservation: send, then `mail_sent`.
    Reserved,
    /// Already sent.
    Sent { message_id: String },
    /// Another caller reserved it at `since` and has not reported it sent.
    HeldBy { owner: String, since: i64 },
}

/// What marking a mail sent found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailMarked {
    /// Recorded now, or it was already recorded with this message id (a retry).
    Recorded,
    /// It was already recorded as sent with another message id: the mail went
    /// out twice (a reservation taken over from an owner that was not dead
    /// after all). The first record is kept; the caller can only report it.
    SentBefore { message_id: String },
}

/// A mail item of a tenant, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailRecord {
    pub tenant: TenantId,
    pub key: String,
    /// Who holds (or last held) the reservation; once sent, who sent it.
    pub owner: String,
    pub reserved_at: i64,
    /// Set once the mail provider accepted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<MailDelivery>,
}

/// The provider's acceptance of a mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailDelivery {
    pub message_id: String,
    pub sent_at: i64,
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

    /// Writes `record` if the stored version is `record.version - 1`, so a
    /// writer that read an older version loses instead of overwriting what it
    /// never saw; otherwise [`StoreError::VersionConflict`]. Ordering events is
    /// the caller's business (the generation of the desired state), not this
    /// write's.
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

    /// Takes the tenant's lease for `owner` until `now + ttl_seconds`: one
    /// conditional write that succeeds when there is no lease, it expired
    /// (`expires_at <= now`), or `owner` holds it (renewal, which sets the new
    /// expiry even if it is earlier). `ttl_seconds` should be positive: a
    /// lease that ends at or before `now` excludes nobody.
    async fn acquire_lease(
        &self,
        tenant: &TenantId,
        owner: &str,
        now: i64,
        ttl_seconds: i64,
    ) -> Result<LeaseOutcome, StoreError>;

    /// Gives the lease back if `owner` holds it (expired or not); otherwise
    /// changes nothing (conditional delete).
    async fn release_lease(&self, tenant: &TenantId, owner: &str) -> Result<(), StoreError>;

    /// Records `entry` once per (tenant, event_id): returns `true` if this
    /// call recorded it, `false` if an entry for that event was already there
    /// (left unchanged).
    async fn record_trail(&self, entry: &TrailEntry) -> Result<bool, StoreError>;

    /// The tenant's trail, oldest first (by `recorded_at`, then the event's
    /// `created`, then its id).
    async fn trail(&self, tenant: &TenantId) -> Result<Vec<TrailEntry>, StoreError>;

    /// Reserves mail `key` of `tenant` for `owner`, conditionally: reserved
    /// when no item exists, or the same owner reserved it (a retried step; the
    /// reservation is renewed to `now`), or a reservation older than
    /// `stale_after` seconds (`reserved_at < now - stale_after`) is taken over
    /// (its owner died between reserving and sending). A sent mail is never
    /// reserved again.
    async fn reserve_mail(
        &self,
        tenant: &TenantId,
        key: &str,
        owner: &str,
        now: i64,
        stale_after: i64,
    ) -> Result<MailSlot, StoreError>;

    /// Marks the mail sent with the provider's message id, conditional on it
    /// being unsent (whoever holds the reservation: the mail has gone out, and
    /// recording that is what stops a second send) or already sent with this
    /// id (a retry). The item is created if it is missing, for the same
    /// reason. `owner` becomes the record's owner.
    async fn mail_sent(
        &self,
        tenant: &TenantId,
        key: &str,
        owner: &str,
        message_id: &str,
        now: i64,
    ) -> Result<MailMarked, StoreError>;

    /// Every mail item of the tenant, by key (for views).
    async fn mails(&self, tenant: &TenantId) -> Result<Vec<MailRecord>, StoreError>;
}
