use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json, lifecycle};

/// Re-read the subscription an event is about; record the desired tenant.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let store = aws::tenant_store(shell.sdk(), &ProcessEnv)?;
    let stripe = shell.stripe().await?;
    let ctx = shell.context();
    serve(StepName::ApplySubscription, async |input| {
        call_json(input, async |i| lifecycle::apply_subscription(&store, &stripe, &ctx, i).await).await
    })
    .await
}
