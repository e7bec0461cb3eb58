//! The subscription lifecycle (infra/statemachine/lifecycle.asl.json). A
//! Stripe subscription or invoice event is only a trigger: ApplySubscription
//! re-reads the subscription from Stripe, derives the desired tenant and
//! records it with a rising generation; ConvergeTenant ([`super::converge`])
//! then makes the infrastructure match the newest generation. An event that
//! is late, duplicated or out of order therefore cannot move a tenant
//! anywhere Stripe does not say (docs/architecture.md decision 4).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::context::{StepContext, load, update};
use super::error::StepError;
use super::mails;
use super::provision::CaughtError;
use crate::domain::{
    BillingEvent, DesiredTenant, RunState, SubscriptionId, SubscriptionStatus, TenantId, TenantRecord,
    TenantStatus, desired_from,
};
use crate::ports::{
    Mailer, SubscriptionSnapshot, SubscriptionSource, TenantStore, TrailEntry, TrailOutcome, UnmatchedEvent,
    UnmatchedReason,
};

/// The metadata key every subscription sold through our checkout carries.
pub const OUR_METADATA_KEY: &str = "subdomain";

/// What triggers an apply: a Stripe event (lifecycle executions) or a
/// tenant whose subscription is read afresh (the end of provisioning, and
/// `tenantctl reconcile --fix`).
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "ApplyTrigger")]
pub struct ApplyInput {
    pub event: Option<Value>,
    pub tenant_id: Option<TenantId>,
}

/// As the state machines pass it: the fields themselves (provisioning's
/// SyncSubscription), or a lifecycle execution's whole input under `trigger`
/// (`{"event": …}` from the dispatcher, `{"tenant_id": …}` from reconcile),
/// so the definition needs no path that one of them lacks.
#[derive(Deserialize)]
struct ApplyTrigger {
    #[serde(default)]
    event: Option<Value>,
    #[serde(default)]
    tenant_id: Option<TenantId>,
    #[serde(default)]
    trigger: Option<Box<ApplyTrigger>>,
}

impl From<ApplyTrigger> for ApplyInput {
    fn from(raw: ApplyTrigger) -> Self {
        let (event, tenant_id) = match raw.trigger {
            Some(inner) => (raw.event.or(inner.event), raw.tenant_id.or(inner.tenant_id)),
            None => (raw.event, raw.tenant_id),
        };
        ApplyInput { event, tenant_id }
    }
}

/// The step's answer: the state machine's Choice reads `converge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub tenant_id: Option<TenantId>,
    pub outcome: TrailOutcome,
    /// The tenant's desired generation after this step.
    pub generation: u64,
    /// Whether a converge follows (there is a live tenant to converge).
    pub converge: bool,
    /// Whether GiveMoneyBack follows: a FAILED tenant whose money is not
    /// back yet, or a cancelled one Stripe still charges.
    #[serde(default)]
    pub money_back: bool,
    /// One line for the console.
    pub note: String,
}

impl Applied {
    fn ignored(note: impl Into<String>) -> Applied {
        Applied {
            tenant_id: None,
            outcome: TrailOutcome::Ignored,
            generation: 0,
            converge: false,
            money_back: false,
            note: note.into(),
        }
    }
}

/// Whether a subscription was sold by our checkout.
pub fn is_ours(subscription: &SubscriptionSnapshot) -> bool {
    subscription.metadata.get(OUR_METADATA_KEY).is_some_and(|value| !value.trim().is_empty())
}

