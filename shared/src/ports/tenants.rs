//! The tenant table (DynamoDB in AWS). Every write that creates or changes
//! something is conditional (docs/architecture.md decision 3).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::BoxError;
use crate::domain::{
    CustomerId, HoldId, Subdomain, SubscriptionId, TenantId, TenantRecord, TrialKey, TrialOffer,
    TrialReservation, TrialUse,
};
use crate::stripe::StripeEventId;

/// A buyer's hold on a subdomain while they pay: nobody else can hold or
/// claim the name until `until`, which is the session's expiry plus a margin
/// (a payment processed at the session's edge is still covered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubdomainHold {
    /// A [`HoldId`] as text; a hold made before holds were keyed by buyer
    /// has a `checkout-…` id (see [`SubdomainHold::admits`]).
    pub hold_id: String,
    /// Unix seconds; the hold is over once `until < now`.
    pub until: i64,
    /// What the buyer chose (plan, billing, organisation) as an opaque
    /// fingerprint: a retry with the same choices gets the same session.
    #[serde(default)]
    pub form: String,
    /// The Checkout Session made for this hold, once recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<HeldSession>,
}

impl SubdomainHold {
    /// Whether a paid checkout carrying `hold` may claim the name past this
    /// hold at `now`: it has expired, or it is that checkout's own. A
    /// checkout that carries no hold (its session predates them) passes
    /// only a hold that also predates them, which used to be ignored by
    /// provisioning: a customer who paid during the deploy is not refused
    /// over their own old hold.
    pub fn admits(&self, hold: Option<&HoldId>, now: i64) -> bool {
        self.until < now
            || match hold {
                Some(hold) => self.hold_id == hold.as_str(),
                None => !self.hold_id.starts_with(HoldId::PREFIX),
            }
    }
}

/// The Checkout Session of a hold, kept so the buyer retrying gets it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldSession {
    pub id: String,
    pub url: String,
    /// When Stripe stops taking payment for it (before the hold ends).
    pub expires_at: i64,
}

/// A checkout asking to hold a subdomain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRequest {
    pub subdomain: Subdomain,
    pub hold_id: HoldId,
    pub until: i64,
    /// See [`SubdomainHold::form`].
    pub form: String,
    /// Who is asking, each with the most holds it may have open at once
    /// (the buyer's e-mail, their IP address). A retried hold does not count
    /// twice.
    pub limits: Vec<HoldLimit>,
}

/// At most `max_open` unexpired holds for `owner`, an opaque key (a hash of
/// an e-mail address or an IP address: the table keeps neither in clear).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldLimit {
    pub owner: String,
    pub max_open: u32,
}

/// What holding a subdomain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldOutcome {
    /// Held now for this request.
    Held(SubdomainHold),
    /// This hold id already holds it, unexpired: left exactly as it was
    /// (a repeated request never extends a hold).
    Existing(SubdomainHold),
    /// Not held: `owner` has its `max_open` other holds open; the first of
    /// them ends at `free_at`.
    OwnerAtLimit { owner: String, max_open: u32, free_at: i64 },
}

/// What counting a request against a per-client rate found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateOutcome {
    /// Counted; `count` requests in this window so far, this one included.
    Allowed { count: u32 },
    /// The window's limit is reached: not counted; try again in
    /// `retry_after` seconds (when the window ends).
    Limited { retry_after: i64 },
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
    /// Records a paid signup in one atomic write: claims `subdomain` for
    /// `record.id`, creates `record` unless a tenant with its id exists, and
    /// turns the checkout's hold into the claim (the hold is removed). So
    /// there is never a claim without its tenant, nor a tenant whose claim a
    /// crash left half made.
    ///
    /// `hold` is the hold the checkout carried: the write succeeds when no
    /// hold is there or [`SubdomainHold::admits`] it. Someone else's live
    /// hold is [`StoreError::SubdomainHeld`];
    /// another tenant's claim [`StoreError::SubdomainTaken`] (checked first).
    /// Run again (a retried step) it changes nothing and answers
    /// [`Inserted::Existing`]; a tenant that exists is never overwritten and
    /// its released name is not claimed again.
    async fn record_signup(
        &self,
        subdomain: &Subdomain,
        record: &TenantRecord,
        hold: Option<&HoldId>,
        now: i64,
    ) -> Result<Inserted, StoreError>;

    /// Releases the claim if `tenant` holds it; otherwise changes nothing.
    async fn release_subdomain(&self, subdomain: &Subdomain, tenant: &TenantId) -> Result<(), StoreError>;

    async fn subdomain_holder(&self, subdomain: &Subdomain) -> Result<Option<TenantId>, StoreError>;

    /// Holds a subdomain for a checkout until `request.until`, so two people
    /// cannot both start paying for one name; one conditional write with the
    /// per-owner counts of open holds. Fails with
    /// [`StoreError::SubdomainTaken`] if a tenant claimed it,
    /// [`StoreError::SubdomainHeld`] if another hold is unexpired at `now`;
    /// answers [`HoldOutcome::OwnerAtLimit`] (and holds nothing) if an owner
    /// of the request has its limit of other unexpired holds. The same hold
    /// id again, unexpired, is [`HoldOutcome::Existing`] and changes nothing.
    async fn hold_subdomain(&self, request: &HoldRequest, now: i64) -> Result<HoldOutcome, StoreError>;

    /// Records the Checkout Session made for `hold_id`'s hold on `subdomain`,
    /// if that hold is still there; otherwise changes nothing.
    async fn record_hold_session(
        &self,
        subdomain: &Subdomain,
        hold_id: &HoldId,
        session: &HeldSession,
    ) -> Result<(), StoreError>;

    /// Counts one request of `client` (an opaque key) in the current window of
    /// `window_seconds` (windows start at multiples of it), across every
    /// instance of the API: at most `limit` requests a window are allowed.
    async fn count_request(
        &self,
        client: &str,
        now: i64,
        window_seconds: i64,
        limit: u32,
    ) -> Result<RateOutcome, StoreError>;

    /// The current checkout hold on `subdomain`, if one is unexpired at `now`.
    async fn subdomain_hold(
        &self,
        subdomain: &Subdomain,
        now: i64,
    ) -> Result<Option<SubdomainHold>, StoreError>;

    /// Creates the record unless one with its id exists (a rejected signup's
    /// FAILED record: it claims nothing).
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

    /// Reserves the customer's one trial for a checkout, conditionally:
    /// reserved when nobody has it, when the same hold reserved it (a
    /// retried request; `until` is not extended), or when another hold's
    /// reservation lapsed (`until < now`) unpaid. A trial used is never
    /// reserved again ([`TrialOffer::Used`]); another live reservation is
    /// [`TrialOffer::InAnotherCheckout`].
    async fn reserve_trial(&self, reservation: &TrialReservation, now: i64)
    -> Result<TrialOffer, StoreError>;

    /// Records the trial used by a paid checkout, whatever reserved it (the
    /// customer has it now). Returns the use recorded first: this one, or
    /// an earlier one, which is kept (a retried step, or a second paid trial
    /// that slipped past, which the caller reports).
    async fn record_trial_use(&self, key: &TrialKey, used: &TrialUse) -> Result<TrialUse, StoreError>;
}
