use tenancy::adapters::aws;
use tenancy::config::ProcessEnv;
use tenancy::steps::converge::{ConvergePorts, converge_tenant};
use tenancy::steps::lambda::{StepShell, serve};
use tenancy::steps::{StepName, call_json};

/// Make the tenant's service, rule, target group and DNS match its newest generation.
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
    serve(StepName::ConvergeTenant, async |input| {
        call_json(input, async |i| converge_tenant(&ports, &ctx, i).await).await
    })
    .await
}
