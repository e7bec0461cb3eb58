//! The convergence promise, as properties: whatever Stripe does to a
//! subscription, and however its events arrive (duplicated, reordered,
//! concurrently), the tenant and its infrastructure end as Stripe's final
//! subscription says, and no transition mail goes out twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};

use std::sync::atomic::{AtomicI64, Ordering};

use super::*;
use crate::adapters::faults::{FaultPlan, wrap};
use crate::adapters::local::{
    Direction, LocalDns, LocalLauncher, LocalOutbox, LocalStripe, LocalTenantStore, SubscriptionAction,
    TrialOutcome,
};
use crate::clock::{Clock, SystemClock};
use crate::config::TenantSettings;
use crate::domain::password::PasswordKey;
use crate::domain::{BillingPeriod, Catalog, EmailAddress, SubscriptionId, desired_from};
use crate::ports::{CheckoutSessionRequest, StripeGateway, SubscriptionSource};
use crate::steps::lifecycle::{ApplyInput, apply_subscription};
use crate::steps::provision::{self, SignupInput, TenantInput};

/// Runs a step until it succeeds, as the state machine retries it (without
/// its bound on attempts: the property is where it ends). `$step` is a
/// future made afresh for every attempt.
macro_rules! until_ok {
    ($world:expr, $what:expr, $step:expr) => {{
        let mut attempts = 0;
        loop {
            attempts += 1;
            match $step.await {
                Ok(done) => break done,
                Err(e)
                    if matches!(e.error_name(), "Tenancy.Transient" | "Tenancy.Throttled")
                        && attempts < 2_000 =>
                {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(e) if e.error_name() == "Tenancy.LeaseHeld" && attempts < 2_000 => {
                    // Time passes while a holder works: a lease whose release
                    // failed expires, as it would. Slowly, so a holder that
                    // is still working keeps its lease.
                    $world.clock.advance(1);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => panic!("{}: {e} (attempt {attempts})", $what),
            }
        }
    }};
}

/// A clock tests move forward (a lease left behind by a failed release
/// expires when the retrying side has waited long enough).
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_unix(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl TestClock {
    fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

struct World {
    /// The adapters themselves, read without faults to judge the outcome.
    stripe: Arc<LocalStripe>,
    store: Arc<LocalTenantStore>,
    launcher: Arc<LocalLauncher>,
    dns: Arc<LocalDns>,
    outbox: Arc<LocalOutbox>,
    /// What the steps call: the same adapters, through the fault decorators
    /// when the world has a fault plan.
    store_port: Arc<dyn crate::ports::TenantStore>,
    launcher_port: Arc<dyn crate::ports::TenantLauncher>,
    dns_port: Arc<dyn crate::ports::DnsPublisher>,
    mailer_port: Arc<dyn crate::ports::Mailer>,
    portal_port: Arc<dyn crate::ports::BillingPortal>,
    stripe_port: Arc<dyn SubscriptionSource>,
    faults: Option<Arc<FaultPlan>>,
    settings: TenantSettings,
    catalog: Catalog,
    key: PasswordKey,
    status: crate::checkout::status::StatusTokens,
    clock: Arc<TestClock>,
}

impl World {
    fn new() -> Arc<World> {
        World::with_faults(None)
    }

    fn with_faults(faults: Option<Arc<FaultPlan>>) -> Arc<World> {
        let clock = Arc::new(TestClock(AtomicI64::new(SystemClock.now_unix())));
        let shared: Arc<dyn Clock> = clock.clone();
        let stripe = Arc::new(LocalStripe::open(None, "http://127.0.0.1:8787", shared.clone()).unwrap());
        let store = Arc::new(LocalTenantStore::open(None, shared.clone()).unwrap());
        let launcher = Arc::new(LocalLauncher::open(None, shared.clone(), Duration::ZERO).unwrap());
        let dns = Arc::new(LocalDns::open(None, shared.clone(), Duration::ZERO).unwrap());
        let outbox = Arc::new(LocalOutbox::open(None, shared).unwrap());
        let plan = faults.as_ref();
        Arc::new(World {
            store_port: wrap::<dyn crate::ports::TenantStore>(store.clone(), plan),
            launcher_port: wrap::<dyn crate::ports::TenantLauncher>(launcher.clone(), plan),
            dns_port: wrap::<dyn crate::ports::DnsPublisher>(dns.clone(), plan),
            mailer_port: wrap::<dyn crate::ports::Mailer>(outbox.clone(), plan),
            portal_port: wrap::<dyn crate::ports::BillingPortal>(
                Arc::new(crate::checkout::billing_link::BillingLinks::new(
                    "http://127.0.0.1:8787",
                    PasswordKey::parse("unit-test-password-key-0123456789abcdef").unwrap(),
                    clock.clone(),
                )),
                plan,
            ),
            stripe_port: wrap::<dyn SubscriptionSource>(stripe.clone(), plan),
            stripe,
            store,
            launcher,
            dns,
            outbox,
            faults,
            settings: TenantSettings::for_tests(),
            catalog: Catalog::embedded().unwrap(),
            key: PasswordKey::parse("unit-test-password-key-0123456789abcdef").unwrap(),
            status: crate::checkout::status::StatusTokens::new(
                "https://api.example.com",
                PasswordKey::parse("unit-test-password-key-0123456789abcdef").unwrap(),
            ),
            clock,
        })
    }

    fn ctx(&self) -> StepContext<'_> {
        StepContext { settings: &self.settings, catalog: &self.catalog, clock: self.clock.as_ref() }
    }

    fn ports(&self) -> ConvergePorts<'_> {
        ConvergePorts {
            store: self.store_port.as_ref(),
            launcher: self.launcher_port.as_ref(),
            dns: self.dns_port.as_ref(),
            mailer: self.mailer_port.as_ref(),
            portal: self.portal_port.as_ref(),
            status: &self.status,
        }
    }

    /// A paid checkout for Acme on Pro monthly, provisioned as the state
    /// machine would: returns the tenant and its subscription.
    async fn provisioned(&self) -> (TenantId, SubscriptionId) {
        self.provisioned_with(None).await
    }

    /// The same, starting with a free trial of that many days.
    async fn provisioned_with(&self, trial_days: Option<u32>) -> (TenantId, SubscriptionId) {
        let metadata: BTreeMap<String, String> = [
            ("subdomain", "acme"),
            ("plan", "pro"),
            ("billing", "monthly"),
            ("organization", "Acme Robotics"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let session = self
            .stripe
            .create_checkout_session(&CheckoutSessionRequest {
                price_id: "price_1QProMonthlyCAD".into(),
                customer_email: EmailAddress::parse("dana@acme.example").unwrap(),
                success_url: "https://example.com/welcome".into(),
                cancel_url: "https://example.com/pricing".into(),
                metadata,
                discount: crate::ports::Discount::CustomerMayEnterCode,
                trial_days,
                trial_without_card: None,
                expires_at: None,
                idempotency_key: "checkout-acme".into(),
            })
            .await
            .unwrap();
        let events = self.stripe.pay(&session.id).unwrap();
        let completed = events
            .iter()
            .find(|e| e["type"] == "checkout.session.completed")
            .expect("a completed event")
            .clone();
        let event_id = completed["id"].as_str().unwrap().to_owned();
        let (store, ctx) = (self.store_port.as_ref(), self.ctx());
        let signup = || serde_json::from_value::<SignupInput>(json!({ "event": completed })).unwrap();
        let tenant = until_ok!(self, "record", provision::record_signup(store, &self.key, &ctx, signup()));
        let input = || TenantInput { tenant_id: tenant.tenant_id.clone(), event_id: event_id.clone() };
        let launcher = self.launcher_port.as_ref();
        until_ok!(self, "launch", provision::launch_tenant(store, launcher, &self.status, &ctx, input()));
        let dns = self.dns_port.as_ref();
        until_ok!(self, "dns", provision::publish_dns(store, dns, &ctx, input()));
        let mailer = self.mailer_port.as_ref();
        let welcome = || provision::WelcomeInput {
            tenant_id: tenant.tenant_id.clone(),
            event_id: event_id.clone(),
            gave_up: None,
        };
        until_ok!(self, "welcome", provision::send_welcome_mail(store, mailer, &self.key, &ctx, welcome()));
        let stripe = self.stripe_port.as_ref();
        let sync = || ApplyInput { event: None, tenant_id: Some(tenant.tenant_id.clone()) };
        until_ok!(self, "sync", apply_subscription(store, stripe, &ctx, sync()));
        let finish = || ConvergeInput {
            tenant_id: tenant.tenant_id.clone(),
            owner: event_id.clone(),
            finish_provisioning: true,
        };
        until_ok!(self, "finish", converge_tenant(&self.ports(), &ctx, finish()));
        let record = self.store.get_tenant(&tenant.tenant_id).await.unwrap().unwrap();
        let subscription = record.signup.unwrap().subscription;
        (tenant.tenant_id, subscription)
    }

    /// One lifecycle execution for `event` under the name `owner`, its
    /// steps retried as the state machine retries them.
    async fn deliver(&self, event: &Value, owner: &str) {
        let (store, stripe, ctx) = (self.store_port.as_ref(), self.stripe_port.as_ref(), self.ctx());
        let apply = || ApplyInput { event: Some(event.clone()), tenant_id: None };
        let what = format!("apply {}", event["id"]);
        let applied = until_ok!(self, what, apply_subscription(store, stripe, &ctx, apply()));
        let Some(tenant_id) = applied.tenant_id.filter(|_| applied.converge) else { return };
        let converge = || ConvergeInput {
            tenant_id: tenant_id.clone(),
            owner: owner.to_owned(),
            finish_provisioning: false,
        };
        let what = format!("converge {}", event["id"]);
        until_ok!(self, what, converge_tenant(&self.ports(), &ctx, converge()));
    }

    /// Applies `actions` to the subscription in the local Stripe (skipping
    /// those that make no sense for it as it is then); returns the events
    /// Stripe sends for them, in order.
    fn stripe_does(&self, subscription: &SubscriptionId, actions: &[SubscriptionAction]) -> Vec<Value> {
        actions
            .iter()
            .filter_map(|action| self.stripe.act(subscription.as_str(), action).ok())
            .flatten()
            .collect()
    }

    /// Each delivery its own execution, all at once.
    async fn deliver_concurrently(world: &Arc<World>, deliveries: Vec<Value>) {
        let runs: Vec<_> = deliveries
            .into_iter()
            .enumerate()
            .map(|(n, event)| {
                let world = world.clone();
                tokio::spawn(async move {
                    let owner = format!("{}-{n}", event["id"].as_str().unwrap_or("evt"));
                    world.deliver(&event, &owner).await;
                })
            })
            .collect();
        for run in runs {
            run.await.unwrap();
        }
    }

    /// The tenant and its infrastructure are what Stripe says now.
    async fn assert_as_stripe_says(&self, tenant: &TenantId, subscription: &SubscriptionId) {
        let snapshot = self.stripe.subscription(subscription).await.unwrap().unwrap();
        let expected = desired_from(&snapshot, &self.catalog).unwrap();
        let record = self.store.get_tenant(tenant).await.unwrap().unwrap();
        assert_eq!(record.desired.as_ref(), Some(&expected), "desired state");
        assert_eq!(record.reached_generation, record.generation, "generation reached");
        assert_eq!(record.status, expected.observed_status());
        assert!(record.outbox.is_empty(), "mails left unsent: {:?}", record.outbox);
        let services = self.launcher.services();
        let records = self.dns.records();
        match expected.run {
            RunState::Cancelled => {
                assert!(services.is_empty(), "a cancelled tenant's service is gone");
                assert!(records.is_empty(), "a cancelled tenant's DNS record is gone");
            }
            run => {
                assert_eq!(services.len(), 1);
                let service = &services[0];
                assert_eq!(service.desired_count, u32::from(run == RunState::Running));
                assert_eq!(service.environment["PLAN"], expected.plan.key.as_str());
                assert_eq!(service.environment["BILLING_FREQUENCY"], expected.billing.as_str());
                // The app's status token is the tenant's current one.
                let token = crate::domain::StatusToken::parse(&service.environment["TENANCY_STATUS_TOKEN"]);
                let recorded = record.status_token.as_ref().expect("a status token recorded");
                assert!(
                    token.is_ok_and(|token| recorded.matches(&token)),
                    "the app's token is not the recorded one"
                );
                assert_eq!(records.len(), 1);
            }
        }
        let mut subjects = BTreeMap::<String, u32>::new();
        for sent in self.outbox.sent() {
            *subjects.entry(format!("{} {}", sent.mail.to, sent.mail.subject)).or_default() += 1;
        }
        let mail_items = self.store.mails(tenant).await.unwrap();
        let recorded = mail_items.iter().filter(|m| m.sent.is_some()).count() as u64;
        assert_eq!(recorded, mail_items.len() as u64, "every reserved mail was sent: {mail_items:?}");
        // SES takes no idempotency key: a send that took effect but reported
        // failure, or a failure to record it, is sent again on retry. Each
        // extra mail must have such a fault to explain it; without faults,
        // exactly one mail per key.
        let explained = self.faults.as_ref().map_or(0, |plan| {
            let report = plan.report();
            let count = |port: &str| report.ports.get(port).map_or(0, |c| c.after + c.timeout_with_effect);
            count("mailer") + report.ports.get("tenant_store").map_or(0, |c| c.injected())
        });
        let sent = self.outbox.sent().len() as u64;
        assert!(
            sent >= recorded && sent - recorded <= explained,
            "{sent} mails for {recorded} keys, {explained} faults to explain extras: {subjects:?}"
        );
    }
}

fn any_action() -> impl Strategy<Value = SubscriptionAction> {
    let plan = prop_oneof![Just("basic"), Just("pro"), Just("ultimate")];
    let billing = prop_oneof![
        Just(None),
        Just(Some(BillingPeriod::Monthly)),
        Just(Some(BillingPeriod::Annual)),
        Just(Some(BillingPeriod::Biennial)),
        Just(Some(BillingPeriod::Triennial)),
    ];
    prop_oneof![
        3 => (plan, billing).prop_map(|(plan, billing)| SubscriptionAction::ChangePlan {
            plan: plan.to_owned(),
            billing,
            direction: None::<Direction>,
        }),
        2 => Just(SubscriptionAction::CardFails),
        2 => Just(SubscriptionAction::CardRecovers),
        1 => Just(SubscriptionAction::Unpaid),
        1 => Just(SubscriptionAction::Pause),
        1 => Just(SubscriptionAction::Resume),
        1 => Just(SubscriptionAction::Cancel),
        1 => prop_oneof![
            Just(TrialOutcome::Pay),
            Just(TrialOutcome::Fail),
            Just(TrialOutcome::Pause),
            Just(TrialOutcome::Cancel),
        ]
        .prop_map(SubscriptionAction::TrialEnds),
    ]
}

/// No trial, or one that ends soon enough for its reminder to be due at
/// once (up to 3 days) or not yet.
fn any_trial() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![2 => Just(None), 1 => (1u32..6).prop_map(Some)]
}

/// Deliveries: each event once, plus up to two duplicates, in a random order.
fn deliveries(events: &[Value], extra: &[usize], order: &[usize]) -> Vec<Value> {
    let mut all: Vec<Value> = events.to_vec();
    for (i, n) in extra.iter().enumerate() {
        if let Some(event) = events.get(i) {
            all.extend(std::iter::repeat_n(event.clone(), *n));
        }
    }
    let mut keyed: Vec<(usize, Value)> =
        all.into_iter().enumerate().map(|(i, e)| (order.get(i).copied().unwrap_or(i), e)).collect();
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, e)| e).collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// One at a time, but duplicated and in any order.
    #[test]
    fn any_order_and_duplication_ends_as_stripe_says(
        trial in any_trial(),
        actions in prop::collection::vec(any_action(), 1..8),
        extra in prop::collection::vec(0usize..3, 0..24),
        order in prop::collection::vec(any::<usize>(), 0..48),
    ) {
        runtime().block_on(async {
            let world = World::new();
            let (tenant, subscription) = world.provisioned_with(trial).await;
            let events = world.stripe_does(&subscription, &actions);
            for (n, event) in deliveries(&events, &extra, &order).iter().enumerate() {
                world.deliver(event, &format!("{}-{n}", event["id"].as_str().unwrap_or("evt"))).await;
            }
            world.assert_as_stripe_says(&tenant, &subscription).await;
        });
    }

    /// Every delivery its own concurrent execution.
    #[test]
    fn concurrent_executions_end_as_stripe_says(
        trial in any_trial(),
        actions in prop::collection::vec(any_action(), 1..6),
        extra in prop::collection::vec(0usize..3, 0..16),
        order in prop::collection::vec(any::<usize>(), 0..32),
    ) {
        runtime().block_on(async {
            let world = World::new();
            let (tenant, subscription) = world.provisioned_with(trial).await;
            let events = world.stripe_does(&subscription, &actions);
            World::deliver_concurrently(&world, deliveries(&events, &extra, &order)).await;
            world.assert_as_stripe_says(&tenant, &subscription).await;
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// A third of every port's calls fail (before their effect, after it,
    /// or by timing out either way), executions run concurrently, and every
    /// failed step is retried as the state machine would: the tenant still
    /// ends as Stripe says, with one of each resource.
    #[test]
    fn under_a_third_of_calls_failing_concurrent_executions_end_as_stripe_says(
        seed in any::<u64>(),
        trial in any_trial(),
        actions in prop::collection::vec(any_action(), 1..5),
        extra in prop::collection::vec(0usize..2, 0..12),
        order in prop::collection::vec(any::<usize>(), 0..24),
    ) {
        runtime().block_on(async {
            let plan = Arc::new(FaultPlan::new(0.3, seed).unwrap().with_timeout_delay(Duration::ZERO));
            let world = World::with_faults(Some(plan.clone()));
            let (tenant, subscription) = world.provisioned_with(trial).await;
            let events = world.stripe_does(&subscription, &actions);
            World::deliver_concurrently(&world, deliveries(&events, &extra, &order)).await;
            world.assert_as_stripe_says(&tenant, &subscription).await;
            assert!(plan.report().total().injected() > 0, "faults were injected");
        });
    }
}

#[tokio::test]
async fn an_upgrade_applied_after_a_newer_invoice_event_is_not_lost() {
    // The bug the single watermark had: invoice.paid (newer `created`)
    // applied first made the older subscription.updated "stale".
    let world = World::new();
    let (tenant, subscription) = world.provisioned().await;
    let upgrade = world
        .stripe
        .act(
            subscription.as_str(),
            &SubscriptionAction::ChangePlan { plan: "ultimate".into(), billing: None, direction: None },
        )
        .unwrap();
    let mut reversed = upgrade.clone();
    reversed.reverse();
    for (n, event) in reversed.iter().enumerate() {
        world.deliver(event, &format!("late-{n}")).await;
    }
    world.assert_as_stripe_says(&tenant, &subscription).await;
    let record = world.store.get_tenant(&tenant).await.unwrap().unwrap();
    assert_eq!(record.plan.as_ref().map(|p| p.key.as_str()), Some("ultimate"));
    let trail = world.store.trail(&tenant).await.unwrap();
    assert!(trail.iter().any(|e| e.outcome == crate::ports::TrailOutcome::Applied), "{trail:?}");
}

#[tokio::test]
async fn a_cancellation_during_provisioning_is_applied_when_provisioning_finishes() {
    let world = World::new();
    let (tenant, subscription) = world.provisioned().await;
    // Rewind to PROVISIONING, as if the cancellation came before the end.
    crate::steps::context::update(world.store.as_ref(), world.clock.as_ref(), &tenant, |r| {
        r.status = TenantStatus::Provisioning;
        true
    })
    .await
    .unwrap();
    let cancel = world.stripe.act(subscription.as_str(), &SubscriptionAction::Cancel).unwrap();
    for event in &cancel {
        world.deliver(event, "cancel").await;
    }
    let record = world.store.get_tenant(&tenant).await.unwrap().unwrap();
    assert_eq!(record.status, TenantStatus::Provisioning, "left to provisioning");
    assert_eq!(record.desired.as_ref().map(|d| d.run), Some(RunState::Cancelled), "but recorded");
    let finish =
        ConvergeInput { tenant_id: tenant.clone(), owner: "provision".into(), finish_provisioning: true };
    let done = converge_tenant(&world.ports(), &world.ctx(), finish).await.unwrap();
    assert_eq!(done.status, TenantStatus::Cancelled);
    assert_eq!(done.release_in_seconds, Some(60), "the grace period starts");
    world.assert_as_stripe_says(&tenant, &subscription).await;
}

#[tokio::test]
async fn a_lease_held_by_another_execution_is_retried_not_ignored() {
    let world = World::new();
    let (tenant, subscription) = world.provisioned().await;
    let events = world.stripe.act(subscription.as_str(), &SubscriptionAction::CardFails).unwrap();
    let now = world.clock.now_unix();
    world.store.acquire_lease(&tenant, "someone-else", now, 120).await.unwrap();
    let applied = apply_subscription(
        world.store.as_ref(),
        world.stripe.as_ref(),
        &world.ctx(),
        ApplyInput { event: Some(events[0].clone()), tenant_id: None },
    )
    .await
    .unwrap();
    assert!(applied.converge);
    let input = ConvergeInput { tenant_id: tenant.clone(), owner: "me".into(), finish_provisioning: false };
    let held = converge_tenant(&world.ports(), &world.ctx(), input.clone()).await.unwrap_err();
    assert_eq!(held.error_name(), "Tenancy.LeaseHeld");
    world.store.release_lease(&tenant, "someone-else").await.unwrap();
    let done = converge_tenant(&world.ports(), &world.ctx(), input).await.unwrap();
    assert_eq!(done.status, TenantStatus::PastDue);
    assert_eq!(done.mails.len(), 1, "the card mail, once");
}

#[tokio::test]
async fn a_failed_payment_changes_the_status_not_the_apps_environment() {
    let world = World::new();
    let (tenant, subscription) = world.provisioned().await;
    let before = world.launcher.services()[0].clone();
    for event in world.stripe.act(subscription.as_str(), &SubscriptionAction::CardFails).unwrap() {
        world.deliver(&event, "card-fails").await;
    }
    let record = world.store.get_tenant(&tenant).await.unwrap().unwrap();
    assert_eq!(record.status, TenantStatus::PastDue);
    let after = world.launcher.services()[0].clone();
    assert_eq!(after.environment, before.environment, "the same task definition");
    assert_eq!(after.started_at_ms, before.started_at_ms, "no new task");
}

#[tokio::test]
async fn a_rotated_status_token_is_relaunched_with_and_the_old_one_revoked() {
    let world = World::new();
    let (tenant, subscription) = world.provisioned().await;
    let old = world.launcher.services()[0].environment["TENANCY_STATUS_TOKEN"].clone();
    let old = crate::domain::StatusToken::parse(&old).unwrap();
    let mails = world.outbox.sent().len();
    let rotated = crate::steps::status_token::rotate_status_token(
        world.store.as_ref(),
        world.clock.as_ref(),
        &world.status,
        &tenant,
    )
    .await
    .unwrap();
    let recorded = rotated.status_token.clone().unwrap();
    assert_eq!(recorded.generation, old.generation() + 1);
    assert!(!recorded.matches(&old), "revoked by the write itself");
    assert!(rotated.reached_generation < rotated.generation, "a converge is due");
    let input =
        ConvergeInput { tenant_id: tenant.clone(), owner: "rotate".into(), finish_provisioning: false };
    converge_tenant(&world.ports(), &world.ctx(), input).await.unwrap();
    let new = world.launcher.services()[0].environment["TENANCY_STATUS_TOKEN"].clone();
    let new = crate::domain::StatusToken::parse(&new).unwrap();
    assert_ne!(new.expose(), old.expose());
    assert!(recorded.matches(&new));
    assert_eq!(world.outbox.sent().len(), mails, "a rotation mails no one");
    world.assert_as_stripe_says(&tenant, &subscription).await;
}

#[tokio::test]
async fn a_trial_ending_within_three_days_is_reminded_of_once_whatever_converges() {
    let world = World::new();
    let (tenant, _subscription) = world.provisioned_with(Some(14)).await;
    let record = world.store.get_tenant(&tenant).await.unwrap().unwrap();
    assert_eq!(record.status, TenantStatus::Active, "a trialing tenant runs");
    let end = record.desired.as_ref().and_then(|d| d.trial_end).expect("the trial's end is recorded");
    let reminders =
        || world.outbox.sent().into_iter().filter(|m| m.mail.subject.contains("trial ends")).count();
    let (ports, ctx) = (world.ports(), world.ctx());
    let converge_by = |owner: &str| {
        let input =
            ConvergeInput { tenant_id: tenant.clone(), owner: owner.into(), finish_provisioning: false };
        converge_tenant(&ports, &ctx, input)
    };
    converge_by("early").await.unwrap();
    assert_eq!(reminders(), 0, "eleven days before: not yet");

    // Stripe's trial_will_end, three days before (and its duplicate, and a reconcile).
    world.clock.advance(end - 3 * 86_400 - world.clock.now_unix());
    for owner in ["trial_will_end", "trial_will_end-again", "reconcile"] {
        converge_by(owner).await.unwrap();
    }
    assert_eq!(reminders(), 1);
    let sent = world.outbox.sent().into_iter().find(|m| m.mail.subject.contains("trial ends")).unwrap();
    assert!(sent.mail.subject.contains(&crate::clock::utc_date(end)), "{}", sent.mail.subject);
    assert!(sent.mail.text.contains("/billing/"), "with the billing link: {}", sent.mail.text);
    let record = world.store.get_tenant(&tenant).await.unwrap().unwrap();
    assert_eq!((record.trial_reminded_for, record.outbox.len()), (Some(end), 0));

    // Late: the trial is over (whatever Stripe did with it), nothing more.
    world.clock.advance(4 * 86_400);
    converge_by("late").await.unwrap();
    assert_eq!(reminders(), 1);
}
