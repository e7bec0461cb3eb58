//! Benchmark 4, cost per tenant: one customer's Stripe events, one at a time,
//! through the local stack (the same webhook handler, dispatcher, state
//! machine files and steps as in AWS). Per event it counts, from the
//! execution histories, the state transitions and Lambda invocations, and,
//! from a counting wrapper around the tenant store, the DynamoDB requests and
//! capacity units the AWS adapter would use for the same calls (sized from the
//! items the adapter would write). Dollars come from the list prices below.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::report::{Table, three_figures};
use anyhow::{Context, Result, anyhow, ensure};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use tenancy::adapters::aws::dynamodb::tenant_item;
use tenancy::adapters::local::{LocalEventQueue, LocalStripe, SubscriptionAction};
use tenancy::clock::{Clock, SystemClock};
use tenancy::config::TenantSettings;
use tenancy::domain::password::PasswordKey;
use tenancy::domain::{
    Catalog, HoldId, Subdomain, SubscriptionId, TenantId, TenantRecord, TrialKey, TrialOffer,
    TrialReservation, TrialUse,
};
use tenancy::ingress::WebhookIngress;
use tenancy::ports::{
    HeldSession, HoldOutcome, HoldRequest, Inserted, LeaseOutcome, MailMarked, MailRecord, MailSlot,
    RateOutcome, StoreError, SubdomainHold, TenantStore, TrailEntry, UnmatchedEvent,
};
use tenancy::stripe::signature::DEFAULT_TOLERANCE;
use tenancy::stripe::{SignatureVerifier, StripeMode, WebhookSecret, WebhookSecrets};
use tenantctl::local::{Adapters, LocalOptions, LocalStack, StepConfig};
use tenantctl::workflow::ExecutionRecord;

const SECRET: &str = "whsec_bench_cost_00000000000000000";

/// US East (N. Virginia) list prices, USD, as published by AWS for 2026.
pub(crate) mod price {
    /// Step Functions Standard, per state transition ($0.025 per 1,000).
    pub const TRANSITION: f64 = 0.025 / 1_000.0;
    /// Lambda, per request ($0.20 per million).
    pub const LAMBDA_REQUEST: f64 = 0.20 / 1_000_000.0;
    /// Lambda on arm64, per GB-second.
    pub const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
    /// DynamoDB on-demand, per write request unit ($0.625 per million).
    pub const WRITE_UNIT: f64 = 0.625 / 1_000_000.0;
    /// DynamoDB on-demand, per read request unit ($0.125 per million).
    pub const READ_UNIT: f64 = 0.125 / 1_000_000.0;
    /// SQS standard queue, per request ($0.40 per million).
    pub const SQS_REQUEST: f64 = 0.40 / 1_000_000.0;
    /// API Gateway HTTP API, per request ($1.00 per million).
    pub const API_REQUEST: f64 = 1.00 / 1_000_000.0;
    /// SES, per outbound message ($0.10 per 1,000).
    pub const MAIL: f64 = 0.10 / 1_000.0;
}

/// Assumed billed duration of one invocation at the template's 128 MB: the
/// local run cannot measure AWS latencies, and at these sizes the duration
/// charge is a small part of the total either way.
const ASSUMED_BILLED_SECONDS: f64 = 0.1;
const LAMBDA_GB: f64 = 128.0 / 1024.0;
/// SQS requests per queued event: SendMessage, the event source mapping's
/// ReceiveMessage and its DeleteMessage (fewer when batches hold several).
const SQS_REQUESTS_PER_EVENT: u64 = 3;

/// DynamoDB usage, as the AWS adapter would incur it.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Usage {
    pub writes: u64,
    pub write_units: u64,
    pub reads: u64,
    pub read_units: f64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        self.writes += o.writes;
        self.write_units += o.write_units;
        self.reads += o.reads;
        self.read_units += o.read_units;
    }
}

