use tenancy::adapters::aws;
use tenancy::clock::SystemClock;
use tenancy::config::ProcessEnv;
use tenancy::dispatch::Dispatcher;

/// Starts one Step Functions execution per queued Stripe event; throttled
/// starts go back to the queue alone (partial batch response). Events about
/// subscriptions the business sold some other way are recorded, not started.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tenancy::telemetry::init_json_logs();
    tenancy::config::stripe_mode(&ProcessEnv)?;
    tenancy::domain::Catalog::embedded()?;
    let sdk = aws::sdk_config(None).await;
    let starter = aws::workflow_starter(&sdk, &ProcessEnv)?;
    let store = aws::tenant_store(&sdk, &ProcessEnv)?;
    tenancy::dispatch::serve(&Dispatcher { starter: &starter, unmatched: &store, clock: &SystemClock }).await
}
