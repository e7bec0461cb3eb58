//! The provisioning state machine (infra/statemachine/provision.asl.json)
//! run by the local runner over the real steps and local adapters.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use integration_tests::{FaultyLauncher, local_adapters, local_stack, read_repo_file, stripe_headers};
use serde_json::{Value, json};
use tenantctl::emulator::{EmulatorNames, EmulatorResources, bootstrap};
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
    let answer = stack.deliver(&stripe_headers(NOW, body.as_bytes()), body.as_bytes()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

async fn settle(stack: &Arc<LocalStack>) -> Value {
    assert!(stack.wait_settled(Duration::from_secs(30)).await, "executions did not finish");
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
            "PaymentArrived",
            "LaunchTenant",
            "WaitForTenant",
            "CheckTenantHealth",
            "PublishDns",
            "WaitForDns",
            "CheckDns",
            "SendWelcomeMail",
            "SyncSubscription",
            "FinishProvisioning",
            "CancelledMeanwhile",
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
    // LaunchTenant, then the final converge asserting the same spec again.
    assert_eq!(launcher.launches.load(Ordering::SeqCst), 2);
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
    // Two failures, the launch, and the final converge's.
    assert_eq!(launcher.launches.load(Ordering::SeqCst), 4);
    assert_eq!(state["tenants"][0]["status"], "ACTIVE");
    assert_eq!(len(&state, "services"), 1);
}

#[tokio::test]
async fn a_permanent_failure_removes_everything_gives_the_money_back_and_tells_both() {
    let (stack, _) = stack_with(|f| {
        f.failures.store(1, Ordering::SeqCst);
        f.permanent = true;
    });
    deliver(&stack, &checkout()).await;
    let state = settle(&stack).await;
    let run = execution(&stack, "evt_1QAcmeCheckoutDone");
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("Tenancy.Rejected"));
    assert!(run.states_passed().ends_with(&[
        "Compensate".to_owned(),
        "GiveMoneyBack".to_owned(),
        "ProvisioningFailed".to_owned()
    ]));
    assert_eq!(state["tenants"][0]["status"], "FAILED");
    assert!(state["tenants"][0]["failure"]["cause"].as_str().unwrap().contains("CannotPullContainerError"));
    assert_eq!((len(&state, "services"), len(&state, "dns_records")), (0, 0));
    // Stripe, read back: the subscription cancelled and the payment refunded once.
    assert_money_back(&stack, &state, "sub_1QAcmeR0b0t1csPro", 5000);
    let to: Vec<&str> =
        state["emails"].as_array().unwrap().iter().map(|m| m["to"].as_str().unwrap()).collect();
    assert_eq!(to, ["operator@example.test", "dana@acme.example", "operator@example.test"]);
    let customer = &state["emails"][1];
    assert!(customer["text"].as_str().unwrap().contains("refunded 50.00 CAD"), "{customer}");
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
    // One look per attempt: the first and 21 retries with backoff (about 10 minutes).
    let checks = run
        .history
        .iter()
        .filter(|e| e.kind == "TaskScheduled" && e.state.as_deref() == Some("CheckTenantHealth"))
        .count();
    assert_eq!(checks, 22);
    assert_eq!(run.states_passed().iter().filter(|s| *s == "CheckTenantHealth").count(), 1);
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
    assert_eq!(
        run.states_passed(),
        ["RecordSignup", "SubdomainTaken", "GiveMoneyBack", "ProvisioningFailed"]
    );
    let statuses: Vec<&str> =
        state["tenants"].as_array().unwrap().iter().map(|t| t["status"].as_str().unwrap()).collect();
    assert!(statuses.contains(&"ACTIVE") && statuses.contains(&"FAILED"), "{statuses:?}");
    assert_eq!(len(&state, "services"), 1, "the holder's service is untouched");
    let rejected = tenant_of(&state, "sub_subscription7");
    assert_eq!(rejected["money_back"]["refunds"][0]["amount"], 5000);
    let holder = stack.stripe.subscriptions().into_iter().find(|s| s.id == "sub_1QAcmeR0b0t1csPro").unwrap();
    assert_eq!(holder.status, tenancy::domain::SubscriptionStatus::Active, "the holder still pays");
    assert_eq!(stack.stripe.refunds().len(), 1, "only the rejected buyer's payment");
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
    assert_eq!(run.states_passed(), ["RecordSignup", "InvalidSignup", "GiveMoneyBack", "ProvisioningFailed"]);
    assert_eq!(state["tenants"][0]["status"], "FAILED");
    let cause = state["tenants"][0]["failure"]["cause"].as_str().unwrap();
    assert!(cause.contains("reserved") && cause.contains("platinum"), "{cause}");
    let operator =
        state["emails"].as_array().unwrap().iter().find(|m| m["to"] == "operator@example.test").unwrap();
    assert!(operator["text"].as_str().unwrap().contains("platinum"));
    // No catalog price, so Stripe (the stand-in) has no subscription for it:
    // the money cannot go back by itself, and the operator is told so.
    let failed = state["tenants"][0]["money_back"]["failed"].as_str().unwrap();
    assert!(failed.contains("no subscription sub_subscription9"), "{failed}");
    let by_hand = state["emails"].as_array().unwrap().iter().any(|m| {
        m["subject"].as_str().unwrap().contains("money back")
            && m["text"].as_str().unwrap().contains("NOT DONE")
    });
    assert!(by_hand, "{}", state["emails"]);
    assert_eq!((len(&state, "services"), len(&state, "dead_letters")), (0, 0));
}

