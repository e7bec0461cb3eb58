use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::operation::send_message::SendMessageError;
use aws_sdk_sqs::types::MessageAttributeValue;

use crate::config::QueueUrl;
use crate::ports::queue::{ATTR_CREATED, ATTR_EVENT_ID, ATTR_EVENT_TYPE};
use crate::ports::{EventQueue, QueueError, QueuedEvent};

/// The event queue on Amazon SQS.
#[derive(Debug, Clone)]
pub struct SqsEventQueue {
    client: Client,
    queue_url: QueueUrl,
}

impl SqsEventQueue {
    pub fn new(client: Client, queue_url: QueueUrl) -> Self {
        SqsEventQueue { client, queue_url }
    }
}

fn attribute(data_type: &str, value: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type(data_type)
        .string_value(value)
        .build()
        .map_err(|e| QueueError::Unavailable(e.into()))
}

#[async_trait]
impl EventQueue for SqsEventQueue {
    async fn enqueue(&self, event: &QueuedEvent) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(self.queue_url.as_str())
            .message_body(&event.body)
            .message_attributes(ATTR_EVENT_ID, attribute("String", event.event_id.as_str())?)
            .message_attributes(ATTR_EVENT_TYPE, attribute("String", event.event_type.as_str())?)
            .message_attributes(ATTR_CREATED, attribute("Number", &event.created.to_string())?)
            .send()
            .await
            .map_err(|error| match error.as_service_error() {
                Some(SendMessageError::InvalidMessageContents(refused)) => {
                    QueueError::Refused(refused.message().unwrap_or("invalid message contents").to_owned())
                }
                _ => QueueError::Unavailable(error.into()),
            })?;
        Ok(())
    }
}
