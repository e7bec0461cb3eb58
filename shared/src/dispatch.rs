//! The dispatcher room: a queued Stripe event becomes a workflow execution
//! named after the event (docs/architecture.md decision 3).

use serde_json::{Value, json};

use crate::clock::Clock;
use crate::ports::{
    QueuedEvent, StartOutcome, StoreError, TenantStore, UnmatchedEvent, UnmatchedReason, Workflow,
    WorkflowError, WorkflowStarter,
};
use crate::stripe::{EventEnvelope, EventType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatched {
    Started(Workflow),
    /// Already started by an earlier delivery: done.
    AlreadyStarted(Workflow),
    /// No workflow acts on this type (yet); acknowledged and logged.
    NoWorkflow,
    /// A subscription or invoice event whose subscription the business sold
    /// through something else (its metadata lacks ours): recorded for the
    /// operator and acknowledged, never started, retried or mailed about.
    NotOurs,
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The message is not a Stripe event; retrying will not help, so it goes
    /// to the dead-letter queue after its receives, kept for an operator.
    #[error("message is not a Stripe event: {0}")]
    Malformed(String),
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    /// Recording an event that is not ours failed: it goes back to the queue.
    #[error("recording an event that is not ours")]
    Record(#[from] StoreError),
}

/// What dispatching needs: the workflow service, and where events that wake
/// no workflow are recorded.
pub struct Dispatcher<'a> {
    pub starter: &'a dyn WorkflowStarter,
    pub unmatched: &'a dyn TenantStore,
    pub clock: &'a dyn Clock,
}

/// Which state machine handles an event type.
pub fn route(event_type: &EventType) -> Option<Workflow> {
    match event_type {
        // A delayed payment's outcome continues (or ends) the signup its
        // checkout recorded as AWAITING_PAYMENT.
        EventType::CheckoutSessionCompleted
        | EventType::CheckoutSessionAsyncPaymentSucceeded
        | EventType::CheckoutSessionAsyncPaymentFailed => Some(Workflow::Provision),
        EventType::CustomerSubscriptionCreated
        | EventType::CustomerSubscriptionUpdated
        | EventType::CustomerSubscriptionDeleted
        | EventType::CustomerSubscriptionTrialWillEnd
        | EventType::InvoicePaid
        | EventType::InvoicePaymentFailed => Some(Workflow::Lifecycle),
        EventType::Other(_) => None,
    }
}

/// Parses a queue message body back into the event it carries.
pub fn parse_message(body: &str) -> Result<QueuedEvent, DispatchError> {
    let envelope =
        EventEnvelope::parse(body.as_bytes()).map_err(|e| DispatchError::Malformed(e.to_string()))?;
    Ok(QueuedEvent::new(envelope, body.to_owned()))
}

/// The execution input: the event's envelope fields and the whole event.
pub fn execution_input(event: &QueuedEvent) -> Result<Value, DispatchError> {
    let parsed: Value =
        serde_json::from_str(&event.body).map_err(|e| DispatchError::Malformed(e.to_string()))?;
    Ok(json!({
        "event_id": event.event_id.as_str(),
        "event_type": event.event_type.as_str(),
        "created": event.created,
        "event": parsed,
    }))
}

pub async fn dispatch(dispatcher: &Dispatcher<'_>, event: &QueuedEvent) -> Result<Dispatched, DispatchError> {
    let Some(workflow) = route(&event.event_type) else {
        tracing::warn!(event_id = %event.event_id, event_type = %event.event_type, "no workflow for this event type yet; acknowledged");
        return Ok(Dispatched::NoWorkflow);
    };
    let input = execution_input(event)?;
    if workflow == Workflow::Lifecycle
        && let Ok(billing) = crate::domain::BillingEvent::parse(&input["event"])
        && billing.is_someone_elses(crate::steps::lifecycle::OUR_METADATA_KEY)
    {
        let record = UnmatchedEvent {
            event_id: billing.id.clone(),
            event_type: billing.event_type.to_string(),
            subscription: Some(billing.subscription.clone()),
            customer: billing.customer.clone(),
            created: billing.created,
            recorded_at: dispatcher.clock.now_unix(),
            reason: UnmatchedReason::NotOurs,
        };
        dispatcher.unmatched.record_unmatched_event(&record).await?;
        tracing::info!(event_id = %event.event_id, event_type = %event.event_type, subscription = %billing.subscription, "not a subscription this system sold; recorded and acknowledged");
        return Ok(Dispatched::NotOurs);
    }
    let outcome = match dispatcher.starter.start(workflow, &event.event_id, &input).await? {
        StartOutcome::Started => Dispatched::Started(workflow),
        StartOutcome::AlreadyStarted => Dispatched::AlreadyStarted(workflow),
    };
    tracing::info!(event_id = %event.event_id, workflow = workflow.as_str(), outcome = ?outcome, "dispatched");
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::adapters::local::LocalTenantStore;
    use crate::clock::FixedClock;
    use crate::stripe::StripeEventId;

    /// A starter with Step Functions' name rule: a name starts once.
    #[derive(Default)]
    struct NamedStarts(Mutex<HashSet<String>>);

    #[async_trait]
    impl WorkflowStarter for NamedStarts {
        async fn start(
            &self,
            _: Workflow,
            name: &StripeEventId,
            _: &Value,
        ) -> Result<StartOutcome, WorkflowError> {
            let fresh = self.0.lock().unwrap().insert(name.to_string());
            Ok(if fresh { StartOutcome::Started } else { StartOutcome::AlreadyStarted })
        }
    }

    /// The tenant store and clock a test dispatcher records with.
    struct World {
        store: LocalTenantStore,
        clock: FixedClock,
    }

    impl World {
        fn new() -> World {
            let clock = FixedClock(1_763_800_100);
            World { store: LocalTenantStore::open(None, std::sync::Arc::new(clock)).unwrap(), clock }
        }

        fn dispatcher<'a>(&'a self, starter: &'a dyn WorkflowStarter) -> Dispatcher<'a> {
            Dispatcher { starter, unmatched: &self.store, clock: &self.clock }
        }
    }

    fn message(file: &str) -> QueuedEvent {
        parse_message(
            &std::fs::read_to_string(format!("{}/../events/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_checkout_starts_provisioning_once_however_often_it_arrives() {
        let (world, starter) = (World::new(), NamedStarts::default());
        let dispatcher = world.dispatcher(&starter);
        let event = message("01-checkout.session.completed.json");
        assert_eq!(dispatch(&dispatcher, &event).await.unwrap(), Dispatched::Started(Workflow::Provision));
        assert_eq!(
            dispatch(&dispatcher, &event).await.unwrap(),
            Dispatched::AlreadyStarted(Workflow::Provision)
        );
    }

    #[tokio::test]
    async fn a_subscription_someone_else_sold_starts_nothing_and_is_recorded() {
        let (world, starter) = (World::new(), NamedStarts::default());
        let dispatcher = world.dispatcher(&starter);
        let body = std::fs::read_to_string(format!(
            "{}/../events/04-customer.subscription.updated.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let mut event: Value = serde_json::from_str(&body).unwrap();
        event["data"]["object"]["metadata"] = json!({"course": "yoga-101"});
        let theirs = parse_message(&event.to_string()).unwrap();
        assert_eq!(dispatch(&dispatcher, &theirs).await.unwrap(), Dispatched::NotOurs);
        assert!(starter.0.lock().unwrap().is_empty());
        let recorded = world.store.list_unmatched_events().await.unwrap();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].reason, UnmatchedReason::NotOurs);
        assert_eq!(recorded[0].event_id, theirs.event_id);
        let ours = message("04-customer.subscription.updated.json");
        assert_eq!(dispatch(&dispatcher, &ours).await.unwrap(), Dispatched::Started(Workflow::Lifecycle));
    }

    #[tokio::test]
    async fn the_execution_input_carries_the_whole_event() {
        let event = message("01-checkout.session.completed.json");
        let input = execution_input(&event).unwrap();
        assert_eq!(input["event_id"], "evt_1QAcmeCheckoutDone");
        assert_eq!(input["event"]["data"]["object"]["metadata"]["subdomain"], "acme");
    }

    /// Step Functions throttling one event id, accepting the rest.
    struct ThrottlesOne(&'static str);

    #[async_trait]
    impl WorkflowStarter for ThrottlesOne {
        async fn start(
            &self,
            _: Workflow,
            name: &StripeEventId,
            _: &Value,
        ) -> Result<StartOutcome, WorkflowError> {
            if name.as_str() == self.0 {
                Err(WorkflowError::Throttled("ThrottlingException".into()))
            } else {
                Ok(StartOutcome::Started)
            }
        }
    }

    #[tokio::test]
    async fn only_the_throttled_and_the_malformed_messages_return_to_the_queue() {
        let checkout = std::fs::read_to_string(format!(
            "{}/../events/01-checkout.session.completed.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let other = checkout.replace("evt_1QAcmeCheckoutDone", "evt_throttled");
        let batch = serde_json::json!({"Records": [
            {"messageId": "m-ok", "body": checkout, "eventSource": "aws:sqs"},
            {"messageId": "m-throttled", "body": other, "eventSource": "aws:sqs"},
            {"messageId": "m-garbage", "body": "not json", "eventSource": "aws:sqs"},
            {"messageId": "m-ignored", "body": checkout.replace("checkout.session.completed", "charge.succeeded"), "eventSource": "aws:sqs"},
        ]});
        let batch = serde_json::from_value(batch).unwrap();
        let world = World::new();
        let response = sqs::handle_batch(&world.dispatcher(&ThrottlesOne("evt_throttled")), batch).await;
        let failed: Vec<&str> =
            response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        assert_eq!(failed, ["m-throttled", "m-garbage"]);
    }

    #[test]
    fn a_body_that_is_not_an_event_is_malformed() {
        assert!(matches!(parse_message("{}"), Err(DispatchError::Malformed(_))));
    }
}

/// The SQS-triggered Lambda's work: every record dispatched; those that
/// failed are reported back so only they return to the queue.
pub mod sqs {
    use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};

    use super::{Dispatcher, dispatch, parse_message};
    use crate::telemetry::error_chain;

    pub async fn handle_batch(dispatcher: &Dispatcher<'_>, batch: SqsEvent) -> SqsBatchResponse {
        let mut failures = Vec::new();
        for record in batch.records {
            let message_id = record.message_id.clone().unwrap_or_default();
            let result = match record.body.as_deref() {
                None => Err(super::DispatchError::Malformed("empty message".into())),
                Some(body) => match parse_message(body) {
                    Ok(event) => dispatch(dispatcher, &event).await,
                    Err(error) => Err(error),
                },
            };
            if let Err(error) = result {
                tracing::warn!(message_id, error = %error_chain(&error), "message returns to the queue");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message_id;
                failures.push(failure);
            }
        }
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures;
        response
    }
}

/// Serves the dispatcher Lambda (SQS trigger, partial batch responses).
pub async fn serve(dispatcher: &Dispatcher<'_>) -> Result<(), lambda_runtime::Error> {
    use lambda_runtime::{LambdaEvent, service_fn};
    lambda_runtime::run(service_fn(async |event: LambdaEvent<aws_lambda_events::sqs::SqsEvent>| {
        Ok::<_, std::convert::Infallible>(sqs::handle_batch(dispatcher, event.payload).await)
    }))
    .await
}
