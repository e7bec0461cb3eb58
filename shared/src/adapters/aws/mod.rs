//! AWS adapters, built on the AWS SDK for Rust.

pub mod dynamodb;
pub mod ecs;
pub mod elb;
mod error;
mod https;
pub mod launcher;
pub mod pool;
pub mod route53;
pub mod s3;
pub mod sesv2;
pub mod sfn;
mod sqs;
mod ssm;

pub use dynamodb::DynamoTenantStore;
pub use https::{OS_CA_BUNDLES, shared_https_client};
pub use launcher::{EcsTenantLauncher, LauncherConfig};
pub use route53::Route53Dns;
pub use s3::S3ReceivedMail;
pub use sesv2::SesMailer;
pub use sfn::StepFunctionsStarter;
pub use sqs::SqsEventQueue;
pub use ssm::SsmSecretStore;

/// The AWS SDK crates the adapters are built on, for code that needs the
/// same clients and types without depending on them itself (tenantctl).
pub mod sdk {
    pub use aws_config;
    pub use aws_sdk_dynamodb as dynamodb;
    pub use aws_sdk_ecs as ecs;
    pub use aws_sdk_elasticloadbalancingv2 as elbv2;
    pub use aws_sdk_route53 as route53;
    pub use aws_sdk_s3 as s3;
    pub use aws_sdk_sesv2 as sesv2;
    pub use aws_sdk_sfn as sfn;
    pub use aws_sdk_sqs as sqs;
    pub use aws_sdk_ssm as ssm;
}

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::config::{ConfigError, Lookup};

/// The SDK configuration: the default chain in Lambda, or a fixed endpoint
/// (moto's server, LocalStack) for local runs and tests.
pub async fn sdk_config(endpoint: Option<&str>) -> SdkConfig {
    // Bounded calls: a Lambda that hangs on AWS answers nobody. The SDK's
    // standard retry policy still applies within these per-attempt limits.
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(5))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts);
    match shared_https_client() {
        Ok(client) => loader = loader.http_client(client),
        // Each client then makes its own, as the SDK does by default.
        Err(error) => tracing::warn!(%error, "shared HTTPS client not built"),
    }
    match endpoint {
        None => {
            if let Some(credentials) = environment_credentials(&crate::config::ProcessEnv) {
                loader = loader.credentials_provider(credentials);
            }
            loader.load().await
        }
        Some(url) => {
            // Emulators accept any credentials; don't look for real ones.
            let credentials = aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "emulator");
            loader
                .endpoint_url(url)
                .region(Region::new("us-east-1"))
                .credentials_provider(credentials)
                .load()
                .await
        }
    }
}

/// The credentials Lambda's runtime puts in the environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), read
/// as the SDK's environment provider reads them. They are the default
/// chain's first link, so with them the chain answers the same; but the
/// chain builds its other links at load (an STS client, an IMDS client, an
/// ECS provider), about 3 % of a cold start's CPU (BENCHMARKS.md, section 8).
/// None: the default chain looks further (a profile, SSO, a role).
fn environment_credentials(env: &dyn Lookup) -> Option<aws_sdk_sqs::config::Credentials> {
    let session_token = env.get("AWS_SESSION_TOKEN").map(|token| token.trim().to_owned());
    Some(aws_sdk_sqs::config::Credentials::new(
        env.get("AWS_ACCESS_KEY_ID")?,
        env.get("AWS_SECRET_ACCESS_KEY")?,
        session_token,
        None,
        "EnvironmentVariable",
    ))
}

// Builders for the Lambda shells: an SDK client and the adapter's typed
// configuration from the environment, in one call each.

pub fn tenant_store(sdk: &SdkConfig, env: &dyn Lookup) -> Result<DynamoTenantStore, ConfigError> {
    DynamoTenantStore::from_lookup(aws_sdk_dynamodb::Client::new(sdk), env)
}

pub fn tenant_launcher(sdk: &SdkConfig, env: &dyn Lookup) -> Result<EcsTenantLauncher, ConfigError> {
    let config = LauncherConfig::from_lookup(env)?;
    Ok(EcsTenantLauncher::new(
        aws_sdk_ecs::Client::new(sdk),
        aws_sdk_elasticloadbalancingv2::Client::new(sdk),
        config,
    ))
}

pub fn routing_capacity(sdk: &SdkConfig, env: &dyn Lookup) -> Result<pool::PoolCapacity, ConfigError> {
    pool::PoolCapacity::from_lookup(aws_sdk_elasticloadbalancingv2::Client::new(sdk), env)
}

pub fn dns_publisher(sdk: &SdkConfig, env: &dyn Lookup) -> Result<Route53Dns, ConfigError> {
    Route53Dns::from_lookup(aws_sdk_route53::Client::new(sdk), env)
}

pub fn mailer(sdk: &SdkConfig, env: &dyn Lookup) -> Result<SesMailer, ConfigError> {
    SesMailer::from_lookup(aws_sdk_sesv2::Client::new(sdk), env)
}

/// Received mail where the receipt rule stores it, and the raw sender that
/// forwards it.
pub fn received_mail(sdk: &SdkConfig, env: &dyn Lookup) -> Result<S3ReceivedMail, ConfigError> {
    S3ReceivedMail::from_lookup(s3_client(sdk), env)
}

/// An S3 client. An emulator's endpoint (moto, LocalStack) serves buckets
/// by path, not as `{bucket}.host` names; AWS's own endpoints keep virtual
/// hosts.
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let config =
        aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some()).build();
    aws_sdk_s3::Client::from_conf(config)
}

pub fn secret_store(sdk: &SdkConfig) -> SsmSecretStore {
    SsmSecretStore::new(aws_sdk_ssm::Client::new(sdk))
}

pub fn workflow_starter(sdk: &SdkConfig, env: &dyn Lookup) -> Result<StepFunctionsStarter, ConfigError> {
    StepFunctionsStarter::from_lookup(aws_sdk_sfn::Client::new(sdk), env)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        move |var: &str| vars.get(var).cloned()
    }

    #[test]
    fn lambdas_environment_credentials_are_used_as_they_are() {
        let lambda = env(&[
            ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", " token \n"),
        ]);
        let credentials = environment_credentials(&lambda).unwrap();
        assert_eq!(credentials.access_key_id(), "ASIAEXAMPLE");
        assert_eq!(credentials.secret_access_key(), "secret");
        assert_eq!(credentials.session_token(), Some("token"));
        assert_eq!(credentials.expiry(), None);
    }

    #[test]
    fn without_a_key_and_its_secret_the_default_chain_looks_further() {
        assert!(environment_credentials(&env(&[])).is_none());
        assert!(environment_credentials(&env(&[("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")])).is_none());
        assert!(environment_credentials(&env(&[("AWS_SECRET_ACCESS_KEY", "secret")])).is_none());
    }
}
