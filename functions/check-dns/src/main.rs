use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json, provision};

/// Whether a Route 53 change is INSYNC.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let dns = aws::dns_publisher(shell.sdk(), &ProcessEnv)?;
    serve(StepName::CheckDns, async |input| {
        call_json(input, async |i| provision::check_dns(&dns, i).await).await
    })
    .await
}
