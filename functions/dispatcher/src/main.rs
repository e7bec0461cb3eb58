use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;

/// Starts one Step Functions execution per queued Stripe event; throttled
/// starts go back to the queue alone (partial batch response).
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tenancy::telemetry::init_json_logs();
    tenancy::domain::Catalog::for_stage(tenancy::config::stripe_mode(&ProcessEnv)?)?;
    let sdk = aws::sdk_config(None).await;
    let starter = aws::workflow_starter(&sdk, &ProcessEnv)?;
    tenancy::dispatch::serve(&starter).await
}
