//! The provisioning steps (infra/statemachine/provision.asl.json): each a
//! small function over the ports it needs, safe to run twice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::context::{MailReport, StepContext, load, send_best_effort, send_once, signup_of, update};
use super::error::StepError;
use super::mails;
use super::status_token::with_status_token;
use crate::checkout::status::StatusTokens;
use crate::config::TenantSettings;
use crate::domain::password::{FIRST_KEY_VERSION, PasswordKey, TemporaryPassword, hash_admin_password};
use crate::domain::{
    BillingPeriod, Catalog, CheckoutSignup, Failure, HoldId, Plan, StatusToken, StatusTokenRecord, Subdomain,
    TenantId, TenantRecord, TenantStatus, TrialKey, TrialUse,
};
use crate::ports::{
    ChangeStatus, DnsPublisher, Inserted, LaunchSpec, LaunchedTenant, Mailer, ServiceHealth, TenantLauncher,
    TenantStore,
};
use crate::stripe::StripeEventId;

/// The parts of the Stripe event a step needs.
#[derive(Debug, Clone, Deserialize)]
pub struct StripeEvent {
    pub id: StripeEventId,
    #[serde(rename = "type", default)]
    pub event_type: Option<String>,
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
    /// Recorded AWAITING_PAYMENT: provisioning waits for Stripe's
    /// `async_payment_succeeded` (the state machine's Choice reads this).
    #[serde(default)]
    pub awaiting_payment: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TenantInput {
    pub tenant_id: TenantId,
    /// The execution's name: who reserves the mails a step sends.
    pub event_id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HealthInput {
    pub tenant_id: TenantId,
    /// Looks taken before this one (`$$.State.RetryCount`).
    #[serde(default)]
    pub checks: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    pub detail: String,
    /// Looks taken, this one included.
    pub checks: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DnsCheckInput {
    pub change_id: String,
    /// Looks taken before this one (`$$.State.RetryCount`).
    #[serde(default)]
    pub checks: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsReport {
    pub name: Option<String>,
    pub change_id: String,
    pub in_sync: bool,
}

/// The error a Catch put at `$.error`.
#[derive(Debug, Clone, Deserialize)]
pub struct CaughtError {
    #[serde(rename = "Error")]
    pub error: String,
    /// For a failed Lambda function Step Functions' Cause is the function's
    /// error object as JSON text; this keeps its `errorMessage`, the
    /// sentence operators read. Any other Cause is kept as it is.
    #[serde(rename = "Cause", default, deserialize_with = "lambda_error_message")]
    pub cause: String,
}

fn lambda_error_message<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    struct LambdaError {
        #[serde(rename = "errorMessage")]
        error_message: String,
    }
    let cause = String::deserialize(deserializer)?;
    Ok(match serde_json::from_str::<LambdaError>(&cause) {
        Ok(lambda) => lambda.error_message,
        Err(_) => cause,
    })
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
    /// Mails that could not be sent: recorded, never a reason to fail.
    #[serde(default)]
    pub unsent: Vec<String>,
}

impl FailureReport {
    /// Tells the operator, once; a mail that cannot be sent is noted in the report.
    async fn tell_operator(
        mut self,
        store: &dyn TenantStore,
        mailer: &dyn Mailer,
        ctx: &StepContext<'_>,
        key: &str,
        owner: &str,
        mail: &crate::ports::Mail,
    ) -> Result<Self, StepError> {
        match send_best_effort(store, mailer, ctx.clock, &self.tenant_id, key, owner, mail).await? {
            Ok(_) => self.mails.push(key.to_owned()),
            Err(reason) => self.unsent.push(format!("{key}: {reason}")),
        }
        Ok(self)
    }
}

/// 1. Record the signup: the checkout's hold becomes the subdomain's claim
///    and the tenant is created PROVISIONING (AWAITING_PAYMENT for a delayed
///    payment), in one atomic write (the hash is made first), so a failure
///    leaves either both or neither.
pub async fn record_signup(
    store: &dyn TenantStore,
    password_key: &PasswordKey,
    ctx: &StepContext<'_>,
    input: SignupInput,
) -> Result<TenantRef, StepError> {
    if input.event.event_type.as_deref() == Some("checkout.session.async_payment_failed") {
        return Err(StepError::PaymentFailed(format!(
            "Stripe reports the delayed payment of checkout event {} failed",
            input.event.id
        )));
    }
    let signup = CheckoutSignup::from_session(&input.event.data.object, ctx.catalog)?;
    let hold = HoldId::from_session(&input.event.data.object);
    let tenant_id = signup.tenant_id();
    let mut tenant = TenantRef {
        tenant_id: tenant_id.clone(),
        subdomain: signup.subdomain.clone(),
        host: ctx.settings.domain.host(&signup.subdomain),
        awaiting_payment: signup.awaiting_payment,
    };
    let password_hash = hash_admin_password(password_key, &tenant_id).await?;
    let now = ctx.clock.now_unix();
    let subdomain = signup.subdomain.clone();
    let trial = signup.trial_days.map(|_| {
        let used = TrialUse { tenant: tenant_id.clone(), customer: signup.customer.clone(), used_at: now };
        (TrialKey::for_email(&signup.admin_email), used)
    });
    let mut record = TenantRecord::provisioning(signup, password_hash, now);
    record.admin_password_key_version = Some(password_key.current_version().to_owned());
    // The app's status token, as its hash, in the same write.
    record.status_token = Some(StatusTokenRecord::of(&StatusToken::derive(password_key, &tenant_id, 1)));
    match store.record_signup(&subdomain, &record, hold.as_ref(), now).await? {
        Inserted::New => tracing::info!(tenant_id = %tenant_id, status = %record.status, "tenant recorded"),
        Inserted::Existing(existing) => {
            tracing::info!(tenant_id = %tenant_id, status = %existing.status, "tenant already recorded");
            tenant.awaiting_payment = paid_at_last(store, ctx, &existing, tenant.awaiting_payment).await?;
        }
    }
    if let Some((key, used)) = trial {
        // The customer has had their trial now, whichever checkout reserved it.
        let first = store.record_trial_use(&key, &used).await?;
        if first.tenant != tenant_id {
            tracing::warn!(tenant_id = %tenant_id, first_tenant = %first.tenant, "a second free trial for one customer: its checkout did not reserve it");
        }
    }
    Ok(tenant)
}

/// A signup recorded AWAITING_PAYMENT whose delayed payment has now
/// arrived (this is Stripe's `async_payment_succeeded`) goes on to
/// PROVISIONING; returns whether it still awaits payment.
async fn paid_at_last(
    store: &dyn TenantStore,
    ctx: &StepContext<'_>,
    existing: &TenantRecord,
    still_unpaid: bool,
) -> Result<bool, StepError> {
    if existing.status != TenantStatus::AwaitingPayment {
        return Ok(false);
    }
    if still_unpaid {
        return Ok(true);
    }
    update(store, ctx.clock, &existing.id, |r| {
        if r.status != TenantStatus::AwaitingPayment {
            return false;
        }
        r.status = TenantStatus::Provisioning;
        if let Some(signup) = r.signup.as_mut() {
            signup.awaiting_payment = false;
        }
        true
    })
    .await?;
    tracing::info!(tenant_id = %existing.id, "delayed payment arrived: provisioning");
    Ok(false)
}

/// The app's settings on `plan`, passed to its container as environment
/// variables, with where and how it reads its live status (`status`:
/// [`StatusTokens::environment`]) and its own mail address, if it has one.
pub fn app_environment(
    record: &TenantRecord,
    signup: &CheckoutSignup,
    plan: &Plan,
    billing: BillingPeriod,
    settings: &TenantSettings,
    status: [(String, String); 2],
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([
        ("TENANT_ID".to_owned(), record.id.to_string()),
        ("TIER".to_owned(), plan.tier.to_string()),
        ("PLAN".to_owned(), plan.key.to_string()),
        ("BILLING_FREQUENCY".to_owned(), billing.to_string()),
        ("ORG_NAME".to_owned(), signup.organization.to_string()),
        ("ADMIN_EMAIL".to_owned(), signup.admin_email.to_string()),
        ("ADMIN_PASSWORD_HASH".to_owned(), record.admin_password_hash.clone().unwrap_or_default()),
        // Every relaunch carries the hash again: the app seeds the admin
        // only when there is none, never resetting a changed password.
        ("ADMIN_SEED".to_owned(), "if-absent".to_owned()),
        ("PUBLIC_URL".to_owned(), settings.url(&signup.subdomain)),
    ]);
    if let Some(address) = settings.mail_address(&signup.subdomain) {
        env.insert("TENANCY_MAIL_ADDRESS".to_owned(), address.to_string());
    }
    for (name, limit) in &plan.limits {
        env.insert(format!("LIMIT_{}", name.to_ascii_uppercase()), limit.to_string());
    }
    env.extend(status);
    env
}

/// 2. Launch the tenant's service, target group and listener rule.
pub async fn launch_tenant(
    store: &dyn TenantStore,
    launcher: &dyn TenantLauncher,
    status: &StatusTokens,
    ctx: &StepContext<'_>,
    input: TenantInput,
) -> Result<LaunchedTenant, StepError> {
    let record = load(store, &input.tenant_id).await?;
    let (record, token) = with_status_token(store, ctx.clock, status, record).await?;
    let signup = signup_of(&record)?;
    let host = ctx.settings.domain.host(&signup.subdomain);
    // The plan Stripe says now; the signup's until Stripe was first asked.
    let (plan, billing) = match &record.desired {
        Some(desired) => (&desired.plan, desired.billing),
        None => (&signup.plan, signup.billing),
    };
    let spec = LaunchSpec {
        tenant: record.id.clone(),
        environment: app_environment(
            &record,
            signup,
            plan,
            billing,
            ctx.settings,
            status.environment(&token),
        ),
        host,
        desired_count: 1,
    };
    let launched = launcher.launch(&spec).await?;
    update(store, ctx.clock, &record.id, |r| {
        let before = r.resources.clone();
        r.resources.launched(&launched);
        r.resources != before
    })
    .await?;
    Ok(launched)
}

/// 3. One health check of the service.
///
/// Not healthy yet is an error the state machine retries with backoff: a
/// look costs one state transition, where a Wait/Choice loop costs three.
pub async fn check_tenant_health(
    launcher: &dyn TenantLauncher,
    input: HealthInput,
) -> Result<HealthReport, StepError> {
    let checks = input.checks.saturating_add(1);
    match launcher.health(&input.tenant_id).await? {
        ServiceHealth::Healthy => Ok(HealthReport { detail: "healthy".into(), checks }),
        ServiceHealth::Starting { detail } => {
            Err(StepError::TenantStarting(format!("not healthy at check {checks}: {detail}")))
        }
        ServiceHealth::Broken { reason } => Err(StepError::TenantUnhealthy(reason)),
    }
}

/// 4. Publish `{subdomain}.{domain}` as an alias to the tenant's load balancer.
pub async fn publish_dns(
    store: &dyn TenantStore,
    dns: &dyn DnsPublisher,
    ctx: &StepContext<'_>,
    input: TenantInput,
) -> Result<DnsReport, StepError> {
    let record = load(store, &input.tenant_id).await?;
    let name = ctx.settings.domain.host(&signup_of(&record)?.subdomain);
    let target = record.resources.load_balancer.clone().ok_or_else(|| {
        StepError::Internal(format!("tenant {} has no load balancer recorded by its launch", record.id))
    })?;
    let change_id = dns.upsert_alias(&name, &target).await?;
    update(store, ctx.clock, &record.id, |r| {
        r.resources.dns_name = Some(name.clone());
        r.resources.dns_target = Some(target.clone());
        r.resources.dns_change_id = Some(change_id.clone());
        true
    })
    .await?;
    Ok(DnsReport { name: Some(name), change_id, in_sync: false })
}

/// 4b. Whether the DNS change has reached every Route 53 server; not yet is
/// an error the state machine retries with backoff, like the health check.
pub async fn check_dns(dns: &dyn DnsPublisher, input: DnsCheckInput) -> Result<DnsReport, StepError> {
    match dns.change_status(&input.change_id).await? {
        ChangeStatus::Insync => Ok(DnsReport { name: None, change_id: input.change_id, in_sync: true }),
        ChangeStatus::Pending => Err(StepError::DnsPending(format!(
            "change {} not INSYNC at check {}",
            input.change_id,
            input.checks.saturating_add(1)
        ))),
    }
}

/// Input of SendWelcomeMail; `gave_up` when SES could not be reached
/// within the state's retries.
#[derive(Debug, Clone, Deserialize)]
pub struct WelcomeInput {
    pub tenant_id: TenantId,
    pub event_id: String,
    #[serde(default)]
    pub gave_up: Option<CaughtError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WelcomeReport {
    /// Sent now or before.
    pub sent: Option<MailReport>,
    /// Why it was not (recorded on the tenant; the operator was told).
    pub failed: Option<String>,
}

/// 5. The welcome mail with the temporary password, sent once.
///
/// Not fatal: a mail SES refuses (sandbox, bouncing address, permissions) leaves the
/// paid, healthy tenant as it is, records why on it and tells the operator,
/// who can resend it once the cause is fixed.
pub async fn send_welcome_mail(
    store: &dyn TenantStore,
    mailer: &dyn Mailer,
    password_key: &PasswordKey,
    ctx: &StepContext<'_>,
    input: WelcomeInput,
) -> Result<WelcomeReport, StepError> {
    let record = load(store, &input.tenant_id).await?;
    let signup = signup_of(&record)?;
    let version = record.admin_password_key_version.as_deref().unwrap_or(FIRST_KEY_VERSION);
    let reason = match (&input.gave_up, password_key.version(version)) {
        (Some(caught), _) => format!("{}: {}", caught.error, caught.cause),
        // Rotated away before this mail went out: no password we could mail
        // matches the stored hash.
        (None, None) => {
            format!("password key version `{version}` is no longer configured; restore it to send this mail")
        }
        (None, Some(key)) => {
            let url = ctx.settings.url(&signup.subdomain);
            let password = TemporaryPassword::derive(&key, &record.id);
            let mail_address = ctx.settings.mail_address(&signup.subdomain);
            let mail = mails::welcome(signup, &url, &password, mail_address.as_ref());
            match send_once(store, mailer, ctx.clock, &record.id, WELCOME_MAIL, &input.event_id, &mail).await
            {
                Ok(report) => {
                    update(store, ctx.clock, &record.id, |r| r.unsent_mails.remove(WELCOME_MAIL).is_some())
                        .await?;
                    return Ok(WelcomeReport { sent: Some(report), failed: None });
                }
                Err(StepError::Rejected { reason, .. }) => reason,
                Err(other) => return Err(other),
            }
        }
    };
    tracing::warn!(tenant_id = %record.id, reason, "welcome mail not sent");
    let now = ctx.clock.now_unix();
    update(store, ctx.clock, &record.id, |r| {
        let unsent = crate::domain::UnsentMail { reason: reason.clone(), at: now };
        r.unsent_mails.insert(WELCOME_MAIL.to_owned(), unsent).is_none()
    })
    .await?;
    let alert = mails::welcome_mail_failed_operator(
        &ctx.settings.operator_email,
        &record.id,
        &signup.subdomain,
        &reason,
    );
    // The alert is best effort too: SES may be what is failing.
    send_best_effort(
        store,
        mailer,
        ctx.clock,
        &record.id,
        "welcome-failed-operator",
        &input.event_id,
        &alert,
    )
    .await?
    .ok();
    Ok(WelcomeReport { sent: None, failed: Some(reason) })
}

/// The welcome mail's key in the tenant's mails.
pub const WELCOME_MAIL: &str = "welcome";

/// Sends `tenant`'s welcome mail again once what stopped it is fixed (an
/// operator's command): SendWelcomeMail on behalf of the execution that
/// reserved it, so a mail that did go out is never sent twice.
pub async fn resend_welcome_mail(
    store: &dyn TenantStore,
    mailer: &dyn Mailer,
    password_key: &PasswordKey,
    ctx: &StepContext<'_>,
    tenant: &TenantId,
) -> Result<WelcomeReport, StepError> {
    let owner = store
        .mails(tenant)
        .await?
        .into_iter()
        .find(|m| m.key == WELCOME_MAIL)
        .map(|m| m.owner)
        .unwrap_or_else(|| format!("resend-{tenant}"));
    let input = WelcomeInput { tenant_id: tenant.clone(), event_id: owner, gave_up: None };
    send_welcome_mail(store, mailer, password_key, ctx, input).await
}

/// Compensation: remove what was made, mark FAILED, tell the operator. The
/// customer hears from GiveMoneyBack, which follows, with what was refunded.
/// Its mail cannot make compensation fail.
pub async fn compensate(
    store: &dyn TenantStore,
    launcher: &dyn TenantLauncher,
    dns: &dyn DnsPublisher,
    mailer: &dyn Mailer,
    ctx: &StepContext<'_>,
    input: FailureInput,
) -> Result<FailureReport, StepError> {
    let failure = Failure {
        error: input.error.error.clone(),
        cause: input.error.cause.clone(),
        at: ctx.clock.now_unix(),
    };
    let operator = |tenant: &TenantId| {
        mails::provisioning_failed_operator(
            &ctx.settings.operator_email,
            tenant,
            input.event.id.as_str(),
            &input.error.error,
            &input.error.cause,
        )
    };
    let Some(tenant) = input.tenant else {
        // Failed before the tenant was recorded: nothing was made, but the
        // customer paid; a FAILED record is what money back works from.
        let (tenant_id, session, subscription) = rejected_identity(&input.event, ctx.catalog);
        let record = TenantRecord::rejected(tenant_id.clone(), session, subscription, failure);
        store.insert_tenant(&record).await?;
        let report = FailureReport {
            tenant_id: tenant_id.clone(),
            status: TenantStatus::Failed,
            mails: vec![],
            unsent: vec![],
        };
        return report
            .tell_operator(
                store,
                mailer,
                ctx,
                "failed-operator",
                input.event.id.as_str(),
                &operator(&tenant_id),
            )
            .await;
    };
    // Order: stop traffic first (DNS), then the app, then release the name.
    dns.delete_alias(&tenant.host).await?;
    launcher.remove(&tenant.tenant_id).await?;
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
    let report = FailureReport {
        tenant_id: record.id.clone(),
        status: TenantStatus::Failed,
        mails: vec![],
        unsent: vec![],
    };
    report
        .tell_operator(store, mailer, ctx, "failed-operator", input.event.id.as_str(), &operator(&record.id))
        .await
}

/// The tenant id, checkout session and subscription of a checkout that
/// cannot become a tenant, from whatever of it can be read.
fn rejected_identity(
    event: &StripeEvent,
    catalog: &Catalog,
) -> (TenantId, Option<crate::domain::CheckoutSessionId>, Option<crate::domain::SubscriptionId>) {
    match CheckoutSignup::from_session(&event.data.object, catalog) {
        Ok(signup) => (signup.tenant_id(), Some(signup.checkout_session), Some(signup.subscription)),
        Err(invalid) => {
            let id = match &invalid.checkout_session {
                Some(session) => TenantId::for_checkout(session),
                None => TenantId::for_event(&event.id),
            };
            (id, invalid.checkout_session, invalid.subscription)
        }
    }
}

/// A signup that cannot become a tenant (bad metadata, subdomain taken): a
/// FAILED record saying why, keeping its subscription for GiveMoneyBack
/// (which follows, and tells the customer), and a mail to the operator.
pub async fn reject_signup(
    store: &dyn TenantStore,
    mailer: &dyn Mailer,
    ctx: &StepContext<'_>,
    input: FailureInput,
) -> Result<FailureReport, StepError> {
    let (tenant_id, session, subscription) = rejected_identity(&input.event, ctx.catalog);
    let failure = Failure {
        error: input.error.error.clone(),
        cause: input.error.cause.clone(),
        at: ctx.clock.now_unix(),
    };
    let record = TenantRecord::rejected(tenant_id.clone(), session, subscription, failure.clone());
    if let Inserted::Existing(existing) = store.insert_tenant(&record).await? {
        match existing.status {
            TenantStatus::Failed => {}
            // Its delayed payment failed: the signup ends and the name it
            // held is free again.
            TenantStatus::AwaitingPayment => {
                update(store, ctx.clock, &tenant_id, |r| {
                    r.status = TenantStatus::Failed;
                    r.failure = Some(failure.clone());
                    true
                })
                .await?;
                if let Some(signup) = &existing.signup {
                    store.release_subdomain(&signup.subdomain, &tenant_id).await?;
                }
            }
            // A real tenant under this id is never turned into a rejection.
            other => return Err(StepError::Internal(format!("tenant {tenant_id} exists as {other}"))),
        }
    }
    let operator = mails::signup_rejected_operator(
        &ctx.settings.operator_email,
        &tenant_id,
        input.event.id.as_str(),
        &input.error.error,
        &input.error.cause,
    );
    let report = FailureReport { tenant_id, status: TenantStatus::Failed, mails: vec![], unsent: vec![] };
    report.tell_operator(store, mailer, ctx, "rejected-operator", input.event.id.as_str(), &operator).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::adapters::local::{LocalDns, LocalLauncher, LocalOutbox, LocalTenantStore};
    use crate::clock::{Clock, FixedClock};
    use crate::config::TenantSettings;

    /// A caught Lambda error's Cause is the function's error object as JSON
    /// text (LocalStack's test_task_lambda.py::test_raise_exception_catch);
    /// the failure keeps its errorMessage.
    #[test]
    fn caught_lambda_cause_reads_as_its_error_message() {
        let lambda = json!({"Error": "Tenancy.Transient", "Cause": "{\"errorType\":\"Tenancy.Transient\",\"errorMessage\":\"ECS: 502\"}"});
        let caught: CaughtError = serde_json::from_value(lambda).unwrap();
        assert_eq!((caught.error.as_str(), caught.cause.as_str()), ("Tenancy.Transient", "ECS: 502"));
        for cause in ["", "plain words", "{\"other\": 1}"] {
            let caught: CaughtError = serde_json::from_value(json!({"Error": "E", "Cause": cause})).unwrap();
            assert_eq!(caught.cause, cause);
        }
        let caught: CaughtError = serde_json::from_value(json!({"Error": "States.Timeout"})).unwrap();
        assert_eq!(caught.cause, "");
    }

    const NOW: i64 = 1_763_800_100;

    struct World {
        store: LocalTenantStore,
        launcher: LocalLauncher,
        dns: LocalDns,
        outbox: LocalOutbox,
        settings: TenantSettings,
        catalog: Catalog,
        key: PasswordKey,
        clock: FixedClock,
    }

    impl World {
        fn new() -> World {
            let clock: Arc<dyn Clock> = Arc::new(FixedClock(NOW));
            World {
                store: LocalTenantStore::open(None, clock.clone()).unwrap(),
                launcher: LocalLauncher::open(None, clock.clone(), Duration::ZERO).unwrap(),
                dns: LocalDns::open(None, clock.clone(), Duration::ZERO).unwrap(),
                outbox: LocalOutbox::open(None, clock).unwrap(),
                settings: TenantSettings::for_tests(),
                catalog: Catalog::embedded().unwrap(),
                key: PasswordKey::parse("unit-test-password-key-0123456789abcdef").unwrap(),
                clock: FixedClock(NOW),
            }
        }

        fn ctx(&self) -> StepContext<'_> {
            StepContext { settings: &self.settings, catalog: &self.catalog, clock: &self.clock }
        }

        fn status(&self) -> StatusTokens {
            StatusTokens::new("https://api.example.com", self.key.clone())
        }

        async fn welcome(
            &self,
            mailer: &dyn Mailer,
            tenant: &TenantRef,
            gave_up: Option<Value>,
        ) -> Result<WelcomeReport, StepError> {
            let input = serde_json::from_value(
                json!({"tenant_id": tenant.tenant_id, "event_id": "evt_1QAcmeCheckoutDone", "gave_up": gave_up}),
            )
            .unwrap();
            send_welcome_mail(&self.store, mailer, &self.key, &self.ctx(), input).await
        }

        async fn record(&self, event: &Value) -> Result<TenantRef, StepError> {
            let input = serde_json::from_value(json!({ "event": event })).unwrap();
            record_signup(&self.store, &self.key, &self.ctx(), input).await
        }
    }

    fn checkout_event() -> Value {
        serde_json::from_str(include_str!("../../../events/01-checkout.session.completed.json")).unwrap()
    }

    fn tenant_input(tenant: &TenantRef) -> TenantInput {
        TenantInput { tenant_id: tenant.tenant_id.clone(), event_id: "evt_1QAcmeCheckoutDone".into() }
    }

    #[tokio::test]
    async fn record_signup_twice_makes_one_tenant_and_one_claim() {
        let world = World::new();
        let first = world.record(&checkout_event()).await.unwrap();
        let second = world.record(&checkout_event()).await.unwrap();
        assert_eq!(first, second);
        assert_eq!(first.host, "acme.apps.example.com");
        let tenants = world.store.list_tenants().await.unwrap();
        assert_eq!(tenants.len(), 1);
        assert_eq!(tenants[0].status, TenantStatus::Provisioning);
        assert!(tenants[0].admin_password_hash.as_deref().unwrap().starts_with("$argon2id$"));
        assert_eq!(world.store.claims().len(), 1);
    }

    #[tokio::test]
    async fn a_second_checkout_for_a_held_subdomain_is_subdomain_taken() {
        let world = World::new();
        world.record(&checkout_event()).await.unwrap();
        let mut other = checkout_event();
        other["id"] = json!("evt_other");
        other["data"]["object"]["id"] = json!("cs_test_someone_else");
        let error = world.record(&other).await.unwrap_err();
        assert_eq!(error.error_name(), "Tenancy.SubdomainTaken");
        assert_eq!(world.store.list_tenants().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_checkout_takes_its_own_hold_and_someone_elses_live_hold_is_subdomain_taken() {
        use crate::ports::{HoldOutcome, HoldRequest};
        let world = World::new();
        let acme = Subdomain::parse("acme").unwrap();
        let hold_of =
            |email: &str| HoldId::for_buyer(&acme, &crate::domain::EmailAddress::parse(email).unwrap());
        let (dana, gavin) = (hold_of("dana@acme.example"), hold_of("gavin@hooli.example"));
        let request = HoldRequest {
            subdomain: acme.clone(),
            hold_id: gavin.clone(),
            until: NOW + 600,
            form: String::new(),
            limits: vec![],
        };
        assert!(matches!(world.store.hold_subdomain(&request, NOW).await.unwrap(), HoldOutcome::Held(_)));

        let mut event = checkout_event();
        event["data"]["object"]["metadata"]["hold"] = json!(dana.as_str());
        let error = world.record(&event).await.unwrap_err();
        assert_eq!(error.error_name(), "Tenancy.SubdomainTaken");
        assert!(world.store.list_tenants().await.unwrap().is_empty() && world.store.claims().is_empty());

        // Gavin's own checkout carries his hold: it becomes his claim, once.
        event["data"]["object"]["metadata"]["hold"] = json!(gavin.as_str());
        let first = world.record(&event).await.unwrap();
        assert_eq!(world.record(&event).await.unwrap(), first);
        assert_eq!(world.store.claims()[&acme].tenant_id, first.tenant_id);
        assert_eq!(world.store.subdomain_hold(&acme, NOW).await.unwrap(), None);
        assert_eq!(world.store.list_tenants().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn bad_metadata_is_invalid_signup_and_records_nothing() {
        let world = World::new();
        let mut event = checkout_event();
        event["data"]["object"]["metadata"]["plan"] = json!("platinum");
        let error = world.record(&event).await.unwrap_err();
        assert_eq!(error.error_name(), "Tenancy.InvalidSignup");
        assert!(error.to_string().contains("platinum"));
        assert!(world.store.list_tenants().await.unwrap().is_empty());
        assert!(world.store.claims().is_empty());
    }

    #[tokio::test]
    async fn launch_twice_gives_one_service_with_the_app_settings() {
        let world = World::new();
        let tenant = world.record(&checkout_event()).await.unwrap();
        let (status, ctx) = (world.status(), world.ctx());
        let launch = || launch_tenant(&world.store, &world.launcher, &status, &ctx, tenant_input(&tenant));
        let first = launch().await.unwrap();
        let second = launch().await.unwrap();
        assert_eq!(first, second);
        let services = world.launcher.services();
        assert_eq!(services.len(), 1);
        let env = &services[0].environment;
        assert_eq!(env["TIER"], "2");
        assert_eq!(env["PLAN"], "pro");
        assert_eq!(env["BILLING_FREQUENCY"], "monthly");
        assert_eq!(env["ORG_NAME"], "Acme Robotics");
        assert_eq!(env["ADMIN_EMAIL"], "dana@acme.example");
        assert_eq!(env["LIMIT_ACTIVITIES"], "15");
        assert_eq!(env["PUBLIC_URL"], "https://acme.apps.example.com");
        assert!(env["ADMIN_PASSWORD_HASH"].starts_with("$argon2id$"));
        let record = world.store.get_tenant(&tenant.tenant_id).await.unwrap().unwrap();
        assert_eq!(record.resources.service_arn.as_deref(), Some(first.service_arn.as_str()));
        // The status token recorded with the signup, as its hash only.
        assert_eq!(env["TENANCY_STATUS_URL"], "https://api.example.com/status");
        let token = StatusToken::parse(&env["TENANCY_STATUS_TOKEN"]).unwrap();
        assert_eq!(token.tenant(), &record.id);
        let recorded = record.status_token.as_ref().expect("recorded at signup");
        assert!(recorded.matches(&token));
        assert!(!serde_json::to_string(&record).unwrap().contains(token.expose()));
        assert!(!env.contains_key("TENANCY_MAIL_ADDRESS"), "the stage gives tenants no address");
    }

    #[tokio::test]
    async fn the_app_and_the_welcome_mail_name_the_tenants_own_address() {
        let mut world = World::new();
        world.settings.mail = Some(
            crate::inbound::address::TenantMailAddresses::new("{subdomain}_app", "mail.example.com").unwrap(),
        );
        let tenant = world.record(&checkout_event()).await.unwrap();
        launch_tenant(&world.store, &world.launcher, &world.status(), &world.ctx(), tenant_input(&tenant))
            .await
            .unwrap();
        assert_eq!(
            world.launcher.services()[0].environment["TENANCY_MAIL_ADDRESS"],
            "acme_app@mail.example.com"
        );
        world.welcome(&world.outbox, &tenant, None).await.unwrap().sent.unwrap();
        let sent = world.outbox.sent();
        assert!(
            sent[0].mail.text.contains("Mail to acme_app@mail.example.com is forwarded to you."),
            "{}",
            sent[0].mail.text
        );
    }

    #[tokio::test]
    async fn a_tenant_from_before_status_tokens_gets_one_recorded_before_its_launch() {
        let world = World::new();
        let tenant = world.record(&checkout_event()).await.unwrap();
        update(&world.store, &world.clock, &tenant.tenant_id, |r| r.status_token.take().is_some())
            .await
            .unwrap();
        let launch = async || {
            launch_tenant(
                &world.store,
                &world.launcher,
                &world.status(),
                &world.ctx(),
                tenant_input(&tenant),
            )
            .await
            .unwrap();
            world.launcher.services()[0].environment.clone()
        };
        let first = launch().await;
        let record = world.store.get_tenant(&tenant.tenant_id).await.unwrap().unwrap();
        let recorded = record.status_token.clone().expect("written by the launch");
        assert_eq!(recorded.generation, 1);
        assert!(recorded.matches(&StatusToken::parse(&first["TENANCY_STATUS_TOKEN"]).unwrap()));
        // Derived: a second launch computes the same environment and writes nothing.
        assert_eq!(launch().await, first);
        let again = world.store.get_tenant(&tenant.tenant_id).await.unwrap().unwrap();
        assert_eq!(again.status_token, Some(recorded));
        assert_eq!(again.version, record.version, "the launch's own write only");
    }

    #[tokio::test]
    async fn health_counts_checks_and_dns_publishes_one_record() {
        let world = World::new();
        let tenant = world.record(&checkout_event()).await.unwrap();
        let health = HealthInput { tenant_id: tenant.tenant_id.clone(), checks: 0 };
        let before = check_tenant_health(&world.launcher, health.clone()).await.unwrap_err();
        assert_eq!(before.error_name(), "Tenancy.TenantUnhealthy", "no service yet: {before}");
        launch_tenant(&world.store, &world.launcher, &world.status(), &world.ctx(), tenant_input(&tenant))
            .await
            .unwrap();
        let after = check_tenant_health(&world.launcher, HealthInput { checks: 3, ..health }).await.unwrap();
        assert_eq!(after, HealthReport { detail: "healthy".into(), checks: 4 });

        let first = publish_dns(&world.store, &world.dns, &world.ctx(), tenant_input(&tenant)).await.unwrap();
        let second =
            publish_dns(&world.store, &world.dns, &world.ctx(), tenant_input(&tenant)).await.unwrap();
        assert_eq!(world.dns.records().len(), 1);
        assert_eq!(world.dns.records()[0].name, "acme.apps.example.com");
        let status = check_dns(&world.dns, DnsCheckInput { change_id: second.change_id.clone(), checks: 0 })
            .await
            .unwrap();
        assert!(status.in_sync);
        assert_ne!(first.change_id, second.change_id, "each UPSERT is a change of its own");
    }

    #[tokio::test]
    async fn a_service_still_starting_and_a_change_still_pending_are_errors_to_retry() {
        let world = World::new();
        let clock: Arc<dyn Clock> = Arc::new(FixedClock(NOW));
        let slow_launcher = LocalLauncher::open(None, clock.clone(), Duration::from_secs(20)).unwrap();
        let slow_dns = LocalDns::open(None, clock, Duration::from_secs(30)).unwrap();
        let tenant = world.record(&checkout_event()).await.unwrap();
        launch_tenant(&world.store, &slow_launcher, &world.status(), &world.ctx(), tenant_input(&tenant))
            .await
            .unwrap();
        let starting = check_tenant_health(
            &slow_launcher,
            HealthInput { tenant_id: tenant.tenant_id.clone(), checks: 2 },
        )
        .await
        .unwrap_err();
        assert_eq!(starting.error_name(), "Tenancy.TenantStarting");
        assert!(starting.to_string().contains("at check 3"), "{starting}");
        let published =
            publish_dns(&world.store, &slow_dns, &world.ctx(), tenant_input(&tenant)).await.unwrap();
        let pending = check_dns(&slow_dns, DnsCheckInput { change_id: published.change_id, checks: 0 })
            .await
            .unwrap_err();
        assert_eq!(pending.error_name(), "Tenancy.DnsPending");
    }

    #[tokio::test]
    async fn welcome_mail_goes_out_once_with_the_password_whose_hash_the_app_has() {
        let world = World::new();
        let tenant = world.record(&checkout_event()).await.unwrap();
        let first = world.welcome(&world.outbox, &tenant, None).await.unwrap().sent.unwrap();
        let second = world.welcome(&world.outbox, &tenant, None).await.unwrap().sent.unwrap();
        assert!(!first.already_sent && second.already_sent);
        assert_eq!(first.message_id, second.message_id);
        let sent = world.outbox.sent();
        assert_eq!(sent.len(), 1);
        let password = TemporaryPassword::derive(&world.key, &tenant.tenant_id);
        assert!(sent[0].mail.text.contains(password.expose()));
        assert!(sent[0].mail.text.contains("https://acme.apps.example.com"));
        let record = world.store.get_tenant(&tenant.tenant_id).await.unwrap().unwrap();
        assert!(!serde_json::to_string(&record).unwrap().contains(password.expose()), "plaintext stored");
    }

    #[tokio::test]
    async fn a_refused_welcome_mail_leaves_the_tenant_records_why_and_a_resend_clears_it() {
        let world = World::new();
        let tenant = world.record(&checkout_event()).await.unwrap();
        let report = world.welcome(&RefusingMailer, &tenant, None).await.unwrap();
        assert!(report.failed.as_deref().unwrap().contains("MessageRejected"), "{report:?}");
        let record = world.store.get_tenant(&tenant.tenant_id).await.unwrap().unwrap();
        assert_eq!(record.status, TenantStatus::Provisioning, "not torn down, not failed");
        assert!(record.unsent_mails["welcome"].reason.contains("MessageRejected"));
        // SES never came back within the retries: the same, from the caught error.
        let caught = json!({"Error": "Tenancy.Transient", "Cause": "mail failed for now"});
        let report = world.welcome(&world.outbox, &tenant, Some(caught)).await.unwrap();
        assert_eq!(report.failed.as_deref(), Some("Tenancy.Transient: mail failed for now"));
        let alerts = world.outbox.sent();
        assert_eq!(alerts.len(), 1);
        assert!(alerts[0].mail.subject.contains("welcome mail NOT SENT for acme"));
        // Resent once the cause is fixed: sent, and the record says so.
        let resent = world.welcome(&world.outbox, &tenant, None).await.unwrap();
        assert!(resent.sent.is_some() && resent.failed.is_none());
        let record = world.store.get_tenant(&tenant.tenant_id).await.unwrap().unwrap();
        assert!(record.unsent_mails.is_empty());
    }

    #[tokio::test]
    async fn a_key_rotated_between_signup_and_mail_still_mails_the_password_the_app_has() {
        let mut world = World::new();
        let tenant = world.record(&checkout_event()).await.unwrap();
        let hash =
            world.store.get_tenant(&tenant.tenant_id).await.unwrap().unwrap().admin_password_hash.unwrap();
        // Rotated: a new current key, the old one kept as version 1.
        world.key = PasswordKey::parse(
            "v2:a-new-password-key-0123456789abcdefgh,1:unit-test-password-key-0123456789abcdef",
        )
        .unwrap();
        world.welcome(&world.outbox, &tenant, None).await.unwrap().sent.unwrap();
        let text = &world.outbox.sent()[0].mail.text;
        let mailed = text.split("Temporary password: ").nth(1).unwrap().lines().next().unwrap().trim();
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(
            argon2::Argon2::default().verify_password(mailed.as_bytes(), &parsed).is_ok(),
            "mailed password matches"
        );
        // Dropped too early: recorded, not a wrong password mailed.
        let other = world.record(&checkout_from_session("cs_test_rotated", "globex")).await.unwrap();
        world.key = PasswordKey::parse("v3:yet-another-password-key-0123456789abc").unwrap();
        let report = world.welcome(&world.outbox, &other, None).await.unwrap();
        assert!(report.failed.unwrap().contains("version `v2` is no longer configured"));
    }

    fn checkout_from_session(session: &str, subdomain: &str) -> Value {
        let mut event = checkout_event();
        event["id"] = json!(format!("evt_{session}"));
        event["data"]["object"]["id"] = json!(session);
        event["data"]["object"]["metadata"]["subdomain"] = json!(subdomain);
        event
    }

    fn failure_input(tenant: Option<&TenantRef>, error: &str) -> FailureInput {
        serde_json::from_value(json!({
            "event": checkout_event(),
            "tenant": tenant,
            "error": {"Error": error, "Cause": "it broke"},
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn compensate_twice_removes_everything_and_tells_the_operator_once() {
        let world = World::new();
        let tenant = world.record(&checkout_event()).await.unwrap();
        launch_tenant(&world.store, &world.launcher, &world.status(), &world.ctx(), tenant_input(&tenant))
            .await
            .unwrap();
        publish_dns(&world.store, &world.dns, &world.ctx(), tenant_input(&tenant)).await.unwrap();
        for _ in 0..2 {
            let input = failure_input(Some(&tenant), "Tenancy.Rejected");
            let report =
                compensate(&world.store, &world.launcher, &world.dns, &world.outbox, &world.ctx(), input)
                    .await
                    .unwrap();
            assert_eq!(report.status, TenantStatus::Failed);
        }
        assert!(world.launcher.services().is_empty());
        assert!(world.dns.records().is_empty());
        assert!(world.store.claims().is_empty(), "the subdomain is free again");
        let record = world.store.get_tenant(&tenant.tenant_id).await.unwrap().unwrap();
        assert_eq!(record.status, TenantStatus::Failed);
        assert_eq!(record.failure.as_ref().unwrap().error, "Tenancy.Rejected");
        // The customer hears from GiveMoneyBack, with what was refunded.
        let recipients: Vec<String> = world.outbox.sent().iter().map(|m| m.mail.to.to_string()).collect();
        assert_eq!(recipients, ["ops@example.com"]);
    }

    /// A mailer SES refuses everything from (the sandbox's MessageRejected).
    struct RefusingMailer;

    #[async_trait::async_trait]
    impl Mailer for RefusingMailer {
        async fn send(&self, _: &crate::ports::Mail) -> Result<String, crate::ports::MailError> {
            Err(crate::ports::MailError::Rejected("MessageRejected: Email address is not verified".into()))
        }
    }

    #[tokio::test]
    async fn a_mail_that_cannot_be_sent_does_not_fail_compensation_or_rejection() {
        let world = World::new();
        let tenant = world.record(&checkout_event()).await.unwrap();
        launch_tenant(&world.store, &world.launcher, &world.status(), &world.ctx(), tenant_input(&tenant))
            .await
            .unwrap();
        let input = failure_input(Some(&tenant), "Tenancy.Rejected");
        let report =
            compensate(&world.store, &world.launcher, &world.dns, &RefusingMailer, &world.ctx(), input)
                .await
                .unwrap();
        assert_eq!(report.status, TenantStatus::Failed);
        assert!(report.mails.is_empty());
        assert!(
            report.unsent[0].starts_with("failed-operator: ") && report.unsent[0].contains("MessageRejected"),
            "{:?}",
            report.unsent
        );
        assert!(world.launcher.services().is_empty(), "compensation still removed the service");

        let mut other = checkout_event();
        other["data"]["object"]["id"] = json!("cs_test_other");
        other["data"]["object"]["metadata"]["plan"] = json!("platinum");
        let mut input = failure_input(None, "Tenancy.InvalidSignup");
        input.event = serde_json::from_value(other).unwrap();
        let report = reject_signup(&world.store, &RefusingMailer, &world.ctx(), input).await.unwrap();
        assert_eq!((report.status, report.unsent.len()), (TenantStatus::Failed, 1));
    }

    #[tokio::test]
    async fn reject_signup_twice_records_failed_with_its_subscription_and_tells_the_operator_once() {
        let world = World::new();
        let mut event = checkout_event();
        event["data"]["object"]["metadata"]["subdomain"] = json!("www");
        for _ in 0..2 {
            let mut input = failure_input(None, "Tenancy.InvalidSignup");
            input.event = serde_json::from_value(event.clone()).unwrap();
            let report = reject_signup(&world.store, &world.outbox, &world.ctx(), input).await.unwrap();
            assert_eq!(report.mails, ["rejected-operator"]);
        }
        let tenants = world.store.list_tenants().await.unwrap();
        assert_eq!(tenants.len(), 1);
        assert_eq!(tenants[0].status, TenantStatus::Failed);
        assert!(tenants[0].signup.is_none());
        assert_eq!(
            tenants[0].subscription().map(|s| s.as_str()),
            Some("sub_1QAcmeR0b0t1csPro"),
            "kept for money back"
        );
        assert_eq!(world.outbox.sent().len(), 1);
    }
}
