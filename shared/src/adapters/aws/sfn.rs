//! Starting Step Functions executions named after the Stripe event.
//!
//! A Standard workflow keeps execution names unique for 90 days, so the name
//! is the idempotency key (docs/architecture.md decision 3). StartExecution itself
//! answers 200 (not `ExecutionAlreadyExists`) when the same name is started
//! again with the same input while the first execution still runs; so the
//! starter first asks whether the execution exists, and only then starts it.
//! `AlreadyStarted` is thereby reported for every redelivery except two
//! deliveries racing each other, which both see `Started` of one execution.

use async_trait::async_trait;
use aws_sdk_sfn::Client;
use aws_sdk_sfn::error::SdkError;
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionError;
use aws_sdk_sfn::operation::start_execution::StartExecutionError;

use super::error::{Fault, call_failed, classify, summary};
use crate::config::{ConfigError, Lookup, required};
use crate::ports::{StartOutcome, Workflow, WorkflowError, WorkflowStarter};
use crate::stripe::StripeEventId;

/// The ARN of the provisioning state machine.
pub const PROVISION_STATE_MACHINE_ARN: &str = "PROVISION_STATE_MACHINE_ARN";
/// The ARN of the subscription lifecycle state machine.
pub const LIFECYCLE_STATE_MACHINE_ARN: &str = "LIFECYCLE_STATE_MACHINE_ARN";

/// The workflow starter on AWS Step Functions (Standard workflows).
#[derive(Debug, Clone)]
pub struct StepFunctionsStarter {
    client: Client,
    provision_arn: String,
    lifecycle_arn: String,
}

fn parse_state_machine_arn(var: &'static str, raw: &str) -> Result<String, ConfigError> {
    let arn = raw.trim();
    let valid = arn.starts_with("arn:")
        && arn.contains(":states:")
        && arn.contains(":stateMachine:")
        && !arn.contains(char::is_whitespace);
    if valid {
        Ok(arn.to_owned())
    } else {
        Err(ConfigError::Invalid {
            var,
            reason: "expected a state machine ARN (arn:aws:states:REGION:ACCOUNT:stateMachine:NAME)".into(),
        })
    }
}

impl StepFunctionsStarter {
    pub fn new(client: Client, provision_arn: impl Into<String>, lifecycle_arn: impl Into<String>) -> Self {
        StepFunctionsStarter {
            client,
            provision_arn: provision_arn.into(),
            lifecycle_arn: lifecycle_arn.into(),
        }
    }

    pub fn from_lookup(client: Client, env: &dyn Lookup) -> Result<Self, ConfigError> {
        let provision = parse_state_machine_arn(
            PROVISION_STATE_MACHINE_ARN,
            &required(env, PROVISION_STATE_MACHINE_ARN)?,
        )?;
        let lifecycle = parse_state_machine_arn(
            LIFECYCLE_STATE_MACHINE_ARN,
            &required(env, LIFECYCLE_STATE_MACHINE_ARN)?,
        )?;
        Ok(StepFunctionsStarter::new(client, provision, lifecycle))
    }

    pub fn state_machine_arn(&self, workflow: Workflow) -> &str {
        match workflow {
            Workflow::Provision => &self.provision_arn,
            Workflow::Lifecycle => &self.lifecycle_arn,
        }
    }

    /// Whether an execution `name` of `workflow` exists (running or closed).
    /// `None` when that cannot be told (e.g. no DescribeExecution permission):
    /// the start then decides.
    async fn exists(&self, workflow: Workflow, name: &StripeEventId) -> Option<bool> {
        let arn = execution_arn(self.state_machine_arn(workflow), name.as_str())?;
        match self.client.describe_execution().execution_arn(arn).send().await {
            Ok(_) => Some(true),
            Err(SdkError::ServiceError(context))
                if matches!(context.err(), DescribeExecutionError::ExecutionDoesNotExist(_)) =>
            {
                Some(false)
            }
            Err(error) => {
                tracing::debug!(error = %summary(&error), "DescribeExecution failed; starting anyway");
                None
            }
        }
    }
}

