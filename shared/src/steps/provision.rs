//! The provisioning steps (infra/statemachine/provision.asl.json): each a
//! small function over the ports it needs, safe to run twice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::context::{MailReport, StepContext, load, send_once, signup_of, update};
use super::error::StepError;
use super::mails;
use crate::domain::password::{PasswordKey, TemporaryPassword, hash_admin_password};
use crate::domain::{
    BillingPeriod, Catalog, CheckoutSignup, Failure, HoldId, Plan, Subdomain, TenantId, TenantRecord,
    TenantStatus,
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
}

/// 1. Record the signup: the checkout's hold becomes the subdomain's claim
///    and the tenant is created PROVISIONING, in one atomic write (the hash
///    is made first), so a failure leaves either both or neither.
pub async fn record_signup(
    store: &dyn TenantStore,
    password_key: &PasswordKey,
    ctx: &StepContext<'_>,
    input: SignupInput,
) -> Result<TenantRef, StepError> {
    let signup = CheckoutSignup::from_session(&input.event.data.object, ctx.catalog)?;
    let hold = HoldId::from_session(&input.event.data.object);
    let tenant_id = signup.tenant_id();
    let tenant = TenantRef {
        tenant_id: tenant_id.clone(),
        subdomain: signup.subdomain.clone(),
        host: ctx.settings.domain.host(&signup.subdomain),
    };
    let password_hash = hash_admin_password(password_key, &tenant_id).await?;
    let now = ctx.clock.now_unix();
    let subdomain = signup.subdomain.clone();
    let record = TenantRecord::provisioning(signup, password_hash, now);
    match store.record_signup(&subdomain, &record, hold.as_ref(), now).await? {
        Inserted::New => tracing::info!(tenant_id = %tenant_id, "tenant recorded as PROVISIONING"),
        Inserted::Existing(existing) => {
            tracing::info!(tenant_id = %tenant_id, status = %existing.status, "tenant already recorded")
        }
    }
    Ok(tenant)
}

/// The app's settings on `plan`, passed to its container as environment variables.
pub fn app_environment(
    record: &TenantRecord,
    signup: &CheckoutSignup,
    plan: &Plan,
    billing: BillingPeriod,
    url: &str,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([
        ("TENANT_ID".to_owned(), record.id.to_string()),
        ("TIER".to_owned(), plan.tier.to_string()),
        ("PLAN".to_owned(), plan.key.to_string()),
        ("BILLING_FREQUENCY".to_owned(), billing.to_string()),
        ("ORG_NAME".to_owned(), signup.organization.to_string()),
        ("ADMIN_EMAIL".to_owned(), signup.admin_email.to_string()),
        ("ADMIN_PASSWORD_HASH".to_owned(), record.admin_password_hash.clone().unwrap_or_default()),
        ("PUBLIC_URL".to_owned(), url.to_owned()),
    ]);
    for (name, limit) in &plan.limits {
        env.insert(format!("LIMIT_{}", name.to_ascii_uppercase()), limit.to_string());
    }
    env
}

