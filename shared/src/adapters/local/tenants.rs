use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::persisted::Persisted;
use crate::clock::Clock;
use crate::domain::{Subdomain, SubscriptionId, TenantId, TenantRecord};
use crate::ports::{
    Inserted, Lease, LeaseOutcome, MailDelivery, MailMarked, MailRecord, MailSlot, StoreError, SubdomainHold,
    TenantStore, TrailEntry, UnmatchedEvent,
};

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
    #[serde(default)]
    leases: BTreeMap<TenantId, Lease>,
    /// Per tenant, by event id: one entry per event, as the item key is in DynamoDB.
    #[serde(default)]
    trail: BTreeMap<TenantId, BTreeMap<String, TrailEntry>>,
    /// Per tenant, by mail key.
    #[serde(default)]
    mails: BTreeMap<TenantId, BTreeMap<String, MailRecord>>,
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
                // A record at version 0 has no previous version: a conflict, as in DynamoDB.
                Some(stored) if record.version > 0 && stored.version == expected => {
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

    async fn acquire_lease(
        &self,
        tenant: &TenantId,
        owner: &str,
        now: i64,
        ttl_seconds: i64,
    ) -> Result<LeaseOutcome, StoreError> {
        self.table
            .update(|t| match t.leases.get(tenant) {
                // The DynamoDB condition, negated: someone else's, unexpired.
                Some(lease) if lease.owner != owner && lease.expires_at > now => {
                    LeaseOutcome::HeldBy(lease.clone())
                }
                _ => {
                    let lease = Lease { owner: owner.to_owned(), expires_at: now.saturating_add(ttl_seconds) };
                    t.leases.insert(tenant.clone(), lease);
                    LeaseOutcome::Acquired
                }
            })
            .map_err(unavailable)
    }

    async fn release_lease(&self, tenant: &TenantId, owner: &str) -> Result<(), StoreError> {
        self.table
            .update(|t| {
                if t.leases.get(tenant).is_some_and(|lease| lease.owner == owner) {
                    t.leases.remove(tenant);
                }
            })
            .map_err(unavailable)
    }

    async fn record_trail(&self, entry: &TrailEntry) -> Result<bool, StoreError> {
        self.table
            .update(|t| {
                let events = t.trail.entry(entry.tenant.clone()).or_default();
                if events.contains_key(&entry.event_id) {
                    return false;
                }
                events.insert(entry.event_id.clone(), entry.clone());
                true
            })
            .map_err(unavailable)
    }

    async fn trail(&self, tenant: &TenantId) -> Result<Vec<TrailEntry>, StoreError> {
        let mut entries: Vec<TrailEntry> =
            self.table.read(|t| t.trail.get(tenant).map(|e| e.values().cloned().collect()).unwrap_or_default());
        TrailEntry::sort_oldest_first(&mut entries);
        Ok(entries)
    }

    async fn reserve_mail(
        &self,
        tenant: &TenantId,
        key: &str,
        owner: &str,
        now: i64,
        stale_after: i64,
    ) -> Result<MailSlot, StoreError> {
        let stale_before = now.saturating_sub(stale_after);
        self.table
            .update(|t| {
                let mails = t.mails.entry(tenant.clone()).or_default();
                match mails.get(key) {
                    Some(MailRecord { sent: Some(sent), .. }) => {
                        MailSlot::Sent { message_id: sent.message_id.clone() }
                    }
                    Some(held) if held.owner != owner && held.reserved_at >= stale_before => {
                        MailSlot::HeldBy { owner: held.owner.clone(), since: held.reserved_at }
                    }
                    // Free, ours (renewed), or stale (taken over).
                    _ => {
                        let record = MailRecord {
                            tenant: tenant.clone(),
                            key: key.to_owned(),
                            owner: owner.to_owned(),
                            reserved_at: now,
                            sent: None,
                        };
                        mails.insert(key.to_owned(), record);
                        MailSlot::Reserved
                    }
                }
            })
            .map_err(unavailable)
    }

    async fn mail_sent(
        &self,
        tenant: &TenantId,
        key: &str,
        owner: &str,
        message_id: &str,
        now: i64,
    ) -> Result<MailMarked, StoreError> {
        self.table
            .update(|t| {
                let mails = t.mails.entry(tenant.clone()).or_default();
                let record = mails.entry(key.to_owned()).or_insert_with(|| MailRecord {
                    tenant: tenant.clone(),
                    key: key.to_owned(),
                    owner: owner.to_owned(),
                    reserved_at: now,
                    sent: None,
                });
                match &record.sent {
                    Some(sent) if sent.message_id == message_id => MailMarked::Recorded,
                    Some(sent) => MailMarked::SentBefore { message_id: sent.message_id.clone() },
                    None => {
                        record.owner = owner.to_owned();
                        record.sent = Some(MailDelivery { message_id: message_id.to_owned(), sent_at: now });
                        MailMarked::Recorded
                    }
                }
            })
            .map_err(unavailable)
    }

    async fn mails(&self, tenant: &TenantId) -> Result<Vec<MailRecord>, StoreError> {
        Ok(self.table.read(|t| t.mails.get(tenant).map(|m| m.values().cloned().collect()).unwrap_or_default()))
    }
}
