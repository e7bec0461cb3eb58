use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::persisted::Persisted;
use crate::clock::Clock;
use crate::domain::{
    HoldId, Subdomain, SubscriptionId, TenantId, TenantRecord, TrialKey, TrialOffer, TrialReservation,
    TrialUse,
};
use crate::ports::{
    HeldSession, HoldOutcome, HoldRequest, Inserted, Lease, LeaseOutcome, MailDelivery, MailMarked,
    MailRecord, MailSlot, RateOutcome, StoreError, SubdomainHold, TenantStore, TrailEntry, UnmatchedEvent,
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
    /// Checkout holds by name. (A state file from before holds were keyed
    /// by buyer has them under `holds`, which is left unread: they were
    /// short-lived anyway.)
    #[serde(default)]
    subdomain_holds: BTreeMap<Subdomain, SubdomainHold>,
    /// Per hold owner (see [`crate::ports::HoldLimit`]), its holds' ends by name.
    #[serde(default)]
    hold_owners: BTreeMap<String, BTreeMap<Subdomain, i64>>,
    /// Per client, the requests counted in its current rate window.
    #[serde(default)]
    rates: BTreeMap<String, RateWindow>,
    #[serde(default)]
    leases: BTreeMap<TenantId, Lease>,
    /// Per tenant, by event id: one entry per event, as the item key is in DynamoDB.
    #[serde(default)]
    trail: BTreeMap<TenantId, BTreeMap<String, TrailEntry>>,
    /// Per tenant, by mail key.
    #[serde(default)]
    mails: BTreeMap<TenantId, BTreeMap<String, MailRecord>>,
    /// By [`TrialKey`]: the customer's one trial, reserved or used.
    #[serde(default)]
    trials: BTreeMap<String, TrialItem>,
}

/// One customer's trial: reserved by a checkout's hold until its end, then
/// used once that checkout is paid.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct TrialItem {
    #[serde(default)]
    reserved_by: Option<String>,
    #[serde(default)]
    reserved_until: i64,
    #[serde(default)]
    used: Option<TrialUse>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct RateWindow {
    start: i64,
    count: u32,
}

/// The tenant table on a laptop, with the same conditional writes as DynamoDB.
pub struct LocalTenantStore {
    table: Persisted<Table>,
}

impl LocalTenantStore {
    /// `_clock` is kept for the stack, which opens every local adapter with
    /// its clock: this store's writes take `now` from their callers, as the
    /// DynamoDB adapter's conditions do.
    pub fn open(dir: Option<&Path>, _clock: Arc<dyn Clock>) -> std::io::Result<Self> {
        Ok(LocalTenantStore { table: Persisted::open(dir, "tenants.json")? })
    }

    pub fn claims(&self) -> BTreeMap<Subdomain, SubdomainClaim> {
        self.table.read(|t| t.subdomains.clone())
    }
}

/// An owner's holds other than on `subdomain` that are unexpired at `now`.
fn open_holds(
    owned: Option<&BTreeMap<Subdomain, i64>>,
    subdomain: &Subdomain,
    now: i64,
) -> Vec<(Subdomain, i64)> {
    owned
        .into_iter()
        .flatten()
        .filter(|(name, until)| *name != subdomain && **until >= now)
        .map(|(name, until)| (name.clone(), *until))
        .collect()
}

fn unavailable(error: std::io::Error) -> StoreError {
    StoreError::Unavailable(error.into())
}

