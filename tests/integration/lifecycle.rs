//! The lifecycle state machine (infra/statemachine/lifecycle.asl.json) run by
//! the local runner, its subscriptions changed through the stateful local
//! Stripe as a customer or Stripe's dunning would, and the events Stripe
//! sends for each change delivered signed: duplicated, late, reordered, for
//! tenants that do not exist yet, and for subscriptions that are not ours.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use integration_tests::{instant_options, local_adapters, local_stack_with, read_repo_file, stripe_headers};
use serde_json::{Value, json};
use tenancy::adapters::local::SubscriptionAction;
use tenancy::domain::{Catalog, SubscriptionId, desired_from};
use tenancy::ports::SubscriptionSource;
use tenantctl::local::{LocalOptions, LocalStack};
use tenantctl::workflow::RunStatus;

const NOW: i64 = 1_763_800_100;
/// Acme's subscription in the sample checkout.
const ACME_SUBSCRIPTION: &str = "sub_1QAcmeR0b0t1csPro";

fn sample(file: &str) -> Value {
    serde_json::from_str(&read_repo_file(&format!("events/{file}"))).unwrap()
}

fn change_plan(plan: &str) -> SubscriptionAction {
    SubscriptionAction::ChangePlan { plan: plan.into(), billing: None, direction: None }
}

struct World {
    stack: Arc<LocalStack>,
}

impl World {
    async fn with_options(options: &LocalOptions) -> World {
        let stack = local_stack_with(NOW, local_adapters(), options);
        stack.spawn_dispatcher();
        World { stack }
    }

    /// A stack with Acme provisioned from the sample checkout and ACTIVE.
    async fn active() -> World {
        let world = World::with_options(&instant_options()).await;
        world.deliver(&sample("01-checkout.session.completed.json")).await;
        assert_eq!(world.tenant().await["status"], "ACTIVE");
        world
    }

    async fn post(&self, event: &Value) {
        let body = event.to_string();
        let answer = self.stack.deliver(&stripe_headers(NOW, body.as_bytes()), body.as_bytes()).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }

    async fn deliver(&self, event: &Value) {
        self.post(event).await;
        self.settle().await;
    }

    /// Changes Acme's subscription in the local Stripe; returns the events
    /// Stripe sends for the change (not yet delivered).
    fn stripe_does(&self, action: &SubscriptionAction) -> Vec<Value> {
        self.stack.stripe.act(ACME_SUBSCRIPTION, action).unwrap_or_else(|e| panic!("{action:?}: {e}"))
    }

    async fn settle(&self) {
        assert!(self.stack.wait_settled(Duration::from_secs(60)).await);
    }

    async fn state(&self) -> Value {
        self.stack.state().await
    }

