//! The tenant Stripe says there should be (docs/architecture.md decision 4): derived
//! from the subscription as re-read from Stripe, never from an event's
//! payload, so a late, duplicated or reordered event cannot move a tenant
//! anywhere Stripe does not say.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::billing_event::SubscriptionStatus;
use super::catalog::{BillingPeriod, Catalog, Plan};
use super::tenant::TenantStatus;
use crate::ports::SubscriptionSnapshot;

/// Whether the tenant's app runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// One task, behind its listener rule and DNS record.
    Running,
    /// No task; rule, target group and DNS record kept so it can come back.
    Suspended,
    /// Nothing left running; the data is kept, the subdomain released later.
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Suspended => "suspended",
            RunState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a tenant should be, as Stripe says now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredTenant {
    pub plan: Plan,
    pub billing: BillingPeriod,
    pub run: RunState,
    /// Running, but Stripe is retrying a failed payment.
    pub past_due: bool,
    /// Stripe's own status, as read.
    pub subscription_status: SubscriptionStatus,
    /// End of the period paid for (the latest paid invoice's, else the
    /// current period's while active).
    pub paid_until: Option<i64>,
    pub trial_end: Option<i64>,
    pub cancel_at_period_end: bool,
    /// The open invoice that made it past due (the card mail is about it).
    pub unpaid_invoice: Option<String>,
}

impl DesiredTenant {
    /// What a paid checkout promises before Stripe is asked again.
    pub fn from_checkout(plan: Plan, billing: BillingPeriod) -> DesiredTenant {
        DesiredTenant {
            plan,
            billing,
            run: RunState::Running,
            past_due: false,
            subscription_status: SubscriptionStatus::Active,
            paid_until: None,
            trial_end: None,
            cancel_at_period_end: false,
            unpaid_invoice: None,
        }
    }

    /// The status the tenant has once its infrastructure matches this.
    pub fn observed_status(&self) -> TenantStatus {
        match (self.run, self.past_due) {
            (RunState::Running, false) => TenantStatus::Active,
            (RunState::Running, true) => TenantStatus::PastDue,
            (RunState::Suspended, _) => TenantStatus::Suspended,
            (RunState::Cancelled, _) => TenantStatus::Cancelled,
        }
    }
}

/// Why a subscription cannot be turned into a desired tenant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnusableSubscription {
    #[error("subscription {subscription} has no price")]
    NoPrice { subscription: String },
    #[error("subscription {subscription} is on price {price}, which is not in the plan catalog")]
    UnknownPrice { subscription: String, price: String },
    #[error("subscription {subscription} has status `{status}`, which this system does not know")]
    UnknownStatus { subscription: String, status: String },
}

/// Every Stripe status, mapped (an unknown one is refused, not guessed):
///
/// | Stripe | tenant |
/// |---|---|
/// | `active`, `trialing` | running |
/// | `past_due` | running, past due (Stripe is retrying the card) |
/// | `unpaid`, `paused` | suspended (retries exhausted; trial ended without a card) |
/// | `incomplete` | suspended (the first payment has not succeeded yet) |
/// | `incomplete_expired`, `canceled` | cancelled (both are final in Stripe) |
pub fn run_state(status: &SubscriptionStatus) -> Option<(RunState, bool)> {
    Some(match status {
        SubscriptionStatus::Active | SubscriptionStatus::Trialing => (RunState::Running, false),
        SubscriptionStatus::PastDue => (RunState::Running, true),
        SubscriptionStatus::Unpaid | SubscriptionStatus::Paused | SubscriptionStatus::Incomplete => {
            (RunState::Suspended, false)
        }
        SubscriptionStatus::IncompleteExpired | SubscriptionStatus::Canceled => (RunState::Cancelled, false),
        SubscriptionStatus::Other(_) => return None,
    })
}

