//! What a completed Checkout Session carries, parsed (docs/architecture.md data section).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::catalog::{BillingPeriod, Catalog, Plan};
use super::email::EmailAddress;
use super::ids::{CheckoutSessionId, CustomerId, SubscriptionId, TenantId};
use super::organization::OrganizationName;
use super::subdomain::Subdomain;

/// A paid signup, every field checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutSignup {
    pub checkout_session: CheckoutSessionId,
    pub customer: CustomerId,
    pub subscription: SubscriptionId,
    pub admin_email: EmailAddress,
    pub subdomain: Subdomain,
    pub plan: Plan,
    pub billing: BillingPeriod,
    pub organization: OrganizationName,
    /// Minor units, as Stripe reports them.
    pub amount_total: i64,
    pub currency: String,
    /// Paid with a delayed method (`payment_status: unpaid`): the money is
    /// not there yet; Stripe sends `checkout.session.async_payment_*` when
    /// it is, or is not.
    #[serde(default)]
    pub awaiting_payment: bool,
    /// The free trial the checkout gave (the session's `trial_days`
    /// metadata): the customer's one trial, used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_days: Option<u32>,
}

/// A checkout that cannot become a tenant, with everything that is wrong
/// and whatever could still be used to tell someone about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("checkout cannot become a tenant: {}", problems.join("; "))]
pub struct InvalidSignup {
    pub checkout_session: Option<CheckoutSessionId>,
    pub customer_email: Option<EmailAddress>,
    /// The subscription the checkout started, if it names one: what is
    /// cancelled and refunded.
    #[serde(default)]
    pub subscription: Option<SubscriptionId>,
    pub problems: Vec<String>,
}

fn text<'a>(object: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(object, |value, key| value.get(key)).and_then(Value::as_str)
}

/// Collects every problem instead of stopping at the first, so the operator
/// mail lists all of them.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn field<T, E: std::fmt::Display>(
        &mut self,
        name: &str,
        raw: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        match raw.map(str::trim).filter(|value| !value.is_empty()) {
            None => {
                self.0.push(format!("{name} is missing"));
                None
            }
            Some(value) => parse(value).map_err(|e| self.0.push(format!("{name}: {e}"))).ok(),
        }
    }

    fn require(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.0.push(problem());
        }
    }
}

impl CheckoutSignup {
    pub fn tenant_id(&self) -> TenantId {
        TenantId::for_checkout(&self.checkout_session)
    }

    /// Parses the `data.object` of a `checkout.session.completed` event.
    pub fn from_session(session: &Value, catalog: &Catalog) -> Result<Self, InvalidSignup> {
        let mut problems = Problems::default();
        let checkout_session = problems.field("id", text(session, &["id"]), CheckoutSessionId::parse);
        let customer = problems.field("customer", text(session, &["customer"]), CustomerId::parse);
        let subscription =
            problems.field("subscription", text(session, &["subscription"]), SubscriptionId::parse);
        let email =
            text(session, &["customer_details", "email"]).or_else(|| text(session, &["customer_email"]));
        let admin_email = problems.field("customer e-mail", email, EmailAddress::parse);
        let metadata = |key: &str| text(session, &["metadata", key]);
        let subdomain = problems.field("metadata.subdomain", metadata("subdomain"), Subdomain::parse);
        let plan = problems.field("metadata.plan", metadata("plan"), |key| catalog.plan(key));
        let billing = problems.field("metadata.billing", metadata("billing"), BillingPeriod::parse);
        let organization =
            problems.field("metadata.organization", metadata("organization"), OrganizationName::parse);
        let currency = problems.field("currency", text(session, &["currency"]), |c| {
            if c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()) {
                Ok(c.to_ascii_lowercase())
            } else {
                Err("not an ISO currency code")
            }
        });
        let amount_total = session.get("amount_total").and_then(Value::as_i64).filter(|amount| *amount >= 0);
        problems.require(amount_total.is_some(), || "amount_total is missing or negative".into());
        let mode = text(session, &["mode"]);
        problems.require(mode == Some("subscription"), || {
            format!("mode is {}, not subscription", mode.unwrap_or("missing"))
        });
        // Delayed payment methods complete the session unpaid: the signup is
        // recorded and its name held, and provisioning waits for the money
        // (Stripe's async_payment_succeeded).
        let payment = text(session, &["payment_status"]);
        problems.require(matches!(payment, Some("paid" | "no_payment_required" | "unpaid")), || {
            format!("payment_status is {}", payment.unwrap_or("missing"))
        });
        let awaiting_payment = payment == Some("unpaid");
        let trial_days = match metadata(super::trial::TRIAL_METADATA_KEY) {
            None => None,
            Some(raw) => problems.field("metadata.trial_days", Some(raw), |days| {
                days.parse::<u32>()
                    .ok()
                    .filter(|days| (1..=super::trial::MAX_TRIAL_DAYS).contains(days))
                    .ok_or("not a number of days from 1 to 730")
            }),
        };