/// The tenant record of `subscription` in the state view.
fn tenant_of<'a>(state: &'a Value, subscription: &str) -> &'a Value {
    state["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["signup"]["subscription"] == subscription || t["rejected_subscription"] == subscription)
        .unwrap_or_else(|| panic!("no tenant for {subscription}"))
}

/// Stripe (the stand-in) holds `subscription` cancelled with one refund of
/// `amount`, and its tenant records the same.
fn assert_money_back(stack: &LocalStack, state: &Value, subscription: &str, amount: i64) {
    let held = stack.stripe.subscriptions().into_iter().find(|s| s.id == subscription).unwrap();
    assert_eq!(held.status, tenancy::domain::SubscriptionStatus::Canceled);
    let refunds: Vec<_> = stack
        .stripe
        .refunds()
        .into_iter()
        .filter(|r| {
            stack.stripe.invoices().iter().any(|i| i.id == r.invoice && i.subscription == subscription)
        })
        .collect();
    assert_eq!(refunds.iter().map(|r| r.amount).collect::<Vec<_>>(), [amount]);
    let recorded = &tenant_of(state, subscription)["money_back"];
    assert_eq!(recorded["refunds"][0]["id"], refunds[0].id.as_str());
    assert!(recorded["completed_at"].is_i64(), "{recorded}");
}

/// Serialises bootstrapping the emulator's shared `tenancy-local` resources:
/// two bootstraps at once could both make its load balancer and listener.
static EMULATOR_BOOTSTRAP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running local stack whose steps use the AWS adapters on moto's server
/// (as `tenantctl local serve --aws-endpoint` builds it) with `config`, the
/// emulator's resources, and the task that plays Fargate starting tasks.
async fn emulated_stack(
    config: tenantctl::local::StepConfig,
) -> (Arc<LocalStack>, EmulatorResources, tokio::task::JoinHandle<()>) {
    use integration_tests::{local_stack_with, moto_config, moto_endpoint};
    use tenantctl::local::LocalOptions;

    let clock: Arc<dyn tenancy::clock::Clock> = Arc::new(tenancy::clock::SystemClock);
    let stripe = Arc::new(
        tenancy::adapters::local::LocalStripe::open(None, "http://127.0.0.1:8787", clock.clone()).unwrap(),
    );
    let (adapters, platform, resources) = {
        let _one_at_a_time = EMULATOR_BOOTSTRAP.lock().await;
        let emulator = tenantctl::emulated::Emulator::at(&moto_endpoint());
        let (adapters, platform) =
            tenantctl::emulated::adapters(&emulator, config, clock, "http://127.0.0.1:8787", stripe, 1)
                .await
                .unwrap();
        // Made just now: bootstrapping again only finds them.
        let names = EmulatorNames::with_prefix("tenancy-local").unwrap();
        let resources = bootstrap(&moto_config().await, &names).await.unwrap();
        (adapters, platform, resources)
    };
    // Scaled waits, so the emulated ECS has time to "start" the task. (Task
    // TimeoutSeconds are real time and the execution's timeout counts waits
    // unscaled, so neither depends on this scale.)
    let options = LocalOptions { time_scale: 0.1, ..integration_tests::instant_options() };
    let stack = local_stack_with(NOW, adapters, &options);
    stack.spawn_dispatcher();
    (stack, resources, platform)
}

