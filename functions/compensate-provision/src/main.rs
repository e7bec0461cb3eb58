use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json, provision};

/// Remove what a failed provisioning made, mark FAILED, tell customer and operator.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let store = aws::tenant_store(shell.sdk(), &ProcessEnv)?;
    let launcher = aws::tenant_launcher(shell.sdk(), &ProcessEnv)?;
    let dns = aws::dns_publisher(shell.sdk(), &ProcessEnv)?;
    let mailer = aws::mailer(shell.sdk(), &ProcessEnv)?;
    let ctx = shell.context();
    serve(StepName::CompensateProvision, async |input| {
        call_json(input, async |i| provision::compensate(&store, &launcher, &dns, &mailer, &ctx, i).await)
            .await
    })
    .await
}
