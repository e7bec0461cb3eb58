//! AWS adapters, built on the AWS SDK for Rust.

mod sqs;
mod ssm;

pub use sqs::SqsEventQueue;
pub use ssm::SsmSecretStore;

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The SDK configuration: the default chain in Lambda, or a fixed endpoint
/// (moto's server, LocalStack) for local runs and tests.
pub async fn sdk_config(endpoint: Option<&str>) -> SdkConfig {
    // Bounded calls: a Lambda that hangs on AWS answers nobody. The SDK's
    // standard retry policy still applies within these per-attempt limits.
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(5))
        .build();
    let loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts);
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