/// `tenantctl local serve --aws-endpoint`: the same definition and steps,
/// with the AWS adapters on moto's server.
#[tokio::test]
async fn the_same_workflow_provisions_through_the_aws_adapters_on_the_emulator() {
    let (stack, _, platform) = emulated_stack(integration_tests::step_config()).await;
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
    assert_eq!(welcome.len(), 1, "one welcome mail through SES: {welcome:#?}");

    // Mail to acme's own address: kept in the emulator's bucket as the
    // receipt rule keeps it, read back from there, sent on through SES.
    let address =
        stack.inbound.addresses.address_for(&tenancy::domain::Subdomain::parse("acme").unwrap()).unwrap();
    let subject = integration_tests::unique_name("order");
    let raw = format!("From: Zoe <zoe@cafe.example>\r\nTo: {address}\r\nSubject: {subject}\r\n\r\nHello\r\n");
    let report = stack
        .inbound
        .receive(stack.store.as_ref(), vec![address.to_string()], None, raw.as_bytes())
        .await
        .unwrap();
    assert_eq!(report["deliveries"][0]["outcome"], "forwarded", "{report}");
    let sent: Vec<_> = integration_tests::raw_messages_holding(&subject).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
}

/// A cancelled subscription through the lifecycle workflow with the AWS
/// adapters: nothing of the tenant is left on moto, read back with the SDK.
/// Its own checkout, subscription and subdomain: the emulator's table and
/// cluster are shared with the test above.
#[tokio::test]
async fn a_cancellation_through_the_aws_adapters_leaves_nothing_behind_on_the_emulator() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use integration_tests::moto_config;
    use tenancy::adapters::aws::launcher::TenantNames;
    use tenancy::domain::{CheckoutSessionId, TenantId};

    const SESSION: &str = "cs_test_farewell_on_aws";
    const SUBSCRIPTION: &str = "sub_farewell_on_aws";
    const CUSTOMER: &str = "cus_farewell_on_aws";
    const SUBDOMAIN: &str = "farewell";

    // The grace period's Wait: 10 s, 1 s at the stack's time scale.
    let mut config = integration_tests::step_config();
    config.settings.subdomain_grace = std::time::Duration::from_secs(10);
    let (stack, resources, platform) = emulated_stack(config).await;
    let sdk = moto_config().await;
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    let route53 = aws_sdk_route53::Client::new(&sdk);
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let tenant = TenantId::for_checkout(&CheckoutSessionId::parse(SESSION).unwrap());
    let names = TenantNames::of(&tenant);
    let host = format!("{SUBDOMAIN}.{}", resources.domain);

    let service = async || {
        let described =
            ecs.describe_services().cluster(&resources.cluster_arn).services(&names.service).send().await;
        described.unwrap().services().first().cloned()
    };
    let target_group_arn = async || match elb.describe_target_groups().names(&names.target_group).send().await
    {
        Ok(found) => found.target_groups().first().and_then(|g| g.target_group_arn()).map(str::to_owned),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_target_group_not_found_exception()) => {
            None
        }
        Err(error) => panic!("{error:?}"),
    };
    // Rules for the tenant's host, or forwarding to `group`.
    let rules = async |group: &str| {
        let listed = elb.describe_rules().listener_arn(&resources.listener_arn).send().await.unwrap();
        listed
            .rules()
            .iter()
            .filter(|rule| {
                let routes_host = rule.conditions().iter().any(|c| {
                    let config = c.host_header_config().map(|h| h.values()).unwrap_or_default();
                    config.iter().chain(c.values()).any(|v| *v == host)
                });
                let forwards = rule.actions().iter().any(|a| a.target_group_arn() == Some(group));
                routes_host || forwards
            })
            .filter_map(|rule| rule.rule_arn().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let records = async || {
        let listed = route53
            .list_resource_record_sets()
            .hosted_zone_id(&resources.hosted_zone_id)
            .send()
            .await
            .unwrap();
        listed
            .resource_record_sets()
            .iter()
            .filter(|set| set.name().trim_end_matches('.') == host)
            .map(|set| set.r#type().as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let item = async |pk: String| {
        let read = dynamodb
            .get_item()
            .table_name(&resources.table)
            .key("pk", AttributeValue::S(pk))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        read.item
    };

    let mut signup = checkout();
    signup["id"] = json!("evt_farewell_checkout");
    signup["data"]["object"]["id"] = json!(SESSION);
    signup["data"]["object"]["customer"] = json!(CUSTOMER);
    signup["data"]["object"]["subscription"] = json!(SUBSCRIPTION);
    signup["data"]["object"]["metadata"]["subdomain"] = json!(SUBDOMAIN);
    deliver(&stack, &signup).await;
    settle(&stack).await;
    let run = execution(&stack, "evt_farewell_checkout");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?} {:?}", run.error, run.cause);

    // What provisioning made, as the SDK sees it.
    assert_eq!(service().await.and_then(|s| s.status().map(str::to_owned)).as_deref(), Some("ACTIVE"));
    let group = target_group_arn().await.expect("the tenant's target group");
    assert_eq!(rules(&group).await.len(), 1);
    assert_eq!(records().await, ["A"]);
    let record = item(format!("TENANT#{tenant}")).await.expect("the tenant's item");
    assert_eq!(record["status"].as_s().unwrap(), "ACTIVE");

    // The customer cancels in Stripe; Stripe sends its events.
    let cancel =
        stack.stripe.act(SUBSCRIPTION, &tenancy::adapters::local::SubscriptionAction::Cancel).unwrap();
    let deleted = cancel.iter().find(|e| e["type"] == "customer.subscription.deleted").unwrap().clone();
    for event in &cancel {
        deliver(&stack, event).await;
    }
    let state = settle(&stack).await;
    platform.abort();

    let run = execution(&stack, deleted["id"].as_str().unwrap());
    assert_eq!(run.status, RunStatus::Succeeded, "{:?} {:?}", run.error, run.cause);
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

    // Nothing left on the emulator.
    let left = service().await;
    assert!(left.as_ref().is_none_or(|s| s.status() == Some("INACTIVE")), "{left:?}");
    assert_eq!(target_group_arn().await, None, "target group {} is left", names.target_group);
    assert_eq!(rules(&group).await, Vec::<String>::new(), "a listener rule is left");
    assert_eq!(records().await, Vec::<String>::new(), "a record for {host} is left");
    let revisions = ecs
        .list_task_definitions()
        .family_prefix(&names.family)
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .send()
        .await
        .unwrap();
    assert_eq!(revisions.task_definition_arns(), &[] as &[String]);

    // The tenant is kept, CANCELLED, with its name released after the grace period.
    let record = item(format!("TENANT#{tenant}")).await.expect("the tenant's item is kept");
    assert_eq!(record["status"].as_s().unwrap(), "CANCELLED");
    assert!(record["cancelled_at"].as_n().is_ok() && record["subdomain_released_at"].as_n().is_ok());
    assert!(record["resources"].as_m().unwrap().values().all(|v| v.is_null()), "{:?}", record["resources"]);
    assert_eq!(item(format!("SUBDOMAIN#{SUBDOMAIN}")).await, None, "the subdomain is released");
    let goodbye = state["emails"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["text"].as_str().is_some_and(|text| text.contains(&format!("workspace at {SUBDOMAIN} ")))
        })
        .filter(|m| m["subject"].as_str().is_some_and(|subject| subject.contains("has ended")))
        .count();
    assert_eq!(goodbye, 1, "one goodbye mail through SES");
}

