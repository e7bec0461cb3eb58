//! The global options of the commands that work on a deployed stage
//! (`tenantctl --stage test|live [--stack NAME] [--json] …`).

use super::{StageError, StageName};

/// Which stage, which stack, and how to answer.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StageArgs {
    /// The deployed stage: test or live.
    #[arg(long, global = true, value_parser = parse_stage)]
    pub stage: Option<StageName>,
    /// Its CloudFormation stack (tenancy-{stage} by default, as samconfig.toml deploys it).
    #[arg(long, global = true)]
    pub stack: Option<String>,
    /// Answer in JSON, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    /// Talk to this Stripe API instead of Stripe's (a local stand-in, for tests).
    #[arg(long, global = true, hide = true, env = "STRIPE_API_BASE")]
    pub stripe_api_base: Option<String>,
}

fn parse_stage(raw: &str) -> Result<StageName, String> {
    StageName::parse(raw).map_err(|e| e.to_string())
}

impl StageArgs {
    /// The stage and its stack's name, or why a stage command cannot run.
    pub fn target(&self) -> Result<(StageName, String), StageError> {
        let name = self.stage.ok_or(StageError::NoStageGiven)?;
        let stack = self.stack.clone().unwrap_or_else(|| name.default_stack());
        Ok((name, stack))
    }

    /// The stage named, found with credentials and region from the usual
    /// chain (`AWS_PROFILE`, `AWS_REGION`, …; `AWS_ENDPOINT_URL` for an emulator).
    pub async fn find(&self) -> Result<super::Stage, StageError> {
        let (name, stack) = self.target()?;
        let sdk = tenancy::adapters::aws::sdk_config(None).await;
        super::Stage::find(name, &stack, &sdk).await
    }
}
