//! Money back (docs/architecture.md decision 7): a paid checkout that cannot
//! become a tenant (rejected, or compensated), and a FAILED or cancelled
//! tenant that Stripe still charges, get their subscription cancelled and
//! their payments refunded, once, recorded on the tenant; the customer's
//! mail says what was refunded, and the operator is told.
//!
//! GiveMoneyBack runs after RejectSignup and Compensate in provisioning, and
//! in the lifecycle when ApplySubscription finds such a tenant charged. A
//! Stripe that cannot be reached is the state machine's to retry; when its
//! retries are spent the same step runs with `gave_up`, records that and
//! tells both, so nobody waits for a refund that is not coming.

use serde::{Deserialize, Serialize};

use super::context::{StepContext, load, send_best_effort, update};
use super::error::StepError;
use super::mails;
use super::provision::{CaughtError, StripeEvent};
use crate::domain::{CheckoutSignup, EmailAddress, MoneyBackRecord, TenantId, TenantRecord, TenantStatus};
use crate::ports::{Mailer, MoneyBack, StripeApiError, TenantStore};

/// Why money goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoneyBackReason {
    /// The checkout could not become a tenant (subdomain taken, bad metadata).
    Rejected,
    /// Provisioning failed and what it made was removed.
    Compensated,
    /// A FAILED or cancelled tenant's subscription charged again.
    ChargedWithoutTenant,
    /// The delayed payment never arrived: nothing to refund, the
    /// subscription is cancelled so it is never charged.
    PaymentFailed,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MoneyBackInput {
    pub tenant_id: TenantId,
    /// The execution's name: who reserves the mails.
    pub event_id: String,
    /// Given by the lifecycle; in provisioning read from the tenant's
    /// failure (a rejection's error, else a compensation).
    #[serde(default)]
    pub why: Option<MoneyBackReason>,
    /// The checkout event, in provisioning: where a rejected signup's
    /// customer e-mail is found.
    #[serde(default)]
    pub event: Option<StripeEvent>,
    /// Stripe could not be reached within the state's retries.
    #[serde(default)]
    pub gave_up: Option<CaughtError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoneyBackReport {
    pub tenant_id: TenantId,
    pub subscription_cancelled: bool,
    /// `50.00 CAD`, or why nothing was.
    pub refunded: String,
    /// Why Stripe would not do it (the operator's to finish).
    pub failed: Option<String>,
    pub mails: Vec<String>,
    /// Mails that could not be sent (never a reason to fail this step).
    pub unsent: Vec<String>,
}

/// GiveMoneyBack.
pub async fn give_money_back(
    store: &dyn TenantStore,
    stripe: &dyn MoneyBack,
    mailer: &dyn Mailer,
    ctx: &StepContext<'_>,
    input: MoneyBackInput,
) -> Result<MoneyBackReport, StepError> {
    let record = load(store, &input.tenant_id).await?;
    if !matches!(record.status, TenantStatus::Failed | TenantStatus::Cancelled) {
        // A tenant that runs, or still may, is never refunded by a workflow.
        return Err(StepError::Rejected {
            what: "money back",
            reason: format!("tenant {} is {}, not FAILED or CANCELLED", record.id, record.status),
        });
    }
    let why = input.why.unwrap_or_else(|| match record.failure.as_ref().map(|f| f.error.as_str()) {
        Some("Tenancy.SubdomainTaken" | "Tenancy.InvalidSignup") => MoneyBackReason::Rejected,
        Some("Tenancy.PaymentFailed") => MoneyBackReason::PaymentFailed,
        _ => MoneyBackReason::Compensated,
    });
    // A cancelled tenant paid for what it had: only what was charged after
    // it ended goes back.
    let paid_since = match record.status {
        TenantStatus::Cancelled => Some(record.cancelled_at.unwrap_or(record.updated_at)),
        _ => None,
    };
    let now = ctx.clock.now_unix();
    let outcome = match (&input.gave_up, record.subscription().cloned()) {
        (Some(caught), _) => Err(format!("Stripe could not be reached ({}): {}", caught.error, caught.cause)),
        (None, None) => Err("the checkout names no Stripe subscription".to_owned()),
        (None, Some(subscription)) => match stripe.cancel_subscription(&subscription).await {
            Ok(()) => match stripe.refund_subscription(&subscription, paid_since, record.id.as_str()).await {
                Ok(refunds) => Ok(refunds),
                Err(error) => Err(permanent(error)?),
            },
            Err(error) => Err(permanent(error)?),
        },
    };
    let record = update(store, ctx.clock, &record.id, |r| {
        let before = r.money_back.clone();
        let money_back = r.money_back.get_or_insert_with(MoneyBackRecord::default);
        match &outcome {
            Ok(refunds) => {
                money_back.subscription_cancelled_at.get_or_insert(now);
                money_back.refunds = refunds.clone();
                money_back.completed_at.get_or_insert(now);
                money_back.failed = None;
            }
            // A failure never overwrites money already given back.
            Err(reason) if money_back.completed_at.is_none() => money_back.failed = Some(reason.clone()),
            Err(_) => {}
        }
        r.money_back != before
    })
    .await?;
    let money_back = record.money_back.clone().unwrap_or_default();
    let (mails, unsent) = tell(store, mailer, ctx, &record, &input, why, &money_back).await?;
    tracing::info!(tenant_id = %record.id, refunded = %money_back.refunded_text(), failed = ?money_back.failed, "money back");
    Ok(MoneyBackReport {
        tenant_id: record.id,
        subscription_cancelled: money_back.subscription_cancelled_at.is_some(),
        refunded: money_back.refunded_text(),
        failed: money_back.failed,
        mails,
        unsent,
    })
}

/// Stripe refusing (a bad key, a payment it will not refund) is recorded
/// for the operator; anything that may pass later is the state machine's
/// to retry.
fn permanent(error: StripeApiError) -> Result<String, StepError> {
    match error {
        StripeApiError::Unavailable(source) => Err(StepError::Transient { what: "Stripe", source }),
        refused => Ok(refused.to_string()),
    }
}

/// The customer's mail (when we know where to send it) and the operator's,
/// each once; a mail that cannot be sent is reported, not fatal.
async fn tell(
    store: &dyn TenantStore,
    mailer: &dyn Mailer,
    ctx: &StepContext<'_>,
    record: &TenantRecord,
    input: &MoneyBackInput,
    why: MoneyBackReason,
    money_back: &MoneyBackRecord,
) -> Result<(Vec<String>, Vec<String>), StepError> {
    let (mut sent, mut unsent) = (Vec::new(), Vec::new());
    let customer = record.signup.as_ref().map(|s| s.admin_email.clone()).or_else(|| {
        let object = &input.event.as_ref()?.data.object;
        customer_email(object, ctx)
    });
    let mut outgoing = Vec::new();
    if let Some(to) = customer {
        let what = what_went_wrong(record, input, why);
        outgoing.push(("money-back-customer", mails::money_back_customer(&to, &what, money_back)));
    }
    outgoing.push((
        "money-back-operator",
        mails::money_back_operator(
            &ctx.settings.operator_email,
            &record.id,
            &input.event_id,
            why,
            money_back,
        ),
    ));
    for (key, mail) in outgoing {
        match send_best_effort(store, mailer, ctx.clock, &record.id, key, &input.event_id, &mail).await? {
            Ok(_) => sent.push(key.to_owned()),
            Err(reason) => unsent.push(format!("{key}: {reason}")),
        }
    }
    Ok((sent, unsent))
}

/// What went wrong, as the customer would put it.
fn what_went_wrong(record: &TenantRecord, input: &MoneyBackInput, why: MoneyBackReason) -> String {
    let subdomain = record.signup.as_ref().map(|s| s.subdomain.to_string()).or_else(|| {
        let object = &input.event.as_ref()?.data.object;
        object.pointer("/metadata/subdomain")?.as_str().map(str::to_owned)
    });
    let taken = record.failure.as_ref().is_some_and(|f| f.error == "Tenancy.SubdomainTaken");
    match (why, subdomain) {
        (MoneyBackReason::Rejected, Some(sub)) if taken => {
            format!("the address {sub} was taken by someone else a moment before you paid")
        }
        (MoneyBackReason::Rejected, _) => {
            "we could not create your workspace from the signup details".to_owned()
        }
        (MoneyBackReason::Compensated, Some(sub)) => {
            format!("setting up your workspace at {sub} did not finish")
        }
        (MoneyBackReason::Compensated, None) => "setting up your workspace did not finish".to_owned(),
        (MoneyBackReason::ChargedWithoutTenant, _) => {
            "you were charged for a workspace you do not have".to_owned()
        }
        (MoneyBackReason::PaymentFailed, Some(sub)) => {
            format!(
                "your payment for {sub} did not go through, so no workspace was made and the address is free again"
            )
        }
        (MoneyBackReason::PaymentFailed, None) => {
            "your payment did not go through, so no workspace was made".to_owned()
        }
    }
}

/// Where a checkout's customer can be reached, even when the rest of it
/// could not be used.
fn customer_email(session: &serde_json::Value, ctx: &StepContext<'_>) -> Option<EmailAddress> {
    match CheckoutSignup::from_session(session, ctx.catalog) {
        Ok(signup) => Some(signup.admin_email),
        Err(invalid) => invalid.customer_email,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::*;
    use crate::adapters::local::{LocalOutbox, LocalStripe, LocalTenantStore};
    use crate::clock::{Clock, FixedClock};
    use crate::config::TenantSettings;
    use crate::domain::{Catalog, SubscriptionId};
    use crate::ports::Refund;
    use crate::steps::provision::{FailureInput, reject_signup};

    const NOW: i64 = 1_763_800_100;
    const SUBSCRIPTION: &str = "sub_1QAcmeR0b0t1csPro";

    struct World {
        store: LocalTenantStore,
        stripe: LocalStripe,
        outbox: LocalOutbox,
        settings: TenantSettings,
        catalog: Catalog,
        clock: FixedClock,
    }

    impl World {
        fn new() -> World {
            let clock: Arc<dyn Clock> = Arc::new(FixedClock(NOW));
            World {
                store: LocalTenantStore::open(None, clock.clone()).unwrap(),
                stripe: LocalStripe::open(None, "http://127.0.0.1:1", clock.clone()).unwrap(),
                outbox: LocalOutbox::open(None, clock).unwrap(),
                settings: TenantSettings::for_tests(),
                catalog: Catalog::embedded().unwrap(),
                clock: FixedClock(NOW),
            }
        }

        fn ctx(&self) -> StepContext<'_> {
            StepContext { settings: &self.settings, catalog: &self.catalog, clock: &self.clock }
        }

        /// A paid checkout (in the stand-in) rejected because its name was taken.
        async fn rejected(&self) -> (TenantId, Value) {
            let event: Value =
                serde_json::from_str(include_str!("../../../events/01-checkout.session.completed.json"))
                    .unwrap();
            assert!(self.stripe.adopt_checkout(&event).unwrap());
            let input: FailureInput = serde_json::from_value(json!({
                "event": event,
                "error": {"Error": "Tenancy.SubdomainTaken", "Cause": "subdomain `acme` is taken"},
            }))
            .unwrap();
            let report = reject_signup(&self.store, &self.outbox, &self.ctx(), input).await.unwrap();
            (report.tenant_id, event)
        }

        async fn give(&self, stripe: &dyn MoneyBack, input: Value) -> Result<MoneyBackReport, StepError> {
            let input = serde_json::from_value(input).unwrap();
            give_money_back(&self.store, stripe, &self.outbox, &self.ctx(), input).await
        }
    }

    fn input(tenant: &TenantId, event: &Value) -> Value {
        json!({"tenant_id": tenant, "event_id": "evt_1QAcmeCheckoutDone", "event": event})
    }

    #[tokio::test]
    async fn a_rejected_signup_run_twice_is_cancelled_and_refunded_once_and_both_are_told_once() {
        let world = World::new();
        let (tenant, event) = world.rejected().await;
        for _ in 0..2 {
            let report = world.give(&world.stripe, input(&tenant, &event)).await.unwrap();
            assert!(report.subscription_cancelled);
            assert_eq!(report.refunded, "50.00 CAD");
            assert_eq!((report.failed, report.unsent.len()), (None, 0));
        }
        // Read back from Stripe: cancelled, one refund of the whole payment.
        let subscription = world.stripe.subscriptions().into_iter().find(|s| s.id == SUBSCRIPTION).unwrap();
        assert_eq!(subscription.status, crate::domain::SubscriptionStatus::Canceled);
        let refunds = world.stripe.refunds();
        assert_eq!(refunds.len(), 1);
        assert_eq!((refunds[0].amount, refunds[0].currency.as_str()), (5000, "cad"));
        assert_eq!(refunds[0].metadata["tenant_id"], tenant.as_str());
        let record = world.store.get_tenant(&tenant).await.unwrap().unwrap();
        let money_back = record.money_back.unwrap();
        assert_eq!((money_back.subscription_cancelled_at, money_back.completed_at), (Some(NOW), Some(NOW)));
        assert_eq!(money_back.refunds[0].id, refunds[0].id);
        let sent = world.outbox.sent();
        let customer: Vec<_> = sent.iter().filter(|m| m.mail.to.as_str() == "dana@acme.example").collect();
        assert_eq!(customer.len(), 1, "one customer mail");
        assert!(customer[0].mail.text.contains("acme was taken"), "{}", customer[0].mail.text);
        assert!(customer[0].mail.text.contains("refunded 50.00 CAD"), "{}", customer[0].mail.text);
        let operator = sent.iter().filter(|m| m.mail.subject.contains("money back")).count();
        assert_eq!(operator, 1);
    }

    /// Stripe refusing for good: a permission the key lacks, a payment it will not refund.
    struct RefusingStripe;

    #[async_trait::async_trait]
    impl MoneyBack for RefusingStripe {
        async fn cancel_subscription(&self, _: &SubscriptionId) -> Result<(), StripeApiError> {
            Ok(())
        }

        async fn refund_subscription(
            &self,
            _: &SubscriptionId,
            _: Option<i64>,
            _: &str,
        ) -> Result<Vec<Refund>, StripeApiError> {
            Err(StripeApiError::Unauthorized { status: 403 })
        }
    }

    /// Stripe that cannot be reached.
    struct UnreachableStripe;

    #[async_trait::async_trait]
    impl MoneyBack for UnreachableStripe {
        async fn cancel_subscription(&self, _: &SubscriptionId) -> Result<(), StripeApiError> {
            Err(StripeApiError::Unavailable("connection refused".into()))
        }

        async fn refund_subscription(
            &self,
            _: &SubscriptionId,
            _: Option<i64>,
            _: &str,
        ) -> Result<Vec<Refund>, StripeApiError> {
            Err(StripeApiError::Unavailable("connection refused".into()))
        }
    }

    #[tokio::test]
    async fn a_refusal_is_recorded_and_the_operator_told_to_do_it_by_hand() {
        let world = World::new();
        let (tenant, event) = world.rejected().await;
        let report = world.give(&RefusingStripe, input(&tenant, &event)).await.unwrap();
        assert!(report.failed.as_deref().unwrap().contains("403"), "{report:?}");
        let record = world.store.get_tenant(&tenant).await.unwrap().unwrap();
        assert_eq!(record.money_back.as_ref().unwrap().completed_at, None);
        let sent = world.outbox.sent();
        let operator = sent.iter().find(|m| m.mail.subject.contains("money back")).unwrap();
        assert!(operator.mail.text.contains("NOT DONE"), "{}", operator.mail.text);
        let customer = sent.iter().find(|m| m.mail.to.as_str() == "dana@acme.example").unwrap();
        assert!(customer.mail.text.contains("will cancel your subscription and refund you"));
        // Done later (a lifecycle event, the operator's replay): recorded, the failure cleared.
        let done = world.give(&world.stripe, input(&tenant, &event)).await.unwrap();
        assert_eq!((done.failed, done.refunded.as_str()), (None, "50.00 CAD"));
    }

    #[tokio::test]
    async fn stripe_unreachable_is_retried_and_giving_up_is_recorded_and_told() {
        let world = World::new();
        let (tenant, event) = world.rejected().await;
        let error = world.give(&UnreachableStripe, input(&tenant, &event)).await.unwrap_err();
        assert_eq!(error.error_name(), "Tenancy.Transient");
        assert!(world.store.get_tenant(&tenant).await.unwrap().unwrap().money_back.is_none());
        let mut gave_up = input(&tenant, &event);
        gave_up["gave_up"] = json!({"Error": "Tenancy.Transient", "Cause": "Stripe failed for now"});
        let report = world.give(&UnreachableStripe, gave_up).await.unwrap();
        assert!(report.failed.as_deref().unwrap().starts_with("Stripe could not be reached"));
        assert_eq!(report.mails, ["money-back-customer", "money-back-operator"]);
    }

    #[tokio::test]
    async fn a_running_tenant_is_never_refunded() {
        let world = World::new();
        let (tenant, event) = world.rejected().await;
        crate::steps::context::update(&world.store, &world.clock, &tenant, |r| {
            r.status = crate::domain::TenantStatus::Active;
            true
        })
        .await
        .unwrap();
        let error = world.give(&world.stripe, input(&tenant, &event)).await.unwrap_err();
        assert_eq!(error.error_name(), "Tenancy.Rejected");
        assert!(world.stripe.refunds().is_empty());
        assert!(world.outbox.sent().iter().all(|m| !m.mail.subject.contains("money back")));
    }
}
