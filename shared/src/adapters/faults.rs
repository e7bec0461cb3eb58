//! Fault injection for every port: decorators that make a share of calls
//! fail the way AWS and Stripe fail, deterministically from a seed, so the
//! promise "every step is idempotent and safe when run twice, late, or after
//! a call that succeeded but reported failure" can be tested.
//!
//! Three kinds of fault, all *transient* (the port's `Unavailable` variant):
//! the system must survive them, never be told "refused for good".
//!
//! - [`FaultKind::Before`]: the call fails before it has any effect.
//! - [`FaultKind::After`]: the inner call runs and succeeds, then the caller
//!   is told it failed. This is the case that breaks naive idempotency (a
//!   create that succeeded is retried and finds "already exists").
//! - [`FaultKind::Timeout`]: a delay, then an error; the effect happened or
//!   not (drawn from the seed too), as with a client that gave up waiting.
//!
//! Decisions depend only on the seed, the port's name and how many calls that
//! port has had, so a sequential run repeats exactly.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{
    CustomerId, EmailAddress, HoldId, Subdomain, SubscriptionId, TenantId, TenantRecord, TrialKey,
    TrialOffer, TrialReservation, TrialUse,
};
use crate::ports::{
    AliasTarget, BillingError, BillingPortal, BoxError, ChangeStatus, CheckoutSessionRequest, CreatedSession,
    DnsError, DnsPublisher, EventQueue, HeldSession, HoldOutcome, HoldRequest, Inserted, LaunchSpec,
    LaunchedTenant, LauncherError, LeaseOutcome, Mail, MailError, MailMarked, MailRecord, MailSlot, Mailer,
    MoneyBack, QueueError, QueuedEvent, RateOutcome, RawMailer, ReceivedMail, Refund, Room, RoutingCapacity,
    SecretStore, SecretStoreError, SecretValue, ServiceHealth, StartOutcome, StoreError, StripeApiError,
    StripeGateway, SubdomainHold, SubscriptionSnapshot, SubscriptionSource, TenantLauncher, TenantStore,
    TrailEntry, UnmatchedEvent, Workflow, WorkflowError, WorkflowStarter,
};
use crate::steps::WorkflowSteps;
use crate::stripe::StripeEventId;

/// How an injected fault fails a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Fails before the call has any effect.
    Before,
    /// The call takes effect, then the caller is told it failed.
    After,
    /// A delay, then a failure; the call took effect or not (`effect`).
    Timeout { effect: bool },
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::Before => f.write_str("error before the effect"),
            FaultKind::After => f.write_str("error after the effect"),
            FaultKind::Timeout { effect: true } => f.write_str("timeout after the effect"),
            FaultKind::Timeout { effect: false } => f.write_str("timeout without the effect"),
        }
    }
}

/// The relative weights of the kinds among injected faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultMix {
    pub before: u32,
    pub after: u32,
    pub timeout: u32,
}

impl FaultMix {
    /// Every kind equally likely.
    pub const EVEN: FaultMix = FaultMix { before: 1, after: 1, timeout: 1 };
    /// Only "succeeded, then reported failure": the idempotency breaker.
    pub const AFTER_ONLY: FaultMix = FaultMix { before: 0, after: 1, timeout: 0 };
}

impl Default for FaultMix {
    fn default() -> Self {
        FaultMix::EVEN
    }
}

/// A plan's settings cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultPlanError {
    #[error("fault rate must be a number from 0 to 1, not {0}")]
    Rate(f64),
    #[error("a fault mix needs at least one kind with a weight above 0")]
    EmptyMix,
}

/// What was injected into one port (or one API behind the proxy).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCounts {
    /// Every call the plan was asked about.
    pub calls: u64,
    pub before: u64,
    pub after: u64,
    pub timeout_with_effect: u64,
    pub timeout_without_effect: u64,
}

impl FaultCounts {
    /// Faults injected, of any kind.
    pub fn injected(&self) -> u64 {
        self.before + self.after + self.timeout_with_effect + self.timeout_without_effect
    }

    fn count(&mut self, kind: FaultKind) {
        match kind {
            FaultKind::Before => self.before += 1,
            FaultKind::After => self.after += 1,
            FaultKind::Timeout { effect: true } => self.timeout_with_effect += 1,
            FaultKind::Timeout { effect: false } => self.timeout_without_effect += 1,
        }
    }
}