/// A provisioning that times out runs no Catch path: the clean-up the
/// stack's EventBridge rule triggers (the local runner's, here) removes what
/// it made and marks the tenant FAILED, as compensation would.
#[tokio::test]
async fn a_provisioning_that_times_out_is_cleaned_up_and_leaves_nothing_behind() {
    // The deployed definition with an execution timeout provisioning cannot
    // meet: the first two Waits (45 s and 30 s, counted unscaled as in AWS)
    // outlast 60 s.
    let dir = std::env::temp_dir().join(integration_tests::unique_name("short-timeout"));
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["provision.asl.json", "lifecycle.asl.json"] {
        let mut definition: Value =
            serde_json::from_str(&read_repo_file(&format!("infra/statemachine/{file}"))).unwrap();
        if file == "provision.asl.json" {
            definition["TimeoutSeconds"] = json!(60);
        }
        std::fs::write(dir.join(file), definition.to_string()).unwrap();
    }
    let options = tenantctl::local::LocalOptions {
        time_scale: 0.001,
        definitions: Some(dir.clone()),
        ..integration_tests::instant_options()
    };
    let stack = integration_tests::local_stack_with(NOW, local_adapters(), &options);
    stack.spawn_dispatcher();
    deliver(&stack, &checkout()).await;
    let state = settle(&stack).await;
    let run = execution(&stack, "evt_1QAcmeCheckoutDone");
    assert_eq!(run.status, RunStatus::TimedOut, "{:?}", run.states_passed());
    assert!(run.cleanup.as_deref().is_some_and(|c| c.starts_with("compensated")), "{:?}", run.cleanup);
    assert_eq!(state["tenants"][0]["status"], "FAILED");
    assert_eq!(state["tenants"][0]["failure"]["error"], "States.Timeout");
    assert_eq!(len(&state, "services"), 0, "{:#}", state["services"]);
    assert_eq!(len(&state, "dns_records"), 0, "{:#}", state["dns_records"]);
    let subdomain = tenancy::domain::Subdomain::parse("acme").unwrap();
    assert_eq!(stack.store.subdomain_holder(&subdomain).await.unwrap(), None, "the name is free again");
    std::fs::remove_dir_all(&dir).ok();
}

