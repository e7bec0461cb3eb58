//! `tenantctl --stage …` finds a deployed stage from its CloudFormation
//! stack, here a stack on moto's server carrying the template's parameter
//! and output names.

use integration_tests::{moto_config, unique_name};
use serde_json::json;
use tenantctl::stage::{Stage, StageError, StageName};

/// Creates a stack on moto with `StripeMode` = `mode` and the outputs the
/// stage commands read; returns its name.
pub async fn stage_stack(mode: &str) -> String {
    stage_stack_with(mode, &[]).await
}

/// [`stage_stack`] with these parameter values besides `StripeMode` (the
/// SSM parameter names a test owns, so tests in parallel share nothing).
pub async fn stage_stack_with(mode: &str, parameters: &[(&str, &str)]) -> String {
    let sdk = moto_config().await;
    let name = unique_name("tenancy-stage");
    let template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": {
            "StripeMode": {"Type": "String"},
            "StripeSecretKeyParameter": {"Type": "String", "Default": "/tenancy/test/stripe-secret-key"},
            "StripeWebhookSecretParameter": {"Type": "String", "Default": "/tenancy/test/stripe-webhook-secrets"},
        },
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": format!("{name}-events")}}},
        "Outputs": {
            "StripeWebhookUrl": {"Value": "https://abc123.execute-api.us-east-1.amazonaws.com/stripe/webhook"},
            "StripeEventQueueUrl": {"Value": {"Ref": "Queue"}},
        },
    });
    aws_sdk_cloudformation::Client::new(&sdk)
        .create_stack()
        .stack_name(&name)
        .template_body(template.to_string())
        .set_parameters(Some(
            [("StripeMode", mode)]
                .iter()
                .chain(parameters)
                .map(|(key, value)| {
                    aws_sdk_cloudformation::types::Parameter::builder()
                        .parameter_key(*key)
                        .parameter_value(*value)
                        .build()
                })
                .collect(),
        ))
        .send()
        .await
        .expect("moto creates the stack");
    name
}

#[tokio::test]
async fn a_stage_is_found_from_its_stack_outputs_and_parameters() {
    let stack = stage_stack("test").await;
    let stage = Stage::find(StageName::Test, &stack, &moto_config().await).await.unwrap();
    assert_eq!(
        stage.output("StripeWebhookUrl").unwrap(),
        "https://abc123.execute-api.us-east-1.amazonaws.com/stripe/webhook"
    );
    assert!(stage.output("StripeEventQueueUrl").unwrap().contains(&format!("{stack}-events")));
    assert_eq!(stage.parameter("StripeSecretKeyParameter").unwrap(), "/tenancy/test/stripe-secret-key");
    let missing = stage.output("AlarmTopicArn").unwrap_err();
    assert_eq!(
        missing.to_string(),
        format!("stack `{stack}` has no output `AlarmTopicArn`: deploy the current template")
    );
}

#[tokio::test]
async fn a_wrong_stage_or_a_missing_stack_is_one_clear_line() {
    let sdk = moto_config().await;
    let test_stack = stage_stack("test").await;
    let error = Stage::find(StageName::Live, &test_stack, &sdk).await.unwrap_err();
    assert!(matches!(error, StageError::ModeMismatch { .. }), "{error}");
    assert!(error.to_string().contains("StripeMode=test, not the live stage's live"), "{error}");
    let error = Stage::find(StageName::Test, "tenancy-nowhere", &sdk).await.unwrap_err();
    assert!(matches!(error, StageError::NoStack(_)), "{error}");
    assert!(StageName::parse("prod").unwrap_err().to_string().contains("expected test or live"));
}
