//! `tenantctl --stage … redrive`: the events in the dead-letter queue back on
//! the queue, where the dispatcher starts their executions again; and the
//! executions that failed in a Task out of retries, redriven from that Task
//! by Step Functions' `RedriveExecution`.
//!
//! Each message is sent to the queue, then deleted from the dead-letter
//! queue: a crash between the two leaves it in both, which is harmless (an
//! execution is named after its event, so the second start finds the first).
//! SQS's own `StartMessageMoveTask` does the same server-side, but the
//! emulator the tests run on does not implement it; this loop is what is
//! tested, and it keeps the message attributes the dispatcher reads.

use serde::Serialize;
use tenancy::adapters::aws::sdk::{sfn, sqs};
use tenancy::telemetry::error_chain;

use super::{Stage, StageError, one_line};

#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error("SQS {operation} failed: {reason}")]
    Sqs { operation: &'static str, reason: String },
    #[error("Step Functions {operation} failed: {reason}")]
    StepFunctions { operation: &'static str, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Redriven {
    /// Messages moved back to the queue.
    pub moved: u32,
}

/// Moves every message of the dead-letter queue back to the queue.
pub async fn redrive_dead_letters(stage: &Stage) -> Result<Redriven, RedriveError> {
    let dead = stage.output("StripeEventDeadLetterQueueUrl")?.to_owned();
    let queue = stage.output("StripeEventQueueUrl")?.to_owned();
    let client = sqs::Client::new(&stage.sdk);
    let failed = |operation: &'static str| {
        move |e: &dyn std::error::Error| RedriveError::Sqs {
            operation,
            reason: tenancy::telemetry::error_chain(e),
        }
    };
    let mut moved = 0;
    loop {
        let received = client
            .receive_message()
            .queue_url(&dead)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            // Long enough to send and delete the batch before anyone else sees it.
            .visibility_timeout(60)
            .send()
            .await
            .map_err(|e| failed("ReceiveMessage")(&e))?;
        let messages = received.messages();
        if messages.is_empty() {
            return Ok(Redriven { moved });
        }
        for message in messages {
            let (Some(body), Some(receipt)) = (message.body(), message.receipt_handle()) else { continue };
            client
                .send_message()
                .queue_url(&queue)
                .message_body(body)
                .set_message_attributes(message.message_attributes().cloned())
                .send()
                .await
                .map_err(|e| failed("SendMessage")(&e))?;
            client
                .delete_message()
                .queue_url(&dead)
                .receipt_handle(receipt)
                .send()
                .await
                .map_err(|e| failed("DeleteMessage")(&e))?;
            moved += 1;
        }
    }
}

/// How far back failed executions are looked for: Step Functions redrives
/// an execution for 14 days after it stopped.
pub const REDRIVABLE_SECONDS: i64 = 14 * 24 * 3600;

/// What became of one failed execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ExecutionOutcome {
    /// Running again from the Task that failed, under its own name.
    Redriven,
    /// It failed in one of the definition's Fail states: an outcome the
    /// workflow decided (a compensated signup, a taken subdomain), which a
    /// redrive would only repeat. `tenants show` tells its story.
    EndedAsDesigned { state: String },
    /// Step Functions would not redrive it.
    NotRedriven { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecutionRedrive {
    pub workflow: &'static str,
    pub name: String,
    pub execution_arn: String,
    /// The error it failed with.
    pub error: Option<String>,
    #[serde(flatten)]
    pub outcome: ExecutionOutcome,
}

/// Redrives every execution of the stage's two state machines that FAILED
/// in the last 14 days outside a Fail state (a Task out of retries, a
/// runtime error). TIMED_OUT and ABORTED ones are not: the clean-up
/// function has already removed or converged what they left.
pub async fn redrive_executions(stage: &Stage, now: i64) -> Result<Vec<ExecutionRedrive>, RedriveError> {
    let client = sfn::Client::new(&stage.sdk);
    let failed = |operation: &'static str| {
        move |e: &dyn std::error::Error| RedriveError::StepFunctions { operation, reason: error_chain(e) }
    };
    let mut redriven = Vec::new();
    for (workflow, output) in
        [("provision", "ProvisionStateMachineArn"), ("lifecycle", "LifecycleStateMachineArn")]
    {
        let machine = stage.output(output)?;
        let mut pages = client
            .list_executions()
            .state_machine_arn(machine)
            .status_filter(sfn::types::ExecutionStatus::Failed)
            .into_paginator()
            .send();
        let mut executions = Vec::new();
        while let Some(page) = pages.next().await {
            executions.extend(page.map_err(|e| failed("ListExecutions")(&e))?.executions().iter().cloned());
        }
        for execution in executions {
            let stopped = execution.stop_date().map(|at| at.secs()).unwrap_or(now);
            if now.saturating_sub(stopped) > REDRIVABLE_SECONDS {
                continue;
            }
            let arn = execution.execution_arn().to_owned();
            let described = client
                .describe_execution()
                .execution_arn(&arn)
                .send()
                .await
                .map_err(|e| failed("DescribeExecution")(&e))?;
            let outcome =
                match fail_state_of(&client, &arn).await.map_err(|e| failed("GetExecutionHistory")(&e))? {
                    Some(state) => ExecutionOutcome::EndedAsDesigned { state },
                    None => match client.redrive_execution().execution_arn(&arn).send().await {
                        Ok(_) => ExecutionOutcome::Redriven,
                        Err(error) => ExecutionOutcome::NotRedriven { reason: one_line(&error) },
                    },
                };
            redriven.push(ExecutionRedrive {
                workflow,
                name: execution.name().to_owned(),
                execution_arn: arn,
                error: described.error().map(str::to_owned),
                outcome,
            });
        }
    }
    Ok(redriven)
}

/// The Fail state an execution ended in, if it ended in one: its last
/// history events (newest first) hold a `FailStateEntered`.
async fn fail_state_of(
    client: &sfn::Client,
    execution_arn: &str,
) -> Result<
    Option<String>,
    sfn::error::SdkError<sfn::operation::get_execution_history::GetExecutionHistoryError>,
> {
    let history = client
        .get_execution_history()
        .execution_arn(execution_arn)
        .reverse_order(true)
        .max_results(5)
        .send()
        .await?;
    Ok(history.events().iter().find_map(|event| {
        (*event.r#type() == sfn::types::HistoryEventType::FailStateEntered)
            .then(|| event.state_entered_event_details().map(|d| d.name().to_owned()).unwrap_or_default())
    }))
}

/// The executions, for people.
pub fn render_executions(redriven: &[ExecutionRedrive]) -> String {
    let mut out = String::new();
    for execution in redriven {
        let error = execution.error.as_deref().unwrap_or("no error");
        let line = match &execution.outcome {
            ExecutionOutcome::Redriven => {
                format!("✔ {} ({}, {error}): redriven", execution.name, execution.workflow)
            }
            ExecutionOutcome::EndedAsDesigned { state } => format!(
                "· {} ({}, {error}): ended in its Fail state {state}, as designed; not redriven",
                execution.name, execution.workflow
            ),
            ExecutionOutcome::NotRedriven { reason } => {
                format!("✘ {} ({}, {error}): not redriven: {reason}", execution.name, execution.workflow)
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}