/// Stripe cannot be read when provisioning ends (an outage): the paid tenant
/// is not torn down; it converges to what the checkout said, and the next
/// event from Stripe brings the rest.
#[tokio::test]
async fn a_paid_tenant_stays_when_stripe_cannot_be_read_as_provisioning_ends() {
    use tenancy::adapters::faults::{FaultPlan, wrap};
    let mut adapters = local_adapters();
    let outage = Arc::new(FaultPlan::new(1.0, 7).unwrap().with_timeout_delay(Duration::ZERO));
    adapters.steps.stripe = wrap(adapters.steps.stripe.clone(), Some(&outage));
    let stack = local_stack(NOW, adapters);
    stack.spawn_dispatcher();
    deliver(&stack, &checkout()).await;
    let state = settle(&stack).await;
    let run = execution(&stack, "evt_1QAcmeCheckoutDone");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?} {:?}", run.error, run.cause);
    let passed = run.states_passed();
    assert!(
        passed.ends_with(
            &["SyncSubscription", "FinishProvisioning", "CancelledMeanwhile", "Provisioned"]
                .map(String::from)
        ),
        "{passed:?}"
    );
    let failed = run.history.iter().filter(|e| e.kind == "TaskFailed").count();
    assert_eq!(failed, 7, "the first read and six retries, then on without it");
    assert_eq!(state["tenants"][0]["status"], "ACTIVE");
    assert_eq!(len(&state, "services"), 1);
    assert_eq!(len(&state, "dns_records"), 1);
}

/// A mailer SES refuses everything from (the sandbox's MessageRejected).
struct RefusingMailer;

#[async_trait::async_trait]
impl tenancy::ports::Mailer for RefusingMailer {
    async fn send(&self, _: &tenancy::ports::Mail) -> Result<String, tenancy::ports::MailError> {
        Err(tenancy::ports::MailError::Rejected("MessageRejected: Email address is not verified".into()))
    }
}

/// The steps in-process, except that the first invocation of `cold` fails
/// as a function that exits at cold start does (an SSM read timing out).
struct ColdStartOnce {
    steps: tenancy::steps::WorkflowSteps,
    cold: tenancy::steps::StepName,
    failed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl asl::TaskHandler for ColdStartOnce {
    async fn invoke(&self, resource: &str, input: Value) -> Result<Value, asl::TaskError> {
        let name = resource.rsplit_once(":function:").map(|(_, name)| name).unwrap_or_default();
        let step = tenancy::steps::StepName::from_name(name).expect("a local function");
        if step == self.cold && !self.failed.swap(true, Ordering::SeqCst) {
            return Err(asl::TaskError::new(
                "Runtime.ExitError",
                "RequestId: 1 Error: Runtime exited with error: exit status 1",
            ));
        }
        self.steps.invoke(step, input).await.map_err(tenantctl::workflow::lambda_task_error)
    }
}

#[tokio::test]
async fn a_cold_start_failure_is_retried_and_a_refused_welcome_mail_leaves_the_tenant_active() {
    let mut adapters = local_adapters();
    adapters.steps.mailer = Arc::new(RefusingMailer);
    assert!(adapters.stripe.adopt_checkout(&checkout()).unwrap());
    let store = adapters.steps.store.clone();
    let tasks = ColdStartOnce {
        steps: adapters.steps,
        cold: tenancy::steps::StepName::RecordSignup,
        failed: Default::default(),
    };
    let machines = tenantctl::workflow::load_machines(None).unwrap();
    let machine = &machines[&tenancy::ports::Workflow::Provision];
    let options = asl::RunOptions { time_scale: 0.0, ..asl::RunOptions::default() };
    let run =
        asl::run(machine, "evt_1QAcmeCheckoutDone", json!({ "event": checkout() }), &tasks, &options, None)
            .await;
    assert!(run.succeeded(), "{:?} {:?}", run.status, run.output);
    let failures: Vec<String> = run.events("TaskFailed").map(|e| e.detail.to_string()).collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("Runtime.ExitError"));
    let tenants = store.list_tenants().await.unwrap();
    assert_eq!(
        tenants[0].status,
        tenancy::domain::TenantStatus::Active,
        "a mail does not tear a paid tenant down"
    );
    assert!(tenants[0].unsent_mails["welcome"].reason.contains("MessageRejected"));
    assert!(tenants[0].money_back.is_none(), "nobody refunded a working tenant");
}