impl std::ops::Sub for Usage {
    type Output = Usage;
    fn sub(self, o: Usage) -> Usage {
        Usage {
            writes: self.writes - o.writes,
            write_units: self.write_units - o.write_units,
            reads: self.reads - o.reads,
            read_units: self.read_units - o.read_units,
        }
    }
}

/// The size DynamoDB bills for an item: attribute names plus values, with
/// numbers at about one byte per two digits and 3 bytes per map or list
/// plus 1 per element (AWS's "item size" rules).
pub(crate) fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.trim_start_matches('-').len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => 3 + map.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum::<usize>(),
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

/// Write units for a tenant item: 1 per KB.
fn tenant_write_units(record: &TenantRecord) -> u64 {
    tenant_item(record).map_or(1, |item| item_size(&item).div_ceil(1024).max(1) as u64)
}

/// Strongly consistent read units for a tenant item: 1 per 4 KB.
fn tenant_read_units(record: &TenantRecord) -> f64 {
    tenant_item(record).map_or(1.0, |item| item_size(&item).div_ceil(4096).max(1) as f64)
}

/// The tenant store, counting the DynamoDB requests each call maps to in the
/// AWS adapter (adapters/aws/dynamodb.rs): one request per call, a refused
/// conditional write billed like any other.
pub struct CountingStore {
    inner: Arc<dyn TenantStore>,
    usage: Mutex<Usage>,
}

