use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json, lifecycle};

/// Record an event that could not be applied and tell the operator.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let store = aws::tenant_store(shell.sdk(), &ProcessEnv)?;
    let mailer = aws::mailer(shell.sdk(), &ProcessEnv)?;
    let ctx = shell.context();
    serve(StepName::ReportToOperator, async |input| {
        call_json(input, async |i| lifecycle::report_to_operator(&store, &mailer, &ctx, i).await).await
    })
    .await
}
