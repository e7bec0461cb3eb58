//! The lifecycle state machine (infra/statemachine/lifecycle.asl.json) run by
//! the local runner: each row of the table, order, duplicates, and
//! events for tenants that do not exist (yet).

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use integration_tests::{instant_options, local_adapters, local_stack_with, read_repo_file, stripe_headers};
use serde_json::{Value, json};
use tenantctl::local::{LocalOptions, LocalStack};
use tenantctl::workflow::RunStatus;

const NOW: i64 = 1_763_800_100;
const DAY: i64 = 86_400;
const T0: i64 = 1_763_800_000;

fn sample(file: &str) -> Value {
    serde_json::from_str(&read_repo_file(&format!("events/{file}"))).unwrap()
}

/// A subscription.updated for Acme with `status` and the price of `plan`.
fn subscription_updated(id: &str, created: i64, status: &str, price: &str) -> Value {
    let mut event = sample("04-customer.subscription.updated.json");
    event["id"] = json!(id);
    event["created"] = json!(created);
    event["data"]["object"]["status"] = json!(status);
    event["data"]["object"]["items"]["data"][0]["price"]["id"] = json!(price);
    event
}

fn invoice_failed(id: &str, created: i64, invoice: &str) -> Value {
    let mut event = sample("05-invoice.payment_failed.json");
    event["id"] = json!(id);
    event["created"] = json!(created);
    event["data"]["object"]["id"] = json!(invoice);
    event
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

    /// A stack with Acme provisioned and ACTIVE.
    async fn active() -> World {
        let world = World::with_options(&instant_options()).await;
        world.deliver(&sample("01-checkout.session.completed.json")).await;
        assert_eq!(world.tenant().await["status"], "ACTIVE");
        world
    }

    async fn deliver(&self, event: &Value) {
        let body = event.to_string();
        let answer = self.stack.deliver(&stripe_headers(NOW, body.as_bytes()), body.as_bytes()).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        self.settle().await;
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
        tenant["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event_id"] == event_id)
            .map(|e| e["outcome"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("{event_id} not in the tenant's trail"))
    }
}

#[tokio::test]
async fn a_price_change_moves_the_service_to_the_new_tier_and_mails_once() {
    let world = World::active().await;
    world.deliver(&sample("04-customer.subscription.updated.json")).await;
    world.deliver(&sample("04-customer.subscription.updated.json")).await;
    let run = world.run("evt_1QAcmeUpgraded");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.cause);
    assert_eq!(
        run.states_passed(),
        ["ApplyBillingEvent", "WhatChanged", "RelaunchTenant", "SendLifecycleMail", "Done"]
    );
    let tenant = world.tenant().await;
    assert_eq!(
        (tenant["plan"]["key"].as_str(), tenant["plan"]["tier"].as_u64()),
        (Some("ultimate"), Some(3))
    );
    let service = world.service().await.unwrap();
    assert_eq!(service["environment"]["TIER"], "3");
    assert_eq!(service["environment"]["PLAN"], "ultimate");
    assert_eq!(service["environment"]["LIMIT_ACTIVITIES"], "100");
    assert_eq!(service["desired_count"], 1);
    let mails = world.mails_to("dana@acme.example").await;
    let changed: Vec<&Value> =
        mails.iter().filter(|m| m["subject"].as_str().unwrap().contains("Ultimate plan")).collect();
    assert_eq!(changed.len(), 1, "one plan-changed mail for one event delivered twice");
}

#[tokio::test]
async fn past_due_marks_the_tenant_and_mails_a_card_link() {
    let world = World::active().await;
    world
        .deliver(&subscription_updated("evt_pastdue", T0 + 31 * DAY, "past_due", "price_1QProMonthlyCAD"))
        .await;
    let tenant = world.tenant().await;
    assert_eq!(tenant["status"], "PAST_DUE");
    let mails = world.mails_to("dana@acme.example").await;
    let card = mails.iter().find(|m| m["subject"].as_str().unwrap().starts_with("Payment failed")).unwrap();
    assert!(card["text"].as_str().unwrap().contains("/billing-portal/cus_QAcmeR0b0t1cs"), "{card}");
}

#[tokio::test]
async fn unpaid_suspends_to_zero_keeping_dns_and_active_again_resumes() {
    let world = World::active().await;
    world
        .deliver(&subscription_updated("evt_unpaid", T0 + 40 * DAY, "unpaid", "price_1QProMonthlyCAD"))
        .await;
    assert_eq!(world.tenant().await["status"], "SUSPENDED");
    assert_eq!(world.service().await.unwrap()["desired_count"], 0);
    assert_eq!(world.state().await["dns_records"].as_array().unwrap().len(), 1, "DNS kept");

    world.deliver(&subscription_updated("evt_back", T0 + 41 * DAY, "active", "price_1QProMonthlyCAD")).await;
    assert_eq!(world.tenant().await["status"], "ACTIVE");
    assert_eq!(world.service().await.unwrap()["desired_count"], 1);
    let subjects: Vec<String> = world
        .mails_to("dana@acme.example")
        .await
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_owned())
        .collect();
    assert!(subjects.iter().any(|s| s.ends_with("is suspended")), "{subjects:?}");
    assert!(subjects.iter().any(|s| s.ends_with("is back")), "{subjects:?}");
}