impl CountingStore {
    pub fn usage(&self) -> Usage {
        *self.usage.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn write(&self, units: u64) {
        let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        usage.writes += 1;
        usage.write_units += units;
    }
    fn read(&self, units: f64) {
        let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        usage.reads += 1;
        usage.read_units += units;
    }
}

#[async_trait]
impl TenantStore for CountingStore {
    async fn record_signup(
        &self,
        subdomain: &Subdomain,
        record: &TenantRecord,
        hold: Option<&HoldId>,
        now: i64,
    ) -> Result<Inserted, StoreError> {
        // One transaction of three items (claim, tenant, hold), each billed
        // twice as a transactional write, plus the tenant's index entry.
        let index = u64::from(record.signup.is_some());
        self.write(2 * (1 + tenant_write_units(record) + 1) + index);
        self.inner.record_signup(subdomain, record, hold, now).await
    }
    async fn release_subdomain(&self, subdomain: &Subdomain, tenant: &TenantId) -> Result<(), StoreError> {
        self.write(1);
        self.inner.release_subdomain(subdomain, tenant).await
    }
    async fn subdomain_holder(&self, subdomain: &Subdomain) -> Result<Option<TenantId>, StoreError> {
        self.read(1.0);
        self.inner.subdomain_holder(subdomain).await
    }
    async fn hold_subdomain(&self, request: &HoldRequest, now: i64) -> Result<HoldOutcome, StoreError> {
        // The hold and each owner read, then one transaction over the claim
        // check, the hold and the owners (transactional: twice the units).
        for _ in 0..=request.limits.len() {
            self.read(1.0);
        }
        self.write(2 * (2 + request.limits.len() as u64));
        self.inner.hold_subdomain(request, now).await
    }
    async fn record_hold_session(
        &self,
        subdomain: &Subdomain,
        hold_id: &HoldId,
        session: &HeldSession,
    ) -> Result<(), StoreError> {
        self.write(1);
        self.inner.record_hold_session(subdomain, hold_id, session).await
    }
    async fn count_request(
        &self,
        client: &str,
        now: i64,
        window_seconds: i64,
        limit: u32,
    ) -> Result<RateOutcome, StoreError> {
        self.write(1);
        self.inner.count_request(client, now, window_seconds, limit).await
    }
    async fn subdomain_hold(
        &self,
        subdomain: &Subdomain,
        now: i64,
    ) -> Result<Option<SubdomainHold>, StoreError> {
        self.read(1.0);
        self.inner.subdomain_hold(subdomain, now).await
    }
    async fn insert_tenant(&self, record: &TenantRecord) -> Result<Inserted, StoreError> {
        // A new item with a subscription id also writes its `by-subscription`
        // index entry (keys only: one unit). Later writes keep the id, so
        // they cost the index nothing.
        let index = u64::from(record.signup.is_some());
        self.write(tenant_write_units(record) + index);
        self.inner.insert_tenant(record).await
    }
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        let found = self.inner.get_tenant(id).await?;
        self.read(found.as_ref().map_or(1.0, tenant_read_units));
        Ok(found)
    }
    async fn replace_tenant(&self, record: &TenantRecord) -> Result<(), StoreError> {
        self.write(tenant_write_units(record));
        self.inner.replace_tenant(record).await
    }
    async fn find_by_subscription(
        &self,
        subscription: &SubscriptionId,
    ) -> Result<Option<TenantRecord>, StoreError> {
        let found = self.inner.find_by_subscription(subscription).await?;
        // A Query on the keys-only index (eventually consistent: half a
        // unit), then a strongly consistent GetItem of what it found.
        self.read(0.5);
        if let Some(record) = &found {
            self.read(tenant_read_units(record));
        }
        Ok(found)
    }
    async fn record_unmatched_event(&self, event: &UnmatchedEvent) -> Result<(), StoreError> {
        self.write(1);
        self.inner.record_unmatched_event(event).await
    }
    async fn list_unmatched_events(&self) -> Result<Vec<UnmatchedEvent>, StoreError> {
        self.inner.list_unmatched_events().await
    }
    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.inner.list_tenants().await
    }
    // Leases, trail entries and mails are small items: one unit a request.
    async fn acquire_lease(
        &self,
        tenant: &TenantId,
        owner: &str,
        now: i64,
        ttl_seconds: i64,
    ) -> Result<LeaseOutcome, StoreError> {
        self.write(1);
        self.inner.acquire_lease(tenant, owner, now, ttl_seconds).await
    }
    async fn release_lease(&self, tenant: &TenantId, owner: &str) -> Result<(), StoreError> {
        self.write(1);
        self.inner.release_lease(tenant, owner).await
    }
    async fn record_trail(&self, entry: &TrailEntry) -> Result<bool, StoreError> {
        self.write(1);
        self.inner.record_trail(entry).await
    }
    async fn trail(&self, tenant: &TenantId) -> Result<Vec<TrailEntry>, StoreError> {
        // A Scan for operator views, not counted, like the lists above.
        self.inner.trail(tenant).await
    }
    async fn reserve_mail(
        &self,
        tenant: &TenantId,
        key: &str,
        owner: &str,
        now: i64,
        stale_after: i64,
    ) -> Result<MailSlot, StoreError> {
        self.write(1);
        self.inner.reserve_mail(tenant, key, owner, now, stale_after).await
    }
    async fn mail_sent(
        &self,
        tenant: &TenantId,
        key: &str,
        owner: &str,
        message_id: &str,
        now: i64,
    ) -> Result<MailMarked, StoreError> {
        self.write(1);
        self.inner.mail_sent(tenant, key, owner, message_id, now).await
    }
    async fn mails(&self, tenant: &TenantId) -> Result<Vec<MailRecord>, StoreError> {
        self.inner.mails(tenant).await
    }
    async fn reserve_trial(
        &self,
        reservation: &TrialReservation,
        now: i64,
    ) -> Result<TrialOffer, StoreError> {
        self.write(1);
        self.inner.reserve_trial(reservation, now).await
    }
    async fn record_trial_use(&self, key: &TrialKey, used: &TrialUse) -> Result<TrialUse, StoreError> {
        self.write(1);
        self.inner.record_trial_use(key, used).await
    }
}

/// What one delivered event cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cost {
    /// Deliveries to the webhook (API Gateway requests, webhook invocations).
    pub events: u64,
    /// Of those, put on the queue (dispatcher invocations, SQS requests).
    pub queued: u64,
    pub transitions: u64,
    pub step_invocations: u64,
    pub dynamodb: Usage,
    pub mails: u64,
}

impl Cost {
    fn add(&mut self, other: &Cost) {
        self.events += other.events;
        self.queued += other.queued;
        self.transitions += other.transitions;
        self.step_invocations += other.step_invocations;
        self.dynamodb += other.dynamodb;
        self.mails += other.mails;
    }