/// A mailer that refuses while `refusing` is set, then sends through `inner`.
struct RefusingUntilFixed {
    refusing: std::sync::atomic::AtomicBool,
    inner: Arc<dyn tenancy::ports::Mailer>,
}

#[async_trait::async_trait]
impl tenancy::ports::Mailer for RefusingUntilFixed {
    async fn send(&self, mail: &tenancy::ports::Mail) -> Result<String, tenancy::ports::MailError> {
        if self.refusing.load(Ordering::SeqCst) {
            return RefusingMailer.send(mail).await;
        }
        self.inner.send(mail).await
    }
}

#[tokio::test]
async fn a_welcome_mail_refused_at_signup_is_resent_once_the_cause_is_fixed() {
    let mut adapters = local_adapters();
    let mailer = Arc::new(RefusingUntilFixed { refusing: true.into(), inner: adapters.steps.mailer.clone() });
    adapters.steps.mailer = mailer.clone();
    let stack = local_stack(NOW, adapters);
    stack.spawn_dispatcher();
    deliver(&stack, &checkout()).await;
    let state = settle(&stack).await;
    assert_eq!(execution(&stack, "evt_1QAcmeCheckoutDone").status, RunStatus::Succeeded);
    assert_eq!(state["tenants"][0]["status"], "ACTIVE");
    assert!(
        state["tenants"][0]["unsent_mails"]["welcome"]["reason"]
            .as_str()
            .unwrap()
            .contains("MessageRejected")
    );
    assert_eq!(len(&state, "emails"), 0, "SES refused them all, the operator's alert too");

    mailer.refusing.store(false, Ordering::SeqCst);
    let resent = stack.resend_welcome("acme").await.unwrap();
    assert!(resent["sent"]["message_id"].is_string(), "{resent}");
    let again = stack.resend_welcome("acme").await.unwrap();
    assert_eq!(again["sent"]["already_sent"], true, "never sent twice");
    let state = stack.state().await;
    assert!(state["tenants"][0].get("unsent_mails").is_none(), "{}", state["tenants"][0]);
    let welcome: Vec<_> =
        state["emails"].as_array().unwrap().iter().filter(|m| m["to"] == "dana@acme.example").collect();
    assert_eq!(welcome.len(), 1);
    assert_eq!(stack.resend_welcome("nobody").await.unwrap_err().0, StatusCode::NOT_FOUND);
}

/// Route 53 at its rate limit for the first `throttled` changes, and slow
/// to reach every server: no change is ever seen INSYNC.
struct SlowRoute53 {
    inner: Arc<dyn tenancy::ports::DnsPublisher>,
    throttled: std::sync::atomic::AtomicU32,
}

#[async_trait::async_trait]
impl tenancy::ports::DnsPublisher for SlowRoute53 {
    async fn upsert_alias(
        &self,
        name: &str,
        target: &tenancy::ports::AliasTarget,
    ) -> Result<String, tenancy::ports::DnsError> {
        let left = self.throttled.load(Ordering::SeqCst);
        if left > 0 {
            self.throttled.store(left - 1, Ordering::SeqCst);
            let slow_down = tenancy::ports::Throttled("Throttling: Rate exceeded".into());
            return Err(tenancy::ports::DnsError::Unavailable(Box::new(slow_down)));
        }
        self.inner.upsert_alias(name, target).await
    }

    async fn change_status(&self, _: &str) -> Result<tenancy::ports::ChangeStatus, tenancy::ports::DnsError> {
        Ok(tenancy::ports::ChangeStatus::Pending)
    }

    async fn delete_alias(&self, name: &str) -> Result<(), tenancy::ports::DnsError> {
        self.inner.delete_alias(name).await
    }
}

/// The sample checkout provisioned while Route 53 throttles its first
/// `throttled` changes: the stack, its state, the execution (which
/// succeeded) and the states it passed, asserting `through` among them and
/// no compensation.
async fn provisioned_under_throttling(
    throttled: u32,
    through: &str,
) -> (Arc<tenantctl::local::LocalStack>, Value, tenantctl::workflow::ExecutionRecord) {
    let mut adapters = local_adapters();
    adapters.steps.dns =
        Arc::new(SlowRoute53 { inner: adapters.steps.dns.clone(), throttled: throttled.into() });
    let stack = local_stack(NOW, adapters);
    stack.spawn_dispatcher();
    deliver(&stack, &checkout()).await;
    let state = settle(&stack).await;
    let run = execution(&stack, "evt_1QAcmeCheckoutDone");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let passed = run.states_passed();
    assert!(passed.contains(&through.to_owned()) && !passed.contains(&"Compensate".to_owned()), "{passed:?}");
    (stack, state, run)
}

