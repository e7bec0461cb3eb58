use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::persisted::Persisted;
use crate::clock::Clock;
use crate::domain::{Subdomain, SubscriptionId, TenantId, TenantRecord};
use crate::ports::{Inserted, StoreError, SubdomainHold, TenantStore, UnmatchedEvent};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubdomainClaim {
    pub tenant_id: TenantId,
    pub claimed_at: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Table {
    tenants: BTreeMap<TenantId, TenantRecord>,
    subdomains: BTreeMap<Subdomain, SubdomainClaim>,
    #[serde(default)]
    unmatched: BTreeMap<String, UnmatchedEvent>,
    #[serde(default)]
    holds: BTreeMap<Subdomain, SubdomainHold>,
}

/// The tenant table on a laptop, with the same conditional writes as DynamoDB.
pub struct LocalTenantStore {
    table: Persisted<Table>,
    clock: Arc<dyn Clock>,
}

impl LocalTenantStore {
    pub fn open(dir: Option<&Path>, clock: Arc<dyn Clock>) -> std::io::Result<Self> {
        Ok(LocalTenantStore { table: Persisted::open(dir, "tenants.json")?, clock })
    }

    pub fn claims(&self) -> BTreeMap<Subdomain, SubdomainClaim> {
        self.table.read(|t| t.subdomains.clone())
    }
}

fn unavailable(error: std::io::Error) -> StoreError {
    StoreError::Unavailable(error.into())
}

#[async_trait]
impl TenantStore for LocalTenantStore {
    async fn claim_subdomain(&self, subdomain: &Subdomain, tenant: &TenantId) -> Result<(), StoreError> {
        let now = self.clock.now_unix();
        self.table
            .update(|t| match t.subdomains.get(subdomain) {
                Some(claim) if claim.tenant_id != *tenant => Err(StoreError::SubdomainTaken {
                    subdomain: subdomain.clone(),
                    holder: claim.tenant_id.clone(),
                }),
                Some(_) => Ok(()),
                None => {
                    t.subdomains.insert(
                        subdomain.clone(),
                        SubdomainClaim { tenant_id: tenant.clone(), claimed_at: now },
                    );
                    Ok(())
                }
            })
            .map_err(unavailable)?
    }

    async fn release_subdomain(&self, subdomain: &Subdomain, tenant: &TenantId) -> Result<(), StoreError> {
        self.table
            .update(|t| {
                if t.subdomains.get(subdomain).is_some_and(|claim| claim.tenant_id == *tenant) {
                    t.subdomains.remove(subdomain);
                }
            })
            .map_err(unavailable)
    }

    async fn subdomain_holder(&self, subdomain: &Subdomain) -> Result<Option<TenantId>, StoreError> {
        Ok(self.table.read(|t| t.subdomains.get(subdomain).map(|claim| claim.tenant_id.clone())))
    }

    async fn hold_subdomain(
        &self,
        subdomain: &Subdomain,
        hold_id: &str,
        until: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.table
            .update(|t| {
                if let Some(claim) = t.subdomains.get(subdomain) {
                    return Err(StoreError::SubdomainTaken {
                        subdomain: subdomain.clone(),
                        holder: claim.tenant_id.clone(),
                    });
                }
                match t.holds.get(subdomain) {
                    Some(hold) if hold.hold_id != hold_id && hold.until >= now => {
                        Err(StoreError::SubdomainHeld { subdomain: subdomain.clone(), until: hold.until })
                    }
                    _ => {
                        t.holds
                            .insert(subdomain.clone(), SubdomainHold { hold_id: hold_id.to_owned(), until });
                        Ok(())
                    }
                }
            })
            .map_err(unavailable)?
    }

    async fn subdomain_hold(
        &self,
        subdomain: &Subdomain,
        now: i64,
    ) -> Result<Option<SubdomainHold>, StoreError> {
        Ok(self.table.read(|t| t.holds.get(subdomain).filter(|hold| hold.until >= now).cloned()))
    }

    async fn insert_tenant(&self, record: &TenantRecord) -> Result<Inserted, StoreError> {
        self.table
            .update(|t| match t.tenants.get(&record.id) {
                Some(existing) => Inserted::Existing(Box::new(existing.clone())),
                None => {
                    t.tenants.insert(record.id.clone(), record.clone());
                    Inserted::New
                }
            })
            .map_err(unavailable)
    }

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        Ok(self.table.read(|t| t.tenants.get(id).cloned()))
    }

    async fn replace_tenant(&self, record: &TenantRecord) -> Result<(), StoreError> {
        let expected = record.version.saturating_sub(1);
        self.table
            .update(|t| match t.tenants.get_mut(&record.id) {
                Some(stored)
                    if stored.version == expected
                        && stored.last_event_created <= record.last_event_created =>
                {
                    *stored = record.clone();
                    Ok(())
                }
                _ => Err(StoreError::VersionConflict { tenant: record.id.clone(), expected }),
            })
            .map_err(unavailable)?
    }

    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        Ok(self.table.read(|t| t.tenants.values().cloned().collect()))
    }

    async fn find_by_subscription(
        &self,
        subscription: &SubscriptionId,
    ) -> Result<Option<TenantRecord>, StoreError> {
        Ok(self.table.read(|t| {
            t.tenants
                .values()
                .find(|record| {
                    record.signup.as_ref().is_some_and(|signup| signup.subscription == *subscription)
                })
                .cloned()
        }))
    }

    async fn record_unmatched_event(&self, event: &UnmatchedEvent) -> Result<(), StoreError> {
        self.table
            .update(|t| {
                t.unmatched.entry(event.event_id.to_string()).or_insert_with(|| event.clone());
            })
            .map_err(unavailable)
    }

    async fn list_unmatched_events(&self) -> Result<Vec<UnmatchedEvent>, StoreError> {
        Ok(self.table.read(|t| t.unmatched.values().cloned().collect()))
    }
}