#[tokio::test]
async fn a_failed_invoice_mails_once_per_invoice_and_a_paid_one_clears_past_due() {
    let world = World::active().await;
    world.deliver(&sample("05-invoice.payment_failed.json")).await;
    // Stripe retries the charge: another event for the same invoice.
    world.deliver(&invoice_failed("evt_retry_failed", T0 + 31 * DAY + 3600, "in_1QAcmeInvoice02")).await;
    assert_eq!(world.tenant().await["status"], "PAST_DUE");
    let cards = world.mails_to("dana@acme.example").await;
    let cards: Vec<&Value> =
        cards.iter().filter(|m| m["subject"].as_str().unwrap().starts_with("Payment failed")).collect();
    assert_eq!(cards.len(), 1, "one card mail per invoice");

    world.deliver(&sample("06-invoice.paid.json")).await;
    let tenant = world.tenant().await;
    assert_eq!(tenant["status"], "ACTIVE");
    assert_eq!(tenant["paid_until"], T0 + 30 * DAY);
}

#[tokio::test]
async fn cancellation_leaves_no_service_rule_or_record_and_releases_the_name_after_grace() {
    let world = World::active().await;
    world.deliver(&sample("07-customer.subscription.deleted.json")).await;
    let run = world.run("evt_1QAcmeSubDeleted");
    assert_eq!(
        run.states_passed(),
        [
            "ApplyBillingEvent",
            "WhatChanged",
            "DeprovisionTenant",
            "SendGoodbyeMail",
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
    assert_eq!(
        tenant["resources"],
        json!({"service_arn": null, "target_group_arn": null, "listener_rule_arn": null, "dns_name": null, "dns_change_id": null})
    );
    assert!(
        world
            .mails_to("dana@acme.example")
            .await
            .iter()
            .any(|m| m["subject"].as_str().unwrap().contains("has ended"))
    );

    // Later events change nothing, and the name can be bought again.
    world
        .deliver(&subscription_updated("evt_after_end", T0 + 91 * DAY, "active", "price_1QProMonthlyCAD"))
        .await;
    assert_eq!(World::outcome(&world.tenant().await, "evt_after_end"), "ignored");
    let mut again = sample("01-checkout.session.completed.json");
    again["id"] = json!("evt_second_life");
    again["data"]["object"]["id"] = json!("cs_test_second_life");
    again["data"]["object"]["subscription"] = json!("sub_second_life");
    world.deliver(&again).await;
    assert_eq!(world.run("evt_second_life").status, RunStatus::Succeeded);
}

#[tokio::test]
async fn an_older_event_changes_nothing_and_is_recorded_as_stale() {
    let world = World::active().await;
    world.deliver(&sample("05-invoice.payment_failed.json")).await; // T0 + 31 days
    world.deliver(&sample("04-customer.subscription.updated.json")).await; // T0 + 1 day, late
    let tenant = world.tenant().await;
    assert_eq!(World::outcome(&tenant, "evt_1QAcmeUpgraded"), "stale");
    assert_eq!(tenant["plan"]["key"], "pro", "the late upgrade did not apply");
    assert_eq!(world.service().await.unwrap()["environment"]["PLAN"], "pro");
    assert_eq!(tenant["last_event_created"], T0 + 31 * DAY);
}

#[tokio::test]
async fn subscription_created_is_recorded_and_changes_nothing() {
    let world = World::active().await;
    let before = world.tenant().await;
    world.deliver(&sample("02-customer.subscription.created.json")).await;
    let after = world.tenant().await;
    assert_eq!(after["status"], before["status"]);
    // Created a second before the checkout completed: older, so stale.
    assert_eq!(World::outcome(&after, "evt_1QAcmeSubCreated"), "stale");
}

#[tokio::test]
async fn an_update_before_the_tenant_exists_waits_for_it() {
    // Scaled so the retry window (about 15 minutes) lasts a couple of seconds.
    let options = LocalOptions { time_scale: 0.002, ..instant_options() };
    let world = World::with_options(&options).await;
    let upgrade = sample("04-customer.subscription.updated.json").to_string();
    let answer =
        world.stack.deliver(&stripe_headers(NOW, upgrade.as_bytes()), upgrade.as_bytes()).await;
    assert_eq!(answer.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(50)).await;
    world.deliver(&sample("01-checkout.session.completed.json")).await;
    let run = world.run("evt_1QAcmeUpgraded");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?} {:?}", run.error, run.cause);
    assert!(
        run.history
            .iter()
            .any(|e| e.kind == "TaskFailed" && e.detail.to_string().contains("TenantNotYetKnown"))
    );
    assert_eq!(world.tenant().await["plan"]["key"], "ultimate");
}

#[tokio::test]
async fn an_event_for_an_unknown_subscription_is_recorded_and_reported_not_retried_forever() {
    let world = World::with_options(&instant_options()).await;
    let mut stranger = sample("05-invoice.payment_failed.json");
    stranger["id"] = json!("evt_stranger");
    stranger["data"]["object"]["subscription"] = json!("sub_not_ours");
    world.deliver(&stranger).await;
    let run = world.run("evt_stranger");
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("Tenancy.TenantNotYetKnown"));
    assert_eq!(run.states_passed(), ["ApplyBillingEvent", "ReportToOperator", "NotApplied"]);
    let retries = run.history.iter().filter(|e| e.kind == "TaskFailed").count();
    assert_eq!(retries, 6, "the first try and five retries, then the operator");
    let state = world.state().await;
    assert_eq!(state["unmatched_events"][0]["event_id"], "evt_stranger");
    assert_eq!(state["unmatched_events"][0]["subscription"], "sub_not_ours");
    let operator = world.mails_to("operator@example.test").await;
    assert!(operator.iter().any(|m| m["subject"].as_str().unwrap().contains("evt_stranger")));
}