/// Derives the desired tenant from the subscription as Stripe holds it.
pub fn desired_from(
    subscription: &SubscriptionSnapshot,
    catalog: &Catalog,
) -> Result<DesiredTenant, UnusableSubscription> {
    let id = subscription.id.to_string();
    let price = subscription
        .price_id
        .as_deref()
        .ok_or_else(|| UnusableSubscription::NoPrice { subscription: id.clone() })?;
    // The lookup key names the plan in either mode (the price id differs
    // per mode and per amount ever sold); the id is known only for the
    // local stand-in's and the sample events' prices.
    let by_key = subscription.price_lookup_key.as_deref().and_then(|key| catalog.plan_for_lookup_key(key));
    let (plan, sold_as) = by_key.or_else(|| catalog.plan_for_price(price)).ok_or_else(|| {
        UnusableSubscription::UnknownPrice { subscription: id.clone(), price: price.to_owned() }
    })?;
    // The term is what the price bills (`year` × 2 is biennial whatever
    // key it holds); the catalog's word only when its interval is no term.
    let billing = subscription.price_term.unwrap_or(sold_as);
    let (run, past_due) =
        run_state(&subscription.status).ok_or_else(|| UnusableSubscription::UnknownStatus {
            subscription: id.clone(),
            status: match &subscription.status {
                SubscriptionStatus::Other(raw) => raw.clone(),
                known => format!("{known:?}"),
            },
        })?;
    let invoice = subscription.latest_invoice.as_ref();
    let paid_invoice_end = invoice.filter(|i| i.status.as_deref() == Some("paid")).and_then(|i| i.period_end);
    // An unpaid invoice's period starts where the paid one ended.
    let unpaid_since = invoice
        .filter(|i| matches!(i.status.as_deref(), Some("open" | "uncollectible")))
        .and_then(|i| i.period_start);
    let paid_until = match run {
        RunState::Running if !past_due => paid_invoice_end.or(subscription.current_period_end),
        _ => paid_invoice_end.or(unpaid_since),
    };
    let unpaid_invoice = invoice
        .filter(|_| past_due || run == RunState::Suspended)
        .filter(|i| matches!(i.status.as_deref(), Some("open" | "uncollectible")))
        .map(|i| i.id.clone());
    Ok(DesiredTenant {
        plan,
        billing,
        run,
        past_due,
        subscription_status: subscription.status.clone(),
        paid_until,
        trial_end: subscription.trial_end,
        cancel_at_period_end: subscription.cancel_at_period_end,
        unpaid_invoice,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::domain::{CustomerId, SubscriptionId};
    use crate::ports::InvoiceSnapshot;

    fn subscription(status: SubscriptionStatus, price: &str) -> SubscriptionSnapshot {
        SubscriptionSnapshot {
            id: SubscriptionId::parse("sub_1QAcmeR0b0t1csPro").unwrap(),
            customer: CustomerId::parse("cus_QAcme0001").unwrap(),
            status,
            price_id: Some(price.into()),
            price_lookup_key: None,
            price_term: None,
            current_period_end: Some(1_766_000_000),
            cancel_at_period_end: false,
            collection_paused: false,
            trial_end: None,
            ended_at: None,
            metadata: BTreeMap::from([("subdomain".into(), "acme".into())]),
            latest_invoice: Some(InvoiceSnapshot {
                id: "in_1QAcmeInvoice01".into(),
                status: Some("paid".into()),
                period_end: Some(1_765_000_000),
                period_start: Some(1_762_400_000),
            }),
        }
    }

    #[test]
    fn every_stripe_status_maps_to_a_run_state() {
        use SubscriptionStatus::*;
        let cases = [
            (Active, RunState::Running, false),
            (Trialing, RunState::Running, false),
            (PastDue, RunState::Running, true),
            (Unpaid, RunState::Suspended, false),
            (Paused, RunState::Suspended, false),
            (Incomplete, RunState::Suspended, false),
            (IncompleteExpired, RunState::Cancelled, false),
            (Canceled, RunState::Cancelled, false),
        ];
        for (status, run, past_due) in cases {
            assert_eq!(run_state(&status), Some((run, past_due)), "{status:?}");
        }
        assert_eq!(run_state(&Other("frozen".into())), None);
    }

    #[test]
    fn the_plan_comes_from_the_price_stripe_holds_now() {
        let catalog = Catalog::embedded().unwrap();
        let desired =
            desired_from(&subscription(SubscriptionStatus::Active, "price_1QUltimateMonthlyCAD"), &catalog)
                .unwrap();
        assert_eq!((desired.plan.key.as_str(), desired.plan.tier), ("ultimate", 3));
        assert_eq!(desired.billing, BillingPeriod::Monthly);
        assert_eq!(desired.observed_status(), TenantStatus::Active);
        assert_eq!(desired.paid_until, Some(1_765_000_000), "the paid invoice's period end");
    }

    #[test]
    fn the_lookup_key_names_the_plan_before_the_price_id() {
        let catalog = Catalog::embedded().unwrap();
        // A live price (its id unknown to the catalog) found by its key.
        let mut live = subscription(SubscriptionStatus::Active, "price_1LiveProAnnual");
        live.price_lookup_key = Some("pro_annual".into());
        let desired = desired_from(&live, &catalog).unwrap();
        assert_eq!((desired.plan.key.as_str(), desired.billing), ("pro", BillingPeriod::Annual));
        // The key wins over a local id that says otherwise.
        let mut both = subscription(SubscriptionStatus::Active, "price_1QBasicMonthlyCAD");
        both.price_lookup_key = Some("ultimate_monthly".into());
        assert_eq!(desired_from(&both, &catalog).unwrap().plan.key.as_str(), "ultimate");
        // Neither known: refused, naming the price.
        let mut neither = subscription(SubscriptionStatus::Active, "price_1LiveUnknown");
        neither.price_lookup_key = Some("gold_monthly".into());
        assert!(desired_from(&neither, &catalog).unwrap_err().to_string().contains("price_1LiveUnknown"));
    }

    #[test]
    fn a_two_year_price_maps_back_to_the_two_year_term() {
        let catalog = Catalog::embedded().unwrap();
        // A deployed stage's price, found by its lookup key, billing `year` × 2.
        let mut live = subscription(SubscriptionStatus::Active, "price_1LivePro2y");
        live.price_lookup_key = Some("pro_biennial".into());
        live.price_term = Some(BillingPeriod::Biennial);
        let desired = desired_from(&live, &catalog).unwrap();
        assert_eq!((desired.plan.key.as_str(), desired.billing), ("pro", BillingPeriod::Biennial));
        // The local stand-in's three-year price, by id, its interval unread.
        let local = subscription(SubscriptionStatus::Active, "price_1QBasicTriennialCAD");
        assert_eq!(desired_from(&local, &catalog).unwrap().billing, BillingPeriod::Triennial);
        // What Stripe bills wins over the key's name: a key moved by hand
        // to a 24-month price is billed every two years.
        let mut moved = subscription(SubscriptionStatus::Active, "price_1LiveMoved");
        moved.price_lookup_key = Some("basic_annual".into());
        moved.price_term = Some(BillingPeriod::Biennial);
        let desired = desired_from(&moved, &catalog).unwrap();
        assert_eq!((desired.plan.key.as_str(), desired.billing), ("basic", BillingPeriod::Biennial));
    }

    #[test]
    fn a_past_due_subscription_names_the_open_invoice() {
        let catalog = Catalog::embedded().unwrap();
        let mut sub = subscription(SubscriptionStatus::PastDue, "price_1QProMonthlyCAD");
        let open = InvoiceSnapshot {
            id: "in_open".into(),
            status: Some("open".into()),
            period_end: None,
            period_start: None,
        };
        sub.latest_invoice = Some(open.clone());
        let desired = desired_from(&sub, &catalog).unwrap();
        assert_eq!(desired.observed_status(), TenantStatus::PastDue);
        assert_eq!(desired.unpaid_invoice.as_deref(), Some("in_open"));
        assert_eq!(desired.paid_until, None, "unknown without the open invoice's period");
        sub.latest_invoice = Some(InvoiceSnapshot {
            period_start: Some(1_766_000_000),
            period_end: Some(1_768_600_000),
            ..open
        });
        let desired = desired_from(&sub, &catalog).unwrap();
        assert_eq!(desired.paid_until, Some(1_766_000_000), "paid until the unpaid period began");
    }

    #[test]
    fn unknown_prices_and_statuses_are_refused_with_their_names() {
        let catalog = Catalog::embedded().unwrap();
        let price =
            desired_from(&subscription(SubscriptionStatus::Active, "price_elsewhere"), &catalog).unwrap_err();
        assert!(price.to_string().contains("price_elsewhere"), "{price}");
        let status = desired_from(
            &subscription(SubscriptionStatus::Other("frozen".into()), "price_1QProMonthlyCAD"),
            &catalog,
        )
        .unwrap_err();
        assert!(status.to_string().contains("`frozen`"), "{status}");
    }

    fn any_status() -> impl Strategy<Value = SubscriptionStatus> {
        prop_oneof![
            Just(SubscriptionStatus::Active),
            Just(SubscriptionStatus::Trialing),
            Just(SubscriptionStatus::PastDue),
            Just(SubscriptionStatus::Unpaid),
            Just(SubscriptionStatus::Paused),
            Just(SubscriptionStatus::Canceled),
            Just(SubscriptionStatus::Incomplete),
            Just(SubscriptionStatus::IncompleteExpired),
        ]
    }

    proptest! {
        /// Only a subscription Stripe still bills runs; a final status never does.
        #[test]
        fn only_live_subscriptions_run(status in any_status(), paid in any::<bool>()) {
            let catalog = Catalog::embedded().unwrap();
            let mut sub = subscription(status.clone(), "price_1QBasicAnnualCAD");
            if !paid {
                sub.latest_invoice = None;
            }
            let desired = desired_from(&sub, &catalog).unwrap();
            let running = desired.run == RunState::Running;
            prop_assert_eq!(
                running,
                matches!(status, SubscriptionStatus::Active | SubscriptionStatus::Trialing | SubscriptionStatus::PastDue)
            );
            if matches!(status, SubscriptionStatus::Canceled | SubscriptionStatus::IncompleteExpired) {
                prop_assert_eq!(desired.observed_status(), TenantStatus::Cancelled);
            }
            prop_assert_eq!(desired.past_due, status == SubscriptionStatus::PastDue);
        }
    }
}
