use tenancy::steps::converge::converge_tenant;
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json};

/// Make the tenant's service, rule, target group and DNS match its newest generation.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let adapters = shell.converge_adapters().await?;
    let (ports, ctx) = (adapters.ports(), shell.context());
    serve(StepName::ConvergeTenant, async |input| {
        call_json(input, async |i| converge_tenant(&ports, &ctx, i).await).await
    })
    .await
}