/// `arn:…:stateMachine:NAME` → `arn:…:execution:NAME:EXECUTION`.
pub fn execution_arn(state_machine_arn: &str, execution: &str) -> Option<String> {
    let (head, machine) = state_machine_arn.split_once(":stateMachine:")?;
    Some(format!("{head}:execution:{machine}:{execution}"))
}

#[async_trait]
impl WorkflowStarter for StepFunctionsStarter {
    async fn start(
        &self,
        workflow: Workflow,
        name: &StripeEventId,
        input: &serde_json::Value,
    ) -> Result<StartOutcome, WorkflowError> {
        if self.exists(workflow, name).await == Some(true) {
            return Ok(StartOutcome::AlreadyStarted);
        }
        let result = self
            .client
            .start_execution()
            .state_machine_arn(self.state_machine_arn(workflow))
            .name(name.as_str())
            .input(input.to_string())
            .send()
            .await;
        match result {
            Ok(_) => Ok(StartOutcome::Started),
            Err(SdkError::ServiceError(context))
                if matches!(context.err(), StartExecutionError::ExecutionAlreadyExists(_)) =>
            {
                Ok(StartOutcome::AlreadyStarted)
            }
            Err(error) => Err(match (classify(&error), &error) {
                (Fault::Throttled, _) => {
                    WorkflowError::Throttled(call_failed("Step Functions StartExecution", error))
                }
                // Too many open executions in the account: wait for some to finish.
                (_, SdkError::ServiceError(context))
                    if matches!(context.err(), StartExecutionError::ExecutionLimitExceeded(_)) =>
                {
                    WorkflowError::Throttled(call_failed("Step Functions StartExecution", error))
                }
                (Fault::Transient, _) => {
                    WorkflowError::Unavailable(call_failed("Step Functions StartExecution", error))
                }
                (Fault::Refused, _) => WorkflowError::Rejected(summary(&error)),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_arns_derive_from_the_state_machine() {
        assert_eq!(
            execution_arn("arn:aws:states:us-east-1:123456789012:stateMachine:provision", "evt_1").as_deref(),
            Some("arn:aws:states:us-east-1:123456789012:execution:provision:evt_1")
        );
        assert_eq!(execution_arn("arn:aws:states:us-east-1:1:activity:x", "evt_1"), None);
    }

    #[test]
    fn the_arn_variable_is_checked() {
        let env = |value: &'static str| {
            move |var: &str| match var {
                PROVISION_STATE_MACHINE_ARN => Some(value.to_owned()),
                LIFECYCLE_STATE_MACHINE_ARN => {
                    Some("arn:aws:states:us-east-1:123456789012:stateMachine:lifecycle".into())
                }
                _ => None,
            }
        };
        let client = Client::from_conf(
            aws_sdk_sfn::Config::builder()
                .behavior_version(aws_sdk_sfn::config::BehaviorVersion::latest())
                .build(),
        );
        let ok = StepFunctionsStarter::from_lookup(
            client.clone(),
            &env("arn:aws:states:us-east-1:123456789012:stateMachine:provision"),
        );
        let ok = ok.unwrap();
        assert_eq!(ok.state_machine_arn(Workflow::Provision).len(), 60);
        assert!(ok.state_machine_arn(Workflow::Lifecycle).ends_with(":lifecycle"));
        let bad =
            StepFunctionsStarter::from_lookup(client.clone(), &env("provision")).unwrap_err().to_string();
        assert!(bad.starts_with("configuration: PROVISION_STATE_MACHINE_ARN is invalid"), "{bad}");
        let missing = StepFunctionsStarter::from_lookup(client, &|_: &str| None).unwrap_err().to_string();
        assert_eq!(missing, "configuration: PROVISION_STATE_MACHINE_ARN is not set");
    }
}
