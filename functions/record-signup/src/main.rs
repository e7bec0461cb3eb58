use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json, provision};

/// Claim the subdomain and record the tenant as PROVISIONING.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let store = aws::tenant_store(shell.sdk(), &ProcessEnv)?;
    let key = shell.password_key().await?;
    let ctx = shell.context();
    serve(StepName::RecordSignup, async |input| {
        call_json(input, async |i| provision::record_signup(&store, &key, &ctx, i).await).await
    })
    .await
}
