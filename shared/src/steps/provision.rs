//! The provisioning steps (infra/statemachine/provision.asl.json): each a
//! small function over the ports it needs, safe to run twice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::StepError;
use super::mails;
use crate::clock::Clock;
use crate::config::TenantSettings;
use crate::domain::password::{PasswordKey, TemporaryPassword};
use crate::domain::{Catalog, CheckoutSignup, Failure, Subdomain, TenantId, TenantRecord, TenantStatus};
use crate::ports::{
    ChangeStatus, DnsPublisher, Inserted, LaunchSpec, LaunchedTenant, Mail, Mailer, ServiceHealth, StoreError,
    TenantLauncher, TenantStore,
};
use crate::stripe::StripeEventId;

/// How often a lost write race is retried inside a step before the step
/// reports Tenancy.Transient and the state machine retries it.
const WRITE_ATTEMPTS: u32 = 5;

/// The parts of the Stripe event a step needs.
#[derive(Debug, Clone, Deserialize)]
pub struct StripeEvent {
    pub id: StripeEventId,
    pub created: i64,
    pub data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    pub object: Value,
}

/// Input of RecordSignup: the state machine's input.
#[derive(Debug, Clone, Deserialize)]
pub struct SignupInput {
    pub event: StripeEvent,
}

/// Who a tenant is, as later states address it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRef {
    pub tenant_id: TenantId,
    pub subdomain: Subdomain,
    pub host: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TenantInput {
    pub tenant_id: TenantId,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HealthInput {
    pub tenant_id: TenantId,
    /// Checks made so far.
    pub checks: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    pub healthy: bool,
    pub broken: bool,
    pub detail: String,
    pub checks: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DnsCheckInput {
    pub change_id: String,
    pub checks: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsReport {
    pub name: Option<String>,
    pub change_id: String,
    pub in_sync: bool,
    pub checks: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailReport {
    pub message_id: String,
    /// True when an earlier run had already sent it.
    pub already_sent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveReport {
    pub tenant_id: TenantId,
    pub status: TenantStatus,
    pub provisioning_seconds: i64,
}

/// The error a Catch put at `$.error`.
#[derive(Debug, Clone, Deserialize)]
pub struct CaughtError {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

/// Input of Compensate and RejectSignup: the whole state after a Catch.
#[derive(Debug, Clone, Deserialize)]
pub struct FailureInput {
    pub event: StripeEvent,
    #[serde(default)]
    pub tenant: Option<TenantRef>,
    pub error: CaughtError,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureReport {
    pub tenant_id: TenantId,
    pub status: TenantStatus,
    pub mails: Vec<String>,
}

/// The settings and secrets the steps share.
pub struct ProvisionContext<'a> {
    pub settings: &'a TenantSettings,
    pub catalog: &'a Catalog,
    pub password_key: &'a PasswordKey,
    pub clock: &'a dyn Clock,
}

async fn load(store: &dyn TenantStore, id: &TenantId) -> Result<TenantRecord, StepError> {
    store.get_tenant(id).await?.ok_or_else(|| StepError::TenantNotFound(id.clone()))
}

/// Read, change, write conditionally on the version read; a lost race reads
/// again. `change` returns false when there is nothing to write.
async fn update(
    store: &dyn TenantStore,
    clock: &dyn Clock,
    id: &TenantId,
    mut change: impl FnMut(&mut TenantRecord) -> bool,
) -> Result<TenantRecord, StepError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = load(store, id).await?;
        let mut next = current.next_version(clock.now_unix());
        if !change(&mut next) {
            return Ok(current);
        }
        match store.replace_tenant(&next).await {
            Ok(()) => return Ok(next),
            Err(StoreError::VersionConflict { .. }) if attempt < WRITE_ATTEMPTS => continue,
            Err(error) => return Err(error.into()),
        }
    }
}

/// Sends a mail of `kind` about `tenant` unless the record says it went out.
async fn send_once(
    store: &dyn TenantStore,
    mailer: &dyn Mailer,
    clock: &dyn Clock,
    tenant: &TenantId,
    kind: &str,
    mail: &Mail,
) -> Result<MailReport, StepError> {
    if let Some(message_id) = load(store, tenant).await?.mails.get(kind) {
        return Ok(MailReport { message_id: message_id.clone(), already_sent: true });
    }
    // A crash between sending and recording sends once more on retry; SES
    // offers no idempotency key, so this is the narrowest window there is.
    let message_id = mailer.send(mail).await?;
    update(store, clock, tenant, |record| {
        record.mails.entry(kind.to_owned()).or_insert_with(|| message_id.clone());
        true
    })
    .await?;
    Ok(MailReport { message_id, already_sent: false })
}

/// 1. Record the signup: claim the subdomain, create the tenant PROVISIONING.
pub async fn record_signup(
    store: &dyn TenantStore,
    ctx: &ProvisionContext<'_>,
    input: SignupInput,
) -> Result<TenantRef, StepError> {
    let signup = CheckoutSignup::from_session(&input.event.data.object, ctx.catalog)?;
    let tenant_id = signup.tenant_id();
    store.claim_subdomain(&signup.subdomain, &tenant_id).await?;
    let tenant = TenantRef {
        tenant_id: tenant_id.clone(),
        subdomain: signup.subdomain.clone(),
        host: ctx.settings.domain.host(&signup.subdomain),
    };
    let password_hash = TemporaryPassword::derive(ctx.password_key, &tenant_id).hash(ctx.password_key, &tenant_id)?;
    let record = TenantRecord::provisioning(
        signup,
        password_hash,
        input.event.id.as_str(),
        input.event.created,
        ctx.clock.now_unix(),
    );
    match store.insert_tenant(&record).await? {
        Inserted::New => tracing::info!(tenant_id = %tenant_id, "tenant recorded as PROVISIONING"),
        Inserted::Existing(existing) => {
            tracing::info!(tenant_id = %tenant_id, status = %existing.status, "tenant already recorded")
        }
    }
    Ok(tenant)
}

/// The app's settings, passed to its container as environment variables.
pub fn app_environment(record: &TenantRecord, signup: &CheckoutSignup, url: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([
        ("TENANT_ID".to_owned(), record.id.to_string()),
        ("TIER".to_owned(), signup.plan.tier.to_string()),
        ("PLAN".to_owned(), signup.plan.key.to_string()),
        ("BILLING_FREQUENCY".to_owned(), signup.billing.to_string()),
        ("ORG_NAME".to_owned(), signup.organization.to_string()),
        ("ADMIN_EMAIL".to_owned(), signup.admin_email.to_string()),
        ("ADMIN_PASSWORD_HASH".to_owned(), record.admin_password_hash.clone().unwrap_or_default()),
        ("PUBLIC_URL".to_owned(), url.to_owned()),
    ]);
    for (name, limit) in &signup.plan.limits {
        env.insert(format!("LIMIT_{}", name.to_ascii_uppercase()), limit.to_string());
    }
    env
}

fn signup_of(record: &TenantRecord) -> Result<&CheckoutSignup, StepError> {
    record.signup.as_ref().ok_or_else(|| StepError::Internal(format!("tenant {} has no signup details", record.id)))
}

/// 2. Launch the tenant's service, target group and listener rule.
pub async fn launch_tenant(
    store: &dyn TenantStore,
    launcher: &dyn TenantLauncher,
    ctx: &ProvisionContext<'_>,
    input: TenantInput,
) -> Result<LaunchedTenant, StepError> {
    let record = load(store, &input.tenant_id).await?;
    let signup = signup_of(&record)?;
    let host = ctx.settings.domain.host(&signup.subdomain);
    let spec = LaunchSpec {
        tenant: record.id.clone(),
        environment: app_environment(&record, signup, &format!("https://{host}")),
        host,
    };
    let launched = launcher.launch(&spec).await?;
    update(store, ctx.clock, &record.id, |r| {
        let resources = &mut r.resources;
        let changed = resources.service_arn.as_deref() != Some(&launched.service_arn);
        resources.service_arn = Some(launched.service_arn.clone());
        resources.target_group_arn = Some(launched.target_group_arn.clone());
        resources.listener_rule_arn = Some(launched.listener_rule_arn.clone());
        changed
    })
    .await?;
    Ok(launched)
}

/// 3. One health check of the service (the Wait/Choice loop calls it again).
pub async fn check_tenant_health(launcher: &dyn TenantLauncher, input: HealthInput) -> Result<HealthReport, StepError> {
    let checks = input.checks.saturating_add(1);
    Ok(match launcher.health(&input.tenant_id).await? {
        ServiceHealth::Healthy => HealthReport { healthy: true, broken: false, detail: "healthy".into(), checks },
        ServiceHealth::Starting { detail } => HealthReport { healthy: false, broken: false, detail, checks },
        ServiceHealth::Broken { reason } => HealthReport { healthy: false, broken: true, detail: reason, checks },
    })
}

/// 4. Publish `{subdomain}.{domain}` as an alias to the load balancer.
pub async fn publish_dns(
    store: &dyn TenantStore,
    dns: &dyn DnsPublisher,
    ctx: &ProvisionContext<'_>,
    input: TenantInput,
) -> Result<DnsReport, StepError> {
    let record = load(store, &input.tenant_id).await?;
    let name = ctx.settings.domain.host(&signup_of(&record)?.subdomain);
    let change_id = dns.upsert_alias(&name).await?;
    update(store, ctx.clock, &record.id, |r| {
        r.resources.dns_name = Some(name.clone());
        r.resources.dns_change_id = Some(change_id.clone());
        true
    })
    .await?;
    Ok(DnsReport { name: Some(name), change_id, in_sync: false, checks: 0 })
}

/// 4b. Whether the DNS change has reached every Route 53 server.
pub async fn check_dns(dns: &dyn DnsPublisher, input: DnsCheckInput) -> Result<DnsReport, StepError> {
    let status = dns.change_status(&input.change_id).await?;
    Ok(DnsReport {
        name: None,
        change_id: input.change_id,
        in_sync: status == ChangeStatus::Insync,
        checks: input.checks.saturating_add(1),
    })
}

/// 5. The welcome mail with the temporary password, sent once.
pub async fn send_welcome_mail(
    store: &dyn TenantStore,
    mailer: &dyn Mailer,
    ctx: &ProvisionContext<'_>,
    input: TenantInput,
) -> Result<MailReport, StepError> {
    let record = load(store, &input.tenant_id).await?;
    let signup = signup_of(&record)?;
    let url = format!("https://{}", ctx.settings.domain.host(&signup.subdomain));
    let password = TemporaryPassword::derive(ctx.password_key, &record.id);
    let mail = mails::welcome(signup, &url, &password);
    send_once(store, mailer, ctx.clock, &record.id, "welcome", &mail).await
}

/// 6. Mark the tenant ACTIVE with the time provisioning took.
pub async fn mark_active(
    store: &dyn TenantStore,
    clock: &dyn Clock,
    input: TenantInput,
) -> Result<ActiveReport, StepError> {
    let now = clock.now_unix();
    let record = update(store, clock, &input.tenant_id, |r| {
        if r.status != TenantStatus::Provisioning {
            return false; // already ACTIVE (a retry), or changed since by a later event
        }
        r.status = TenantStatus::Active;
        r.activated_at = Some(now);
        r.provisioning_seconds = Some(now - r.created_at);
        true
    })
    .await?;
    Ok(ActiveReport {
        tenant_id: record.id,
        status: record.status,
        provisioning_seconds: record.provisioning_seconds.unwrap_or_default(),
    })
}

/// Compensation: remove what was made, mark FAILED, tell customer and operator.
pub async fn compensate(
    store: &dyn TenantStore,
    launcher: &dyn TenantLauncher,
    dns: &dyn DnsPublisher,
    mailer: &dyn Mailer,
    ctx: &ProvisionContext<'_>,
    input: FailureInput,
) -> Result<FailureReport, StepError> {
    let Some(tenant) = input.tenant else {
        // Failed before the tenant was recorded: nothing was made.
        let tenant_id = tenant_id_for(&input.event, ctx.catalog);
        let mail = mails::provisioning_failed_operator(
            &ctx.settings.operator_email,
            &tenant_id,
            input.event.id.as_str(),
            &input.error.error,
            &input.error.cause,
        );
        mailer.send(&mail).await?;
        return Ok(FailureReport { tenant_id, status: TenantStatus::Failed, mails: vec!["failed-operator".into()] });
    };
    // Order: stop traffic first (DNS), then the app, then release the name.
    dns.delete_alias(&tenant.host).await?;
    launcher.remove(&tenant.tenant_id).await?;
    let failure = Failure { error: input.error.error.clone(), cause: input.error.cause.clone(), at: ctx.clock.now_unix() };
    let record = update(store, ctx.clock, &tenant.tenant_id, |r| {
        if r.status == TenantStatus::Failed && r.resources == Default::default() {
            return false;
        }
        r.status = TenantStatus::Failed;
        r.failure.get_or_insert_with(|| failure.clone());
        r.resources = Default::default();
        true
    })
    .await?;
    store.release_subdomain(&tenant.subdomain, &tenant.tenant_id).await?;

    let mut sent = Vec::new();
    if let Some(signup) = &record.signup {
        send_once(store, mailer, ctx.clock, &record.id, "failed-customer", &mails::provisioning_failed_customer(signup))
            .await?;
        sent.push("failed-customer".to_owned());
    }
    let operator = mails::provisioning_failed_operator(
        &ctx.settings.operator_email,
        &record.id,
        input.event.id.as_str(),
        &input.error.error,
        &input.error.cause,
    );
    send_once(store, mailer, ctx.clock, &record.id, "failed-operator", &operator).await?;
    sent.push("failed-operator".to_owned());
    Ok(FailureReport { tenant_id: record.id, status: TenantStatus::Failed, mails: sent })
}

fn tenant_id_for(event: &StripeEvent, catalog: &Catalog) -> TenantId {
    match CheckoutSignup::from_session(&event.data.object, catalog) {
        Ok(signup) => signup.tenant_id(),
        Err(invalid) => match invalid.checkout_session {
            Some(session) => TenantId::for_checkout(&session),
            None => TenantId::for_event(&event.id),
        },
    }
}

/// A signup that cannot become a tenant (bad metadata, subdomain taken): a
/// FAILED record saying why, a mail to the operator and, if we can, the customer.
pub async fn reject_signup(
    store: &dyn TenantStore,
    mailer: &dyn Mailer,
    ctx: &ProvisionContext<'_>,
    input: FailureInput,
) -> Result<FailureReport, StepError> {
    let (tenant_id, session, customer_email) = match CheckoutSignup::from_session(&input.event.data.object, ctx.catalog) {
        Ok(signup) => (signup.tenant_id(), Some(signup.checkout_session), Some(signup.admin_email)),
        Err(invalid) => {
            let id = match &invalid.checkout_session {
                Some(session) => TenantId::for_checkout(session),
                None => TenantId::for_event(&input.event.id),
            };
            (id, invalid.checkout_session, invalid.customer_email)
        }
    };
    let failure = Failure { error: input.error.error.clone(), cause: input.error.cause.clone(), at: ctx.clock.now_unix() };
    let record = TenantRecord::rejected(tenant_id.clone(), session, failure, input.event.id.as_str(), input.event.created);
    if let Inserted::Existing(existing) = store.insert_tenant(&record).await? {
        if existing.status != TenantStatus::Failed {
            // Never overwrite a real tenant with a rejection.
            return Err(StepError::Internal(format!("tenant {tenant_id} exists as {}", existing.status)));
        }
    }
    let mut sent = Vec::new();
    if let Some(email) = customer_email {
        let reason = match input.error.error.as_str() {
            "Tenancy.SubdomainTaken" => "the address you chose was taken by someone else a moment before",
            _ => "the signup details were incomplete",
        };
        send_once(store, mailer, ctx.clock, &tenant_id, "rejected-customer", &mails::signup_rejected_customer(&email, reason))
            .await?;
        sent.push("rejected-customer".to_owned());
    }
    let operator = mails::signup_rejected_operator(
        &ctx.settings.operator_email,
        &tenant_id,
        input.event.id.as_str(),
        &input.error.error,
        &input.error.cause,
    );
    send_once(store, mailer, ctx.clock, &tenant_id, "rejected-operator", &operator).await?;
    sent.push("rejected-operator".to_owned());
    Ok(FailureReport { tenant_id, status: TenantStatus::Failed, mails: sent })
}
