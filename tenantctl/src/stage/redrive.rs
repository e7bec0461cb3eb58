//! `tenantctl --stage … redrive`: the events in the dead-letter queue back on
//! the queue, where the dispatcher starts their executions again.
//!
//! Each message is sent to the queue, then deleted from the dead-letter
//! queue: a crash between the two leaves it in both, which is harmless (an
//! execution is named after its event, so the second start finds the first).
//! SQS's own `StartMessageMoveTask` does the same server-side, but the
//! emulator the tests run on does not implement it; this loop is what is
//! tested, and it keeps the message attributes the dispatcher reads.

use serde::Serialize;
use tenancy::adapters::aws::sdk::sqs;

use super::{Stage, StageError};

#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error("SQS {operation} failed: {reason}")]
    Sqs { operation: &'static str, reason: String },
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
