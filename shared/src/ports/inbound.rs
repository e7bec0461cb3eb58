//! Mail received for tenants' own addresses (SES receiving in AWS): the
//! stored message, and sending it on as it is.

use async_trait::async_trait;

use super::MailError;
use crate::domain::{EmailAddress, ReceivedMessageId};

/// Received messages, as SES's receipt rule stored them (an S3 object per
/// message in AWS), by SES's message id.
#[async_trait]
pub trait ReceivedMail: Send + Sync {
    /// The raw message; `Ok(None)` when none is stored under `message_id`.
    async fn raw_message(&self, message_id: &ReceivedMessageId) -> Result<Option<Vec<u8>>, MailError>;
}

/// Sends a whole MIME message as it is to `to` (SES's raw content), from
/// the sender its From names; returns the provider's message id.
#[async_trait]
pub trait RawMailer: Send + Sync {
    async fn send_raw(&self, to: &EmailAddress, raw: &[u8]) -> Result<String, MailError>;
}