#[tokio::test]
async fn throttled_and_slow_dns_is_waited_out_never_compensated() {
    // More throttling than the transient retries' budget (six) would allow.
    let (_, state, run) = provisioned_under_throttling(10, "DnsNeverInSync").await;
    let throttled = run
        .history
        .iter()
        .filter(|e| e.kind == "TaskFailed" && e.detail.to_string().contains("Tenancy.Throttled"))
        .count();
    assert_eq!(throttled, 10);
    assert_eq!(state["tenants"][0]["status"], "ACTIVE");
    assert_eq!((len(&state, "services"), len(&state, "dns_records")), (1, 1));
}

/// Route 53 throttling every change past every retry (a burst of signups
/// beyond its 5 a second): the paid tenant still goes ACTIVE, never
/// compensated; its record is deferred, unasked for, so the reconciler
/// finds it unpublished and the next converge asks again.
#[tokio::test]
async fn route53_throttling_past_every_retry_defers_the_record_and_never_refunds() {
    let (stack, state, run) = provisioned_under_throttling(1_000, "DnsDeferred").await;
    let passed = run.states_passed();
    assert!(!passed.contains(&"CheckDns".to_owned()), "no change to wait for: {passed:?}");
    assert_eq!(state["tenants"][0]["status"], "ACTIVE");
    assert_eq!((len(&state, "services"), len(&state, "dns_records")), (1, 0));
    let tenant = &stack.store.list_tenants().await.unwrap()[0];
    assert!(tenant.resources.dns_name.is_none() && tenant.resources.load_balancer.is_some(), "{tenant:?}");
}

/// A checkout paid with a delayed method (ACSS debit): completed unpaid,
/// then Stripe's verdict on the payment, as its own event.
fn delayed(n: u32, subdomain: &str) -> (Value, Value, Value) {
    let mut completed = checkout_from(n, subdomain);
    completed["data"]["object"]["payment_status"] = json!("unpaid");
    let outcome = |kind: &str, paid: bool| {
        let mut event = checkout_from(n, subdomain);
        event["id"] = json!(format!("evt_{kind}{n}"));
        event["type"] = json!(format!("checkout.session.async_payment_{kind}"));
        event["data"]["object"]["payment_status"] = json!(if paid { "paid" } else { "unpaid" });
        event
    };
    (completed, outcome("succeeded", true), outcome("failed", false))
}

#[tokio::test]
async fn a_delayed_payment_holds_the_name_and_provisions_when_the_money_arrives() {
    let (stack, _) = plain_stack();
    let (completed, succeeded, _) = delayed(11, "initech");
    deliver(&stack, &completed).await;
    let state = settle(&stack).await;
    let run = execution(&stack, "evt_checkout11");
    assert_eq!(run.status, RunStatus::Succeeded);
    assert!(run.states_passed().ends_with(&["PaymentArrived".to_owned(), "AwaitingPayment".to_owned()]));
    assert_eq!(state["tenants"][0]["status"], "AWAITING_PAYMENT");
    assert_eq!(len(&state, "services"), 0, "nothing is made before the money");
    // The name is held for the buyer meanwhile.
    deliver(&stack, &checkout_from(12, "initech")).await;
    settle(&stack).await;
    assert_eq!(execution(&stack, "evt_checkout12").error.as_deref(), Some("Tenancy.SubdomainTaken"));
    // The money arrives (twice, as Stripe may deliver it): one tenant, running.
    deliver(&stack, &succeeded).await;
    deliver(&stack, &succeeded).await;
    let state = settle(&stack).await;
    assert_eq!(execution(&stack, "evt_succeeded11").status, RunStatus::Succeeded);
    let tenant = tenant_of(&state, "sub_subscription11");
    assert_eq!(tenant["status"], "ACTIVE");
    assert_eq!(len(&state, "services"), 1);
    let welcome = state["emails"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["subject"].as_str().unwrap().contains("is ready"))
        .count();
    assert_eq!(welcome, 1);
}

