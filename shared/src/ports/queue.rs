//! Where verified events wait for the workflow (SQS in AWS).

use async_trait::async_trait;

use super::BoxError;
use crate::stripe::{EventEnvelope, EventType, StripeEventId};

/// Message attribute names, shared by the producer and the dispatcher.
pub const ATTR_EVENT_ID: &str = "stripe_event_id";
pub const ATTR_EVENT_TYPE: &str = "stripe_event_type";
pub const ATTR_CREATED: &str = "stripe_created";

/// A verified Stripe event: its envelope and the body exactly as Stripe sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEvent {
    pub event_id: StripeEventId,
    pub event_type: EventType,
    pub created: i64,
    pub body: String,
}

impl QueuedEvent {
    pub fn new(envelope: &EventEnvelope, body: String) -> Self {
        QueuedEvent {
            event_id: envelope.id.clone(),
            event_type: envelope.event_type.clone(),
            created: envelope.created,
            body,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue could not take the message; the sender should retry later.
    #[error("event queue unavailable")]
    Unavailable(#[source] BoxError),
}

#[async_trait]
pub trait EventQueue: Send + Sync {
    /// Puts one event on the queue. Returns only once the queue holds it.
    async fn enqueue(&self, event: &QueuedEvent) -> Result<(), QueueError>;
}
