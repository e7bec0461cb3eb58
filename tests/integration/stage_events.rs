//! `tenantctl --stage … events replay EVT_ID` against a stage on moto (its
//! state machines, its Stripe key in SSM) and the local Stripe stand-in
//! served over HTTP (the Events API).

use integration_tests::{moto_config, unique_name};
use tenancy::adapters::aws::sdk::sfn;
use tenantctl::stage::events::{ReplayError, replay, stripe_client};
use tenantctl::stage::{Stage, StageName};

use crate::doctor::{put, stack_with};

pub async fn state_machine(sdk: &tenancy::adapters::aws::sdk::aws_config::SdkConfig, name: &str) -> String {
    let definition = r#"{"StartAt": "Replayed", "States": {"Replayed": {"Type": "Pass", "End": true}}}"#;
    state_machine_of(sdk, name, definition).await
}

/// A state machine on `sdk`'s moto with this definition; its ARN.
async fn state_machine_of(
    sdk: &tenancy::adapters::aws::sdk::aws_config::SdkConfig,
    name: &str,
    definition: &str,
) -> String {
    sfn::Client::new(sdk)
        .create_state_machine()
        .name(name)
        .definition(definition)
        .role_arn("arn:aws:iam::123456789012:role/tenancy-states")
        .send()
        .await
        .expect("moto makes the state machine")
        .state_machine_arn
}

#[tokio::test]
async fn an_event_is_fetched_from_stripe_and_run_again_under_a_name_that_says_so() {
    // The Stripe stand-in, with a paid checkout's events.
    let stand_in = crate::stage_stripe::stand_in().await;
    stand_in.paid_checkout(&unique_name("replayed").replace('_', "-")).await;
    let base = stand_in.base.clone();
    let events = stand_in.stripe.events();
    let id_of =
        |kind: &str| events.iter().find(|e| e["type"] == kind).unwrap()["id"].as_str().unwrap().to_owned();

    // The stage on moto: its state machines, its test key in SSM.
    let sdk = moto_config().await;
    let key_parameter = format!("/{}/stripe-secret-key", unique_name("replay"));
    put(&key_parameter, "sk_test_51QReplayKey0000000000000001").await;
    let provision = state_machine(&sdk, &unique_name("provision")).await;
    let lifecycle = state_machine(&sdk, &unique_name("lifecycle")).await;
    let stack = stack_with(
        &[("StripeMode", "test".into()), ("StripeSecretKeyParameter", key_parameter.clone())],
        &[("ProvisionStateMachineArn", provision.clone()), ("LifecycleStateMachineArn", lifecycle.clone())],
    )
    .await;
    let stage = Stage::find(StageName::Test, &stack, &sdk).await.unwrap();
    let secrets = tenancy::adapters::aws::secret_store(&sdk);
    let stripe = stripe_client(&stage, &secrets, Some(&base)).await.unwrap();

    let checkout = id_of("checkout.session.completed");
    let first = replay(&stage, &stripe, &checkout, 1_800_000_000).await.unwrap();
    assert_eq!(first.execution_name, format!("{checkout}-replay-1800000000"));
    assert!(first.execution_arn.contains(":provision"), "{first:?}");
    let described =
        sfn::Client::new(&sdk).describe_execution().execution_arn(&first.execution_arn).send().await.unwrap();
    let input: serde_json::Value = serde_json::from_str(described.input().unwrap()).unwrap();
    assert_eq!(
        (input["event_id"].as_str(), input["event"]["id"].as_str()),
        (Some(checkout.as_str()), Some(checkout.as_str()))
    );
    // Again later: another name, the first kept.
    let again = replay(&stage, &stripe, &checkout, 1_800_000_060).await.unwrap();
    assert_ne!(again.execution_name, first.execution_name);
    let invoice = replay(&stage, &stripe, &id_of("invoice.paid"), 1_800_000_000).await.unwrap();
    assert!(invoice.execution_arn.contains(":lifecycle"), "{invoice:?}");

    let not_acted = replay(&stage, &stripe, &id_of("customer.created"), 1).await.unwrap_err();
    assert!(matches!(not_acted, ReplayError::NotActedOn { .. }), "{not_acted}");
    let missing = replay(&stage, &stripe, "evt_1QNoSuchEvent", 1).await.unwrap_err();
    assert_eq!(missing.to_string(), "Stripe has no event evt_1QNoSuchEvent (it keeps events for 30 days)");
    assert!(matches!(replay(&stage, &stripe, "cus_123", 1).await.unwrap_err(), ReplayError::BadId(_)));
    // A live key where the test stage's should be: refused before any call.
    put(&key_parameter, "sk_live_51QReplayKey0000000000000001").await;
    let refused = stripe_client(&stage, &secrets, Some(&base)).await.unwrap_err();
    assert!(refused.to_string().contains("live"), "{refused}");
    assert!(!refused.to_string().contains("51QReplayKey"), "the key is never shown: {refused}");

    stand_in.stop().await;
}

