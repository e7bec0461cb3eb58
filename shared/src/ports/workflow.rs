//! Starting workflow executions (Step Functions).

use async_trait::async_trait;

use super::BoxError;
use crate::stripe::StripeEventId;

/// The state machines, one per kind of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Workflow {
    Provision,
    Lifecycle,
}

impl Workflow {
    pub fn as_str(self) -> &'static str {
        match self {
            Workflow::Provision => "provision",
            Workflow::Lifecycle => "lifecycle",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    Started,
    /// An execution with this name exists: the event was already taken.
    AlreadyStarted,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("workflow service throttled the start")]
    Throttled(#[source] BoxError),
    #[error("workflow service unavailable")]
    Unavailable(#[source] BoxError),
    #[error("workflow service refused the start: {0}")]
    Rejected(String),
}

#[async_trait]
pub trait WorkflowStarter: Send + Sync {
    /// Starts `workflow` with the execution name `name` (the Stripe event id).
    async fn start(
        &self,
        workflow: Workflow,
        name: &StripeEventId,
        input: &serde_json::Value,
    ) -> Result<StartOutcome, WorkflowError>;
}
