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
    /// Takes the envelope's parts rather than copying them.
    pub fn new(envelope: EventEnvelope, body: String) -> Self {
        QueuedEvent {
            event_id: envelope.id,
            event_type: envelope.event_type,
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
    /// The queue will never take this message: a retry would not help.
    #[error("the event queue refuses the message: {0}")]
    Refused(String),
}

/// Why SQS would refuse `body`, if it would: it takes only the characters
/// XML 1.0 allows (tab, line feed, carriage return, U+0020 to U+D7FF,
/// U+E000 to U+FFFD, U+10000 and above). The local queue applies it; SQS
/// answers `InvalidMessageContents`.
pub fn sqs_refuses(body: &str) -> Option<String> {
    let allowed = |c: char| matches!(c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
    let (at, refused) = body.char_indices().find(|&(_, c)| !allowed(c))?;
    Some(format!("character U+{:04X} at byte {at}", u32::from(refused)))
}

#[async_trait]
pub trait EventQueue: Send + Sync {
    /// Puts one event on the queue. Returns only once the queue holds it.
    async fn enqueue(&self, event: &QueuedEvent) -> Result<(), QueueError>;
}

#[cfg(test)]
mod tests {
    use super::sqs_refuses;

    #[test]
    fn sqs_takes_what_xml_allows_and_says_where_it_would_not() {
        assert_eq!(sqs_refuses("{\"a\":\"é€😀\t\r\n\u{FFFD}\u{E000}\"}"), None);
        assert_eq!(sqs_refuses("ab\u{1}"), Some("character U+0001 at byte 2".into()));
        assert_eq!(sqs_refuses("é\u{FFFE}"), Some("character U+FFFE at byte 2".into()));
        assert_eq!(sqs_refuses("\u{FFFF}"), Some("character U+FFFF at byte 0".into()));
        assert_eq!(sqs_refuses("\u{1F}"), Some("character U+001F at byte 0".into()));
    }
}
