//! Where a customer fixes their card: a Stripe billing portal link.

use async_trait::async_trait;

use super::BoxError;
use crate::domain::CustomerId;

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("billing provider unavailable")]
    Unavailable(#[source] BoxError),
    #[error("billing provider refused: {0}")]
    Rejected(String),
}

#[async_trait]
pub trait BillingPortal: Send + Sync {
    /// A URL where `customer` can update their payment method.
    async fn portal_url(&self, customer: &CustomerId) -> Result<String, BillingError>;
}
