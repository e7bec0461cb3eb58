use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::SdkError;
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
            .map_err(queue_error)?;
        Ok(())
    }
}

/// SQS's `InvalidMessageContents` is for good: the message is refused, not
/// the queue unavailable. (moto does not check contents; SQS does.)
fn queue_error(error: SdkError<SendMessageError, HttpResponse>) -> QueueError {
    match error.as_service_error() {
        Some(SendMessageError::InvalidMessageContents(refused)) => {
            QueueError::Refused(refused.message().unwrap_or("invalid message contents").to_owned())
        }
        _ => QueueError::Unavailable(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::types::error::InvalidMessageContents;

    use super::*;

    #[test]
    fn invalid_message_contents_is_a_refusal_and_the_rest_is_unavailability() {
        let answer = || HttpResponse::new(400.try_into().unwrap(), "".into());
        let refused = SendMessageError::InvalidMessageContents(
            InvalidMessageContents::builder().message("Invalid binary character '#x1'").build(),
        );
        let error = queue_error(SdkError::service_error(refused, answer()));
        assert_eq!(error.to_string(), "the event queue refuses the message: Invalid binary character '#x1'");
        let timeout = queue_error(SdkError::timeout_error("slow"));
        assert!(matches!(timeout, QueueError::Unavailable(_)));
    }
}
