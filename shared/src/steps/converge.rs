//! ConvergeTenant: makes a tenant's ECS service, target group, listener rule
//! and DNS record match its newest desired generation (docs/architecture.md decision 4,
//! the controller pattern of Kubernetes operators).
//!
//! One execution acts on a tenant at a time, under a lease (a conditional
//! item with owner and expiry). After acting it writes the generation it
//! reached conditionally on the version it read; if the desired state moved
//! meanwhile, it acts again. Mails follow transitions of the observed state:
//! decided in the same write (the record's outbox), reserved before sending,
//! so two executions never send one transition twice.

use serde::{Deserialize, Serialize};

use super::context::{StepContext, load, send_once, signup_of, update};
use super::error::StepError;
use super::mails;
use super::provision::app_environment;
use super::status_token::with_status_token;
use crate::checkout::status::StatusTokens;
use crate::domain::trial::TRIAL_REMINDER_SECONDS;
use crate::domain::{
    CheckoutSignup, DesiredTenant, LifecycleMail, PendingMail, RunState, StatusToken, SubscriptionStatus,
    TenantId, TenantRecord, TenantResources, TenantStatus,
};
use crate::ports::{
    BillingPortal, DnsPublisher, LaunchSpec, LeaseOutcome, Mail, Mailer, StoreError, TenantLauncher,
    TenantStore,
};

/// How long a converge holds its lease: above the Task's 60 s timeout, so a
/// holder stopped by its timeout has lost the lease before anyone takes it.
pub const LEASE_SECONDS: i64 = 120;

/// Tries at giving the lease back before leaving it to expire.
const RELEASE_ATTEMPTS: u32 = 3;

/// Rounds of act-then-check before giving up for now (the state machine
/// retries): the desired state does not move this often in a minute.
const MAX_ROUNDS: u32 = 4;

#[derive(Debug, Clone, Deserialize)]
pub struct ConvergeInput {
    pub tenant_id: TenantId,
    /// Who holds the lease and reserves the mails: the execution's name.
    pub owner: String,
    /// Provisioning's last step, which takes the tenant out of PROVISIONING.
    #[serde(default)]
    pub finish_provisioning: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Converged {
    pub tenant_id: TenantId,
    pub status: TenantStatus,
    pub generation: u64,
    pub reached_generation: u64,
    /// What this call changed, for the console.
    pub actions: Vec<String>,
    /// The mails this call sent (their keys).
    pub mails: Vec<String>,
    /// Seconds until a cancelled tenant's subdomain may be released; `None`
    /// unless the tenant is cancelled and the name still held.
    pub release_in_seconds: Option<u64>,
    pub note: String,
}

/// The adapters a converge acts through.
pub struct ConvergePorts<'a> {
    pub store: &'a dyn TenantStore,
    pub launcher: &'a dyn TenantLauncher,
    pub dns: &'a dyn DnsPublisher,
    pub mailer: &'a dyn Mailer,
    pub portal: &'a dyn BillingPortal,
    /// The app's status token, part of its environment.
    pub status: &'a StatusTokens,
}

fn report(record: &TenantRecord, ctx: &StepContext<'_>, note: impl Into<String>) -> Converged {
    let release_in_seconds = match (record.status, record.cancelled_at, record.subdomain_released_at) {
        (TenantStatus::Cancelled, Some(at), None) => {
            let grace = i64::try_from(ctx.settings.subdomain_grace.as_secs()).unwrap_or(i64::MAX);
            let left = at.saturating_add(grace).saturating_sub(ctx.clock.now_unix()).max(0);
            Some(u64::try_from(left).unwrap_or_default())
        }
        _ => None,
    };
    Converged {
        tenant_id: record.id.clone(),
        status: record.status,
        generation: record.generation,
        reached_generation: record.reached_generation,
        actions: Vec::new(),
        mails: Vec::new(),
        release_in_seconds,
        note: note.into(),
    }
}

/// Why this converge leaves the tenant alone, if it does.
fn hands_off(record: &TenantRecord, finish_provisioning: bool) -> Option<String> {
    match record.status {
        TenantStatus::Failed => Some("tenant is FAILED".into()),
        TenantStatus::AwaitingPayment => {
            Some("awaiting a delayed payment: provisioning starts when it arrives".into())
        }
        TenantStatus::Provisioning if !finish_provisioning => {
            Some("still provisioning: provisioning converges when it finishes".into())
        }
        _ if record.desired.is_none() => Some("no desired state recorded".into()),
        _ => None,
    }
}

