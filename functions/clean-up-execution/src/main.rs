use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::steps::cleanup::clean_up_stopped_execution;
use tenancy::steps::converge::ConvergePorts;
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json};

/// Remove or finish what an execution that timed out or was aborted left behind.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let shell = StepShell::load().await?;
    let store = aws::tenant_store(shell.sdk(), &ProcessEnv)?;
    let launcher = aws::tenant_launcher(shell.sdk(), &ProcessEnv)?;
    let dns = aws::dns_publisher(shell.sdk(), &ProcessEnv)?;
    let mailer = aws::mailer(shell.sdk(), &ProcessEnv)?;
    let portal = shell.stripe().await?;
    let ctx = shell.context();
    let ports =
        ConvergePorts { store: &store, launcher: &launcher, dns: &dns, mailer: &mailer, portal: &portal };
    serve(StepName::CleanUpExecution, async |input| {
        call_json(input, async |i| clean_up_stopped_execution(&ports, &ctx, i).await).await
    })
    .await
}