    async fn tenant(&self) -> Value {
        let state = self.state().await;
        state["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["signup"]["subdomain"] == "acme")
            .cloned()
            .expect("Acme's tenant")
    }

    async fn service(&self) -> Option<Value> {
        self.state().await["services"].as_array().unwrap().first().cloned()
    }

    async fn mails_to(&self, to: &str) -> Vec<Value> {
        let state = self.state().await;
        state["emails"].as_array().unwrap().iter().filter(|m| m["to"] == to).cloned().collect()
    }

    fn run(&self, name: &str) -> tenantctl::workflow::ExecutionRecord {
        self.stack.workflows.execution(name).unwrap_or_else(|| panic!("no execution {name}"))
    }

    fn outcome(tenant: &Value, event_id: &str) -> String {
        tenant["trail"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event_id"] == event_id)
            .map(|e| e["outcome"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("{event_id} not in the tenant's trail: {}", tenant["trail"]))
    }

    /// The tenant is what Stripe's subscription says now.
    async fn assert_as_stripe_says(&self) {
        let subscription = SubscriptionId::parse(ACME_SUBSCRIPTION).unwrap();
        let snapshot = self.stack.stripe.subscription(&subscription).await.unwrap().unwrap();
        let expected = desired_from(&snapshot, &Catalog::embedded().unwrap()).unwrap();
        let tenant = self.tenant().await;
        assert_eq!(tenant["status"], expected.observed_status().as_str(), "{tenant:#}");
        assert_eq!(tenant["plan"]["key"], expected.plan.key.as_str());
        assert_eq!(tenant["reached_generation"], tenant["generation"]);
    }
}

#[tokio::test]
async fn a_plan_change_moves_the_service_to_the_new_tier_and_mails_once() {
    let world = World::active().await;
    let events = world.stripe_does(&change_plan("ultimate"));
    for event in events.iter().chain(events.iter()) {
        world.deliver(event).await;
    }
    let updated = events.iter().find(|e| e["type"] == "customer.subscription.updated").unwrap();
    let run = world.run(updated["id"].as_str().unwrap());
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.cause);
    assert_eq!(
        run.states_passed(),
        ["ApplySubscription", "ShouldConverge", "ConvergeTenant", "Cancelled", "Done"]
    );
    let tenant = world.tenant().await;
    assert_eq!(tenant["status"], "ACTIVE");
    assert_eq!(tenant["plan"]["key"], "ultimate");
    let env = &world.service().await.unwrap()["environment"];
    assert_eq!((env["TIER"].as_str(), env["PLAN"].as_str()), (Some("3"), Some("ultimate")));
    assert_eq!(env["LIMIT_ACTIVITIES"], "100");
    let changed: Vec<Value> = world
        .mails_to("dana@acme.example")
        .await
        .into_iter()
        .filter(|m| m["subject"].as_str().unwrap().contains("plan"))
        .collect();
    assert_eq!(changed.len(), 1, "one plan-changed mail: {changed:#?}");
    // The first of the two events moved the generation; the other found it.
    let outcomes: Vec<String> =
        events.iter().map(|e| World::outcome(&tenant, e["id"].as_str().unwrap())).collect();
    assert!(outcomes.contains(&"applied".to_owned()), "{outcomes:?}");
    world.assert_as_stripe_says().await;
}

#[tokio::test]
async fn a_failed_card_makes_the_tenant_past_due_with_a_card_link_and_its_recovery_active_again() {
    let world = World::active().await;
    for event in world.stripe_does(&SubscriptionAction::CardFails) {
        world.deliver(&event).await;
    }
    assert_eq!(world.tenant().await["status"], "PAST_DUE");
    let card = world.mails_to("dana@acme.example").await;
    assert!(
        card.iter().any(|m| m["text"].as_str().unwrap().contains("/billing/1.cus_")),
        "a card mail with our signed billing link: {card:#?}"
    );
    assert_eq!(world.service().await.unwrap()["desired_count"], 1, "past due still runs");
    for event in world.stripe_does(&SubscriptionAction::CardRecovers) {
        world.deliver(&event).await;
    }
    assert_eq!(world.tenant().await["status"], "ACTIVE");
    world.assert_as_stripe_says().await;
}

#[tokio::test]
async fn unpaid_scales_to_zero_keeping_dns_and_a_paid_invoice_runs_it_again() {
    let world = World::active().await;
    for action in [SubscriptionAction::CardFails, SubscriptionAction::Unpaid] {
        for event in world.stripe_does(&action) {
            world.deliver(&event).await;
        }
    }
    let tenant = world.tenant().await;
    assert_eq!(tenant["status"], "SUSPENDED");
    assert_eq!(world.service().await.unwrap()["desired_count"], 0);
    assert_eq!(world.state().await["dns_records"].as_array().unwrap().len(), 1, "DNS kept");
    for event in world.stripe_does(&SubscriptionAction::CardRecovers) {
        world.deliver(&event).await;
    }
    assert_eq!(world.tenant().await["status"], "ACTIVE");
    assert_eq!(world.service().await.unwrap()["desired_count"], 1);
    let subjects: Vec<String> = world
        .mails_to("dana@acme.example")
        .await
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(subjects.iter().filter(|s| s.contains("suspended")).count(), 1, "{subjects:?}");
    world.assert_as_stripe_says().await;
}

#[tokio::test]
async fn cancellation_leaves_no_service_rule_or_record_and_releases_the_name_after_grace() {
    let world = World::active().await;
    let cancel = world.stripe_does(&SubscriptionAction::Cancel);
    for event in &cancel {
        world.deliver(event).await;
    }
    let deleted = cancel.iter().find(|e| e["type"] == "customer.subscription.deleted").unwrap();
    let run = world.run(deleted["id"].as_str().unwrap());
    assert_eq!(
        run.states_passed(),
        [
            "ApplySubscription",
            "ShouldConverge",
            "ConvergeTenant",
            "Cancelled",
            "WaitGracePeriod",
            "ReleaseSubdomain",
            "Done"
        ]
    );
    let state = world.state().await;
    assert!(state["services"].as_array().unwrap().is_empty());
    assert!(state["dns_records"].as_array().unwrap().is_empty());
    let tenant = world.tenant().await;
    assert_eq!(tenant["status"], "CANCELLED");
    assert!(tenant["cancelled_at"].is_i64() && tenant["subdomain_released_at"].is_i64());
    assert_eq!(tenant["signup"]["admin_email"], "dana@acme.example", "data kept");
    let goodbyes = world.mails_to("dana@acme.example").await;
    assert_eq!(goodbyes.iter().filter(|m| m["subject"].as_str().unwrap().contains("has ended")).count(), 1);

    // The name can be bought again.
    let mut again = sample("01-checkout.session.completed.json");
    again["id"] = json!("evt_second_life");
    again["data"]["object"]["id"] = json!("cs_test_second_life");
    again["data"]["object"]["subscription"] = json!("sub_second_life");
    world.deliver(&again).await;
    assert_eq!(world.run("evt_second_life").status, RunStatus::Succeeded);
}

#[tokio::test]
async fn an_upgrade_delivered_after_a_newer_invoice_event_is_still_applied() {
    // The single-watermark bug: a newer invoice event applied first made
    // the older subscription.updated "stale", and the plan change was lost.
    let world = World::active().await;
    let mut events = world.stripe_does(&change_plan("ultimate"));
    events.extend(world.stripe_does(&SubscriptionAction::CardFails));
    events.extend(world.stripe_does(&SubscriptionAction::CardRecovers));
    events.reverse();
    for event in &events {
        world.deliver(event).await;
    }
    let tenant = world.tenant().await;
    assert_eq!(tenant["plan"]["key"], "ultimate");
    assert_eq!(world.service().await.unwrap()["environment"]["PLAN"], "ultimate");
    world.assert_as_stripe_says().await;
}

#[tokio::test]
async fn concurrent_executions_for_one_tenant_end_as_stripe_says() {
    // Retries take (scaled) time, as in AWS: an execution waiting for the
    // lease backs off instead of spending its attempts at once.
    let world = World::with_options(&LocalOptions { time_scale: 0.001, ..instant_options() }).await;
    world.deliver(&sample("01-checkout.session.completed.json")).await;
    assert_eq!(world.tenant().await["status"], "ACTIVE");
    let mut events = world.stripe_does(&change_plan("basic"));
    events.extend(world.stripe_does(&SubscriptionAction::CardFails));
    events.extend(world.stripe_does(&SubscriptionAction::Unpaid));
    events.extend(world.stripe_does(&SubscriptionAction::CardRecovers));
    events.extend(world.stripe_does(&change_plan("ultimate")));
    // All at once, each twice, without waiting between deliveries.
    for event in events.iter().rev().chain(events.iter()) {
        world.post(event).await;
    }
    world.settle().await;
    let failed: Vec<String> = world
        .stack
        .workflows
        .each_execution(|e| (e.status != RunStatus::Succeeded).then(|| format!("{} {:?}", e.name, e.cause)))
        .into_iter()
        .flatten()
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    world.assert_as_stripe_says().await;
    let env = &world.service().await.unwrap()["environment"];
    assert_eq!(env["PLAN"], "ultimate");
}

#[tokio::test]
async fn an_event_during_provisioning_is_applied_when_provisioning_finishes() {
    // Scaled so provisioning's first Wait (45 s) lasts long enough for the
    // cancellation to arrive while it runs.
    let options = LocalOptions { time_scale: 0.01, ..instant_options() };
    let world = World::with_options(&options).await;
    world.post(&sample("01-checkout.session.completed.json")).await;
    for _ in 0..200 {
        let tenants = world.state().await["tenants"].as_array().map_or(0, Vec::len);
        if tenants > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(world.tenant().await["status"], "PROVISIONING");
    let cancel = world.stripe_does(&SubscriptionAction::Cancel);
    for event in &cancel {
        world.post(event).await;
    }
    world.settle().await;
    let provision = world.run("evt_1QAcmeCheckoutDone");
    assert_eq!(provision.status, RunStatus::Succeeded, "{:?}", provision.cause);
    assert!(
        provision.states_passed().contains(&"ReleaseSubdomain".to_owned()),
        "{:?}",
        provision.states_passed()
    );
    let tenant = world.tenant().await;
    assert_eq!(tenant["status"], "CANCELLED");
    assert!(world.state().await["services"].as_array().unwrap().is_empty(), "nothing left running");
}

#[tokio::test]
async fn a_subscription_someone_else_sold_wakes_no_workflow_and_is_recorded() {
    let world = World::active().await;
    let mut theirs = sample("04-customer.subscription.updated.json");
    theirs["id"] = json!("evt_their_course");
    theirs["data"]["object"]["id"] = json!("sub_their_course");
    theirs["data"]["object"]["metadata"] = json!({"course": "yoga-101"});
    world.deliver(&theirs).await;
    assert!(world.stack.workflows.execution("evt_their_course").is_none());
    let unmatched = world.state().await["unmatched_events"].clone();
    assert_eq!(unmatched.as_array().unwrap().len(), 1, "{unmatched:#}");
    assert_eq!(unmatched[0]["event_id"], "evt_their_course");
    assert_eq!(unmatched[0]["reason"], "not_ours", "recorded for the operator");
    assert!(world.mails_to("operator@example.test").await.is_empty(), "nobody is mailed about it");
}

#[tokio::test]
async fn an_event_for_a_subscription_stripe_does_not_have_is_ignored() {
    let world = World::active().await;
    let mut stranger = sample("05-invoice.payment_failed.json");
    stranger["id"] = json!("evt_stranger");
    stranger["data"]["object"]["subscription"] = json!("sub_nobody_has");
    world.deliver(&stranger).await;
    let run = world.run("evt_stranger");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.cause);
    assert_eq!(run.states_passed(), ["ApplySubscription", "ShouldConverge", "Done"]);
    assert_eq!(run.output.unwrap()["applied"]["outcome"], "ignored");
}

#[tokio::test]
async fn an_event_for_our_subscription_whose_checkout_never_arrives_is_reported_once_retries_run_out() {
    let world = World::with_options(&instant_options()).await;
    // Stripe has the subscription (adopted from a checkout that is never delivered).
    let mut lost = sample("01-checkout.session.completed.json");
    lost["data"]["object"]["id"] = json!("cs_test_never_delivered");
    lost["data"]["object"]["subscription"] = json!("sub_checkout_lost");
    assert!(world.stack.stripe.adopt_checkout(&lost).unwrap());
    let mut update = sample("04-customer.subscription.updated.json");
    update["id"] = json!("evt_early");
    update["data"]["object"]["id"] = json!("sub_checkout_lost");
    world.deliver(&update).await;
    let run = world.run("evt_early");
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("Tenancy.TenantNotYetKnown"));
    assert_eq!(run.states_passed(), ["ApplySubscription", "ReportToOperator", "NotApplied"]);
    let retries = run.history.iter().filter(|e| e.kind == "TaskFailed").count();
    assert_eq!(retries, 11, "the first try and ten retries, then the operator");
    let state = world.state().await;
    assert_eq!(state["unmatched_events"][0]["event_id"], "evt_early");
    let operator = world.mails_to("operator@example.test").await;
    assert!(operator.iter().any(|m| m["subject"].as_str().unwrap().contains("evt_early")));
}

#[tokio::test]
async fn a_failed_tenant_that_stripe_still_charges_gets_its_money_back_once() {
    let world = World::active().await;
    // FAILED with its subscription live and nothing given back (as when
    // provisioning's money back could not be done).
    let tenant = world.tenant().await;
    let id = tenancy::domain::TenantId::parse(tenant["id"].as_str().unwrap()).unwrap();
    let record = world.stack.store.get_tenant(&id).await.unwrap().unwrap();
    let mut failed = record.next_version(NOW);
    failed.status = tenancy::domain::TenantStatus::Failed;
    world.stack.store.replace_tenant(&failed).await.unwrap();

    // Stripe charges again (an upgrade's prorated invoice); every event twice.
    let events = world.stripe_does(&change_plan("ultimate"));
    for event in events.iter().chain(events.iter()) {
        world.post(event).await;
    }
    world.settle().await;

    // Whichever of the events is applied first gives it back; the rest find it done.
    let runs: Vec<_> = events.iter().map(|e| world.run(e["id"].as_str().unwrap())).collect();
    assert!(runs.iter().all(|run| run.status == RunStatus::Succeeded));
    let giving = runs.iter().filter(|run| run.states_passed().contains(&"GiveMoneyBack".to_owned())).count();
    assert!(giving >= 1, "{:?}", runs.iter().map(|r| r.states_passed()).collect::<Vec<_>>());
    // Read back from Stripe: cancelled, and each payment refunded once, in full.
    let subscription =
        world.stack.stripe.subscriptions().into_iter().find(|s| s.id == ACME_SUBSCRIPTION).unwrap();
    assert_eq!(subscription.status, tenancy::domain::SubscriptionStatus::Canceled);
    let paid: Vec<(String, i64)> = world
        .stack
        .stripe
        .invoices()
        .into_iter()
        .filter(|i| i.subscription == ACME_SUBSCRIPTION && i.amount_paid > 0)
        .map(|i| (i.id, i.amount_paid))
        .collect();
    let mut refunded: Vec<(String, i64)> =
        world.stack.stripe.refunds().into_iter().map(|r| (r.invoice, r.amount)).collect();
    refunded.sort();
    assert_eq!(paid.len(), 2, "the signup and the upgrade");
    assert_eq!(refunded, paid);
    let tenant = world.tenant().await;
    assert_eq!(tenant["money_back"]["refunds"].as_array().unwrap().len(), 2);
    assert_eq!(tenant["status"], "FAILED", "no converge for a FAILED tenant");
    let operator = world.mails_to("operator@example.test").await;
    assert_eq!(operator.iter().filter(|m| m["subject"].as_str().unwrap().contains("money back")).count(), 1);
    let customer = world.mails_to("dana@acme.example").await;
    let refund_mails: Vec<_> =
        customer.iter().filter(|m| m["subject"] == "Your payment has been refunded").collect();
    assert_eq!(refund_mails.len(), 1);
    assert!(refund_mails[0]["text"].as_str().unwrap().contains("charged for a workspace you do not have"));
}

#[tokio::test]
async fn a_lifecycle_execution_started_for_a_tenant_converges_it_to_stripe_without_an_event() {
    // What `reconcile --fix` starts for a drifted tenant: Stripe moved (a plan
    // change whose events were never delivered), the record did not.
    let world = World::active().await;
    let undelivered = world.stripe_does(&change_plan("ultimate"));
    assert!(!undelivered.is_empty());
    assert_eq!(world.tenant().await["plan"]["key"], "pro");
    let tenant_id = world.tenant().await["id"].as_str().unwrap().to_owned();
    let name = format!("reconcile-{tenant_id}-1700000000");
    let input = serde_json::json!({ "tenant_id": tenant_id });
    assert!(world.stack.workflows.start_named(tenancy::ports::Workflow::Lifecycle, &name, input));
    world.settle().await;
    let run = world.run(&name);
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.cause);
    assert_eq!(
        run.states_passed(),
        ["ApplySubscription", "ShouldConverge", "ConvergeTenant", "Cancelled", "Done"]
    );
    assert_eq!(world.tenant().await["plan"]["key"], "ultimate");
    world.assert_as_stripe_says().await;
}
