use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json, provision};

/// Start the tenant's ECS service behind the shared load balancer.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let store = aws::tenant_store(shell.sdk(), &ProcessEnv)?;
    let launcher = aws::tenant_launcher(shell.sdk(), &ProcessEnv)?;
    // The app's status token is part of its environment.
    let status = shell.status_tokens().await?;
    let ctx = shell.context();
    serve(StepName::LaunchTenant, async |input| {
        call_json(input, async |i| provision::launch_tenant(&store, &launcher, &status, &ctx, i).await).await
    })
    .await
}