fn is_reached(record: &TenantRecord, finish_provisioning: bool) -> bool {
    record.reached_generation >= record.generation
        && !(finish_provisioning && record.status == TenantStatus::Provisioning)
}

pub async fn converge_tenant(
    ports: &ConvergePorts<'_>,
    ctx: &StepContext<'_>,
    input: ConvergeInput,
) -> Result<Converged, StepError> {
    let record = load(ports.store, &input.tenant_id).await?;
    if let Some(why) = hands_off(&record, input.finish_provisioning) {
        return Ok(report(&record, ctx, why));
    }
    let record = remind_of_trial_end(ports.store, ctx, record).await?;
    if is_reached(&record, input.finish_provisioning) && record.outbox.is_empty() {
        return Ok(report(&record, ctx, format!("generation {} already reached", record.generation)));
    }
    let now = ctx.clock.now_unix();
    if let LeaseOutcome::HeldBy(lease) =
        ports.store.acquire_lease(&record.id, &input.owner, now, LEASE_SECONDS).await?
    {
        return Err(StepError::LeaseHeld(format!(
            "tenant {} is being converged by {} until {}",
            record.id, lease.owner, lease.expires_at
        )));
    }
    let result = converge_under_lease(ports, ctx, &input).await;
    // Given back whatever happened, a few times over a transient failure; if
    // it still fails the lease only expires, and others wait until it does.
    for attempt in 1..=RELEASE_ATTEMPTS {
        match ports.store.release_lease(&input.tenant_id, &input.owner).await {
            Ok(()) => break,
            Err(error) if attempt == RELEASE_ATTEMPTS => {
                tracing::warn!(tenant_id = %input.tenant_id, error = %error, "lease not released; it expires");
            }
            Err(_) => continue,
        }
    }
    result
}

async fn converge_under_lease(
    ports: &ConvergePorts<'_>,
    ctx: &StepContext<'_>,
    input: &ConvergeInput,
) -> Result<Converged, StepError> {
    let mut actions = Vec::new();
    let mut rounds = 0;
    let record = loop {
        let record = load(ports.store, &input.tenant_id).await?;
        if let Some(why) = hands_off(&record, input.finish_provisioning) {
            return Ok(report(&record, ctx, why));
        }
        if is_reached(&record, input.finish_provisioning) {
            break record;
        }
        rounds += 1;
        if rounds > MAX_ROUNDS {
            return Err(StepError::Transient {
                what: "converging",
                source: format!("tenant {} changed {MAX_ROUNDS} times while converging", record.id).into(),
            });
        }
        let desired = record.desired.clone().ok_or_else(|| StepError::Internal("no desired state".into()))?;
        let (record, token) = with_status_token(ports.store, ctx.clock, ports.status, record).await?;
        let resources = make_match(ports, ctx, &record, &desired, &token, &mut actions).await?;
        let next = reached(&record, &desired, resources, ctx.clock.now_unix());
        match ports.store.replace_tenant(&next).await {
            // Written: the loop reads again and stops unless the generation moved.
            Ok(()) => continue,
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(other) => return Err(other.into()),
        }
    };
    let mails = drain_outbox(ports, ctx, &record.id, &input.owner).await?;
    let record = load(ports.store, &input.tenant_id).await?;
    let note = format!("{} at generation {}", record.status, record.reached_generation);
    Ok(Converged { actions, mails, ..report(&record, ctx, note) })
}

