use tenancy::steps::cleanup::clean_up_stopped_execution;
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json};

/// Remove or finish what an execution that timed out or was aborted left behind.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let adapters = shell.converge_adapters().await?;
    let (ports, ctx) = (adapters.ports(), shell.context());
    serve(StepName::CleanUpExecution, async |input| {
        call_json(input, async |i| clean_up_stopped_execution(&ports, &ctx, i).await).await
    })
    .await
}