        let signup = problems.0.is_empty().then(|| {
            Some(CheckoutSignup {
                checkout_session: checkout_session.clone()?,
                customer: customer?,
                subscription: subscription.clone()?,
                admin_email: admin_email.clone()?,
                subdomain: subdomain?,
                plan: plan?,
                billing: billing?,
                organization: organization?,
                amount_total: amount_total?,
                currency: currency?,
                awaiting_payment,
                trial_days,
            })
        });
        match signup.flatten() {
            Some(signup) => Ok(signup),
            None => Err(InvalidSignup {
                checkout_session,
                customer_email: admin_email,
                subscription,
                problems: problems.0,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn session() -> Value {
        let event: Value =
            serde_json::from_str(include_str!("../../../events/01-checkout.session.completed.json")).unwrap();
        event["data"]["object"].clone()
    }

    #[test]
    fn the_sample_checkout_is_a_valid_signup() {
        let signup = CheckoutSignup::from_session(&session(), &Catalog::embedded().unwrap()).unwrap();
        assert_eq!(signup.subdomain.as_str(), "acme");
        assert_eq!((signup.plan.key.as_str(), signup.plan.tier), ("pro", 2));
        assert_eq!(signup.billing, BillingPeriod::Monthly);
        assert_eq!(signup.organization.as_str(), "Acme Robotics");
        assert_eq!(signup.admin_email.as_str(), "dana@acme.example");
        assert_eq!((signup.amount_total, signup.currency.as_str()), (5000, "cad"));
        assert_eq!(signup.tenant_id(), TenantId::for_checkout(&signup.checkout_session));
    }

    #[test]
    fn every_bad_field_is_reported_and_what_is_usable_is_kept() {
        let mut s = session();
        s["metadata"] = json!({"subdomain": "www", "plan": "platinum", "billing": "weekly"});
        s["payment_status"] = json!("refunded");
        let invalid = CheckoutSignup::from_session(&s, &Catalog::embedded().unwrap()).unwrap_err();
        assert_eq!(invalid.checkout_session.as_ref().unwrap().as_str(), "cs_test_a1AcmeCheckoutSession");
        assert_eq!(invalid.customer_email.as_ref().unwrap().as_str(), "dana@acme.example");
        let all = invalid.problems.join(" | ");
        for expected in
            ["reserved", "platinum", "billing", "organization is missing", "payment_status is refunded"]
        {
            assert!(all.contains(expected), "missing `{expected}` in {all}");
        }
    }

    #[test]
    fn a_delayed_payment_is_a_signup_awaiting_its_money() {
        let mut s = session();
        s["payment_status"] = json!("unpaid");
        let signup = CheckoutSignup::from_session(&s, &Catalog::embedded().unwrap()).unwrap();
        assert!(signup.awaiting_payment);
        assert!(
            !CheckoutSignup::from_session(&session(), &Catalog::embedded().unwrap())
                .unwrap()
                .awaiting_payment
        );
    }

    #[test]
    fn an_empty_object_is_invalid_not_a_crash() {
        let invalid = CheckoutSignup::from_session(&json!({}), &Catalog::embedded().unwrap()).unwrap_err();
        assert!(invalid.checkout_session.is_none());
        assert!(invalid.problems.len() >= 9);
        let invalid =
            CheckoutSignup::from_session(&json!("nope"), &Catalog::embedded().unwrap()).unwrap_err();
        assert!(!invalid.problems.is_empty());
    }
}
