//! The subscription lifecycle steps (infra/statemachine/lifecycle.asl.json):
//! a Stripe subscription or invoice event changes the tenant and its records
//! to match, once, in any arrival order (DESIGN.md decision 4).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::StepError;
use super::mails;
use super::provision::{CaughtError, ProvisionContext, load, send_once, update};
use crate::domain::{
    AppliedEvent, BillingChange, BillingEvent, EventOutcome, SubscriptionStatus, TenantId, TenantRecord,
    TenantStatus,
};
use crate::ports::{BillingPortal, DnsPublisher, Mailer, TenantLauncher, TenantStore, UnmatchedEvent};

/// What the infrastructure must do after the record changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Update the service to the current plan and run one task.
    Relaunch,
    /// Scale the service to zero (DNS kept).
    Suspend,
    /// Remove service, rule, target group and DNS record.
    Deprovision,
    /// Only a mail.
    Notify,
    None,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Relaunch => "relaunch",
            Action::Suspend => "suspend",
            Action::Deprovision => "deprovision",
            Action::Notify => "notify",
            Action::None => "none",
        }
    }

    fn parse(raw: &str) -> Action {
        match raw {
            "relaunch" => Action::Relaunch,
            "suspend" => Action::Suspend,
            "deprovision" => Action::Deprovision,
            "notify" => Action::Notify,
            _ => Action::None,
        }
    }
}

/// The mails a lifecycle change sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleMail {
    PlanChanged,
    PastDue,
    Suspended,
    Resumed,
    Goodbye,
}

impl LifecycleMail {
    fn as_str(self) -> &'static str {
        match self {
            LifecycleMail::PlanChanged => "plan_changed",
            LifecycleMail::PastDue => "past_due",
            LifecycleMail::Suspended => "suspended",
            LifecycleMail::Resumed => "resumed",
            LifecycleMail::Goodbye => "goodbye",
        }
    }

    fn parse(raw: &str) -> Option<LifecycleMail> {
        [Self::PlanChanged, Self::PastDue, Self::Suspended, Self::Resumed, Self::Goodbye]
            .into_iter()
            .find(|mail| mail.as_str() == raw)
    }
}

/// The step's answer: the state machine's Choice reads `action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub tenant_id: Option<TenantId>,
    pub outcome: EventOutcome,
    pub action: Action,
    pub mail: Option<LifecycleMail>,
    /// The key the mail is sent once under (`card:{invoice}` for card mails).
    pub mail_key: Option<String>,
    pub grace_seconds: u64,
    /// One line for the console.
    pub note: String,
}

