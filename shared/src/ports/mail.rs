//! Mail to customers and to the operator (SES v2).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::BoxError;
use crate::domain::EmailAddress;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mail {
    pub to: EmailAddress,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail service unavailable")]
    Unavailable(#[source] BoxError),
    #[error("mail refused: {0}")]
    Rejected(String),
}

#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one mail and returns the provider's message id.
    async fn send(&self, mail: &Mail) -> Result<String, MailError>;
}
