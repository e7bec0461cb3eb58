use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json, provision};

/// Publish the tenant's Route 53 alias record.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let store = aws::tenant_store(shell.sdk(), &ProcessEnv)?;
    let dns = aws::dns_publisher(shell.sdk(), &ProcessEnv)?;
    let ctx = shell.context();
    serve(StepName::PublishDns, async |input| {
        call_json(input, async |i| provision::publish_dns(&store, &dns, &ctx, i).await).await
    })
    .await
}
