use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json, money_back};

/// Cancel the subscription and refund a checkout that has no tenant; tell both.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let store = aws::tenant_store(shell.sdk(), &ProcessEnv)?;
    let mailer = aws::mailer(shell.sdk(), &ProcessEnv)?;
    let stripe = shell.stripe().await?;
    let ctx = shell.context();
    serve(StepName::GiveMoneyBack, async |input| {
        call_json(input, async |i| money_back::give_money_back(&store, &stripe, &mailer, &ctx, i).await).await
    })
    .await
}
