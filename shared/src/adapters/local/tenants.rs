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
        Ok(self
            .table
            .read(|t| t.tenants.values().find(|record| record.subscription() == Some(subscription)).cloned()))
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
                    let lease =
                        Lease { owner: owner.to_owned(), expires_at: now.saturating_add(ttl_seconds) };
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
        let mut entries: Vec<TrailEntry> = self
            .table
            .read(|t| t.trail.get(tenant).map(|e| e.values().cloned().collect()).unwrap_or_default());
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
        Ok(self
            .table
            .read(|t| t.mails.get(tenant).map(|m| m.values().cloned().collect()).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::clock::FixedClock;
    use crate::domain::{CheckoutSessionId, Failure};
    use crate::ports::TrailOutcome;

    const NOW: i64 = 1_763_800_000;

    fn store() -> LocalTenantStore {
        LocalTenantStore::open(None, Arc::new(FixedClock(NOW))).unwrap()
    }

    fn tenant(name: &str) -> TenantId {
        let session = format!("cs_test_{}", name.replace('-', "_"));
        TenantId::for_checkout(&CheckoutSessionId::parse(&session).unwrap())
    }

    fn entry(tenant: &TenantId, event_id: &str, created: i64, recorded_at: i64) -> TrailEntry {
        TrailEntry {
            tenant: tenant.clone(),
            event_id: event_id.to_owned(),
            event_type: "customer.subscription.updated".to_owned(),
            created,
            recorded_at,
            outcome: TrailOutcome::Applied,
            generation: 2,
            note: "plan pro".to_owned(),
        }
    }

    fn held_by(owner: &str, expires_at: i64) -> LeaseOutcome {
        LeaseOutcome::HeldBy(Lease { owner: owner.to_owned(), expires_at })
    }

    #[tokio::test]
    async fn a_lease_is_exclusive_renewable_by_its_owner_and_taken_over_only_after_expiry() {
        let store = store();
        let t = tenant("lease");
        assert_eq!(store.acquire_lease(&t, "exec-a", NOW, 60).await.unwrap(), LeaseOutcome::Acquired);
        assert_eq!(
            store.acquire_lease(&t, "exec-b", NOW + 1, 60).await.unwrap(),
            held_by("exec-a", NOW + 60)
        );
        // Renewed by its owner: the new expiry counts.
        assert_eq!(store.acquire_lease(&t, "exec-a", NOW + 30, 60).await.unwrap(), LeaseOutcome::Acquired);
        assert_eq!(
            store.acquire_lease(&t, "exec-b", NOW + 60, 60).await.unwrap(),
            held_by("exec-a", NOW + 90)
        );
        // Expired (expires_at <= now): someone else takes it.
        assert_eq!(store.acquire_lease(&t, "exec-b", NOW + 90, 60).await.unwrap(), LeaseOutcome::Acquired);
        assert_eq!(
            store.acquire_lease(&t, "exec-a", NOW + 91, 60).await.unwrap(),
            held_by("exec-b", NOW + 150)
        );
        // Another tenant's lease is its own.
        assert_eq!(
            store.acquire_lease(&tenant("other"), "exec-a", NOW, 60).await.unwrap(),
            LeaseOutcome::Acquired
        );
    }

    #[tokio::test]
    async fn a_lease_is_released_only_by_its_owner() {
        let store = store();
        let t = tenant("release");
        store.acquire_lease(&t, "exec-a", NOW, 60).await.unwrap();
        store.release_lease(&t, "exec-b").await.unwrap();
        assert_eq!(store.acquire_lease(&t, "exec-b", NOW, 60).await.unwrap(), held_by("exec-a", NOW + 60));

        store.release_lease(&t, "exec-a").await.unwrap();
        assert_eq!(store.table.read(|table| table.leases.get(&t).cloned()), None);
        // Releasing what is no longer held changes nothing, and fails nothing.
        store.release_lease(&t, "exec-a").await.unwrap();
        assert_eq!(store.acquire_lease(&t, "exec-b", NOW, 60).await.unwrap(), LeaseOutcome::Acquired);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_concurrent_acquirers_exactly_one_wins_and_the_others_see_it() {
        let store = Arc::new(store());
        let t = tenant("race");
        let racers: Vec<_> = (0..8)
            .map(|n| {
                let (store, t) = (store.clone(), t.clone());
                tokio::spawn(async move {
                    let owner = format!("exec-{n}");
                    let outcome = store.acquire_lease(&t, &owner, NOW, 60).await.unwrap();
                    (owner, outcome)
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for racer in racers {
            outcomes.push(racer.await.unwrap());
        }
        let winners: Vec<&String> =
            outcomes.iter().filter(|(_, o)| *o == LeaseOutcome::Acquired).map(|(owner, _)| owner).collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        for (_, outcome) in &outcomes {
            if let LeaseOutcome::HeldBy(lease) = outcome {
                assert_eq!(&lease.owner, winners[0]);
            }
        }
    }

    #[tokio::test]
    async fn a_trail_entry_recorded_twice_is_one_entry_and_the_second_call_returns_false() {
        let store = store();
        let t = tenant("trail-twice");
        let first = entry(&t, "evt_1", NOW - 5, NOW);
        assert!(store.record_trail(&first).await.unwrap());
        let mut again = first.clone();
        again.recorded_at = NOW + 60;
        again.outcome = TrailOutcome::Duplicate;
        assert!(!store.record_trail(&again).await.unwrap());
        assert_eq!(store.trail(&t).await.unwrap(), vec![first]);
    }

    #[tokio::test]
    async fn the_trail_lists_a_tenants_own_entries_oldest_first() {
        let store = store();
        let t = tenant("trail-order");
        // Recorded out of order; ties on recorded_at go by created, then by id.
        let late = entry(&t, "evt_a", NOW - 100, NOW + 10);
        let tie_newer = entry(&t, "evt_b", NOW - 50, NOW);
        let tie_older_z = entry(&t, "evt_z", NOW - 60, NOW);
        let tie_older_c = entry(&t, "evt_c", NOW - 60, NOW);
        for e in [&late, &tie_newer, &tie_older_z, &tie_older_c] {
            assert!(store.record_trail(e).await.unwrap());
        }
        assert!(store.record_trail(&entry(&tenant("someone-else"), "evt_a", NOW, NOW)).await.unwrap());
        assert_eq!(store.trail(&t).await.unwrap(), vec![tie_older_c, tie_older_z, tie_newer, late]);
        assert_eq!(store.trail(&tenant("nobody")).await.unwrap(), vec![]);
    }

    #[tokio::test]
    async fn a_mail_is_held_for_others_renewed_for_its_owner_taken_over_when_stale_and_sent_once() {
        let store = store();
        let t = tenant("mail");
        let key = "welcome:1";
        assert_eq!(store.reserve_mail(&t, key, "exec-a", NOW, 300).await.unwrap(), MailSlot::Reserved);
        let held = MailSlot::HeldBy { owner: "exec-a".into(), since: NOW };
        assert_eq!(store.reserve_mail(&t, key, "exec-b", NOW + 10, 300).await.unwrap(), held);
        // The same owner again (a retried step) holds it, from now.
        assert_eq!(store.reserve_mail(&t, key, "exec-a", NOW + 20, 300).await.unwrap(), MailSlot::Reserved);
        // Exactly stale_after old is not older than it: still held.
        let held = MailSlot::HeldBy { owner: "exec-a".into(), since: NOW + 20 };
        assert_eq!(store.reserve_mail(&t, key, "exec-b", NOW + 320, 300).await.unwrap(), held);
        assert_eq!(store.reserve_mail(&t, key, "exec-b", NOW + 321, 300).await.unwrap(), MailSlot::Reserved);

        assert_eq!(
            store.mail_sent(&t, key, "exec-b", "ses-1", NOW + 322).await.unwrap(),
            MailMarked::Recorded
        );
        // Marked again with the same id (a retry): fine, nothing changes.
        assert_eq!(
            store.mail_sent(&t, key, "exec-b", "ses-1", NOW + 400).await.unwrap(),
            MailMarked::Recorded
        );
        let sent = MailSlot::Sent { message_id: "ses-1".into() };
        for (owner, at) in [("exec-a", NOW + 330), ("exec-b", NOW + 330), ("exec-c", NOW + 100_000)] {
            assert_eq!(store.reserve_mail(&t, key, owner, at, 300).await.unwrap(), sent, "{owner}");
        }
        assert_eq!(
            store.mails(&t).await.unwrap(),
            vec![MailRecord {
                tenant: t.clone(),
                key: key.into(),
                owner: "exec-b".into(),
                reserved_at: NOW + 321,
                sent: Some(MailDelivery { message_id: "ses-1".into(), sent_at: NOW + 322 }),
            }]
        );
    }

    #[tokio::test]
    async fn a_mail_sent_by_an_owner_whose_reservation_was_taken_over_is_still_recorded_once() {
        let store = store();
        let t = tenant("mail-late");
        store.reserve_mail(&t, "suspended:3", "exec-a", NOW, 300).await.unwrap();
        store.reserve_mail(&t, "suspended:3", "exec-b", NOW + 400, 300).await.unwrap();
        // exec-a was slow, not dead: its mail went out, and that is what counts.
        let marked = store.mail_sent(&t, "suspended:3", "exec-a", "ses-a", NOW + 401).await.unwrap();
        assert_eq!(marked, MailMarked::Recorded);
        let marked = store.mail_sent(&t, "suspended:3", "exec-b", "ses-b", NOW + 402).await.unwrap();
        assert_eq!(marked, MailMarked::SentBefore { message_id: "ses-a".into() });
        let mails = store.mails(&t).await.unwrap();
        assert_eq!(mails.len(), 1);
        assert_eq!(
            (mails[0].owner.as_str(), mails[0].sent.as_ref().map(|s| s.message_id.as_str())),
            ("exec-a", Some("ses-a"))
        );

        // Marked sent with no reservation at all: recorded, and never reserved after.
        store.mail_sent(&t, "cancelled:4", "exec-c", "ses-c", NOW).await.unwrap();
        assert_eq!(
            store.reserve_mail(&t, "cancelled:4", "exec-d", NOW + 1, 300).await.unwrap(),
            MailSlot::Sent { message_id: "ses-c".into() }
        );
        assert_eq!(store.mails(&tenant("nobody")).await.unwrap(), vec![]);
    }

    #[tokio::test]
    async fn leases_trail_and_mails_survive_a_reopen() {
        let dir = std::env::temp_dir().join(format!("local-tenants-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let t = tenant("persisted");
        {
            let store = LocalTenantStore::open(Some(&dir), Arc::new(FixedClock(NOW))).unwrap();
            store.acquire_lease(&t, "exec-a", NOW, 60).await.unwrap();
            store.record_trail(&entry(&t, "evt_1", NOW, NOW)).await.unwrap();
            store.reserve_mail(&t, "welcome:1", "exec-a", NOW, 300).await.unwrap();
        }
        let store = LocalTenantStore::open(Some(&dir), Arc::new(FixedClock(NOW))).unwrap();
        assert_eq!(store.acquire_lease(&t, "exec-b", NOW, 60).await.unwrap(), held_by("exec-a", NOW + 60));
        assert!(!store.record_trail(&entry(&t, "evt_1", NOW, NOW + 5)).await.unwrap());
        assert_eq!(
            store.reserve_mail(&t, "welcome:1", "exec-b", NOW, 300).await.unwrap(),
            MailSlot::HeldBy { owner: "exec-a".into(), since: NOW }
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn replacing_needs_the_version_that_was_read_and_nothing_else() {
        let store = store();
        let failure = Failure { error: "InvalidSignup".into(), cause: "test".into(), at: NOW };
        let v1 = TenantRecord::rejected(tenant("replace"), None, None, failure);
        store.insert_tenant(&v1).await.unwrap();

        let v2 = v1.next_version(NOW + 10);
        store.replace_tenant(&v2).await.unwrap();
        // A writer that read v1 too, and is now late.
        let stale = v1.next_version(NOW + 20);
        assert!(matches!(
            store.replace_tenant(&stale).await,
            Err(StoreError::VersionConflict { expected: 1, .. })
        ));
        assert_eq!(store.get_tenant(&v1.id).await.unwrap(), Some(v2.clone()));
        // Version 0 has no previous version.
        let mut zero = v2.clone();
        zero.version = 0;
        assert!(matches!(store.replace_tenant(&zero).await, Err(StoreError::VersionConflict { .. })));
        assert_eq!(store.get_tenant(&v1.id).await.unwrap(), Some(v2));
    }

    /// One step of a lease race: `owner` acquires (for `ttl` seconds) or
    /// releases, `advance` seconds after the step before.
    #[derive(Debug, Clone)]
    struct Step {
        owner: u8,
        acquire: bool,
        advance: i64,
        ttl: i64,
    }

    fn step() -> impl Strategy<Value = Step> {
        (0u8..4, prop::bool::weighted(0.7), 0i64..5, 1i64..10)
            .prop_map(|(owner, acquire, advance, ttl)| Step { owner, acquire, advance, ttl })
    }

    proptest! {
        /// What each owner was told it holds, replayed against the clock:
        /// never two unexpired at once, and a refusal always names the one
        /// owner that holds it.
        #[test]
        fn no_two_owners_ever_hold_unexpired_leases_at_once(steps in prop::collection::vec(step(), 1..80)) {
            let runtime = tokio::runtime::Builder::new_current_thread().build()?;
            runtime.block_on(async {
                let store = store();
                let t = tenant("proptest");
                let mut now = NOW;
                // Owner -> the expiry it was granted, until it released.
                let mut granted: BTreeMap<String, i64> = BTreeMap::new();
                for step in steps {
                    now += step.advance;
                    let owner = format!("exec-{}", step.owner);
                    if step.acquire {
                        let outcome = store
                            .acquire_lease(&t, &owner, now, step.ttl)
                            .await
                            .map_err(|e| TestCaseError::fail(e.to_string()))?;
                        match outcome {
                            LeaseOutcome::Acquired => {
                                granted.insert(owner, now + step.ttl);
                            }
                            LeaseOutcome::HeldBy(lease) => {
                                prop_assert_ne!(&lease.owner, &owner);
                                prop_assert!(lease.expires_at > now);
                                prop_assert_eq!(granted.get(&lease.owner), Some(&lease.expires_at));
                            }
                        }
                    } else {
                        store.release_lease(&t, &owner).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                        granted.remove(&owner);
                    }
                    let holding: Vec<_> = granted.iter().filter(|(_, until)| **until > now).collect();
                    prop_assert!(holding.len() <= 1, "at {}: {:?}", now, holding);
                }
                Ok(())
            })?;
        }
    }
}
