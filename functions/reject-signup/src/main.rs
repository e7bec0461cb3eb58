use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json, provision};

/// Record a checkout that cannot become a tenant and tell the operator.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let store = aws::tenant_store(shell.sdk(), &ProcessEnv)?;
    let mailer = aws::mailer(shell.sdk(), &ProcessEnv)?;
    let ctx = shell.context();
    serve(StepName::RejectSignup, async |input| {
        call_json(input, async |i| provision::reject_signup(&store, &mailer, &ctx, i).await).await
    })
    .await
}
