use lambda_runtime::{LambdaEvent, service_fn};
use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::reconcile::{Places, scheduled};
use tenancy::steps::lambda::StepShell;

/// Daily (EventBridge Scheduler): tenant records ↔ Stripe ↔ infrastructure;
/// each finding is logged for the drift alarm's metric filter.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let store = aws::tenant_store(shell.sdk(), &ProcessEnv)?;
    let stripe = shell.stripe().await?;
    let places = Places::from_lookup(&ProcessEnv)?;
    let ctx = shell.context();
    lambda_runtime::run(service_fn(async |_: LambdaEvent<serde_json::Value>| {
        let findings = scheduled(shell.sdk(), &places, &store, &stripe, ctx.catalog).await?;
        Ok::<_, lambda_runtime::Error>(serde_json::json!({ "findings": findings }))
    }))
    .await
}