    /// Lambda invocations: the webhook per delivery, the dispatcher per
    /// queued event (one per batch at worst), and the steps.
    pub fn lambda_invocations(&self) -> u64 {
        self.events + self.queued + self.step_invocations
    }

    /// Dollars for one such event; `* 1000` per 1,000 tenants.
    pub fn dollars(&self) -> f64 {
        let lambda = self.lambda_invocations() as f64;
        self.transitions as f64 * price::TRANSITION
            + lambda * (price::LAMBDA_REQUEST + ASSUMED_BILLED_SECONDS * LAMBDA_GB * price::LAMBDA_GB_SECOND)
            + self.dynamodb.write_units as f64 * price::WRITE_UNIT
            + self.dynamodb.read_units * price::READ_UNIT
            + (self.queued * SQS_REQUESTS_PER_EVENT) as f64 * price::SQS_REQUEST
            + self.events as f64 * price::API_REQUEST
            + self.mails as f64 * price::MAIL
    }
}

/// Transitions and Lambda invocations in one execution's history: every
/// state entered is a transition, and so is every retry of a Task.
pub(crate) fn history_counts(record: &ExecutionRecord) -> (u64, u64) {
    let of = |kind: &str| record.history.iter().filter(|e| e.kind == kind).count() as u64;
    let entered = record.history.iter().filter(|e| e.kind.ends_with("StateEntered")).count() as u64;
    let scheduled = of("TaskScheduled");
    let retries = scheduled.saturating_sub(of("TaskStateEntered"));
    (entered + retries, scheduled)
}

struct Bench {
    stack: Arc<LocalStack>,
    counting: Arc<CountingStore>,
    secret: WebhookSecret,
    clock: Arc<dyn Clock>,
}

/// How `tenantctl local serve` runs at `time_scale`: state in memory, one
/// load balancer with AWS's quotas, Route 53's rate.
pub fn default_options(time_scale: f64) -> LocalOptions {
    LocalOptions {
        state: None,
        time_scale,
        definitions: None,
        executor: None,
        quotas: Default::default(),
        load_balancers: 1,
        dns_changes_per_second: tenancy::adapters::local::ROUTE53_CHANGES_PER_SECOND,
    }
}