/// Makes the infrastructure match `desired`; returns the resources that
/// exist afterwards. Every call is idempotent, so a converge that dies
/// half-way is finished by the next one.
async fn make_match(
    ports: &ConvergePorts<'_>,
    ctx: &StepContext<'_>,
    record: &TenantRecord,
    desired: &DesiredTenant,
    token: &StatusToken,
    actions: &mut Vec<String>,
) -> Result<TenantResources, StepError> {
    let signup = signup_of(record)?;
    let host = ctx.settings.domain.host(&signup.subdomain);
    let mut resources = record.resources.clone();
    match desired.run {
        RunState::Running | RunState::Suspended => {
            let running = desired.run == RunState::Running;
            let spec = LaunchSpec {
                tenant: record.id.clone(),
                environment: app_environment(
                    record,
                    signup,
                    &desired.plan,
                    desired.billing,
                    ctx.settings,
                    ports.status.environment(token),
                ),
                host: host.clone(),
                desired_count: u32::from(running),
            };
            resources.launched(&ports.launcher.launch(&spec).await?);
            actions.push(if running {
                format!("service runs 1 task on {} ({})", desired.plan.key, desired.billing)
            } else {
                format!("service at 0 tasks on {} ({}), rule and DNS kept", desired.plan.key, desired.billing)
            });
            publish_dns_once(ports, &host, &mut resources, actions).await?;
        }
        RunState::Cancelled => {
            // Traffic first (DNS), then the app.
            ports.dns.delete_alias(resources.dns_name.as_deref().unwrap_or(&host)).await?;
            ports.launcher.remove(&record.id).await?;
            resources = TenantResources::default();
            actions.push("service, rule, target group and DNS record removed".into());
        }
    }
    Ok(resources)
}

/// Route 53 takes 5 changes a second per account: a record already asked
/// for, pointing at the load balancer that routes the tenant, is not asked
/// for again.
async fn publish_dns_once(
    ports: &ConvergePorts<'_>,
    host: &str,
    resources: &mut TenantResources,
    actions: &mut Vec<String>,
) -> Result<(), StepError> {
    if !resources.dns_stale(host) {
        return Ok(());
    }
    let target = resources
        .load_balancer
        .clone()
        .ok_or_else(|| StepError::Internal("the launch recorded no load balancer".into()))?;
    match ports.dns.upsert_alias(host, &target).await.map_err(StepError::from) {
        Ok(change_id) => {
            resources.dns_change_id = Some(change_id);
            resources.dns_name = Some(host.to_owned());
            actions.push(format!("DNS record {host} published → {}", target.dns_name));
            resources.dns_target = Some(target);
        }
        // Route 53's account-wide rate, met by a burst of signups: the tenant
        // is not held back (nor a paid one torn down) for it. The record stays
        // unasked for, so the next converge, or the reconciler that finds it
        // unpublished, asks again.
        Err(StepError::Throttled { .. }) => {
            actions.push(format!("DNS record {host} deferred: Route 53 is throttling changes"));
        }
        Err(other) => return Err(other),
    }
    Ok(())
}

/// The record once the infrastructure matches `desired`: its observed status,
/// plan and resources, the generation reached, and the transition's mails.
fn reached(
    record: &TenantRecord,
    desired: &DesiredTenant,
    resources: TenantResources,
    now: i64,
) -> TenantRecord {
    let mut next = record.next_version(now);
    let status = desired.observed_status();
    for mail in transition_mails(record, desired, record.generation) {
        if !next.outbox.iter().any(|m| m.key == mail.key) {
            next.outbox.push(mail);
        }
    }
    if record.status == TenantStatus::Provisioning {
        next.activated_at.get_or_insert(now);
        next.provisioning_seconds.get_or_insert(now - record.created_at);
    }
    if status == TenantStatus::Cancelled {
        next.cancelled_at.get_or_insert(now);
    }
    next.status = status;
    next.plan = Some(desired.plan.clone());
    next.billing = Some(desired.billing);
    next.resources = resources;
    next.reached_generation = record.generation;
    next
}

/// The trial end a reminder is due for: the tenant runs on a trial that
/// ends within [`TRIAL_REMINDER_SECONDS`] and was not reminded of that end.
/// Decided from the state Stripe gave, not from which event came, so a
/// `trial_will_end` that is duplicated, late (the trial is over: none) or
/// lost (the next converge in the window sends it) changes nothing.
pub fn trial_reminder_due(record: &TenantRecord, now: i64) -> Option<i64> {
    let desired = record.desired.as_ref()?;
    let end = desired.trial_end?;
    let due = desired.subscription_status == SubscriptionStatus::Trialing
        && desired.run == RunState::Running
        && now < end
        && end - now <= TRIAL_REMINDER_SECONDS
        && record.trial_reminded_for != Some(end);
    due.then_some(end)
}