/// Records the desired state Stripe holds now, if it differs from the one
/// recorded: conditional on the version read *before* Stripe was asked, so
/// of two concurrent applies the one that read Stripe earlier can never
/// overwrite the other's newer answer (it loses the race, reads again, and
/// finds nothing new).
async fn refresh_desired(
    store: &dyn TenantStore,
    stripe: &dyn SubscriptionSource,
    ctx: &StepContext<'_>,
    tenant: &TenantId,
) -> Result<(TenantRecord, TrailOutcome, String), StepError> {
    const ATTEMPTS: u32 = 5;
    for _ in 0..ATTEMPTS {
        let record = load(store, tenant).await?;
        let Some(subscription_id) = record.signup.as_ref().map(|s| s.subscription.clone()) else {
            return Ok((
                record,
                TrailOutcome::Ignored,
                "no subscription: the checkout never became a tenant".into(),
            ));
        };
        if record.status == TenantStatus::Failed {
            return Ok((record, TrailOutcome::Ignored, "tenant is FAILED".into()));
        }
        let Some(subscription) = stripe.subscription(&subscription_id).await? else {
            return Err(StepError::Rejected {
                what: "Stripe subscription lookup",
                reason: format!("Stripe has no subscription {subscription_id} for tenant {tenant}"),
            });
        };
        let desired = desired_from(&subscription, ctx.catalog)
            .map_err(|e| StepError::Rejected { what: "subscription", reason: e.to_string() })?;
        let current = record.desired.as_ref();
        if current.is_some_and(|d| d.run == RunState::Cancelled) && desired.run != RunState::Cancelled {
            // Stripe's cancellation is final; a subscription that reads as
            // live again is not this tenant's any more.
            let note = format!("stays cancelled although Stripe says {:?}", desired.subscription_status);
            return Ok((record, TrailOutcome::Superseded, note));
        }
        if current == Some(&desired) {
            let note = format!("Stripe says what generation {} says", record.generation);
            return Ok((record, TrailOutcome::Superseded, note));
        }
        let note = describe(&desired);
        let mut next = record.next_version(ctx.clock.now_unix());
        next.desired = Some(desired);
        next.generation += 1;
        match store.replace_tenant(&next).await {
            Ok(()) => return Ok((next, TrailOutcome::Applied, note)),
            Err(crate::ports::StoreError::VersionConflict { .. }) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(StepError::Transient {
        what: "recording the desired state",
        source: format!("tenant {tenant} kept changing under {ATTEMPTS} attempts").into(),
    })
}

fn describe(desired: &DesiredTenant) -> String {
    format!(
        "{} on {} ({}), Stripe status {:?}",
        desired.observed_status(),
        desired.plan.key,
        desired.billing,
        desired.subscription_status
    )
}

/// ApplySubscription: re-reads the subscription an event (or a tenant) is
/// about and records the desired tenant; keeps the event in the tenant's trail.
pub async fn apply_subscription(
    store: &dyn TenantStore,
    stripe: &dyn SubscriptionSource,
    ctx: &StepContext<'_>,
    input: ApplyInput,
) -> Result<Applied, StepError> {
    let (tenant_id, event) = match (input.tenant_id, input.event) {
        (Some(tenant), _) => (tenant, None),
        (None, Some(raw)) => {
            let event = match BillingEvent::parse(&raw) {
                Ok(event) => event,
                Err(invalid) => return Ok(Applied::ignored(invalid.to_string())),
            };
            match store.find_by_subscription(&event.subscription).await? {
                Some(found) => (found.id, Some(event)),
                None => return unknown_subscription(stripe, &event.subscription).await,
            }
        }
        (None, None) => return Err(StepError::BadInput("neither an event nor a tenant id".into())),
    };

    let (record, mut outcome, note) = refresh_desired(store, stripe, ctx, &tenant_id).await?;
    if let Some(event) = &event {
        let entry = TrailEntry {
            tenant: record.id.clone(),
            event_id: event.id.to_string(),
            event_type: event.event_type.to_string(),
            created: event.created,
            recorded_at: ctx.clock.now_unix(),
            outcome,
            generation: record.generation,
            note: note.clone(),
        };
        if !store.record_trail(&entry).await? {
            outcome = TrailOutcome::Duplicate;
        }
    }
    let converge = !matches!(record.status, TenantStatus::Failed) && record.desired.is_some();
    let money_back = owes_money_back(stripe, &record).await?;
    tracing::info!(tenant_id = %record.id, generation = record.generation, outcome = ?outcome, money_back, "{note}");
    Ok(Applied {
        tenant_id: Some(record.id),
        outcome,
        generation: record.generation,
        converge: converge && !money_back,
        money_back,
        note,
    })
}

/// Whether Stripe charges for a tenant that is not there: a FAILED one
/// (a rejected or compensated signup) whose money back is not done, or a
/// cancelled one whose subscription Stripe holds live.
async fn owes_money_back(stripe: &dyn SubscriptionSource, record: &TenantRecord) -> Result<bool, StepError> {
    let Some(subscription) = record.subscription() else { return Ok(false) };
    match record.status {
        TenantStatus::Failed => Ok(record.money_back.as_ref().is_none_or(|m| m.completed_at.is_none())),
        TenantStatus::Cancelled => Ok(stripe.subscription(subscription).await?.is_some_and(|s| {
            !matches!(s.status, SubscriptionStatus::Canceled | SubscriptionStatus::IncompleteExpired)
        })),
        _ => Ok(false),
    }
}

/// An event for a subscription no tenant has: someone else's subscription is
/// ignored; ours is waited for (its checkout is still being recorded, and its
/// provisioning reads Stripe again when it finishes).
async fn unknown_subscription(
    stripe: &dyn SubscriptionSource,
    subscription: &SubscriptionId,
) -> Result<Applied, StepError> {
    match stripe.subscription(subscription).await? {
        None => Ok(Applied::ignored(format!("Stripe has no subscription {subscription}"))),
        Some(found) if !is_ours(&found) => {
            Ok(Applied::ignored(format!("subscription {subscription} was not sold by this system")))
        }
        Some(_) => {
            Err(StepError::TenantNotYetKnown(format!("no tenant has subscription {subscription} yet")))
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct TenantOnly {
    pub tenant_id: TenantId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfraReport {
    pub tenant_id: TenantId,
    pub done: String,
}

/// After the grace period: the subdomain may be bought again.
pub async fn release_subdomain(
    store: &dyn TenantStore,
    ctx: &StepContext<'_>,
    input: TenantOnly,
) -> Result<InfraReport, StepError> {
    let record = load(store, &input.tenant_id).await?;
    if record.status != TenantStatus::Cancelled {
        return Ok(InfraReport { tenant_id: record.id, done: format!("kept: tenant is {}", record.status) });
    }
    if let Some(signup) = &record.signup {
        store.release_subdomain(&signup.subdomain, &record.id).await?;
    }
    let now = ctx.clock.now_unix();
    update(store, ctx.clock, &record.id, |r| {
        let first = r.subdomain_released_at.is_none();
        r.subdomain_released_at.get_or_insert(now);
        first
    })
    .await?;
    Ok(InfraReport { tenant_id: record.id, done: "subdomain released".into() })
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProblemInput {
    pub event: Value,
    pub error: CaughtError,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemReport {
    pub recorded_unmatched: bool,
    pub message_id: String,
}

/// An event that could not be applied: recorded if its subscription is
/// unknown, and told to the operator, instead of being retried forever.
pub async fn report_to_operator(
    store: &dyn TenantStore,
    mailer: &dyn Mailer,
    ctx: &StepContext<'_>,
    input: ProblemInput,
) -> Result<ProblemReport, StepError> {
    let parsed = BillingEvent::parse(&input.event).ok();
    let event_id = input.event.get("id").and_then(Value::as_str).unwrap_or("(no id)").to_owned();
    let unmatched = input.error.error == "Tenancy.TenantNotYetKnown";
    if unmatched && let Some(event) = &parsed {
        store
            .record_unmatched_event(&UnmatchedEvent {
                event_id: event.id.clone(),
                event_type: event.event_type.to_string(),
                subscription: Some(event.subscription.clone()),
                customer: event.customer.clone(),
                created: event.created,
                recorded_at: ctx.clock.now_unix(),
                reason: UnmatchedReason::NoTenant,
            })
            .await?;
    }
    let mail = mails::lifecycle_problem(
        &ctx.settings.operator_email,
        &event_id,
        parsed.as_ref().map(|e| e.subscription.as_str()).unwrap_or("-"),
        &input.error.error,
        &input.error.cause,
    );
    let message_id = mailer.send(&mail).await?;
    Ok(ProblemReport { recorded_unmatched: unmatched && parsed.is_some(), message_id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_apply_input_is_read_from_its_fields_or_from_a_lifecycle_executions_whole_input() {
        let tenant = "tnt_0123456789abcdef0123";
        let direct: ApplyInput = serde_json::from_value(json!({"tenant_id": tenant})).unwrap();
        assert_eq!(direct.tenant_id.as_ref().map(TenantId::as_str), Some(tenant));
        let event = json!({"id": "evt_1", "type": "customer.subscription.updated"});
        let dispatched: ApplyInput = serde_json::from_value(
            json!({"event_id": "evt_1", "trigger": {"event_id": "evt_1", "event_type": "x", "event": event}}),
        )
        .unwrap();
        assert_eq!((dispatched.event, dispatched.tenant_id), (Some(event), None));
        let reconciled: ApplyInput =
            serde_json::from_value(json!({"event_id": "reconcile-x", "trigger": {"tenant_id": tenant}}))
                .unwrap();
        assert_eq!(reconciled.tenant_id.as_ref().map(TenantId::as_str), Some(tenant));
        assert!(reconciled.event.is_none());
        let bad = serde_json::from_value::<ApplyInput>(json!({"trigger": {"tenant_id": "not a tenant"}}));
        assert!(bad.is_err(), "a tenant id is parsed at the edge");
    }
}
