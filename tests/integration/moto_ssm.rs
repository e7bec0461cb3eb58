//! Webhook secrets from SSM Parameter Store on moto's server.

use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::ParameterType;
use integration_tests::{moto_config, unique_name};
use tenancy::adapters::aws::SsmSecretStore;
use tenancy::config::{ConfigError, STRIPE_MODE, STRIPE_WEBHOOK_SECRET_PARAM, WebhookConfig};
use tenancy::ports::SecretStoreError;
use tenancy::stripe::WebhookSecret;

fn config_for(parameter: &str) -> WebhookConfig {
    let parameter = parameter.to_owned();
    WebhookConfig::from_lookup(&move |var: &str| match var {
        STRIPE_MODE => Some("test".to_owned()),
        STRIPE_WEBHOOK_SECRET_PARAM => Some(parameter.clone()),
        _ => None,
    })
    .unwrap()
}

#[tokio::test]
async fn rotating_secrets_are_read_from_a_secure_string_at_cold_start() {
    let client = Client::new(&moto_config().await);
    let name = format!("/tenancy/test/{}", unique_name("stripe-webhook-secrets"));
    client
        .put_parameter()
        .name(&name)
        .r#type(ParameterType::SecureString)
        .value("whsec_current_secret_01,whsec_previous_secret_01")
        .send()
        .await
        .unwrap();

    let verifier = config_for(&name).verifier(&SsmSecretStore::new(client)).await.unwrap();
    let body = br#"{"id":"evt_1"}"#;
    let previous = WebhookSecret::parse("whsec_previous_secret_01").unwrap();
    assert!(verifier.verify(&previous.sign_header(100, body), body, 100).is_ok());
    let stranger = WebhookSecret::parse("whsec_someone_else_01").unwrap();
    assert!(verifier.verify(&stranger.sign_header(100, body), body, 100).is_err());
}

#[tokio::test]
async fn a_missing_parameter_is_a_clear_startup_error() {
    let client = Client::new(&moto_config().await);
    let name = format!("/tenancy/test/{}", unique_name("absent"));
    let error = config_for(&name).verifier(&SsmSecretStore::new(client)).await.unwrap_err();
    assert!(
        matches!(&error, ConfigError::SecretStore(SecretStoreError::NotFound { name: n }) if *n == name),
        "{error:?}"
    );
}