/// 2. Launch the tenant's service, target group and listener rule.
pub async fn launch_tenant(
    store: &dyn TenantStore,
    launcher: &dyn TenantLauncher,
    ctx: &StepContext<'_>,
    input: TenantInput,
) -> Result<LaunchedTenant, StepError> {
    let record = load(store, &input.tenant_id).await?;
    let signup = signup_of(&record)?;
    let host = ctx.settings.domain.host(&signup.subdomain);
    // The plan Stripe says now; the signup's until Stripe was first asked.
    let (plan, billing) = match &record.desired {
        Some(desired) => (&desired.plan, desired.billing),
        None => (&signup.plan, signup.billing),
    };
    let spec = LaunchSpec {
        tenant: record.id.clone(),
        environment: app_environment(&record, signup, plan, billing, &format!("https://{host}")),
        host,
        desired_count: 1,
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

/// 4. Publish `{subdomain}.{domain}` as an alias to the load balancer.
pub async fn publish_dns(
    store: &dyn TenantStore,
    dns: &dyn DnsPublisher,
    ctx: &StepContext<'_>,
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

/// 5. The welcome mail with the temporary password, sent once.
pub async fn send_welcome_mail(
    store: &dyn TenantStore,
    mailer: &dyn Mailer,
    password_key: &PasswordKey,
    ctx: &StepContext<'_>,
    input: TenantInput,
) -> Result<MailReport, StepError> {
    let record = load(store, &input.tenant_id).await?;
    let signup = signup_of(&record)?;
    let url = format!("https://{}", ctx.settings.domain.host(&signup.subdomain));
    let password = TemporaryPassword::derive(password_key, &record.id);
    let mail = mails::welcome(signup, &url, &password);
    send_once(store, mailer, ctx.clock, &record.id, "welcome", &input.event_id, &mail).await
}

/// Compensation: remove what was made, mark FAILED, tell customer and operator.
pub async fn compensate(
    store: &dyn TenantStore,
    launcher: &dyn TenantLauncher,
    dns: &dyn DnsPublisher,
    mailer: &dyn Mailer,
    ctx: &StepContext<'_>,
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
        return Ok(FailureReport {
            tenant_id,
            status: TenantStatus::Failed,
            mails: vec!["failed-operator".into()],
        });
    };
    // Order: stop traffic first (DNS), then the app, then release the name.
    dns.delete_alias(&tenant.host).await?;
    launcher.remove(&tenant.tenant_id).await?;
    let failure = Failure {
        error: input.error.error.clone(),
        cause: input.error.cause.clone(),
        at: ctx.clock.now_unix(),
    };
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
        send_once(
            store,
            mailer,
            ctx.clock,
            &record.id,
            "failed-customer",
            input.event.id.as_str(),
            &mails::provisioning_failed_customer(signup),
        )
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
    send_once(store, mailer, ctx.clock, &record.id, "failed-operator", input.event.id.as_str(), &operator)
        .await?;
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
    ctx: &StepContext<'_>,
    input: FailureInput,
) -> Result<FailureReport, StepError> {
    let (tenant_id, session, customer_email) =
        match CheckoutSignup::from_session(&input.event.data.object, ctx.catalog) {
            Ok(signup) => (signup.tenant_id(), Some(signup.checkout_session), Some(signup.admin_email)),
            Err(invalid) => {
                let id = match &invalid.checkout_session {
                    Some(session) => TenantId::for_checkout(session),
                    None => TenantId::for_event(&input.event.id),
                };
                (id, invalid.checkout_session, invalid.customer_email)
            }
        };
    let failure = Failure {
        error: input.error.error.clone(),
        cause: input.error.cause.clone(),
        at: ctx.clock.now_unix(),
    };
    let record = TenantRecord::rejected(tenant_id.clone(), session, failure);
    if let Inserted::Existing(existing) = store.insert_tenant(&record).await?
        && existing.status != TenantStatus::Failed
    {
        // A real tenant under this id is never turned into a rejection.
        return Err(StepError::Internal(format!("tenant {tenant_id} exists as {}", existing.status)));
    }
    let mut sent = Vec::new();
    if let Some(email) = customer_email {
        let reason = match input.error.error.as_str() {
            "Tenancy.SubdomainTaken" => "the address you chose was taken by someone else a moment before",
            _ => "the signup details were incomplete",
        };
        send_once(
            store,
            mailer,
            ctx.clock,
            &tenant_id,
            "rejected-customer",
            input.event.id.as_str(),
            &mails::signup_rejected_customer(&email, reason),
        )
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
    send_once(store, mailer, ctx.clock, &tenant_id, "rejected-operator", input.event.id.as_str(), &operator)
        .await?;
    sent.push("rejected-operator".to_owned());
    Ok(FailureReport { tenant_id, status: TenantStatus::Failed, mails: sent })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::adapters::local::{LocalDns, LocalLauncher, LocalOutbox, LocalTenantStore};
    use crate::clock::{Clock, FixedClock};
    use crate::config::{TenantDomain, TenantSettings};

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
    use crate::domain::EmailAddress;

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
                dns: LocalDns::open(None, clock.clone(), Duration::ZERO, "alb.local").unwrap(),
                outbox: LocalOutbox::open(None, clock).unwrap(),
                settings: TenantSettings {
                    domain: TenantDomain::parse("apps.example.com").unwrap(),
                    operator_email: EmailAddress::parse("ops@example.com").unwrap(),
                    subdomain_grace: std::time::Duration::from_secs(60),
                },
                catalog: Catalog::embedded().unwrap(),
                key: PasswordKey::parse("unit-test-password-key-0123456789abcdef").unwrap(),
                clock: FixedClock(NOW),
            }
        }

        fn ctx(&self) -> StepContext<'_> {
            StepContext { settings: &self.settings, catalog: &self.catalog, clock: &self.clock }
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
        let first =
            launch_tenant(&world.store, &world.launcher, &world.ctx(), tenant_input(&tenant)).await.unwrap();
        let second =
            launch_tenant(&world.store, &world.launcher, &world.ctx(), tenant_input(&tenant)).await.unwrap();
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
    }

    #[tokio::test]
    async fn health_counts_checks_and_dns_publishes_one_record() {
        let world = World::new();
        let tenant = world.record(&checkout_event()).await.unwrap();
        let health = HealthInput { tenant_id: tenant.tenant_id.clone(), checks: 0 };
        let before = check_tenant_health(&world.launcher, health.clone()).await.unwrap_err();
        assert_eq!(before.error_name(), "Tenancy.TenantUnhealthy", "no service yet: {before}");
        launch_tenant(&world.store, &world.launcher, &world.ctx(), tenant_input(&tenant)).await.unwrap();
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
        let slow_dns = LocalDns::open(None, clock, Duration::from_secs(30), "alb.local").unwrap();
        let tenant = world.record(&checkout_event()).await.unwrap();
        launch_tenant(&world.store, &slow_launcher, &world.ctx(), tenant_input(&tenant)).await.unwrap();
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
        let first =
            send_welcome_mail(&world.store, &world.outbox, &world.key, &world.ctx(), tenant_input(&tenant))
                .await
                .unwrap();
        let second =
            send_welcome_mail(&world.store, &world.outbox, &world.key, &world.ctx(), tenant_input(&tenant))
                .await
                .unwrap();
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

    fn failure_input(tenant: Option<&TenantRef>, error: &str) -> FailureInput {
        serde_json::from_value(json!({
            "event": checkout_event(),
            "tenant": tenant,
            "error": {"Error": error, "Cause": "it broke"},
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn compensate_twice_removes_everything_and_mails_once_each() {
        let world = World::new();
        let tenant = world.record(&checkout_event()).await.unwrap();
        launch_tenant(&world.store, &world.launcher, &world.ctx(), tenant_input(&tenant)).await.unwrap();
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
        let recipients: Vec<String> = world.outbox.sent().iter().map(|m| m.mail.to.to_string()).collect();
        assert_eq!(recipients, ["dana@acme.example", "ops@example.com"]);
    }

    #[tokio::test]
    async fn reject_signup_twice_records_failed_and_tells_both_once() {
        let world = World::new();
        let mut event = checkout_event();
        event["data"]["object"]["metadata"]["subdomain"] = json!("www");
        for _ in 0..2 {
            let mut input = failure_input(None, "Tenancy.InvalidSignup");
            input.event = serde_json::from_value(event.clone()).unwrap();
            let report = reject_signup(&world.store, &world.outbox, &world.ctx(), input).await.unwrap();
            assert_eq!(report.mails, ["rejected-customer", "rejected-operator"]);
        }
        let tenants = world.store.list_tenants().await.unwrap();
        assert_eq!(tenants.len(), 1);
        assert_eq!(tenants[0].status, TenantStatus::Failed);
        assert!(tenants[0].signup.is_none());
        assert_eq!(world.outbox.sent().len(), 2);
    }
}