/// Puts a due trial reminder in the outbox (once per trial end), which this
/// converge then drains; returns the record as it is now.
async fn remind_of_trial_end(
    store: &dyn TenantStore,
    ctx: &StepContext<'_>,
    record: TenantRecord,
) -> Result<TenantRecord, StepError> {
    let now = ctx.clock.now_unix();
    let Some(end) = trial_reminder_due(&record, now) else { return Ok(record) };
    update(store, ctx.clock, &record.id, |r| {
        if trial_reminder_due(r, now) != Some(end) {
            return false;
        }
        r.trial_reminded_for = Some(end);
        r.outbox.push(PendingMail { key: format!("trial_ending:{end}"), kind: LifecycleMail::TrialEnding });
        true
    })
    .await
}

/// The mails a move from the record's observed state to `desired` sends,
/// each keyed so it goes out once.
pub fn transition_mails(record: &TenantRecord, desired: &DesiredTenant, generation: u64) -> Vec<PendingMail> {
    use TenantStatus::*;
    let to = desired.observed_status();
    let mail = |kind: LifecycleMail, key: String| PendingMail { key, kind };
    let mut mails = Vec::new();
    match (record.status, to) {
        (from, Cancelled) if from != Cancelled => mails.push(mail(LifecycleMail::Goodbye, "goodbye".into())),
        (Provisioning | Active | PastDue, Suspended) => {
            mails.push(mail(LifecycleMail::Suspended, format!("suspended:g{generation}")))
        }
        (Suspended, Active | PastDue) => {
            mails.push(mail(LifecycleMail::Resumed, format!("resumed:g{generation}")))
        }
        (Provisioning | Active, PastDue) => {
            let about = desired.unpaid_invoice.clone().unwrap_or_else(|| format!("g{generation}"));
            mails.push(mail(LifecycleMail::PastDue, format!("past_due:{about}")))
        }
        _ => {}
    }
    let plan_moved = record.plan.as_ref() != Some(&desired.plan) || record.billing != Some(desired.billing);
    if plan_moved && matches!(to, Active | PastDue) {
        mails.push(mail(LifecycleMail::PlanChanged, format!("plan_changed:g{generation}")));
    }
    mails
}

/// Sends the record's pending mails, each at most once, and takes each off
/// the outbox once it went out.
async fn drain_outbox(
    ports: &ConvergePorts<'_>,
    ctx: &StepContext<'_>,
    tenant: &TenantId,
    owner: &str,
) -> Result<Vec<String>, StepError> {
    let record = load(ports.store, tenant).await?;
    let mut sent = Vec::new();
    for pending in &record.outbox {
        let mail = lifecycle_mail(ports.portal, ctx, &record, signup_of(&record)?, pending.kind).await?;
        let report =
            send_once(ports.store, ports.mailer, ctx.clock, tenant, &pending.key, owner, &mail).await?;
        if !report.already_sent {
            sent.push(pending.key.clone());
        }
        update(ports.store, ctx.clock, tenant, |r| {
            let before = r.outbox.len();
            r.outbox.retain(|m| m.key != pending.key);
            r.outbox.len() != before
        })
        .await?;
    }
    Ok(sent)
}

async fn lifecycle_mail(
    portal: &dyn BillingPortal,
    ctx: &StepContext<'_>,
    record: &TenantRecord,
    signup: &CheckoutSignup,
    kind: LifecycleMail,
) -> Result<Mail, StepError> {
    let url = format!("https://{}", ctx.settings.domain.host(&signup.subdomain));
    Ok(match kind {
        LifecycleMail::PlanChanged => {
            mails::plan_changed(signup, record.plan.as_ref().unwrap_or(&signup.plan), &url)
        }
        LifecycleMail::PastDue => mails::past_due(signup, &portal.portal_url(&signup.customer).await?),
        LifecycleMail::Suspended => mails::suspended(signup, &portal.portal_url(&signup.customer).await?),
        LifecycleMail::Resumed => mails::resumed(signup, &url),
        LifecycleMail::Goodbye => mails::goodbye(signup, ctx.settings.subdomain_grace),
        LifecycleMail::TrialEnding => {
            let plan = record.plan.as_ref().unwrap_or(&signup.plan);
            let ends = record.trial_reminded_for.or(record.desired.as_ref().and_then(|d| d.trial_end));
            let billing = record.billing.unwrap_or(signup.billing);
            mails::trial_ending(signup, (plan, billing), ends, &portal.portal_url(&signup.customer).await?)
        }
    })
}

#[cfg(test)]
#[path = "converge_tests.rs"]
mod tests;