/// Counts per port (or API), as `GET /local/state` and test reports show them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultReport {
    pub rate: String,
    pub seed: u64,
    pub ports: BTreeMap<String, FaultCounts>,
}

impl FaultReport {
    /// The counts summed over every port.
    pub fn total(&self) -> FaultCounts {
        self.ports.values().fold(FaultCounts::default(), |mut sum, c| {
            sum.calls += c.calls;
            sum.before += c.before;
            sum.after += c.after;
            sum.timeout_with_effect += c.timeout_with_effect;
            sum.timeout_without_effect += c.timeout_without_effect;
            sum
        })
    }
}

/// Which calls fail and how: a rate, a seed and a mix of kinds, with counters.
#[derive(Debug)]
pub struct FaultPlan {
    rate: f64,
    seed: u64,
    mix: FaultMix,
    delay: Duration,
    counts: Mutex<BTreeMap<String, FaultCounts>>,
}

impl FaultPlan {
    /// Fails a share `rate` (0..=1) of calls, chosen by `seed`, with an even
    /// mix of kinds and no timeout delay.
    pub fn new(rate: f64, seed: u64) -> Result<FaultPlan, FaultPlanError> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(FaultPlanError::Rate(rate));
        }
        Ok(FaultPlan {
            rate,
            seed,
            mix: FaultMix::EVEN,
            delay: Duration::ZERO,
            counts: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn with_mix(mut self, mix: FaultMix) -> Result<FaultPlan, FaultPlanError> {
        if mix.before == 0 && mix.after == 0 && mix.timeout == 0 {
            return Err(FaultPlanError::EmptyMix);
        }
        self.mix = mix;
        Ok(self)
    }

    /// How long a [`FaultKind::Timeout`] waits before failing.
    pub fn with_timeout_delay(mut self, delay: Duration) -> FaultPlan {
        self.delay = delay;
        self
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn timeout_delay(&self) -> Duration {
        self.delay
    }

    /// Decides the fate of the next call to `port` and counts it.
    pub fn decide(&self, port: &str) -> Option<FaultKind> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = counts.entry(port.to_owned()).or_default();
        let call = entry.calls;
        entry.calls += 1;
        let kind = self.draw(port, call)?;
        entry.count(kind);
        Some(kind)
    }

    /// The pure decision for the `call`-th call (from 0) of `port`.
    fn draw(&self, port: &str, call: u64) -> Option<FaultKind> {
        let base = self.seed
            ^ crate::domain::ids::fnv1a(port.as_bytes()).rotate_left(17)
            ^ call.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut state = base;
        if unit(splitmix64(&mut state)) >= self.rate {
            return None;
        }
        let total = u64::from(self.mix.before) + u64::from(self.mix.after) + u64::from(self.mix.timeout);
        let pick = splitmix64(&mut state) % total.max(1);
        let kind = if pick < u64::from(self.mix.before) {
            FaultKind::Before
        } else if pick < u64::from(self.mix.before) + u64::from(self.mix.after) {
            FaultKind::After
        } else {
            FaultKind::Timeout { effect: splitmix64(&mut state) & 1 == 1 }
        };
        Some(kind)
    }

    /// The counts so far.
    pub fn report(&self) -> FaultReport {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        FaultReport { rate: self.rate.to_string(), seed: self.seed, ports: counts.clone() }
    }

    /// Runs `call` under the plan's decision for `port.method`: the inner
    /// call's own result, or an injected failure wrapped by `unavailable`
    /// (the port's transient variant).
    pub async fn run<T, E, F>(
        &self,
        port: &'static str,
        method: &'static str,
        unavailable: impl FnOnce(BoxError) -> E,
        call: F,
    ) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        let Some(kind) = self.decide(port) else {
            return call.await;
        };
        let injected = |kind| -> BoxError { Box::new(InjectedFault { port, method, kind }) };
        match kind {
            FaultKind::Before => Err(unavailable(injected(kind))),
            FaultKind::After => {
                // A real failure is the caller's to see; only success is hidden.
                call.await?;
                Err(unavailable(injected(kind)))
            }
            FaultKind::Timeout { effect } => {
                if effect {
                    // Whatever the call answered, the caller stopped waiting.
                    let _ = call.await;
                }
                tokio::time::sleep(self.delay).await;
                Err(unavailable(injected(kind)))
            }
        }
    }
}

