//! The provisioning state machine (infra/statemachine/provision.asl.json)
//! run by the local runner over the real steps and local adapters.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use integration_tests::{FaultyLauncher, local_adapters, local_stack, read_repo_file, stripe_headers};
use serde_json::{Value, json};
use tenantctl::local::{Adapters, LocalStack};
use tenantctl::workflow::{ExecutionRecord, RunStatus};

const NOW: i64 = 1_763_800_100;

fn checkout() -> Value {
    serde_json::from_str(&read_repo_file("events/01-checkout.session.completed.json")).unwrap()
}

/// Another customer's checkout: new event and session ids, same shape.
fn checkout_from(n: u32, subdomain: &str) -> Value {
    let mut event = checkout();
    event["id"] = json!(format!("evt_checkout{n}"));
    event["data"]["object"]["id"] = json!(format!("cs_test_session{n}"));
    event["data"]["object"]["customer"] = json!(format!("cus_customer{n}"));
    event["data"]["object"]["subscription"] = json!(format!("sub_subscription{n}"));
    event["data"]["object"]["metadata"]["subdomain"] = json!(subdomain);
    event
}

async fn deliver(stack: &LocalStack, event: &Value) {
    let body = event.to_string();
    let answer = stack.ingress.handle(&stripe_headers(NOW, body.as_bytes()), body.as_bytes()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

async fn settle(stack: &Arc<LocalStack>) -> Value {
    // Give the dispatcher a moment to take what was just queued.
    for _ in 0..200 {
        if stack.queue.is_empty() && stack.workflows.running() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(stack.workflows.wait_idle(Duration::from_secs(30)).await, "executions did not finish");
    stack.state().await
}

fn execution(stack: &LocalStack, name: &str) -> ExecutionRecord {
    stack.workflows.execution(name).unwrap_or_else(|| panic!("no execution {name}"))
}

fn len(state: &Value, key: &str) -> usize {
    state[key].as_array().map(Vec::len).unwrap_or_default()
}

/// A running stack whose launcher is wrapped in a [`FaultyLauncher`] set up
/// by `faults` (the state view still sees the real local launcher).
fn stack_with(faults: impl FnOnce(&mut FaultyLauncher)) -> (Arc<LocalStack>, Arc<FaultyLauncher>) {
    let mut adapters: Adapters = local_adapters();
    let mut faulty = FaultyLauncher::new(adapters.steps.launcher.clone());
    faults(&mut faulty);
    let launcher = Arc::new(faulty);
    adapters.steps.launcher = launcher.clone();
    let stack = local_stack(NOW, adapters);
    stack.spawn_dispatcher();
    (stack, launcher)
}

fn plain_stack() -> (Arc<LocalStack>, Arc<FaultyLauncher>) {
    stack_with(|_| {})
}

#[tokio::test]
async fn happy_path_passes_every_state_and_leaves_an_active_tenant() {
    let (stack, _) = plain_stack();
    deliver(&stack, &checkout()).await;
    let state = settle(&stack).await;
    let run = execution(&stack, "evt_1QAcmeCheckoutDone");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?} {:?}", run.error, run.cause);
    let passed = run.states_passed();
    assert_eq!(
        passed,
        [
            "RecordSignup",
            "LaunchTenant",
            "WaitForTenant",
            "CheckTenantHealth",
            "IsTenantHealthy",
            "PublishDns",
            "WaitForDns",
            "CheckDns",
            "IsDnsInSync",
            "SendWelcomeMail",
            "MarkActive",
            "Provisioned"
        ],
        "with no simulated delay every check passes first time"
    );
    assert_eq!(state["tenants"][0]["status"], "ACTIVE");
    assert_eq!(state["services"][0]["environment"]["TIER"], "2");
    assert_eq!(len(&state, "dns_records"), 1);
    assert_eq!(len(&state, "emails"), 1);
}

#[tokio::test]
async fn duplicate_delivery_makes_one_tenant_and_one_mail() {
    let (stack, launcher) = plain_stack();
    for _ in 0..3 {
        deliver(&stack, &checkout()).await;
    }
    let state = settle(&stack).await;
    assert_eq!(len(&state, "executions"), 1);
    assert_eq!(len(&state, "tenants"), 1);
    assert_eq!(len(&state, "services"), 1);
    assert_eq!(len(&state, "emails"), 1);
    assert_eq!(launcher.launches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_transient_launch_failure_is_retried_and_provisioning_finishes() {
    let (stack, launcher) = stack_with(|f| f.failures.store(2, Ordering::SeqCst));
    deliver(&stack, &checkout()).await;
    let state = settle(&stack).await;
    let run = execution(&stack, "evt_1QAcmeCheckoutDone");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?} {:?}", run.error, run.cause);
    let failed: Vec<&Value> =
        run.history.iter().filter(|e| e.kind == "TaskFailed").map(|e| &e.detail).collect();
    assert_eq!(failed.len(), 2, "two failed attempts in the history");
    assert!(failed.iter().all(|d| d.to_string().contains("Tenancy.Transient")));
    assert_eq!(launcher.launches.load(Ordering::SeqCst), 3);
    assert_eq!(state["tenants"][0]["status"], "ACTIVE");
    assert_eq!(len(&state, "services"), 1);
}

#[tokio::test]
async fn a_permanent_failure_removes_everything_marks_failed_and_tells_both() {
    let (stack, _) = stack_with(|f| {
        f.failures.store(1, Ordering::SeqCst);
        f.permanent = true;
    });
    deliver(&stack, &checkout()).await;
    let state = settle(&stack).await;
    let run = execution(&stack, "evt_1QAcmeCheckoutDone");
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("Tenancy.Rejected"));
    assert!(run.states_passed().ends_with(&["Compensate".to_owned(), "ProvisioningFailed".to_owned()]));
    assert_eq!(state["tenants"][0]["status"], "FAILED");
    assert!(state["tenants"][0]["failure"]["cause"].as_str().unwrap().contains("CannotPullContainerError"));
    assert_eq!((len(&state, "services"), len(&state, "dns_records")), (0, 0));
    let to: Vec<&str> =
        state["emails"].as_array().unwrap().iter().map(|m| m["to"].as_str().unwrap()).collect();
    assert_eq!(to, ["dana@acme.example", "operator@example.test"]);
    // The name is free again: a new checkout for it provisions.
    deliver(&stack, &checkout_from(2, "acme")).await;
    settle(&stack).await;
    assert_eq!(execution(&stack, "evt_checkout2").status, RunStatus::Succeeded);
}

#[tokio::test]
async fn a_tenant_that_never_gets_healthy_is_cleaned_up_after_the_bounded_checks() {
    let (stack, _) = stack_with(|f| f.never_healthy = true);
    deliver(&stack, &checkout()).await;
    let state = settle(&stack).await;
    let run = execution(&stack, "evt_1QAcmeCheckoutDone");
    assert_eq!(run.error.as_deref(), Some("Tenancy.TenantUnhealthy"));
    let checks = run.states_passed().iter().filter(|s| *s == "CheckTenantHealth").count();
    assert_eq!(checks, 40);
    assert!(run.cause.as_deref().unwrap().contains("502"));
    assert_eq!((len(&state, "services"), state["tenants"][0]["status"].as_str()), (0, Some("FAILED")));
}

#[tokio::test]
async fn a_taken_subdomain_takes_its_own_path_and_leaves_the_holder_alone() {
    let (stack, _) = plain_stack();
    deliver(&stack, &checkout()).await;
    settle(&stack).await;
    deliver(&stack, &checkout_from(7, "acme")).await;
    let state = settle(&stack).await;
    let run = execution(&stack, "evt_checkout7");
    assert_eq!(run.error.as_deref(), Some("Tenancy.SubdomainTaken"));
    assert_eq!(run.states_passed(), ["RecordSignup", "SubdomainTaken", "SignupRejected"]);
    let statuses: Vec<&str> =
        state["tenants"].as_array().unwrap().iter().map(|t| t["status"].as_str().unwrap()).collect();
    assert!(statuses.contains(&"ACTIVE") && statuses.contains(&"FAILED"), "{statuses:?}");
    assert_eq!(len(&state, "services"), 1, "the holder's service is untouched");
    let subjects: Vec<&str> =
        state["emails"].as_array().unwrap().iter().map(|m| m["subject"].as_str().unwrap()).collect();
    assert!(subjects.iter().any(|s| s.contains("REJECTED (Tenancy.SubdomainTaken)")), "{subjects:?}");
}

#[tokio::test]
async fn bad_metadata_ends_in_a_failed_record_and_an_operator_mail_not_a_crash_loop() {
    let (stack, _) = plain_stack();
    let mut event = checkout_from(9, "www");
    event["data"]["object"]["metadata"]["plan"] = json!("platinum");
    deliver(&stack, &event).await;
    let state = settle(&stack).await;
    let run = execution(&stack, "evt_checkout9");
    assert_eq!(run.error.as_deref(), Some("Tenancy.InvalidSignup"));
    assert_eq!(run.states_passed(), ["RecordSignup", "InvalidSignup", "SignupRejected"]);
    assert_eq!(state["tenants"][0]["status"], "FAILED");
    let cause = state["tenants"][0]["failure"]["cause"].as_str().unwrap();
    assert!(cause.contains("reserved") && cause.contains("platinum"), "{cause}");
    let operator =
        state["emails"].as_array().unwrap().iter().find(|m| m["to"] == "operator@example.test").unwrap();
    assert!(operator["text"].as_str().unwrap().contains("platinum"));
    assert_eq!((len(&state, "services"), len(&state, "dead_letters")), (0, 0));
}

/// `tenantctl local serve --aws-endpoint`: the same definition and steps,
/// with the AWS adapters on moto's server.
#[tokio::test]
async fn the_same_workflow_provisions_through_the_aws_adapters_on_the_emulator() {
    use integration_tests::{local_stack_with, moto_endpoint, step_config};
    use tenantctl::local::LocalOptions;

    let config = step_config();
    let clock = Arc::new(tenancy::clock::SystemClock);
    let (adapters, platform) = tenantctl::emulated::adapters(
        &moto_endpoint(),
        config.settings,
        config.password_key,
        clock,
        "http://127.0.0.1:8787",
    )
    .await
    .unwrap();
    // Scaled waits, so the emulated ECS has time to "start" the task.
    let options = LocalOptions { state: None, time_scale: 0.01, definitions: None };
    let stack = local_stack_with(NOW, adapters, &options);
    stack.spawn_dispatcher();
    deliver(&stack, &checkout()).await;
    deliver(&stack, &checkout()).await;
    let state = settle(&stack).await;
    platform.abort();

    let run = execution(&stack, "evt_1QAcmeCheckoutDone");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?} {:?}", run.error, run.cause);
    assert_eq!(len(&state, "executions"), 1);
    let acme: Vec<&Value> =
        state["tenants"].as_array().unwrap().iter().filter(|t| t["signup"]["subdomain"] == "acme").collect();
    assert_eq!(acme.len(), 1);
    assert_eq!(acme[0]["status"], "ACTIVE");
    assert!(state["dns_records"].as_array().unwrap().iter().any(|r| r["name"] == "acme.tenancy-local.test"));
    // moto's mail store is shared with other tests: count this stack's mails.
    let welcome: Vec<&Value> = state["emails"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["to"] == "dana@acme.example")
        .filter(|m| m["text"].as_str().is_some_and(|text| text.contains("https://acme.tenancy-local.test")))
        .collect();
    assert_eq!(welcome.len(), 1, "one welcome mail through SES");
}