impl Decision {
    /// Nothing to do, and nobody to do it to.
    fn ignored(grace_seconds: u64, note: impl Into<String>) -> Decision {
        Decision {
            tenant_id: None,
            outcome: EventOutcome::Ignored,
            action: Action::None,
            mail: None,
            mail_key: None,
            grace_seconds,
            note: note.into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventInput {
    pub event: Value,
}

/// What applying an event to a record decided (before it is written).
struct Change {
    outcome: EventOutcome,
    action: Action,
    mail: Option<LifecycleMail>,
    mail_key: Option<String>,
    note: String,
}

impl Change {
    fn nothing(outcome: EventOutcome, note: impl Into<String>) -> Change {
        Change { outcome, action: Action::None, mail: None, mail_key: None, note: note.into() }
    }

    fn doing(
        action: Action,
        mail: Option<LifecycleMail>,
        mail_key: String,
        note: impl Into<String>,
    ) -> Change {
        Change { outcome: EventOutcome::Applied, action, mail, mail_key: Some(mail_key), note: note.into() }
    }
}

/// Applies `event` to `record` in memory; `Err` means the tenant is still
/// provisioning and the event must wait.
fn decide(
    record: &mut TenantRecord,
    event: &BillingEvent,
    ctx: &ProvisionContext<'_>,
    now: i64,
) -> Result<Change, StepError> {
    use TenantStatus::*;
    let evt = event.id.as_str();
    if matches!(record.status, Cancelled | Failed) {
        return Ok(Change::nothing(EventOutcome::Ignored, format!("tenant is {}", record.status)));
    }
    let needs_service = matches!(
        event.change,
        BillingChange::SubscriptionUpdated { .. } | BillingChange::SubscriptionDeleted
    );
    if record.status == Provisioning && needs_service {
        return Err(StepError::TenantNotYetKnown(format!(
            "tenant {} is still provisioning; {} waits for it",
            record.id, event.event_type
        )));
    }
    Ok(match &event.change {
        BillingChange::SubscriptionCreated => {
            Change::nothing(EventOutcome::Applied, "recorded; the checkout provisions")
        }
        BillingChange::SubscriptionUpdated { status, price_id, latest_invoice } => {
            let new_plan = price_id.as_deref().and_then(|price| ctx.catalog.plan_for_price(price));
            let plan_changed = new_plan.as_ref().is_some_and(|(plan, billing)| {
                record.plan.as_ref() != Some(plan) || record.billing != Some(*billing)
            });
            if let Some((plan, billing)) = new_plan.filter(|_| plan_changed) {
                record.plan = Some(plan);
                record.billing = Some(billing);
            }
            let plan_note =
                record.plan.as_ref().map(|p| format!("plan {} (tier {})", p.key, p.tier)).unwrap_or_default();
            match status {
                SubscriptionStatus::Unpaid | SubscriptionStatus::Paused if record.status != Suspended => {
                    record.status = Suspended;
                    Change::doing(
                        Action::Suspend,
                        Some(LifecycleMail::Suspended),
                        format!("suspended:{evt}"),
                        "SUSPENDED",
                    )
                }
                SubscriptionStatus::Active | SubscriptionStatus::Trialing if record.status == Suspended => {
                    record.status = Active;
                    Change::doing(
                        Action::Relaunch,
                        Some(LifecycleMail::Resumed),
                        format!("resumed:{evt}"),
                        format!("resumed on {plan_note}"),
                    )
                }
                SubscriptionStatus::PastDue if record.status == Active && !plan_changed => {
                    record.status = PastDue;
                    let key = format!("card:{}", latest_invoice.as_deref().unwrap_or(evt));
                    Change::doing(Action::Notify, Some(LifecycleMail::PastDue), key, "PAST_DUE")
                }
                _ => {
                    if matches!(status, SubscriptionStatus::Active | SubscriptionStatus::Trialing)
                        && record.status == PastDue
                    {
                        record.status = Active;
                    }
                    if plan_changed && record.status != Suspended {
                        Change::doing(
                            Action::Relaunch,
                            Some(LifecycleMail::PlanChanged),
                            format!("plan:{evt}"),
                            format!("changed to {plan_note}"),
                        )
                    } else if plan_changed {
                        // A suspended tenant takes its new plan when it resumes.
                        Change::nothing(
                            EventOutcome::Applied,
                            format!("changed to {plan_note} while suspended"),
                        )
                    } else {
                        Change::nothing(
                            EventOutcome::Applied,
                            format!("status {status:?}: nothing to change"),
                        )
                    }
                }
            }
        }
        BillingChange::SubscriptionDeleted => {
            record.status = Cancelled;
            record.cancelled_at = Some(now);
            Change::doing(Action::Deprovision, Some(LifecycleMail::Goodbye), "goodbye".into(), "CANCELLED")
        }
        BillingChange::InvoicePaid { invoice_id, period_end } => {
            if let Some(end) = period_end {
                record.paid_until = Some(record.paid_until.map_or(*end, |until| until.max(*end)));
            }
            if record.status == PastDue {
                record.status = Active;
            }
            Change::nothing(EventOutcome::Applied, format!("{invoice_id} paid"))
        }
        BillingChange::InvoicePaymentFailed { invoice_id } => {
            if matches!(record.status, Active | PastDue | Provisioning) {
                if record.status == Active {
                    record.status = PastDue;
                }
                Change::doing(
                    Action::Notify,
                    Some(LifecycleMail::PastDue),
                    format!("card:{invoice_id}"),
                    format!("{invoice_id} failed"),
                )
            } else {
                Change::nothing(EventOutcome::Applied, format!("{invoice_id} failed while {}", record.status))
            }
        }
    })
}

fn decision_from(record: &TenantRecord, entry: &AppliedEvent, grace_seconds: u64, note: String) -> Decision {
    Decision {
        tenant_id: Some(record.id.clone()),
        outcome: entry.outcome,
        action: entry.action.as_deref().map_or(Action::None, Action::parse),
        mail: entry.mail.as_deref().and_then(LifecycleMail::parse),
        mail_key: entry.mail_key.clone(),
        grace_seconds,
        note,
    }
}

/// Applies a subscription or invoice event to its tenant: one conditional
/// write, guarded by the tenant's version and its last event time.
pub async fn apply_billing_event(
    store: &dyn TenantStore,
    ctx: &ProvisionContext<'_>,
    input: EventInput,
) -> Result<Decision, StepError> {
    let grace_seconds = ctx.settings.subdomain_grace.as_secs();
    let event = match BillingEvent::parse(&input.event) {
        Ok(event) => event,
        Err(invalid) => return Ok(Decision::ignored(grace_seconds, invalid.to_string())),
    };
    let Some(found) = store.find_by_subscription(&event.subscription).await? else {
        if event.change == BillingChange::SubscriptionCreated {
            return Ok(Decision::ignored(
                grace_seconds,
                "subscription created before its checkout completed; the checkout provisions",
            ));
        }
        return Err(StepError::TenantNotYetKnown(format!(
            "no tenant has subscription {}",
            event.subscription
        )));
    };

    let now = ctx.clock.now_unix();
    let mut decided: Option<Result<(AppliedEvent, String), StepError>> = None;
    let record = update(store, ctx.clock, &found.id, |record| {
        // A retried step finds its own earlier write: same decision again.
        if let Some(seen) = record.events.iter().find(|e| e.event_id == event.id.as_str()) {
            decided = Some(Ok((seen.clone(), "already applied".into())));
            return false;
        }
        let mut entry = AppliedEvent {
            event_id: event.id.to_string(),
            event_type: event.event_type.to_string(),
            created: event.created,
            outcome: EventOutcome::Stale,
            action: None,
            mail: None,
            mail_key: None,
        };
        if event.created < record.last_event_created {
            decided = Some(Ok((
                entry.clone(),
                format!("stale: older than the last event applied ({})", record.last_event_created),
            )));
            record.events.push(entry);
            return true;
        }
        let mut candidate = record.clone();
        match decide(&mut candidate, &event, ctx, now) {
            Err(wait) => {
                decided = Some(Err(wait));
                false
            }
            Ok(change) => {
                entry.outcome = change.outcome;
                entry.action = Some(change.action.as_str().to_owned());
                entry.mail = change.mail.map(|mail| mail.as_str().to_owned());
                entry.mail_key = change.mail_key;
                candidate.last_event_created = event.created;
                candidate.events.push(entry.clone());
                *record = candidate;
                decided = Some(Ok((entry, change.note)));
                true
            }
        }
    })
    .await?;
    match decided {
        Some(Ok((entry, note))) => {
            tracing::info!(tenant_id = %record.id, event_id = %event.id, outcome = ?entry.outcome, action = ?entry.action, "{note}");
            Ok(decision_from(&record, &entry, grace_seconds, note))
        }
        Some(Err(wait)) => Err(wait),
        None => Err(StepError::Internal("the event was not evaluated".into())),
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

/// Suspension: the service scaled to zero; the DNS record stays.
pub async fn suspend_tenant(
    launcher: &dyn TenantLauncher,
    input: TenantOnly,
) -> Result<InfraReport, StepError> {
    launcher.scale(&input.tenant_id, 0).await?;
    Ok(InfraReport { tenant_id: input.tenant_id, done: "scaled to 0".into() })
}

/// Cancellation: service, listener rule, target group and DNS record removed;
/// the tenant's data is kept.
pub async fn deprovision_tenant(
    store: &dyn TenantStore,
    launcher: &dyn TenantLauncher,
    dns: &dyn DnsPublisher,
    ctx: &ProvisionContext<'_>,
    input: TenantOnly,
) -> Result<InfraReport, StepError> {
    let record = load(store, &input.tenant_id).await?;
    if let Some(name) = &record.resources.dns_name {
        dns.delete_alias(name).await?;
    } else if let Some(signup) = &record.signup {
        dns.delete_alias(&ctx.settings.domain.host(&signup.subdomain)).await?;
    }
    launcher.remove(&record.id).await?;
    update(store, ctx.clock, &record.id, |r| {
        let had = r.resources != Default::default();
        r.resources = Default::default();
        had
    })
    .await?;
    Ok(InfraReport {
        tenant_id: record.id,
        done: "service, rule, target group and DNS record removed".into(),
    })
}

/// After the grace period: the subdomain may be bought again.
pub async fn release_subdomain(
    store: &dyn TenantStore,
    ctx: &ProvisionContext<'_>,
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
pub struct MailInput {
    pub tenant_id: TenantId,
    pub mail: LifecycleMail,
    pub mail_key: String,
}

/// The mail about a change, once per key.
pub async fn send_lifecycle_mail(
    store: &dyn TenantStore,
    mailer: &dyn Mailer,
    portal: &dyn BillingPortal,
    ctx: &ProvisionContext<'_>,
    input: MailInput,
) -> Result<super::provision::MailReport, StepError> {
    let record = load(store, &input.tenant_id).await?;
    let Some(signup) = &record.signup else {
        return Err(StepError::Internal(format!("tenant {} has no signup details", record.id)));
    };
    let url = format!("https://{}", ctx.settings.domain.host(&signup.subdomain));
    let mail = match input.mail {
        LifecycleMail::PlanChanged => {
            mails::plan_changed(signup, record.plan.as_ref().unwrap_or(&signup.plan), &url)
        }
        LifecycleMail::PastDue => mails::past_due(signup, &portal.portal_url(&signup.customer).await?),
        LifecycleMail::Suspended => mails::suspended(signup, &portal.portal_url(&signup.customer).await?),
        LifecycleMail::Resumed => mails::resumed(signup, &url),
        LifecycleMail::Goodbye => mails::goodbye(signup, ctx.settings.subdomain_grace),
    };
    send_once(store, mailer, ctx.clock, &record.id, &input.mail_key, &mail).await
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
    ctx: &ProvisionContext<'_>,
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
