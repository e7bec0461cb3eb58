//! `tenantctl --stage … events replay EVT_ID`: an event fetched again from
//! Stripe's Events API and run again by its workflow, under a new execution
//! name that says what it is (`{event id}-replay-{unix time}`): the
//! original name stays used, as Step Functions keeps it 90 days.

use serde::Serialize;
use tenancy::adapters::aws::sdk::sfn;
use tenancy::adapters::stripe::StripeApi;
use tenancy::dispatch::{execution_input, route};
use tenancy::ports::{QueuedEvent, SecretStore, Workflow};
use tenancy::stripe::{EventEnvelope, StripeEventId};

use super::{Stage, StageError};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error("`{0}` is not a Stripe event id (evt_…)")]
    BadId(String),
    #[error("the stage's Stripe key: {0}")]
    Key(String),
    #[error("Stripe has no event {0} (it keeps events for 30 days)")]
    NoSuchEvent(String),
    #[error("Stripe could not be asked for {id}: {reason}")]
    Stripe { id: String, reason: String },
    #[error("event {id} is {kind}, which no workflow acts on")]
    NotActedOn { id: String, kind: String },
    #[error("event {id} from Stripe cannot be run: {reason}")]
    Unreadable { id: String, reason: String },
    #[error("Step Functions did not start {name}: {reason}")]
    Start { name: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replayed {
    pub event_id: String,
    pub event_type: String,
    pub execution_name: String,
    pub execution_arn: String,
}

/// The stage's Stripe client: its key from the SSM parameter the stack
/// names, refused if it is of the other mode; `api_base` for a stand-in.
pub async fn stripe_client(
    stage: &Stage,
    secrets: &dyn SecretStore,
    api_base: Option<&str>,
) -> Result<StripeApi, ReplayError> {
    let key_parameter = stage.parameter("StripeSecretKeyParameter")?.to_owned();
    let return_url = stage.parameter("BillingPortalReturnUrl").unwrap_or("https://example.com/").to_owned();
    let api_base = api_base.map(str::to_owned);
    let env = move |var: &str| match var {
        tenancy::config::STRIPE_SECRET_KEY_PARAM => Some(key_parameter.clone()),
        tenancy::adapters::stripe::BILLING_PORTAL_RETURN_URL => Some(return_url.clone()),
        tenancy::adapters::stripe::STRIPE_API_BASE => api_base.clone(),
        _ => None,
    };
    StripeApi::from_lookup(&env, stage.mode(), secrets)
        .await
        .map_err(|e| ReplayError::Key(tenancy::telemetry::error_chain(&e)))
}

/// Fetches `id` from Stripe and starts its workflow again as
/// `{id}-replay-{now}`.
pub async fn replay(stage: &Stage, stripe: &StripeApi, id: &str, now: i64) -> Result<Replayed, ReplayError> {
    let event_id = StripeEventId::parse(id).map_err(|_| ReplayError::BadId(id.to_owned()))?;
    let event = match stripe.event(&event_id).await {
        Ok(Some(event)) => event,
        Ok(None) => return Err(ReplayError::NoSuchEvent(id.to_owned())),
        Err(error) => {
            return Err(ReplayError::Stripe {
                id: id.to_owned(),
                reason: tenancy::telemetry::error_chain(&error),
            });
        }
    };
    let body = event.to_string();
    let unreadable = |reason: String| ReplayError::Unreadable { id: id.to_owned(), reason };
    let envelope = EventEnvelope::parse(body.as_bytes()).map_err(|e| unreadable(e.to_string()))?;
    let queued = QueuedEvent::new(envelope, body);
    let Some(workflow) = route(&queued.event_type) else {
        return Err(ReplayError::NotActedOn { id: id.to_owned(), kind: queued.event_type.to_string() });
    };
    let machine = stage.output(match workflow {
        Workflow::Provision => "ProvisionStateMachineArn",
        Workflow::Lifecycle => "LifecycleStateMachineArn",
    })?;
    let input = execution_input(&queued).map_err(|e| unreadable(e.to_string()))?;
    let name = format!("{id}-replay-{now}");
    let started = sfn::Client::new(&stage.sdk)
        .start_execution()
        .state_machine_arn(machine)
        .name(&name)
        .input(input.to_string())
        .send()
        .await
        .map_err(|e| ReplayError::Start {
            name: name.clone(),
            reason: tenancy::telemetry::error_chain(&e),
        })?;
    Ok(Replayed {
        event_id: id.to_owned(),
        event_type: queued.event_type.to_string(),
        execution_name: name,
        execution_arn: started.execution_arn().to_owned(),
    })
}
