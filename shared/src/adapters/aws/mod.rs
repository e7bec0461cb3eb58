//! AWS adapters, built on the AWS SDK for Rust.

mod sqs;
mod ssm;

pub use sqs::SqsEventQueue;
pub use ssm::SsmSecretStore;

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The SDK configuration: the default chain in Lambda, or a fixed endpoint
/// (moto's server, LocalStack) for local runs and tests.
pub async fn sdk_config(endpoint: Option<&str>) -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest());
    match endpoint {
        None => loader.load().await,
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
