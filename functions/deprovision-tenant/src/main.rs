use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json, lifecycle};

/// Remove a cancelled tenant's service, rule, target group and DNS record.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let store = aws::tenant_store(shell.sdk(), &ProcessEnv)?;
    let launcher = aws::tenant_launcher(shell.sdk(), &ProcessEnv)?;
    let dns = aws::dns_publisher(shell.sdk(), &ProcessEnv)?;
    let ctx = shell.context();
    serve(StepName::DeprovisionTenant, async |input| {
        call_json(input, async |i| lifecycle::deprovision_tenant(&store, &launcher, &dns, &ctx, i).await)
            .await
    })
    .await
}
