use tenancy::adapters::aws;
use tenancy::clock::SystemClock;
use tenancy::config::ProcessEnv;
use tenancy::inbound::address::TenantMailAddresses;
use tenancy::inbound::forward::{Forwarder, serve};

/// SES receiving's Lambda action, after its S3 action stored the message:
/// forwarded to the customer of each tenant it was addressed to, once;
/// mail to no tenant's address is dropped and counted.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tenancy::telemetry::init_json_logs();
    let addresses = TenantMailAddresses::from_lookup(&ProcessEnv)?;
    let sdk = aws::sdk_config(None).await;
    let store = aws::tenant_store(&sdk, &ProcessEnv)?;
    let received = aws::received_mail(&sdk, &ProcessEnv)?;
    let mailer = aws::mailer(&sdk, &ProcessEnv)?;
    let sender = mailer.sender().clone();
    let clock = SystemClock;
    serve(&Forwarder {
        store: &store,
        received: &received,
        mailer: &mailer,
        clock: &clock,
        addresses: &addresses,
        sender: &sender,
    })
    .await
}
