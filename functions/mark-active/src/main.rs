use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json, provision};

/// Mark the tenant ACTIVE.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let store = aws::tenant_store(shell.sdk(), &ProcessEnv)?;
    let ctx = shell.context();
    serve(StepName::MarkActive, async |input| {
        call_json(input, async |i| provision::mark_active(&store, ctx.clock, i).await).await
    })
    .await
}