#[tokio::test]
async fn a_delayed_payment_that_fails_releases_the_name_and_tells_the_customer() {
    let (stack, _) = plain_stack();
    let (completed, _, failed) = delayed(13, "umbrella");
    deliver(&stack, &completed).await;
    settle(&stack).await;
    deliver(&stack, &failed).await;
    let state = settle(&stack).await;
    let run = execution(&stack, "evt_failed13");
    assert_eq!(run.error.as_deref(), Some("Tenancy.PaymentFailed"));
    assert_eq!(
        run.states_passed(),
        ["RecordSignup", "RejectUnpaidSignup", "GiveMoneyBack", "ProvisioningFailed"]
    );
    let tenant = tenant_of(&state, "sub_subscription13");
    assert_eq!(tenant["status"], "FAILED");
    assert_eq!(tenant["money_back"]["refunds"], json!([]), "nothing was paid, nothing refunded");
    let customer: Vec<_> =
        state["emails"].as_array().unwrap().iter().filter(|m| m["to"] == "dana@acme.example").collect();
    assert_eq!(customer.len(), 1);
    assert!(customer[0]["text"].as_str().unwrap().contains("did not go through"), "{}", customer[0]);
    // The name is free: someone else can have it.
    deliver(&stack, &checkout_from(14, "umbrella")).await;
    settle(&stack).await;
    assert_eq!(execution(&stack, "evt_checkout14").status, RunStatus::Succeeded);
}

#[tokio::test]
async fn compensation_whose_mails_ses_refuses_still_cleans_up_and_gives_the_money_back() {
    let mut adapters: Adapters = local_adapters();
    let mut faulty = FaultyLauncher::new(adapters.steps.launcher.clone());
    faulty.failures.store(1, Ordering::SeqCst);
    faulty.permanent = true;
    adapters.steps.launcher = Arc::new(faulty);
    adapters.steps.mailer = Arc::new(RefusingMailer);
    let stack = local_stack(NOW, adapters);
    stack.spawn_dispatcher();
    deliver(&stack, &checkout()).await;
    let state = settle(&stack).await;
    let run = execution(&stack, "evt_1QAcmeCheckoutDone");
    // Not CompensationFailed: the cleanup and the refund happened, only the mails did not.
    assert_eq!(run.error.as_deref(), Some("Tenancy.Rejected"));
    assert!(run.states_passed().ends_with(&[
        "Compensate".to_owned(),
        "GiveMoneyBack".to_owned(),
        "ProvisioningFailed".to_owned()
    ]));
    assert_eq!((len(&state, "services"), len(&state, "dns_records"), len(&state, "emails")), (0, 0, 0));
    assert_money_back(&stack, &state, "sub_1QAcmeR0b0t1csPro", 5000);
    let unsent = run.history.iter().filter(|e| e.detail.to_string().contains("MessageRejected")).count();
    assert!(unsent >= 2, "the refused mails are in the steps' outputs for the operator to see");
}

/// Route 53 takes five changes a second per account. The local zone holds
/// the stack to the same rate (scaled with the waits), so a burst of
/// signups meets the wall as it would in AWS: the throttled PublishDns is
/// retried by the state machine's own Retry, and every tenant goes ACTIVE.
#[tokio::test]
async fn a_burst_of_signups_meets_route53s_rate_and_every_tenant_still_goes_active() {
    use integration_tests::{instant_options, local_stack_with, step_config};
    use tenantctl::local::LocalOptions;
    // Waits at 1/100 of their length; 0.05 changes a simulated second is 5
    // a real one, so the burst's publishes queue behind the rate.
    let options = LocalOptions { time_scale: 0.01, dns_changes_per_second: 0.05, ..instant_options() };
    let clock: Arc<dyn tenancy::clock::Clock> = Arc::new(tenancy::clock::SystemClock);
    let stripe = Arc::new(
        tenancy::adapters::local::LocalStripe::open(None, "http://127.0.0.1:8787", clock.clone()).unwrap(),
    );
    let adapters = Adapters::local(step_config(), clock, &options, "http://127.0.0.1:8787", stripe).unwrap();
    let stack = local_stack_with(NOW, adapters, &options);
    stack.spawn_dispatcher();
    const SIGNUPS: u32 = 16;
    for n in 0..SIGNUPS {
        deliver(&stack, &checkout_from(n, &format!("burst{n}"))).await;
    }
    assert!(stack.wait_settled(Duration::from_secs(120)).await, "executions did not finish");
    let state = stack.state().await;
    let active = state["tenants"].as_array().unwrap().iter().filter(|t| t["status"] == "ACTIVE").count();
    assert_eq!(active, SIGNUPS as usize, "{}", state["tenants"]);
    assert_eq!(len(&state, "dns_records"), SIGNUPS as usize);
    let throttled = stack
        .workflows
        .executions()
        .iter()
        .filter(|run| serde_json::to_string(&run.history).unwrap().contains("Tenancy.Throttled"))
        .count();
    assert!(throttled > 0, "the burst met Route 53's rate");
}
