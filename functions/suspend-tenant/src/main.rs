use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json, lifecycle};

/// Scale a tenant's service to zero.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let launcher = aws::tenant_launcher(shell.sdk(), &ProcessEnv)?;
    serve(StepName::SuspendTenant, async |input| {
        call_json(input, async |i| lifecycle::suspend_tenant(&launcher, i).await).await
    })
    .await
}
