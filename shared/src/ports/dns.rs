//! The tenant's DNS record (Route 53 alias to the shared ALB).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::BoxError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeStatus {
    Pending,
    Insync,
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("DNS service unavailable")]
    Unavailable(#[source] BoxError),
    #[error("DNS change refused: {0}")]
    Rejected(String),
}

#[async_trait]
pub trait DnsPublisher: Send + Sync {
    /// Creates or updates the alias record `name` and returns the change id.
    async fn upsert_alias(&self, name: &str) -> Result<String, DnsError>;

    async fn change_status(&self, change_id: &str) -> Result<ChangeStatus, DnsError>;

    /// Deletes the alias record `name`; deleting a missing record succeeds.
    async fn delete_alias(&self, name: &str) -> Result<(), DnsError>;
}