/// The local stack in this process, as `tenantctl local serve` builds it
/// (local adapters in memory), its tenant store wrapped to count DynamoDB
/// usage, `adapt` given the adapters last, and its webhook verifying `secret`.
pub fn local_stack(
    options: &LocalOptions,
    secret: &str,
    adapt: impl FnOnce(&mut Adapters),
) -> Result<(Arc<LocalStack>, Arc<CountingStore>)> {
    let env = |var: &str| -> Option<String> {
        match var {
            "TENANT_DOMAIN" => Some("apps.example.test".into()),
            "OPERATOR_EMAIL" => Some("operator@example.test".into()),
            // An hour instead of the deployed default keeps the run short;
            // the grace period is one Wait state whatever its length.
            "SUBDOMAIN_GRACE_SECONDS" => Some("3600".into()),
            _ => None,
        }
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let config = StepConfig {
        settings: TenantSettings::from_lookup(&env)?,
        catalog: Catalog::embedded()?,
        password_key: PasswordKey::parse("bench-password-key-0000000000000000000")
            .map_err(|e| anyhow!("{e}"))?,
    };
    let stripe = Arc::new(LocalStripe::open(None, "http://127.0.0.1:9", clock.clone())?);
    let mut adapters = Adapters::local(config, clock.clone(), options, "http://127.0.0.1:9", stripe)?;
    let counting = Arc::new(CountingStore { inner: adapters.steps.store.clone(), usage: Mutex::default() });
    adapters.steps.store = counting.clone();
    adapt(&mut adapters);
    let secrets = WebhookSecrets::parse_list(secret).map_err(|e| anyhow!("{e}"))?;
    let queue = Arc::new(LocalEventQueue::default());
    let verifier = SignatureVerifier::new(secrets, DEFAULT_TOLERANCE);
    let ingress = WebhookIngress::new(verifier, StripeMode::Test, queue.clone(), clock);
    let stack = LocalStack::new(ingress, queue, adapters, options, None)?;
    Ok((stack, counting))
}

impl Bench {
    fn new(time_scale: f64) -> Result<Bench> {
        let (stack, counting) = local_stack(&default_options(time_scale), SECRET, |_| {})?;
        stack.spawn_dispatcher();
        let secret = WebhookSecret::parse(SECRET).map_err(|e| anyhow!("{e}"))?;
        Ok(Bench { stack, counting, secret, clock: Arc::new(SystemClock) })
    }

    async fn mails(&self) -> u64 {
        self.stack.inspect.emails().await.as_array().map_or(0, |m| m.len() as u64)
    }

    /// Delivers one event, waits for everything it started, and counts.
    async fn deliver(&self, body: &[u8]) -> Result<Cost> {
        let before_names: BTreeSet<String> =
            self.stack.workflows.summaries().into_iter().map(|e| e.name).collect();
        let (before_usage, before_mails) = (self.counting.usage(), self.mails().await);
        let mut headers = http::HeaderMap::new();
        let signature = self.secret.sign_header(self.clock.now_unix(), body);
        headers.insert("stripe-signature", http::HeaderValue::from_str(&signature)?);
        let answer = self.stack.deliver(&headers, body).await;
        ensure!(answer.status == 200, "the webhook answered {}: {}", answer.status, answer.body);
        ensure!(
            self.stack.wait_settled(Duration::from_secs(120)).await,
            "executions still running after 120 s"
        );
        let mut cost = Cost {
            events: 1,
            queued: u64::from(!answer.body.contains("\"ignored\":true")),
            dynamodb: self.counting.usage() - before_usage,
            mails: self.mails().await - before_mails,
            ..Cost::default()
        };
        for record in self.stack.workflows.executions() {
            if !before_names.contains(&record.name) {
                ensure!(
                    record.status == tenantctl::workflow::RunStatus::Succeeded,
                    "execution {} ended {:?}: {:?}",
                    record.name,
                    record.status,
                    record.error
                );
                let (transitions, invocations) = history_counts(&record);
                cost.transitions += transitions;
                cost.step_invocations += invocations;
            }
        }
        Ok(cost)
    }
}

/// A sample event from events/, re-dated so the life runs forward in time.
fn sample(file: &str, created: i64) -> Result<Vec<u8>> {
    let path = format!("{}/../events/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let mut event: Value = serde_json::from_str(&text).with_context(|| format!("{path} is not JSON"))?;
    event["created"] = created.into();
    Ok(serde_json::to_vec(&event)?)
}

/// One event of the customer's life and what it cost.
#[derive(Debug, Clone)]
pub struct LifeEvent {
    pub label: String,
    pub cost: Cost,
    /// Sent with every signup (counted into the cost of a new tenant).
    pub at_signup: bool,
}

/// What happens next in the customer's life.
enum Step {
    /// A sample event from events/, delivered as it is.
    Sample(&'static str),
    /// A change Stripe makes to the subscription (in the local Stripe):
    /// every event Stripe sends for it is delivered, and counted together.
    Stripe(SubscriptionAction),
}

/// Runs one customer's life through a fresh local stack: the sample
/// checkout, then changes made to its subscription in the local Stripe,
/// each change's events delivered as Stripe sends them.
pub async fn customer_life(time_scale: f64) -> Result<Vec<LifeEvent>> {
    let bench = Bench::new(time_scale)?;
    let start = bench.clock.now_unix() - 3600;
    let subscription = "sub_1QAcmeR0b0t1csPro";
    let plan =
        |plan: &str| SubscriptionAction::ChangePlan { plan: plan.into(), billing: None, direction: None };
    let life = [
        (
            Step::Sample("01-checkout.session.completed.json"),
            "checkout.session.completed: provisioning",
            true,
        ),
        (
            Step::Sample("02-customer.subscription.created.json"),
            "customer.subscription.created (sent with every signup)",
            true,
        ),
        (Step::Sample("03-invoice.paid.json"), "invoice.paid (sent with every signup, then monthly)", true),
        (Step::Stripe(plan("ultimate")), "Plan change (subscription updated, proration invoice paid)", false),
        (
            Step::Stripe(SubscriptionAction::CardFails),
            "Payment failed: card mail (invoice failed, past due)",
            false,
        ),
        (Step::Stripe(SubscriptionAction::CardRecovers), "Payment recovered (invoice paid, active)", false),
        (Step::Stripe(SubscriptionAction::CardFails), "Payment failed again (past due)", false),
        (Step::Stripe(SubscriptionAction::Unpaid), "Suspension (retries exhausted: unpaid)", false),
        (Step::Stripe(SubscriptionAction::CardRecovers), "Resumption (invoice paid, active again)", false),
        (
            Step::Stripe(SubscriptionAction::Cancel),
            "Cancellation: remove everything, release the name",
            false,
        ),
    ];
    let mut rows = Vec::new();
    for (i, (step, label, at_signup)) in life.into_iter().enumerate() {
        let events = match &step {
            Step::Sample(file) => vec![sample(file, start + 60 * i as i64)?],
            Step::Stripe(action) => bench
                .stack
                .stripe
                .act(subscription, action)
                .with_context(|| label.to_owned())?
                .iter()
                .map(serde_json::to_vec)
                .collect::<Result<_, _>>()?,
        };
        let mut cost = Cost::default();
        for event in &events {
            cost.add(&bench.deliver(event).await.with_context(|| label.to_owned())?);
        }
        rows.push(LifeEvent { label: label.to_string(), cost, at_signup });
    }
    Ok(rows)
}

/// The Markdown section for a run of [`customer_life`].
pub fn section(rows: &[LifeEvent], time_scale: f64) -> String {
    let mut signup = Cost::default();
    for row in rows.iter().filter(|r| r.at_signup) {
        signup.add(&row.cost);
    }
    let provisioning = rows.first().map(|r| r.cost).unwrap_or_default();

    let mut table = Table::new([
        "Event",
        "State transitions",
        "Lambda invocations (steps + webhook + dispatcher)",
        "DynamoDB writes (WRU)",
        "DynamoDB reads (RRU)",
        "Mails",
        "$ per 1,000 tenants",
    ]);
    let mut push = |label: &str, c: &Cost| {
        table.row([
            label.to_string(),
            c.transitions.to_string(),
            format!("{} ({} + {} + {})", c.lambda_invocations(), c.step_invocations, c.events, c.queued),
            format!("{} ({})", c.dynamodb.writes, c.dynamodb.write_units),
            format!("{} ({})", c.dynamodb.reads, three_figures(c.dynamodb.read_units)),
            c.mails.to_string(),
            format!("${:.3}", c.dollars() * 1000.0),
        ]);
    };
    push("**A new tenant: the three events of a signup**", &signup);
    for row in rows {
        push(&row.label, &row.cost);
    }
    let target_met = provisioning.transitions <= 15;
    let markdown = format!(
        "## 4. Cost per tenant\n\n\
         One customer's life, event by event, through the local stack: the same webhook handler, \
         dispatcher, state machine files (`infra/statemachine/`) and step code as in AWS, with local \
         adapters. State transitions (every state entered, and every Task retry) and Lambda \
         invocations are counted from the execution histories; DynamoDB requests are counted by a \
         wrapper around the tenant store, one request per call as the AWS adapter makes them, with \
         write and read units sized from the items the AWS adapter would write (`tenant_item`), \
         plus one unit for the keys-only `by-subscription` index entry a new tenant gets. The signup's events come from `events/`; the rest of the life is made in the local Stripe (a plan change, failed and recovered payments, unpaid, cancellation), every event Stripe sends for a change delivered and counted in its row. Each subscription or invoice event re-reads the subscription from Stripe (one API read each) and converges under the tenant's lease.\n\n{table}\n\
         **Target: 15 or fewer transitions per provisioning: {verdict}** ({t} for \
         `checkout.session.completed`; the health and DNS checks are retried with backoff after a \
         first Wait of 45 s and 30 s, so in AWS each look beyond the first adds one transition: a \
         Fargate service healthy after 60 s and a Route 53 change INSYNC after 40 s make 15; 90 s \
         and 60 s make 18).\n\n\
         Prices (US East (N. Virginia), on-demand list prices): Step Functions Standard $0.025 per \
         1,000 state transitions; Lambda $0.20 per million requests plus $0.0000133334 per GB-second \
         on arm64, taken as {ms} ms billed at 128 MB per invocation (AWS call latencies cannot be \
         measured locally); DynamoDB on-demand $0.625 per million write units and $0.125 per million \
         read units; SQS $0.40 per million requests, {sqs} per queued event (send, receive, \
         delete); API Gateway HTTP API $1.00 per million requests; SES $0.10 per 1,000 mails. \
         Excluded: Fargate running time, the load balancer, the hosted zone, CloudWatch Logs, and \
         the free tiers. Stripe's events the webhook does not act on still cost an API Gateway \
         request and a webhook invocation each (Stripe sends only the types the endpoint is \
         subscribed to, which the README lists).\n\n\
         Command: `target/release/bench-cost --time-scale {ts}` (time scale does not change the counts)\n",
        table = table.to_markdown(),
        verdict = if target_met { "met" } else { "missed" },
        t = provisioning.transitions,
        ms = ASSUMED_BILLED_SECONDS * 1000.0,
        sqs = SQS_REQUESTS_PER_EVENT,
        ts = time_scale,
    );
    markdown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn provisioning_takes_thirteen_transitions_and_the_whole_life_runs_through() {
        // Time scale 0: every simulated delay and Wait is instant, so each
        // check passes at its first look (the happy path).
        let life = customer_life(0.0).await.unwrap();
        assert_eq!(life.len(), 10);
        let provisioning = life[0].cost;
        // Eight steps: the six of provisioning, then SyncSubscription and
        // FinishProvisioning; their states plus the two Waits, the Choices
        // after recording (paid yet?) and after converging, and the end
        // make thirteen transitions.
        assert_eq!((provisioning.transitions, provisioning.step_invocations), (13, 8));
        assert_eq!((provisioning.events, provisioning.queued, provisioning.mails), (1, 1, 1));
        // The signup (claim, tenant and hold in one transaction), launch,
        // DNS, the welcome mail's reservation and its record, the desired
        // state Stripe says, the lease taken and given back, and the
        // generation reached.
        assert_eq!(provisioning.dynamodb.writes, 9);
        assert!(life.iter().all(|e| e.cost.events >= 1 && e.cost.transitions > 0), "{life:?}");
        let mails: Vec<u64> = life.iter().map(|e| e.cost.mails).collect();
        // Welcome; plan changed; card; none on recovery; card; suspended; resumed; goodbye.
        assert_eq!(mails, [1, 0, 0, 1, 1, 0, 1, 1, 1, 1]);
        let markdown = section(&life, 0.0);
        assert!(markdown.contains("15 or fewer transitions per provisioning: met"), "{markdown}");
    }

    #[test]
    fn item_size_counts_names_and_values_as_dynamodb_does() {
        let item = HashMap::from([
            ("pk".to_string(), AttributeValue::S("TENANT#1".into())),
            ("n".to_string(), AttributeValue::N("12345".into())),
            ("ok".to_string(), AttributeValue::Bool(true)),
            (
                "m".to_string(),
                AttributeValue::M(HashMap::from([("k".to_string(), AttributeValue::S("v".into()))])),
            ),
        ]);
        // pk 2+8, n 1+(3+1), ok 2+1, m 1+(3 + 1+1+1)
        assert_eq!(item_size(&item), 10 + 5 + 3 + 7);
    }
}
