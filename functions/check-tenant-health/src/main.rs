use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json, provision};

/// One health check of a tenant's service.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let launcher = aws::tenant_launcher(shell.sdk(), &ProcessEnv)?;
    serve(StepName::CheckTenantHealth, async |input| {
        call_json(input, async |i| provision::check_tenant_health(&launcher, i).await).await
    })
    .await
}
