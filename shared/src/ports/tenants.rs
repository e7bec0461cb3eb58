//! The tenant table (DynamoDB in AWS). Every write that creates or changes
//! something is conditional (DESIGN.md decision 3).

use async_trait::async_trait;

use super::BoxError;
use crate::domain::{Subdomain, TenantId, TenantRecord};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("subdomain `{subdomain}` is held by another tenant")]
    SubdomainTaken { subdomain: Subdomain, holder: TenantId },
    /// Someone else wrote the tenant since it was read; read again and retry.
    #[error("tenant {tenant} changed concurrently (expected version {expected})")]
    VersionConflict { tenant: TenantId, expected: u64 },
    #[error("tenant store unavailable")]
    Unavailable(#[source] BoxError),
    #[error("tenant store holds an unreadable item `{key}`: {reason}")]
    Corrupt { key: String, reason: String },
}

/// What inserting a tenant found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    New,
    /// A record with that id was already there (a retried step); here it is.
    Existing(Box<TenantRecord>),
}

#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Claims `subdomain` for `tenant`; claiming it again for the same tenant
    /// succeeds, for another tenant fails with [`StoreError::SubdomainTaken`].
    async fn claim_subdomain(&self, subdomain: &Subdomain, tenant: &TenantId) -> Result<(), StoreError>;

    /// Releases the claim if `tenant` holds it; otherwise changes nothing.
    async fn release_subdomain(&self, subdomain: &Subdomain, tenant: &TenantId) -> Result<(), StoreError>;

    async fn subdomain_holder(&self, subdomain: &Subdomain) -> Result<Option<TenantId>, StoreError>;

    /// Creates the record unless one with its id exists.
    async fn insert_tenant(&self, record: &TenantRecord) -> Result<Inserted, StoreError>;

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError>;

    /// Writes `record` if the stored version is `record.version - 1`.
    async fn replace_tenant(&self, record: &TenantRecord) -> Result<(), StoreError>;

    /// Every tenant (operator views and the local state page).
    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError>;
}
