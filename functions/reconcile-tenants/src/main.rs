use lambda_runtime::{LambdaEvent, service_fn};
use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::reconcile::{Places, scheduled, state_machines};
use tenancy::steps::lambda::StepShell;

/// Daily (EventBridge Scheduler): tenant records ↔ Stripe ↔ infrastructure,
/// and stuck executions; each finding is logged for the drift alarm's
/// metric filter.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let store = aws::tenant_store(shell.sdk(), &ProcessEnv)?;
    let stripe = shell.stripe().await?;
    let places = Places::from_lookup(&ProcessEnv)?;
    let watched = state_machines(&ProcessEnv)?;
    let ctx = shell.context();
    lambda_runtime::run(service_fn(async |_: LambdaEvent<serde_json::Value>| {
        let now = ctx.clock.now_unix();
        let findings = scheduled(shell.sdk(), &places, &store, &stripe, ctx.catalog, &watched, now).await?;
        Ok::<_, lambda_runtime::Error>(serde_json::json!({ "findings": findings }))
    }))
    .await
}