#[tokio::test]
async fn redrive_moves_every_dead_letter_back_to_the_queue_with_its_attributes() {
    use tenancy::adapters::aws::sdk::sqs;
    let sdk = moto_config().await;
    let client = sqs::Client::new(&sdk);
    let queue =
        client.create_queue().queue_name(unique_name("events")).send().await.unwrap().queue_url.unwrap();
    let dead =
        client.create_queue().queue_name(unique_name("events-dlq")).send().await.unwrap().queue_url.unwrap();
    for n in 0..13 {
        let kind = sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value("invoice.paid")
            .build()
            .unwrap();
        client
            .send_message()
            .queue_url(&dead)
            .message_body(format!(r#"{{"id":"evt_dead{n}"}}"#))
            .message_attributes("event_type", kind)
            .send()
            .await
            .unwrap();
    }
    let stack = stack_with(
        &[("StripeMode", "test".into())],
        &[("StripeEventQueueUrl", queue.clone()), ("StripeEventDeadLetterQueueUrl", dead.clone())],
    )
    .await;
    let stage = Stage::find(StageName::Test, &stack, &sdk).await.unwrap();
    let moved = tenantctl::stage::redrive::redrive_dead_letters(&stage).await.unwrap();
    assert_eq!(moved.moved, 13, "more than one batch of ten");
    assert_eq!(tenantctl::stage::redrive::redrive_dead_letters(&stage).await.unwrap().moved, 0);
    let mut bodies = Vec::new();
    loop {
        let got = client
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        if got.messages().is_empty() {
            break;
        }
        for message in got.messages() {
            assert_eq!(
                message.message_attributes().unwrap()["event_type"].string_value(),
                Some("invoice.paid")
            );
            bodies.push(message.body().unwrap().to_owned());
            client
                .delete_message()
                .queue_url(&queue)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 13, "each dead letter back once");
}

/// A moto server of the test's own that really runs state machines
/// (`execute_state_machine`, which would change every other test's
/// executions on the shared one).
async fn executing_moto() -> (integration_tests::OwnMoto, tenancy::adapters::aws::sdk::aws_config::SdkConfig)
{
    let moto = integration_tests::OwnMoto::start();
    moto.configure(serde_json::json!({"stepfunctions": {"execute_state_machine": true}})).await;
    let sdk = moto.config().await;
    (moto, sdk)
}

/// A stage on `sdk`'s moto whose provisioning and lifecycle state machines
/// have these definitions; their ARNs, in that order.
async fn stage_running(
    sdk: &tenancy::adapters::aws::sdk::aws_config::SdkConfig,
    provision: &str,
    lifecycle: &str,
) -> (Stage, [String; 2]) {
    let machines = [
        state_machine_of(sdk, "tenancy-provision", provision).await,
        state_machine_of(sdk, "tenancy-lifecycle", lifecycle).await,
    ];
    let outputs = [
        ("ProvisionStateMachineArn", machines[0].clone()),
        ("LifecycleStateMachineArn", machines[1].clone()),
    ];
    let stack = crate::doctor::stack_on(sdk, &[("StripeMode", "test".into())], &outputs).await;
    (Stage::find(StageName::Test, &stack, sdk).await.unwrap(), machines)
}

fn unix_now() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs())
        .unwrap()
}

/// A state machine whose executions fail as asked: `{"designed": true}` in
/// its Fail state (a decided outcome), anything else in a state that breaks
/// (what a Task out of retries looks like from outside).
const FAILING: &str = r#"{"StartAt": "Which", "States": {
    "Which": {"Type": "Choice", "Choices": [{"Variable": "$.designed", "BooleanEquals": true, "Next": "Refused"}], "Default": "Broken"},
    "Refused": {"Type": "Fail", "Error": "Tenancy.SubdomainTaken", "Cause": "taken"},
    "Broken": {"Type": "Pass", "Parameters": {"x.$": "$.missing"}, "End": true}}}"#;

