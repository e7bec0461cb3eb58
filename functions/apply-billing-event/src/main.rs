use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json, lifecycle};

/// Apply a subscription or invoice event to its tenant, in order.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let store = aws::tenant_store(shell.sdk(), &ProcessEnv)?;
    let ctx = shell.context();
    serve(StepName::ApplyBillingEvent, async |input| {
        call_json(input, async |i| lifecycle::apply_billing_event(&store, &ctx, i).await).await
    })
    .await
}
