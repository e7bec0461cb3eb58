//! Starting provisioning executions on Step Functions (moto's server).

use aws_sdk_sfn::Client;
use integration_tests::{moto_config, unique_name};
use serde_json::json;
use tenancy::adapters::aws::StepFunctionsStarter;
use tenancy::adapters::aws::sfn::{LIFECYCLE_STATE_MACHINE_ARN, PROVISION_STATE_MACHINE_ARN, execution_arn};
use tenancy::ports::{StartOutcome, Workflow, WorkflowError, WorkflowStarter};
use tenancy::stripe::StripeEventId;

const DEFINITION: &str = r#"{"StartAt":"Record","States":{"Record":{"Type":"Pass","End":true}}}"#;

async fn state_machine(client: &Client) -> String {
    let created = client
        .create_state_machine()
        .name(unique_name("provision"))
        .definition(DEFINITION)
        .role_arn("arn:aws:iam::123456789012:role/tenancy-provision")
        .send()
        .await
        .unwrap();
    created.state_machine_arn().to_owned()
}

fn event_id() -> StripeEventId {
    StripeEventId::parse(&format!("evt_{}", unique_name("start").replace('-', "_"))).unwrap()
}

#[tokio::test]
async fn an_event_starts_one_execution_named_after_it() {
    let client = Client::new(&moto_config().await);
    let machine = state_machine(&client).await;
    let starter = StepFunctionsStarter::from_lookup(client.clone(), &|var: &str| {
        // One machine stands in for both workflows here.
        (var == PROVISION_STATE_MACHINE_ARN || var == LIFECYCLE_STATE_MACHINE_ARN).then(|| machine.clone())
    })
    .unwrap();
    let event = event_id();
    let input =
        json!({"event_id": event.as_str(), "type": "checkout.session.completed", "created": 1763800000});

    assert_eq!(starter.start(Workflow::Provision, &event, &input).await.unwrap(), StartOutcome::Started);
    // Redelivered, while running or after: the same execution.
    assert_eq!(
        starter.start(Workflow::Provision, &event, &input).await.unwrap(),
        StartOutcome::AlreadyStarted
    );
    let other_input = json!({"event_id": event.as_str(), "redelivery": true});
    assert_eq!(
        starter.start(Workflow::Provision, &event, &other_input).await.unwrap(),
        StartOutcome::AlreadyStarted
    );

    let listed = client.list_executions().state_machine_arn(&machine).send().await.unwrap();
    assert_eq!(listed.executions().len(), 1);
    let arn = execution_arn(&machine, event.as_str()).unwrap();
    assert_eq!(listed.executions()[0].execution_arn(), arn);
    let described = client.describe_execution().execution_arn(&arn).send().await.unwrap();
    assert_eq!(described.name(), Some(event.as_str()));
    let stored: serde_json::Value = serde_json::from_str(described.input().unwrap()).unwrap();
    assert_eq!(stored, input);
}

#[tokio::test]
async fn starting_a_missing_state_machine_is_rejected() {
    let client = Client::new(&moto_config().await);
    let missing = format!("arn:aws:states:us-east-1:123456789012:stateMachine:{}", unique_name("absent"));
    let starter = StepFunctionsStarter::new(client, missing.clone(), missing);
    let error = starter.start(Workflow::Provision, &event_id(), &json!({})).await.unwrap_err();
    assert!(
        matches!(&error, WorkflowError::Rejected(reason) if reason.contains("StateMachineDoesNotExist")),
        "{error:?}"
    );
}
