use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json, lifecycle};

/// Release a cancelled tenant's subdomain after its grace period.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let store = aws::tenant_store(shell.sdk(), &ProcessEnv)?;
    let ctx = shell.context();
    serve(StepName::ReleaseSubdomain, async |input| {
        call_json(input, async |i| lifecycle::release_subdomain(&store, &ctx, i).await).await
    })
    .await
}