#[async_trait]
impl TenantStore for LocalTenantStore {
    async fn record_signup(
        &self,
        subdomain: &Subdomain,
        record: &TenantRecord,
        hold: Option<&HoldId>,
        now: i64,
    ) -> Result<Inserted, StoreError> {
        // One closure under the table's lock: DynamoDB's transaction, with its
        // conditions checked in the order the AWS adapter decodes them.
        self.table
            .update(|t| {
                if let Some(claim) = t.subdomains.get(subdomain)
                    && claim.tenant_id != record.id
                {
                    return Err(StoreError::SubdomainTaken {
                        subdomain: subdomain.clone(),
                        holder: claim.tenant_id.clone(),
                    });
                }
                if let Some(held) = t.subdomain_holds.get(subdomain)
                    && !held.admits(hold, now)
                {
                    return Err(StoreError::SubdomainHeld {
                        subdomain: subdomain.clone(),
                        until: held.until,
                    });
                }
                if let Some(existing) = t.tenants.get(&record.id) {
                    return Ok(Inserted::Existing(Box::new(existing.clone())));
                }
                t.subdomains
                    .entry(subdomain.clone())
                    .or_insert_with(|| SubdomainClaim { tenant_id: record.id.clone(), claimed_at: now });
                t.tenants.insert(record.id.clone(), record.clone());
                // The checkout's own hold (or an expired one) becomes the claim;
                // without a hold id it is left to expire, as in DynamoDB.
                if hold.is_some() {
                    t.subdomain_holds.remove(subdomain);
                }
                Ok(Inserted::New)
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

    async fn hold_subdomain(&self, request: &HoldRequest, now: i64) -> Result<HoldOutcome, StoreError> {
        let subdomain = &request.subdomain;
        self.table
            .update(|t| {
                if let Some(claim) = t.subdomains.get(subdomain) {
                    return Err(StoreError::SubdomainTaken {
                        subdomain: subdomain.clone(),
                        holder: claim.tenant_id.clone(),
                    });
                }
                if let Some(live) = t.subdomain_holds.get(subdomain).filter(|h| h.until >= now) {
                    return if live.hold_id == request.hold_id.as_str() {
                        Ok(HoldOutcome::Existing(live.clone()))
                    } else {
                        Err(StoreError::SubdomainHeld { subdomain: subdomain.clone(), until: live.until })
                    };
                }
                for limit in &request.limits {
                    let open = open_holds(t.hold_owners.get(&limit.owner), subdomain, now);
                    if open.len() >= limit.max_open as usize {
                        let free_at = open.iter().map(|(_, until)| *until).min().unwrap_or(now);
                        return Ok(HoldOutcome::OwnerAtLimit {
                            owner: limit.owner.clone(),
                            max_open: limit.max_open,
                            free_at,
                        });
                    }
                }
                for limit in &request.limits {
                    let mut open: BTreeMap<Subdomain, i64> =
                        open_holds(t.hold_owners.get(&limit.owner), subdomain, now).into_iter().collect();
                    open.insert(subdomain.clone(), request.until);
                    t.hold_owners.insert(limit.owner.clone(), open);
                }
                let hold = SubdomainHold {
                    hold_id: request.hold_id.to_string(),
                    until: request.until,
                    form: request.form.clone(),
                    session: None,
                };
                t.subdomain_holds.insert(subdomain.clone(), hold.clone());
                Ok(HoldOutcome::Held(hold))
            })
            .map_err(unavailable)?
    }

    async fn reserve_trial(
        &self,
        reservation: &TrialReservation,
        now: i64,
    ) -> Result<TrialOffer, StoreError> {
        self.table
            .update(|t| {
                let item = t.trials.entry(reservation.key.as_str().to_owned()).or_default();
                if let Some(used) = &item.used {
                    return TrialOffer::Used(used.clone());
                }
                let ours = item.reserved_by.as_deref() == Some(reservation.hold.as_str());
                if ours {
                    return TrialOffer::Reserved;
                }
                if item.reserved_by.is_some() && item.reserved_until >= now {
                    return TrialOffer::InAnotherCheckout { until: item.reserved_until };
                }
                item.reserved_by = Some(reservation.hold.as_str().to_owned());
                item.reserved_until = reservation.until;
                TrialOffer::Reserved
            })
            .map_err(unavailable)
    }

    async fn record_trial_use(&self, key: &TrialKey, used: &TrialUse) -> Result<TrialUse, StoreError> {
        self.table
            .update(|t| {
                t.trials.entry(key.as_str().to_owned()).or_default().used.get_or_insert(used.clone()).clone()
            })
            .map_err(unavailable)
    }

    async fn record_hold_session(
        &self,
        subdomain: &Subdomain,
        hold_id: &HoldId,
        session: &HeldSession,
    ) -> Result<(), StoreError> {
        self.table
            .update(|t| {
                if let Some(hold) = t.subdomain_holds.get_mut(subdomain)
                    && hold.hold_id == hold_id.as_str()
                {
                    hold.session = Some(session.clone());
                }
            })
            .map_err(unavailable)
    }

    async fn count_request(
        &self,
        client: &str,
        now: i64,
        window_seconds: i64,
        limit: u32,
    ) -> Result<RateOutcome, StoreError> {
        let window = window_seconds.max(1);
        let start = now - now.rem_euclid(window);
        self.table
            .update(|t| {
                // Other clients' finished windows go, so the file stays small.
                t.rates.retain(|_, counted| counted.start >= start);
                let counted = t.rates.entry(client.to_owned()).or_insert(RateWindow { start, count: 0 });
                if counted.count >= limit {
                    return RateOutcome::Limited { retry_after: start + window - now };
                }
                counted.count += 1;
                RateOutcome::Allowed { count: counted.count }
            })
            .map_err(unavailable)
    }

    async fn subdomain_hold(
        &self,
        subdomain: &Subdomain,
        now: i64,
    ) -> Result<Option<SubdomainHold>, StoreError> {
        Ok(self.table.read(|t| t.subdomain_holds.get(subdomain).filter(|hold| hold.until >= now).cloned()))
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

    fn subdomain(name: &str) -> Subdomain {
        Subdomain::parse(name).unwrap()
    }

    fn signup_record(name: &str) -> TenantRecord {
        let failure = Failure { error: "none".into(), cause: "a stand-in record".into(), at: NOW };
        TenantRecord::rejected(tenant(name), None, None, failure)
    }

    fn buyer(name: &str, email: &str) -> HoldId {
        HoldId::for_buyer(&subdomain(name), &crate::domain::EmailAddress::parse(email).unwrap())
    }

    fn hold_request(name: &str, email: &str, until: i64, limits: &[(&str, u32)]) -> HoldRequest {
        HoldRequest {
            subdomain: subdomain(name),
            hold_id: buyer(name, email),
            until,
            form: "pro-annual".into(),
            limits: limits
                .iter()
                .map(|(owner, max_open)| crate::ports::HoldLimit {
                    owner: (*owner).into(),
                    max_open: *max_open,
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn record_signup_writes_claim_and_tenant_together_and_again_changes_nothing() {
        let store = store();
        let acme = subdomain("acme");
        let record = signup_record("signup");
        assert_eq!(store.record_signup(&acme, &record, None, NOW).await.unwrap(), Inserted::New);
        // A retried step, later: the same one claim (its first time kept) and one tenant.
        let mut retried = record.clone();
        retried.updated_at = NOW + 60;
        let again = store.record_signup(&acme, &retried, None, NOW + 60).await.unwrap();
        assert_eq!(again, Inserted::Existing(Box::new(record.clone())));
        let claims = store.claims();
        assert_eq!((claims.len(), &claims[&acme].tenant_id, claims[&acme].claimed_at), (1, &record.id, NOW));
        assert_eq!(store.list_tenants().await.unwrap(), vec![record.clone()]);

        // Another tenant's checkout for the name: taken, and nothing of it written.
        let other = signup_record("other");
        let taken = store.record_signup(&acme, &other, None, NOW).await.unwrap_err();
        assert!(
            matches!(&taken, StoreError::SubdomainTaken { holder, .. } if *holder == record.id),
            "{taken:?}"
        );
        assert_eq!(store.get_tenant(&other.id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_released_name_is_not_claimed_again_by_its_old_tenant_retrying() {
        let store = store();
        let acme = subdomain("acme");
        let record = signup_record("released");
        store.record_signup(&acme, &record, None, NOW).await.unwrap();
        store.release_subdomain(&acme, &record.id).await.unwrap();
        let again = store.record_signup(&acme, &record, None, NOW + 5).await.unwrap();
        assert!(matches!(again, Inserted::Existing(_)));
        assert!(store.claims().is_empty(), "no claim without a live signup");
    }

    #[tokio::test]
    async fn a_paid_checkout_turns_its_own_hold_into_the_claim_and_cannot_take_anyone_elses() {
        let store = store();
        let dana = hold_request("acme", "dana@acme.example", NOW + 4500, &[]);
        let gavin = buyer("acme", "gavin@hooli.example");
        store.hold_subdomain(&dana, NOW).await.unwrap();
        let acme = subdomain("acme");

        // Someone else's checkout (with its own hold id, or an old one without): held.
        for other in [Some(&gavin), None] {
            let refused =
                store.record_signup(&acme, &signup_record("gavin"), other, NOW + 10).await.unwrap_err();
            assert!(
                matches!(refused, StoreError::SubdomainHeld { until, .. } if until == NOW + 4500),
                "{refused:?}"
            );
        }
        assert!(store.claims().is_empty());
        assert_eq!(store.list_tenants().await.unwrap(), vec![]);

        // Dana's, at the session's edge (within the margin): hers, and the hold is gone.
        let record = signup_record("dana");
        let at_edge = NOW + 3600 + 30;
        assert_eq!(
            store.record_signup(&acme, &record, Some(&dana.hold_id), at_edge).await.unwrap(),
            Inserted::New
        );
        assert_eq!(store.claims()[&acme].tenant_id, record.id);
        assert_eq!(store.subdomain_hold(&acme, at_edge).await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_expired_or_pre_buyer_hold_does_not_stop_a_checkout_without_a_hold_id() {
        let store = store();
        let acme = subdomain("acme");
        store.hold_subdomain(&hold_request("acme", "dana@acme.example", NOW + 100, &[]), NOW).await.unwrap();
        // Expired: an old checkout event takes the name.
        let record = signup_record("late");
        assert_eq!(store.record_signup(&acme, &record, None, NOW + 101).await.unwrap(), Inserted::New);

        // A live hold from before holds were keyed by buyer (`checkout-…`).
        let globex = subdomain("globex");
        store
            .table
            .update(|t| {
                let legacy = SubdomainHold {
                    hold_id: "checkout-0123abcd".into(),
                    until: NOW + 3600,
                    form: String::new(),
                    session: None,
                };
                t.subdomain_holds.insert(globex.clone(), legacy);
            })
            .unwrap();
        let record = signup_record("legacy");
        assert_eq!(store.record_signup(&globex, &record, None, NOW).await.unwrap(), Inserted::New);
    }

    #[tokio::test]
    async fn a_hold_is_one_per_name_found_again_by_its_buyer_and_never_extended() {
        let store = store();
        let first = hold_request("acme", "dana@acme.example", NOW + 4500, &[]);
        let held = match store.hold_subdomain(&first, NOW).await.unwrap() {
            HoldOutcome::Held(held) => held,
            other => panic!("{other:?}"),
        };
        // The same buyer later asks with a later end: found, as it was.
        let later = HoldRequest { until: NOW + 9000, ..first.clone() };
        assert_eq!(
            store.hold_subdomain(&later, NOW + 600).await.unwrap(),
            HoldOutcome::Existing(held.clone())
        );
        let session =
            HeldSession { id: "cs_test_1".into(), url: "https://pay/1".into(), expires_at: NOW + 3600 };
        store.record_hold_session(&first.subdomain, &first.hold_id, &session).await.unwrap();
        // Recorded on someone else's hold id: nothing changes.
        let stranger = buyer("acme", "gavin@hooli.example");
        let wrong = HeldSession { id: "cs_test_2".into(), ..session.clone() };
        store.record_hold_session(&first.subdomain, &stranger, &wrong).await.unwrap();
        let found = store.subdomain_hold(&first.subdomain, NOW + 600).await.unwrap().unwrap();
        assert_eq!((found.until, found.session), (NOW + 4500, Some(session)));

        let gavin = hold_request("acme", "gavin@hooli.example", NOW + 4600, &[]);
        let refused = store.hold_subdomain(&gavin, NOW + 600).await.unwrap_err();
        assert!(matches!(refused, StoreError::SubdomainHeld { until, .. } if until == NOW + 4500));
        // At its end it is still held (until is inclusive), a second later it is free.
        assert!(store.hold_subdomain(&gavin, NOW + 4500).await.is_err());
        assert!(matches!(store.hold_subdomain(&gavin, NOW + 4501).await.unwrap(), HoldOutcome::Held(_)));
    }

    #[tokio::test]
    async fn an_owner_at_its_limit_holds_nothing_more_until_one_of_its_holds_ends() {
        let store = store();
        let limits = [("email:dana", 2), ("ip:office", 5)];
        store
            .hold_subdomain(&hold_request("one", "dana@acme.example", NOW + 100, &limits), NOW)
            .await
            .unwrap();
        store
            .hold_subdomain(&hold_request("two", "dana@acme.example", NOW + 200, &limits), NOW)
            .await
            .unwrap();
        let third = hold_request("three", "dana@acme.example", NOW + 300, &limits);
        assert_eq!(
            store.hold_subdomain(&third, NOW).await.unwrap(),
            HoldOutcome::OwnerAtLimit { owner: "email:dana".into(), max_open: 2, free_at: NOW + 100 }
        );
        assert_eq!(store.subdomain_hold(&subdomain("three"), NOW).await.unwrap(), None);
        // The first ends: room for one more.
        assert!(matches!(store.hold_subdomain(&third, NOW + 101).await.unwrap(), HoldOutcome::Held(_)));
        // A name claimed since is taken, whoever asks.
        store.record_signup(&subdomain("four"), &signup_record("four"), None, NOW).await.unwrap();
        let four = hold_request("four", "gavin@hooli.example", NOW + 300, &[]);
        assert!(matches!(store.hold_subdomain(&four, NOW).await, Err(StoreError::SubdomainTaken { .. })));
    }

    #[tokio::test]
    async fn requests_are_counted_per_client_and_window_and_refused_over_the_limit() {
        let store = store();
        // NOW is 40 s into its minute.
        for count in 1..=2 {
            assert_eq!(
                store.count_request("ip:a", NOW, 60, 2).await.unwrap(),
                RateOutcome::Allowed { count }
            );
        }
        assert_eq!(
            store.count_request("ip:a", NOW + 5, 60, 2).await.unwrap(),
            RateOutcome::Limited { retry_after: 15 }
        );
        assert_eq!(
            store.count_request("ip:b", NOW + 5, 60, 2).await.unwrap(),
            RateOutcome::Allowed { count: 1 }
        );
        // The next window starts afresh.
        assert_eq!(
            store.count_request("ip:a", NOW + 20, 60, 2).await.unwrap(),
            RateOutcome::Allowed { count: 1 }
        );
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