#[tokio::test]
async fn redrive_takes_executions_that_failed_outside_a_fail_state_and_leaves_decided_outcomes() {
    use tenantctl::stage::redrive::{ExecutionOutcome, redrive_executions, render_executions};
    let (_moto, sdk) = executing_moto().await;
    let (stage, machines) = stage_running(&sdk, FAILING, FAILING).await;
    let client = sfn::Client::new(&sdk);
    for (name, designed) in [("evt_taken", true), ("evt_broken", false)] {
        client
            .start_execution()
            .state_machine_arn(&machines[0])
            .name(name)
            .input(serde_json::json!({ "designed": designed }).to_string())
            .send()
            .await
            .unwrap();
    }
    let now = unix_now();
    // moto runs them in the background: both stopped before redrive looks.
    for _ in 0..200 {
        let running = client
            .list_executions()
            .state_machine_arn(&machines[0])
            .status_filter(sfn::types::ExecutionStatus::Running)
            .send()
            .await
            .unwrap();
        if running.executions().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let runs = redrive_executions(&stage, now).await.unwrap();
    let text = render_executions(&runs);
    let by_name = |name: &str| runs.iter().find(|run| run.name == name).unwrap_or_else(|| panic!("{text}"));
    let taken = by_name("evt_taken");
    assert_eq!(taken.outcome, ExecutionOutcome::EndedAsDesigned { state: "Refused".into() }, "{text}");
    assert_eq!(taken.error.as_deref(), Some("Tenancy.SubdomainTaken"));
    // moto has no RedriveExecution: the call is made and its refusal shown.
    let broken = by_name("evt_broken");
    assert!(matches!(broken.outcome, ExecutionOutcome::NotRedriven { .. }), "{text}");
    assert_eq!((broken.workflow, broken.error.as_deref()), ("provision", Some("States.Runtime")));
    assert!(text.contains("✘ evt_broken (provision, States.Runtime): not redriven:"), "{text}");
    assert_eq!(text.lines().count(), 2, "one line each: {text}");
    // Nothing older than Step Functions' 14 days is looked at.
    let later = now + tenantctl::stage::redrive::REDRIVABLE_SECONDS + 60;
    assert!(redrive_executions(&stage, later).await.unwrap().is_empty());
}

#[tokio::test]
async fn reconcile_calls_an_execution_stuck_after_two_hours_unless_it_waits_in_a_wait_state() {
    use tenantctl::stage::reconcile::{FindingKind, Repair, STUCK_AFTER_SECONDS, stuck_executions};
    let (_moto, sdk) = executing_moto().await;
    let queue = tenancy::adapters::aws::sdk::sqs::Client::new(&sdk)
        .create_queue()
        .queue_name("task-tokens")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    // A grace period (waits by design), and a Task whose answer never comes.
    let waits = r#"{"StartAt": "WaitGracePeriod", "States": {"WaitGracePeriod": {"Type": "Wait", "Seconds": 86400, "End": true}}}"#;
    let hangs = serde_json::json!({"StartAt": "Hangs", "States": {"Hangs": {"Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": queue, "MessageBody": {"token.$": "$$.Task.Token"}}, "End": true}}})
    .to_string();
    let (stage, machines) = stage_running(&sdk, waits, &hangs).await;
    let client = sfn::Client::new(&sdk);
    for (machine, name) in machines.iter().zip(["evt_tenancy-provision", "evt_tenancy-lifecycle"]) {
        client.start_execution().state_machine_arn(machine).name(name).send().await.unwrap();
    }
    let now = unix_now();
    // The Task reaches its wait for the token in the background.
    let mut stuck = Vec::new();
    for _ in 0..100 {
        stuck = stuck_executions(&stage, now + STUCK_AFTER_SECONDS + 3600).await.unwrap();
        if stuck.iter().any(|f| f.detail.contains("TaskSubmitted")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(stuck.len(), 1, "{}", tenantctl::stage::reconcile::render(&stuck));
    assert_eq!((stuck[0].kind, &stuck[0].repair), (FindingKind::Stuck, &Repair::ByHand));
    assert_eq!(stuck[0].subject, "evt_tenancy-lifecycle");
    assert!(stuck[0].detail.starts_with("running for 3 h"), "{}", stuck[0].detail);
    assert!(stuck[0].fix.contains("console.aws.amazon.com/states/home?region=us-east-1"), "{}", stuck[0].fix);
    // Younger than two hours, nothing is stuck.
    assert!(stuck_executions(&stage, now + 60).await.unwrap().is_empty());
}
