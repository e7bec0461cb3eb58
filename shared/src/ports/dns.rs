//! The tenant's DNS record (a Route 53 alias to the load balancer routing it).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::BoxError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeStatus {
    Pending,
    Insync,
}

/// Where a tenant's alias record points: the load balancer of the pool that
/// routes the tenant, by its `DNSName` and `CanonicalHostedZoneId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasTarget {
    pub dns_name: String,
    pub hosted_zone_id: String,
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
    /// Creates or updates the alias record `name` → `target` and returns the
    /// change id.
    async fn upsert_alias(&self, name: &str, target: &AliasTarget) -> Result<String, DnsError>;

    async fn change_status(&self, change_id: &str) -> Result<ChangeStatus, DnsError>;

    /// Deletes the alias record `name`; deleting a missing record succeeds.
    async fn delete_alias(&self, name: &str) -> Result<(), DnsError>;
}
