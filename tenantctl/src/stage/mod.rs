//! A deployed stage, found from its CloudFormation stack's outputs and
//! parameters (`DescribeStacks`), never typed by hand: what `tenantctl
//! --stage test|live …` works against, with AWS credentials from the usual
//! chain.

pub mod args;
pub mod stripe;

use std::collections::BTreeMap;
use std::fmt;

use aws_sdk_cloudformation::Client as CloudFormation;
use tenancy::adapters::aws::sdk::aws_config::SdkConfig;
use tenancy::stripe::StripeMode;

pub mod doctor;
pub mod events;
pub mod mail;
pub mod paint;
pub mod quotas;
pub mod receiving;
pub mod reconcile;
pub mod redrive;
pub mod status_token;
pub mod tenants;

/// The two stages a deployment has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageName {
    Test,
    Live,
}

impl StageName {
    pub fn parse(raw: &str) -> Result<Self, StageError> {
        match raw.trim() {
            "test" => Ok(StageName::Test),
            "live" => Ok(StageName::Live),
            other => Err(StageError::UnknownStage(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Test => "test",
            StageName::Live => "live",
        }
    }

    /// The Stripe mode the stage must be deployed with.
    pub fn mode(self) -> StripeMode {
        match self {
            StageName::Test => StripeMode::Test,
            StageName::Live => StripeMode::Live,
        }
    }

    /// The stack `samconfig.toml` deploys it as.
    pub fn default_stack(self) -> String {
        format!("tenancy-{}", self.as_str())
    }
}

impl fmt::Display for StageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What can stop a command before it does anything: one line each.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("unknown stage `{0}`: expected test or live")]
    UnknownStage(String),
    #[error("which stage? give --stage test or --stage live")]
    NoStageGiven,
    #[error(
        "no CloudFormation stack `{0}` in this account and region (deployed with `sam deploy --config-env …`?)"
    )]
    NoStack(String),
    #[error("stack `{stack}` has no {what} `{key}`: deploy the current template")]
    Missing { stack: String, what: &'static str, key: String },
    #[error("stack `{stack}` is deployed with StripeMode={found}, not the {stage} stage's {expected}")]
    ModeMismatch { stack: String, stage: StageName, found: String, expected: StripeMode },
    #[error("CloudFormation could not be asked about `{stack}`: {reason}")]
    Unavailable { stack: String, reason: String },
    #[error("stack `{stack}`: {reason}")]
    Invalid { stack: String, reason: String },
}

/// A stage's stack, as CloudFormation describes it.
#[derive(Clone)]
pub struct Stage {
    pub name: StageName,
    pub stack: String,
    pub sdk: SdkConfig,
    outputs: BTreeMap<String, String>,
    parameters: BTreeMap<String, String>,
}

impl fmt::Debug for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stage")
            .field("name", &self.name)
            .field("stack", &self.stack)
            .field("outputs", &self.outputs)
            .field("parameters", &self.parameters)
            .finish_non_exhaustive()
    }
}

impl Stage {
    /// Describes `stack` and checks it is deployed in `name`'s Stripe mode.
    pub async fn find(name: StageName, stack: &str, sdk: &SdkConfig) -> Result<Stage, StageError> {
        let cfn = CloudFormation::new(sdk);
        let described = cfn.describe_stacks().stack_name(stack).send().await.map_err(|error| {
            use aws_sdk_cloudformation::error::ProvideErrorMetadata;
            let message = error.message().unwrap_or_default().to_owned();
            if message.contains("does not exist") {
                StageError::NoStack(stack.to_owned())
            } else {
                StageError::Unavailable { stack: stack.to_owned(), reason: one_line(&error) }
            }
        })?;
        let Some(found) = described.stacks().first() else {
            return Err(StageError::NoStack(stack.to_owned()));
        };
        let outputs = found
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
            .collect();
        let parameters = found
            .parameters()
            .iter()
            .filter_map(|p| Some((p.parameter_key()?.to_owned(), p.parameter_value()?.to_owned())))
            .collect();
        let stage = Stage { name, stack: stack.to_owned(), sdk: sdk.clone(), outputs, parameters };
        let mode = stage.parameter("StripeMode")?;
        if mode != name.mode().as_str() {
            return Err(StageError::ModeMismatch {
                stack: stack.to_owned(),
                stage: name,
                found: mode.to_owned(),
                expected: name.mode(),
            });
        }
        Ok(stage)
    }

    /// A stack output (`StripeWebhookUrl`, `TenantTableName`, …).
    pub fn output(&self, key: &str) -> Result<&str, StageError> {
        self.outputs.get(key).map(String::as_str).ok_or_else(|| StageError::Missing {
            stack: self.stack.clone(),
            what: "output",
            key: key.to_owned(),
        })
    }

    /// A stack parameter's deployed value (`StripeSecretKeyParameter`, …).
    pub fn parameter(&self, key: &str) -> Result<&str, StageError> {
        self.parameters.get(key).map(String::as_str).ok_or_else(|| StageError::Missing {
            stack: self.stack.clone(),
            what: "parameter",
            key: key.to_owned(),
        })
    }

    /// The pool of load balancers' listeners the stage places tenants on:
    /// `AlbListenerArn`, then `MoreAlbListenerArns` (a stack deployed before
    /// the pool has none more).
    pub fn listener_pool(&self) -> Result<tenancy::adapters::aws::pool::ListenerPool, StageError> {
        let first = self.parameter("AlbListenerArn")?;
        let more = self.parameters.get("MoreAlbListenerArns").map(String::as_str).unwrap_or_default();
        tenancy::adapters::aws::pool::ListenerPool::parse(&format!("{first},{more}"))
            .map_err(|error| StageError::Invalid { stack: self.stack.clone(), reason: error.to_string() })
    }

    pub fn mode(&self) -> StripeMode {
        self.name.mode()
    }
}

/// An error and its causes on one line (an SDK error's message may hold
/// newlines, an emulator's an HTML page).
pub(crate) fn one_line(error: &dyn std::error::Error) -> String {
    tenancy::telemetry::error_chain(error).split_whitespace().collect::<Vec<_>>().join(" ")
}
