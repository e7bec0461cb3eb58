use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json, provision};

/// Send the welcome mail with the temporary password, once.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let store = aws::tenant_store(shell.sdk(), &ProcessEnv)?;
    let mailer = aws::mailer(shell.sdk(), &ProcessEnv)?;
    let key = shell.password_key().await?;
    let ctx = shell.context();
    serve(StepName::SendWelcomeMail, async |input| {
        call_json(input, async |i| provision::send_welcome_mail(&store, &mailer, &key, &ctx, i).await).await
    })
    .await
}