/// The source of every injected failure: says it was injected, where and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fault injected into {port}.{method}: {kind}")]
pub struct InjectedFault {
    pub port: &'static str,
    pub method: &'static str,
    pub kind: FaultKind,
}

/// SplitMix64: small, fast and well mixed; enough to pick faults, and the
/// orders and duplicates local runs deliver events in (seeded, so a failing
/// run can be replayed).
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Shuffles `items` in place (Fisher-Yates), the same way for the same seed.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed;
    for i in (1..items.len()).rev() {
        let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// A uniform number in [0, 1).
fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// The name a port's counters go under.
pub trait PortName {
    const NAME: &'static str;
}

macro_rules! port_names {
    ($($port:ident => $name:literal),* $(,)?) => {
        $(impl PortName for dyn $port { const NAME: &'static str = $name; })*
    };
}

port_names! {
    TenantStore => "tenant_store",
    TenantLauncher => "launcher",
    DnsPublisher => "dns",
    Mailer => "mailer",
    BillingPortal => "billing_portal",
    EventQueue => "event_queue",
    WorkflowStarter => "workflow_starter",
    StripeGateway => "stripe",
    SubscriptionSource => "subscriptions",
    MoneyBack => "money_back",
    SecretStore => "secrets",
    RawMailer => "raw_mailer",
    ReceivedMail => "received_mail",
    RoutingCapacity => "routing_capacity",
}

/// A port whose calls fail as its [`FaultPlan`] says; otherwise the inner
/// adapter's. Adding a method to a port takes one line here: its signature
/// and `self.run("method", Error::Unavailable, self.inner.method(args))`.
pub struct Faulty<P: ?Sized> {
    inner: Arc<P>,
    plan: Arc<FaultPlan>,
}

impl<P: ?Sized + PortName> Faulty<P> {
    pub fn new(inner: Arc<P>, plan: Arc<FaultPlan>) -> Self {
        Faulty { inner, plan }
    }

    pub fn inner(&self) -> &Arc<P> {
        &self.inner
    }

    async fn run<T, E>(
        &self,
        method: &'static str,
        unavailable: impl FnOnce(BoxError) -> E,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        self.plan.run(P::NAME, method, unavailable, call).await
    }
}

/// `Arc<dyn Port>` wrapped in the plan, or unchanged without one.
pub fn wrap<P: ?Sized + PortName>(inner: Arc<P>, plan: Option<&Arc<FaultPlan>>) -> Arc<P>
where
    Faulty<P>: Into<Arc<P>>,
{
    match plan {
        Some(plan) => Faulty::new(inner, plan.clone()).into(),
        None => inner,
    }
}

macro_rules! into_arc_dyn {
    ($($port:ident),* $(,)?) => {
        $(impl From<Faulty<dyn $port>> for Arc<dyn $port> {
            fn from(faulty: Faulty<dyn $port>) -> Self {
                Arc::new(faulty)
            }
        })*
    };
}

into_arc_dyn!(
    TenantStore,
    TenantLauncher,
    DnsPublisher,
    Mailer,
    BillingPortal,
    EventQueue,
    WorkflowStarter,
    StripeGateway,
    SubscriptionSource,
    MoneyBack,
    SecretStore,
    RawMailer,
    ReceivedMail,
    RoutingCapacity,
);

/// Every port the steps use, wrapped in `plan` (the clock and settings stay).
pub fn faulty_steps(steps: WorkflowSteps, plan: &Arc<FaultPlan>) -> WorkflowSteps {
    let plan = Some(plan);
    WorkflowSteps {
        store: wrap(steps.store, plan),
        launcher: wrap(steps.launcher, plan),
        dns: wrap(steps.dns, plan),
        mailer: wrap(steps.mailer, plan),
        billing: wrap(steps.billing, plan),
        stripe: wrap(steps.stripe, plan),
        money_back: wrap(steps.money_back, plan),
        ..steps
    }
}

#[async_trait]
impl TenantStore for Faulty<dyn TenantStore> {
    async fn record_signup(
        &self,
        subdomain: &Subdomain,
        record: &TenantRecord,
        hold: Option<&HoldId>,
        now: i64,
    ) -> Result<Inserted, StoreError> {
        let call = self.inner.record_signup(subdomain, record, hold, now);
        self.run("record_signup", StoreError::Unavailable, call).await
    }

    async fn release_subdomain(&self, subdomain: &Subdomain, tenant: &TenantId) -> Result<(), StoreError> {
        self.run(
            "release_subdomain",
            StoreError::Unavailable,
            self.inner.release_subdomain(subdomain, tenant),
        )
        .await
    }

    async fn subdomain_holder(&self, subdomain: &Subdomain) -> Result<Option<TenantId>, StoreError> {
        self.run("subdomain_holder", StoreError::Unavailable, self.inner.subdomain_holder(subdomain)).await
    }

    async fn hold_subdomain(&self, request: &HoldRequest, now: i64) -> Result<HoldOutcome, StoreError> {
        self.run("hold_subdomain", StoreError::Unavailable, self.inner.hold_subdomain(request, now)).await
    }

    async fn record_hold_session(
        &self,
        subdomain: &Subdomain,
        hold_id: &HoldId,
        session: &HeldSession,
    ) -> Result<(), StoreError> {
        let call = self.inner.record_hold_session(subdomain, hold_id, session);
        self.run("record_hold_session", StoreError::Unavailable, call).await
    }

    async fn count_request(
        &self,
        client: &str,
        now: i64,
        window_seconds: i64,
        limit: u32,
    ) -> Result<RateOutcome, StoreError> {
        let call = self.inner.count_request(client, now, window_seconds, limit);
        self.run("count_request", StoreError::Unavailable, call).await
    }

    async fn subdomain_hold(
        &self,
        subdomain: &Subdomain,
        now: i64,
    ) -> Result<Option<SubdomainHold>, StoreError> {
        self.run("subdomain_hold", StoreError::Unavailable, self.inner.subdomain_hold(subdomain, now)).await
    }

    async fn insert_tenant(&self, record: &TenantRecord) -> Result<Inserted, StoreError> {
        self.run("insert_tenant", StoreError::Unavailable, self.inner.insert_tenant(record)).await
    }

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        self.run("get_tenant", StoreError::Unavailable, self.inner.get_tenant(id)).await
    }

    async fn replace_tenant(&self, record: &TenantRecord) -> Result<(), StoreError> {
        self.run("replace_tenant", StoreError::Unavailable, self.inner.replace_tenant(record)).await
    }

    async fn find_by_subscription(
        &self,
        subscription: &SubscriptionId,
    ) -> Result<Option<TenantRecord>, StoreError> {
        self.run(
            "find_by_subscription",
            StoreError::Unavailable,
            self.inner.find_by_subscription(subscription),
        )
        .await
    }

    async fn record_unmatched_event(&self, event: &UnmatchedEvent) -> Result<(), StoreError> {
        self.run("record_unmatched_event", StoreError::Unavailable, self.inner.record_unmatched_event(event))
            .await
    }

    async fn list_unmatched_events(&self) -> Result<Vec<UnmatchedEvent>, StoreError> {
        self.run("list_unmatched_events", StoreError::Unavailable, self.inner.list_unmatched_events()).await
    }

    async fn acquire_lease(
        &self,
        tenant: &TenantId,
        owner: &str,
        now: i64,
        ttl_seconds: i64,
    ) -> Result<LeaseOutcome, StoreError> {
        let call = self.inner.acquire_lease(tenant, owner, now, ttl_seconds);
        self.run("acquire_lease", StoreError::Unavailable, call).await
    }

    async fn release_lease(&self, tenant: &TenantId, owner: &str) -> Result<(), StoreError> {
        self.run("release_lease", StoreError::Unavailable, self.inner.release_lease(tenant, owner)).await
    }

    async fn record_trail(&self, entry: &TrailEntry) -> Result<bool, StoreError> {
        self.run("record_trail", StoreError::Unavailable, self.inner.record_trail(entry)).await
    }

    async fn trail(&self, tenant: &TenantId) -> Result<Vec<TrailEntry>, StoreError> {
        self.run("trail", StoreError::Unavailable, self.inner.trail(tenant)).await
    }

    async fn reserve_mail(
        &self,
        tenant: &TenantId,
        key: &str,
        owner: &str,
        now: i64,
        stale_after: i64,
    ) -> Result<MailSlot, StoreError> {
        let call = self.inner.reserve_mail(tenant, key, owner, now, stale_after);
        self.run("reserve_mail", StoreError::Unavailable, call).await
    }

    async fn mail_sent(
        &self,
        tenant: &TenantId,
        key: &str,
        owner: &str,
        message_id: &str,
        now: i64,
    ) -> Result<MailMarked, StoreError> {
        let call = self.inner.mail_sent(tenant, key, owner, message_id, now);
        self.run("mail_sent", StoreError::Unavailable, call).await
    }

    async fn mails(&self, tenant: &TenantId) -> Result<Vec<MailRecord>, StoreError> {
        self.run("mails", StoreError::Unavailable, self.inner.mails(tenant)).await
    }

    async fn reserve_trial(
        &self,
        reservation: &TrialReservation,
        now: i64,
    ) -> Result<TrialOffer, StoreError> {
        self.run("reserve_trial", StoreError::Unavailable, self.inner.reserve_trial(reservation, now)).await
    }

    async fn record_trial_use(&self, key: &TrialKey, used: &TrialUse) -> Result<TrialUse, StoreError> {
        self.run("record_trial_use", StoreError::Unavailable, self.inner.record_trial_use(key, used)).await
    }

    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.run("list_tenants", StoreError::Unavailable, self.inner.list_tenants()).await
    }
}

#[async_trait]
impl TenantLauncher for Faulty<dyn TenantLauncher> {
    async fn launch(&self, spec: &LaunchSpec) -> Result<LaunchedTenant, LauncherError> {
        self.run("launch", LauncherError::Unavailable, self.inner.launch(spec)).await
    }

    async fn health(&self, tenant: &TenantId) -> Result<ServiceHealth, LauncherError> {
        self.run("health", LauncherError::Unavailable, self.inner.health(tenant)).await
    }

    async fn scale(&self, tenant: &TenantId, desired: u32) -> Result<(), LauncherError> {
        self.run("scale", LauncherError::Unavailable, self.inner.scale(tenant, desired)).await
    }

    async fn remove(&self, tenant: &TenantId) -> Result<(), LauncherError> {
        self.run("remove", LauncherError::Unavailable, self.inner.remove(tenant)).await
    }
}

#[async_trait]
impl DnsPublisher for Faulty<dyn DnsPublisher> {
    async fn upsert_alias(&self, name: &str, target: &AliasTarget) -> Result<String, DnsError> {
        self.run("upsert_alias", DnsError::Unavailable, self.inner.upsert_alias(name, target)).await
    }

    async fn change_status(&self, change_id: &str) -> Result<ChangeStatus, DnsError> {
        self.run("change_status", DnsError::Unavailable, self.inner.change_status(change_id)).await
    }

    async fn delete_alias(&self, name: &str) -> Result<(), DnsError> {
        self.run("delete_alias", DnsError::Unavailable, self.inner.delete_alias(name)).await
    }
}

#[async_trait]
impl Mailer for Faulty<dyn Mailer> {
    async fn send(&self, mail: &Mail) -> Result<String, MailError> {
        self.run("send", MailError::Unavailable, self.inner.send(mail)).await
    }
}

#[async_trait]
impl RawMailer for Faulty<dyn RawMailer> {
    async fn send_raw(&self, to: &EmailAddress, raw: &[u8]) -> Result<String, MailError> {
        self.run("send_raw", MailError::Unavailable, self.inner.send_raw(to, raw)).await
    }
}

#[async_trait]
impl ReceivedMail for Faulty<dyn ReceivedMail> {
    async fn raw_message(
        &self,
        message_id: &crate::domain::ReceivedMessageId,
    ) -> Result<Option<Vec<u8>>, MailError> {
        self.run("raw_message", MailError::Unavailable, self.inner.raw_message(message_id)).await
    }
}

#[async_trait]
impl RoutingCapacity for Faulty<dyn RoutingCapacity> {
    async fn room(&self) -> Result<Room, LauncherError> {
        self.run("room", LauncherError::Unavailable, self.inner.room()).await
    }
}

#[async_trait]
impl BillingPortal for Faulty<dyn BillingPortal> {
    async fn portal_url(&self, customer: &CustomerId) -> Result<String, BillingError> {
        self.run("portal_url", BillingError::Unavailable, self.inner.portal_url(customer)).await
    }
}

#[async_trait]
impl EventQueue for Faulty<dyn EventQueue> {
    async fn enqueue(&self, event: &QueuedEvent) -> Result<(), QueueError> {
        self.run("enqueue", QueueError::Unavailable, self.inner.enqueue(event)).await
    }
}

#[async_trait]
impl WorkflowStarter for Faulty<dyn WorkflowStarter> {
    async fn start(
        &self,
        workflow: Workflow,
        name: &StripeEventId,
        input: &serde_json::Value,
    ) -> Result<StartOutcome, WorkflowError> {
        self.run("start", WorkflowError::Unavailable, self.inner.start(workflow, name, input)).await
    }
}

#[async_trait]
impl StripeGateway for Faulty<dyn StripeGateway> {
    async fn create_checkout_session(
        &self,
        request: &CheckoutSessionRequest,
    ) -> Result<CreatedSession, StripeApiError> {
        let call = self.inner.create_checkout_session(request);
        self.run("create_checkout_session", StripeApiError::Unavailable, call).await
    }

    async fn create_portal_session(
        &self,
        customer: &CustomerId,
        return_url: &str,
    ) -> Result<String, StripeApiError> {
        let call = self.inner.create_portal_session(customer, return_url);
        self.run("create_portal_session", StripeApiError::Unavailable, call).await
    }

    async fn price_by_lookup_key(
        &self,
        lookup_key: &crate::domain::LookupKey,
    ) -> Result<Option<crate::ports::SoldPrice>, StripeApiError> {
        let call = self.inner.price_by_lookup_key(lookup_key);
        self.run("price_by_lookup_key", StripeApiError::Unavailable, call).await
    }

    async fn promotion_code(
        &self,
        code: &crate::domain::PromotionCode,
    ) -> Result<Option<crate::domain::PromotionOffer>, StripeApiError> {
        self.run("promotion_code", StripeApiError::Unavailable, self.inner.promotion_code(code)).await
    }
}

#[async_trait]
impl SubscriptionSource for Faulty<dyn SubscriptionSource> {
    async fn subscription(
        &self,
        id: &SubscriptionId,
    ) -> Result<Option<SubscriptionSnapshot>, StripeApiError> {
        self.run("subscription", StripeApiError::Unavailable, self.inner.subscription(id)).await
    }

    async fn live_subscriptions_with(
        &self,
        metadata_key: &str,
    ) -> Result<Vec<SubscriptionSnapshot>, StripeApiError> {
        let call = self.inner.live_subscriptions_with(metadata_key);
        self.run("live_subscriptions_with", StripeApiError::Unavailable, call).await
    }
}

#[async_trait]
impl MoneyBack for Faulty<dyn MoneyBack> {
    async fn cancel_subscription(&self, id: &SubscriptionId) -> Result<(), StripeApiError> {
        self.run("cancel_subscription", StripeApiError::Unavailable, self.inner.cancel_subscription(id)).await
    }

    async fn refund_subscription(
        &self,
        id: &SubscriptionId,
        paid_since: Option<i64>,
        tenant: &str,
    ) -> Result<Vec<Refund>, StripeApiError> {
        let call = self.inner.refund_subscription(id, paid_since, tenant);
        self.run("refund_subscription", StripeApiError::Unavailable, call).await
    }
}

#[async_trait]
impl SecretStore for Faulty<dyn SecretStore> {
    async fn get_secret(&self, name: &str) -> Result<SecretValue, SecretStoreError> {
        let unavailable = |source| SecretStoreError::Unavailable { name: name.to_owned(), source };
        self.run("get_secret", unavailable, self.inner.get_secret(name)).await
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A mailer that counts what it really sent.
    #[derive(Default)]
    struct Counting(AtomicU32);

    #[async_trait]
    impl Mailer for Counting {
        async fn send(&self, _mail: &Mail) -> Result<String, MailError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            Ok(format!("msg-{n}"))
        }
    }

    fn mail() -> Mail {
        Mail {
            to: crate::domain::EmailAddress::parse("dana@acme.example").unwrap(),
            subject: "s".into(),
            text: "t".into(),
        }
    }

    fn plan(rate: f64, seed: u64, mix: FaultMix) -> Arc<FaultPlan> {
        Arc::new(FaultPlan::new(rate, seed).unwrap().with_mix(mix).unwrap())
    }

    #[test]
    fn the_same_seed_makes_the_same_decisions_and_another_seed_others() {
        let decisions = |seed| {
            let plan = FaultPlan::new(0.5, seed).unwrap();
            (0..64).map(|_| plan.decide("mailer")).collect::<Vec<_>>()
        };
        assert_eq!(decisions(7), decisions(7));
        assert_ne!(decisions(7), decisions(8));
    }

    #[test]
    fn the_rate_is_roughly_kept_and_the_extremes_exactly() {
        let share = |rate| {
            let plan = FaultPlan::new(rate, 42).unwrap();
            (0..2000).filter(|_| plan.decide("p").is_some()).count()
        };
        assert_eq!(share(0.0), 0);
        assert_eq!(share(1.0), 2000);
        let half = share(0.5);
        assert!((800..1200).contains(&half), "{half} of 2000 at rate 0.5");
    }

    #[test]
    fn ports_draw_independently_so_one_ports_calls_do_not_shift_anothers() {
        let alone = FaultPlan::new(0.5, 3).unwrap();
        let a: Vec<_> = (0..32).map(|_| alone.decide("a")).collect();
        let mixed = FaultPlan::new(0.5, 3).unwrap();
        let b: Vec<_> = (0..32)
            .map(|_| {
                mixed.decide("b");
                mixed.decide("a")
            })
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert_eq!(FaultPlan::new(1.5, 0).unwrap_err(), FaultPlanError::Rate(1.5));
        assert!(FaultPlan::new(f64::NAN, 0).is_err());
        let empty = FaultMix { before: 0, after: 0, timeout: 0 };
        assert_eq!(FaultPlan::new(0.5, 0).unwrap().with_mix(empty).unwrap_err(), FaultPlanError::EmptyMix);
    }

    #[tokio::test]
    async fn an_error_before_the_effect_leaves_nothing_done() {
        let inner = Arc::new(Counting::default());
        let faulty = Faulty::<dyn Mailer>::new(
            inner.clone(),
            plan(1.0, 1, FaultMix { before: 1, after: 0, timeout: 0 }),
        );
        let error = faulty.send(&mail()).await.unwrap_err();
        assert!(matches!(error, MailError::Unavailable(_)));
        assert_eq!(inner.0.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn an_error_after_the_effect_hides_a_call_that_happened() {
        let inner = Arc::new(Counting::default());
        let plan = plan(1.0, 1, FaultMix::AFTER_ONLY);
        let faulty = Faulty::<dyn Mailer>::new(inner.clone(), plan.clone());
        let error = faulty.send(&mail()).await.unwrap_err();
        assert_eq!(inner.0.load(Ordering::SeqCst), 1, "the mail went out");
        let MailError::Unavailable(source) = &error else { panic!("{error:?}") };
        let injected = source.downcast_ref::<InjectedFault>().expect("the source says it was injected");
        assert_eq!((injected.port, injected.method, injected.kind), ("mailer", "send", FaultKind::After));
        assert!(error.source().is_some_and(|s| s.to_string().contains("fault injected into mailer.send")));
        let report = plan.report();
        assert_eq!(report.ports["mailer"], FaultCounts { calls: 1, after: 1, ..FaultCounts::default() });
    }

    #[tokio::test]
    async fn timeouts_fail_with_and_without_the_effect_and_are_counted_apart() {
        let inner = Arc::new(Counting::default());
        let plan = plan(1.0, 9, FaultMix { before: 0, after: 0, timeout: 1 });
        let faulty = Faulty::<dyn Mailer>::new(inner.clone(), plan.clone());
        for _ in 0..40 {
            assert!(faulty.send(&mail()).await.is_err());
        }
        let counts = plan.report().ports["mailer"].clone();
        assert_eq!(counts.injected(), 40);
        assert!(counts.timeout_with_effect > 0 && counts.timeout_without_effect > 0, "{counts:?}");
        assert_eq!(u64::from(inner.0.load(Ordering::SeqCst)), counts.timeout_with_effect);
    }

    #[tokio::test]
    async fn no_fault_passes_the_inner_answer_through() {
        let inner = Arc::new(Counting::default());
        let faulty = wrap::<dyn Mailer>(inner.clone(), Some(&plan(0.0, 1, FaultMix::EVEN)));
        assert_eq!(faulty.send(&mail()).await.unwrap(), "msg-0");
        let unwrapped = wrap::<dyn Mailer>(inner.clone(), None);
        assert_eq!(unwrapped.send(&mail()).await.unwrap(), "msg-1");
    }
}
