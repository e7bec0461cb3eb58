use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json, lifecycle};

/// Send the mail about a subscription change, once.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let store = aws::tenant_store(shell.sdk(), &ProcessEnv)?;
    let mailer = aws::mailer(shell.sdk(), &ProcessEnv)?;
    let portal = shell.stripe().await?;
    let ctx = shell.context();
    serve(StepName::SendLifecycleMail, async |input| {
        call_json(input, async |i| lifecycle::send_lifecycle_mail(&store, &mailer, &portal, &ctx, i).await)
            .await
    })
    .await
}
