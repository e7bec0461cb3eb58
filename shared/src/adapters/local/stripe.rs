//! Stripe on a laptop (docs/architecture.md decision 12): Checkout Sessions that can be
//! paid, and the customers, subscriptions and invoices paying makes, kept
//! statefully and shown in Stripe's wire format. Lifecycle operations change
//! a subscription as Stripe would and return the events Stripe sends for the
//! change, in Stripe's order, ready to be signed and delivered.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::persisted::Persisted;
use crate::clock::Clock;
use crate::domain::{
    BillingPeriod, Catalog, CustomerId, SubscriptionId, SubscriptionStatus, TrialWithoutCard,
};
use crate::ports::{
    CheckoutSessionRequest, CreatedSession, InvoiceSnapshot, MoneyBack, Refund, StripeApiError,
    StripeGateway, SubscriptionSnapshot, SubscriptionSource,
};

/// The API version the stand-in's account sends events in (the version a
/// webhook endpoint was created with, as at Stripe).
pub const EVENT_API_VERSION: &str = "2024-06-20";
/// From this version on Stripe keeps a subscription's period on its items
/// and an invoice's subscription under `parent` (the "basil" release).
const PERIOD_ON_ITEMS_SINCE: &str = "2025-03-31";

const DAY: i64 = 24 * 60 * 60;

mod admin;
mod coupons;
use admin::IdempotentWrite;
pub use admin::{LocalProduct, LocalWebhookEndpoint, StoredPrice};
pub use coupons::{LocalCoupon, LocalDiscount, LocalPromotionCode};

/// A Checkout Session as the local Stripe keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalCheckoutSession {
    pub id: String,
    pub url: String,
    pub idempotency_key: String,
    pub price_id: String,
    pub customer_email: String,
    pub metadata: BTreeMap<String, String>,
    pub success_url: String,
    pub cancel_url: String,
    pub expires_at: Option<i64>,
    pub created: i64,
    /// `open`, then `complete` once paid.
    pub status: String,
    pub customer: Option<String>,
    pub subscription: Option<String>,
    /// The events paying it produced (paying again delivers them again).
    #[serde(default)]
    pub events: Vec<String>,
    /// `discounts[0][promotion_code]`: redeemed when it is paid.
    #[serde(default)]
    pub promotion_code: Option<String>,
    /// `allow_promotion_codes`.
    #[serde(default)]
    pub allow_promotion_codes: bool,
    /// `subscription_data.trial_period_days`.
    #[serde(default)]
    pub trial_days: Option<u32>,
    /// `payment_method_collection=if_required` with
    /// `subscription_data.trial_settings.end_behavior.missing_payment_method`.
    #[serde(default)]
    pub trial_without_card: Option<TrialWithoutCard>,
}

/// A recurring price, as a subscription item holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalPrice {
    pub id: String,
    pub lookup_key: Option<String>,
    /// `day`, `week`, `month` or `year`, times `interval_count`.
    pub interval: String,
    pub interval_count: u32,
    /// Minor units of `currency`.
    pub unit_amount: i64,
    pub currency: String,
}

impl LocalPrice {
    /// How long one period lasts (a month is 30 days, a year 365: the
    /// stand-in does not keep a calendar).
    fn period_seconds(&self) -> i64 {
        let unit = match self.interval.as_str() {
            "year" => 365 * DAY,
            "week" => 7 * DAY,
            "day" => DAY,
            _ => 30 * DAY,
        };
        unit * i64::from(self.interval_count.max(1))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalCustomer {
    pub id: String,
    pub email: String,
    pub created: i64,
}

/// `pause_collection`: invoices are not collected while set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseCollection {
    pub behavior: String,
    pub resumes_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalSubscription {
    pub id: String,
    pub customer: String,
    pub created: i64,
    pub status: SubscriptionStatus,
    /// The one item's id and price.
    pub item_id: String,
    pub price: LocalPrice,
    /// Copied from the Checkout Session that made it.
    pub metadata: BTreeMap<String, String>,
    pub current_period_start: i64,
    pub current_period_end: i64,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<i64>,
    pub pause_collection: Option<PauseCollection>,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    pub ended_at: Option<i64>,
    pub latest_invoice: Option<String>,
    /// The coupon a promotion code put on it at checkout.
    #[serde(default)]
    pub discount: Option<LocalDiscount>,
    /// `customer.subscription.trial_will_end` was sent for this trial
    /// (Stripe sends it once, three days before the end).
    #[serde(default)]
    pub trial_end_announced: bool,
    /// The trial was taken without a card: what ends it (none on file).
    #[serde(default)]
    pub trial_without_card: Option<TrialWithoutCard>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalInvoice {
    pub id: String,
    pub customer: String,
    pub subscription: String,
    /// `draft`, `open`, `paid`, `uncollectible` or `void`.
    pub status: String,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub currency: String,
    /// The period its one line bills.
    pub period_start: i64,
    pub period_end: i64,
    pub price_id: String,
    /// `subscription_create`, `subscription_cycle`, `subscription_update`.
    pub billing_reason: String,
    pub attempt_count: u32,
    pub created: i64,
    pub paid_at: Option<i64>,
    /// The PaymentIntent that paid it (a paid invoice for nothing has none).
    #[serde(default)]
    pub payment_intent: Option<String>,
    /// What the subscription's discount took off (`amount_due` is after it).
    #[serde(default)]
    pub amount_discount: i64,
}

/// A refund of one invoice's payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalRefund {
    pub id: String,
    pub payment_intent: String,
    pub invoice: String,
    pub amount: i64,
    pub currency: String,
    /// Always `succeeded` here: a card refund Stripe accepted.
    pub status: String,
    pub reason: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub created: i64,
    /// The request's idempotency key: the same key returns this refund.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    sessions: Vec<LocalCheckoutSession>,
    #[serde(default)]
    customers: Vec<LocalCustomer>,
    #[serde(default)]
    subscriptions: Vec<LocalSubscription>,
    #[serde(default)]
    invoices: Vec<LocalInvoice>,
    #[serde(default)]
    refunds: Vec<LocalRefund>,
    /// Every event sent, oldest first (Stripe keeps them 30 days).
    #[serde(default)]
    events: Vec<Value>,
    #[serde(default)]
    last_event_created: i64,
    /// The catalog's products and prices (seeded from the plan catalog,
    /// then as `POST /v1/products` and `/v1/prices` change them).
    #[serde(default)]
    products: Vec<LocalProduct>,
    #[serde(default)]
    prices: Vec<StoredPrice>,
    #[serde(default)]
    webhook_endpoints: Vec<LocalWebhookEndpoint>,
    #[serde(default)]
    coupons: Vec<LocalCoupon>,
    #[serde(default)]
    promotion_codes: Vec<LocalPromotionCode>,
    /// The admin writes made with an `Idempotency-Key` (Stripe keeps them
    /// 24 hours; these are few, so kept).
    #[serde(default)]
    idempotent_writes: Vec<IdempotentWrite>,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalStripeError {
    #[error("no checkout session {0}")]
    NoSuchSession(String),
    #[error("checkout session {0} has expired")]
    Expired(String),
    #[error("no subscription {0}")]
    NoSuchSubscription(String),
    #[error("price {0} is not in the plan catalog")]
    UnknownPrice(String),
    #[error("the plan catalog has no test-mode price for {plan} {billing}")]
    NoPrice { plan: String, billing: BillingPeriod },
    #[error(transparent)]
    UnknownPlan(#[from] crate::domain::catalog::UnknownPlan),
    /// The operation makes no sense for the subscription as it is.
    #[error("cannot {action} subscription {id}: {why}")]
    Refused { id: String, action: &'static str, why: String },
    #[error("no payment {0}")]
    NoSuchPayment(String),
    /// Stripe's `charge_already_refunded`.
    #[error("payment {0} has already been refunded")]
    AlreadyRefunded(String),
    /// Stripe's `idempotency_error`.
    #[error("keys for idempotent requests can only be used with the same parameters")]
    IdempotencyMismatch,
    #[error("local Stripe state could not be saved")]
    Io(#[source] io::Error),
    #[error("the plan catalog could not be loaded")]
    Catalog(#[source] crate::domain::catalog::CatalogError),
    /// Stripe's 404 `resource_missing`.
    #[error("No such {kind}: '{id}'")]
    NoSuchObject { kind: &'static str, id: String },
    /// Stripe's 400 `invalid_request_error` naming `param`.
    #[error("{message}")]
    InvalidRequest { param: &'static str, message: String },
}

/// What `pay` was called: the name existing callers use.
pub type PayError = LocalStripeError;

/// What happens when a trial ends ([`SubscriptionAction::TrialEnds`]),
/// as the subscription's `trial_settings` and the customer's card decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialOutcome {
    /// The card is charged: `active`.
    Pay,
    /// The charge fails: `past_due`.
    Fail,
    /// No payment method, `missing_payment_method: pause`: `paused`.
    Pause,
    /// No payment method, `missing_payment_method: cancel`: `canceled`.
    Cancel,
    /// What is on file decides, as at Stripe: the card the checkout took is
    /// charged; a trial that took none ends as its `missing_payment_method` says.
    OnFile,
}

/// A trial that took no card ends as its `missing_payment_method` says.
impl From<TrialWithoutCard> for TrialOutcome {
    fn from(behavior: TrialWithoutCard) -> Self {
        match behavior {
            TrialWithoutCard::Pause => TrialOutcome::Pause,
            TrialWithoutCard::Cancel => TrialOutcome::Cancel,
        }
    }
}

impl TrialOutcome {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pay" => Some(TrialOutcome::Pay),
            "fail" => Some(TrialOutcome::Fail),
            "pause" => Some(TrialOutcome::Pause),
            "cancel" => Some(TrialOutcome::Cancel),
            "on-file" => Some(TrialOutcome::OnFile),
            _ => None,
        }
    }
}

/// A change to a subscription, as a customer, a card or Stripe's dunning makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionAction {
    /// To the catalog's price for `plan` and `billing` (the current billing
    /// period when `None`). `direction` refuses an "upgrade" that is not one.
    ChangePlan {
        plan: String,
        billing: Option<BillingPeriod>,
        direction: Option<Direction>,
    },
    /// A renewal charge (or a retry of it) is declined.
    CardFails,
    /// The open invoice is paid.
    CardRecovers,
    /// Retries exhausted: Stripe's dunning marks the subscription `unpaid`.
    Unpaid,
    /// The trial ends without a payment method (the only way Stripe pauses).
    Pause,
    /// A paused subscription is resumed and its first invoice paid.
    Resume,
    /// Cancelled now.
    Cancel,
    /// Stripe's notice three days before a trial ends; the trial goes on.
    TrialWillEnd,
    TrialEnds(TrialOutcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Upgrade,
    Downgrade,
}

impl SubscriptionAction {
    pub fn name(&self) -> &'static str {
        match self {
            SubscriptionAction::ChangePlan { direction: Some(Direction::Upgrade), .. } => "upgrade",
            SubscriptionAction::ChangePlan { direction: Some(Direction::Downgrade), .. } => "downgrade",
            SubscriptionAction::ChangePlan { direction: None, .. } => "change the plan of",
            SubscriptionAction::CardFails => "fail the card of",
            SubscriptionAction::CardRecovers => "recover the card of",
            SubscriptionAction::Unpaid => "mark unpaid",
            SubscriptionAction::Pause => "pause",
            SubscriptionAction::Resume => "resume",
            SubscriptionAction::Cancel => "cancel",
            SubscriptionAction::TrialWillEnd => "announce the trial end of",
            SubscriptionAction::TrialEnds(_) => "end the trial of",
        }
    }
}

/// How a Checkout Session is paid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PayOptions {
    /// Start with a trial of this many days instead of the session's own
    /// (`subscription_data.trial_period_days`).
    pub trial_days: Option<u32>,
}

/// Stripe on a laptop. Idempotency keys behave like Stripe's: the same key
/// returns the same session, and the same key with different parameters is
/// refused.
pub struct LocalStripe {
    account: Persisted<Account>,
    base_url: String,
    clock: Arc<dyn Clock>,
    catalog: Catalog,
}

impl LocalStripe {
    /// With the shipped plan catalog's test-mode prices.
    pub fn open(dir: Option<&Path>, base_url: &str, clock: Arc<dyn Clock>) -> io::Result<Self> {
        let catalog = Catalog::embedded().map_err(io::Error::other)?;
        Self::open_with_catalog(dir, base_url, clock, catalog)
    }

    pub fn open_with_catalog(
        dir: Option<&Path>,
        base_url: &str,
        clock: Arc<dyn Clock>,
        catalog: Catalog,
    ) -> io::Result<Self> {
        let stripe = LocalStripe {
            account: Persisted::open(dir, "stripe.json")?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            clock,
            catalog,
        };
        stripe.seed_catalog()?;
        Ok(stripe)
    }

    pub fn sessions(&self) -> Vec<LocalCheckoutSession> {
        self.account.read(|a| a.sessions.clone())
    }

    pub fn customers(&self) -> Vec<LocalCustomer> {
        self.account.read(|a| a.customers.clone())
    }

    pub fn subscriptions(&self) -> Vec<LocalSubscription> {
        self.account.read(|a| a.subscriptions.clone())
    }

    pub fn invoices(&self) -> Vec<LocalInvoice> {
        self.account.read(|a| a.invoices.clone())
    }

    pub fn refunds(&self) -> Vec<LocalRefund> {
        self.account.read(|a| a.refunds.clone())
    }

    /// Every event sent so far, oldest first.
    pub fn events(&self) -> Vec<Value> {
        self.account.read(|a| a.events.clone())
    }

    /// The customer pays: the session completes (once), making the
    /// customer, an `active` subscription carrying the session's metadata and
    /// a paid invoice; returns the events Stripe sends for it, in order, the
    /// last being `checkout.session.completed`. Paying a completed session
    /// again returns the same events (a redelivery).
    pub fn pay(&self, session_id: &str) -> Result<Vec<Value>, LocalStripeError> {
        self.pay_with(session_id, PayOptions::default())
    }

    pub fn pay_with(&self, session_id: &str, options: PayOptions) -> Result<Vec<Value>, LocalStripeError> {
        let now = self.clock.now_unix();
        self.account
            .update(|a| {
                let index = a
                    .sessions
                    .iter()
                    .position(|s| s.id == session_id)
                    .ok_or_else(|| LocalStripeError::NoSuchSession(session_id.to_owned()))?;
                if a.sessions[index].status != "open" {
                    let ids = a.sessions[index].events.clone();
                    return Ok(a
                        .events
                        .iter()
                        .filter(|e| ids.iter().any(|id| e["id"] == *id))
                        .cloned()
                        .collect());
                }
                if a.sessions[index].expires_at.is_some_and(|at| at < now) {
                    return Err(LocalStripeError::Expired(session_id.to_owned()));
                }
                let price = price_by_id(a, &a.sessions[index].price_id)?;
                Ok(complete_session(a, index, price, options, now))
            })
            .map_err(LocalStripeError::Io)?
    }

    /// Adopts a paid `checkout.session.completed` this stand-in never made
    /// (a hand-written or generated event, sent with `tenantctl send`), so
    /// that its subscription reads back as Stripe would hold it: the
    /// event's customer and subscription ids, an `active` subscription on
    /// the catalog's test price for the session's `plan` and `billing`
    /// metadata, the session's metadata, a paid first invoice. Returns
    /// whether it adopted anything: a session or subscription it knows, and
    /// a session whose metadata names no catalog price (which cannot become
    /// a tenant anyway), change nothing. A session completed `unpaid` (a
    /// delayed payment method) makes an `incomplete` subscription whose
    /// first invoice is open, and `checkout.session.async_payment_succeeded`
    /// for it pays that invoice and makes it `active`, as Stripe would.
    /// Local runs only.
    pub fn adopt_checkout(&self, event: &Value) -> Result<bool, LocalStripeError> {
        let object = &event["data"]["object"];
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let (Some(session_id), Some(customer), Some(sub_id)) =
            (text(&object["id"]), text(&object["customer"]), text(&object["subscription"]))
        else {
            return Ok(false);
        };
        if event["livemode"] != false {
            return Ok(false);
        }
        if event["type"] == "checkout.session.async_payment_succeeded" {
            return self.delayed_payment_arrived(&sub_id);
        }
        if event["type"] != "checkout.session.completed" {
            return Ok(false);
        }
        let unpaid = object["payment_status"] == "unpaid";
        let metadata: BTreeMap<String, String> = object["metadata"]
            .as_object()
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
            .unwrap_or_default();
        let billing = metadata.get("billing").and_then(|b| BillingPeriod::parse(b).ok());
        let price = match (metadata.get("plan"), billing) {
            (Some(plan), Some(billing)) => {
                match self.account.read(|a| price_for(a, &self.catalog, plan, billing)) {
                    Ok(price) => price,
                    Err(_) => return Ok(false),
                }
            }
            _ => return Ok(false),
        };
        let email = text(&object["customer_details"]["email"]).or_else(|| text(&object["customer_email"]));
        let now = self.clock.now_unix();
        self.account
            .update(|a| {
                if a.sessions.iter().any(|s| s.id == session_id)
                    || a.subscriptions.iter().any(|s| s.id == sub_id)
                {
                    return false;
                }
                if !a.customers.iter().any(|c| c.id == customer) {
                    a.customers.push(LocalCustomer {
                        id: customer.clone(),
                        email: email.clone().unwrap_or_default(),
                        created: now,
                    });
                }
                let period_end = now + price.period_seconds();
                let amount = price.unit_amount;
                a.subscriptions.push(LocalSubscription {
                    id: sub_id.clone(),
                    customer: customer.clone(),
                    created: now,
                    status: if unpaid { SubscriptionStatus::Incomplete } else { SubscriptionStatus::Active },
                    item_id: format!("si_adopted{:06}", a.subscriptions.len() + 1),
                    price: price.clone(),
                    metadata: metadata.clone(),
                    current_period_start: now,
                    current_period_end: period_end,
                    cancel_at_period_end: false,
                    canceled_at: None,
                    pause_collection: None,
                    trial_start: None,
                    trial_end: None,
                    ended_at: None,
                    latest_invoice: None,
                    discount: None,
                    trial_end_announced: false,
                    trial_without_card: None,
                });
                let index = a.subscriptions.len() - 1;
                let invoice = new_invoice(a, index, amount, (now, period_end), "subscription_create", now);
                if !unpaid {
                    mark_paid(a, &invoice, now);
                }
                true
            })
            .map_err(LocalStripeError::Io)
    }

    /// The delayed payment of an adopted `incomplete` subscription arrived.
    fn delayed_payment_arrived(&self, sub_id: &str) -> Result<bool, LocalStripeError> {
        let now = self.clock.now_unix();
        self.account
            .update(|a| {
                let Some(index) = a.subscriptions.iter().position(|s| s.id == sub_id) else { return false };
                if a.subscriptions[index].status != SubscriptionStatus::Incomplete {
                    return false;
                }
                a.subscriptions[index].status = SubscriptionStatus::Active;
                if let Some(invoice) = a.subscriptions[index].latest_invoice.clone() {
                    mark_paid(a, &invoice, now);
                }
                true
            })
            .map_err(LocalStripeError::Io)
    }

    /// Applies `action` to subscription `id` and returns the events Stripe
    /// sends for it, in order.
    pub fn act(&self, id: &str, action: &SubscriptionAction) -> Result<Vec<Value>, LocalStripeError> {
        let now = self.clock.now_unix();
        // Resolved before taking the lock: the catalog is immutable.
        let new_price = match action {
            SubscriptionAction::ChangePlan { plan, billing, .. } => Some((plan.clone(), *billing)),
            _ => None,
        };
        self.account
            .update(|a| {
                let index = a
                    .subscriptions
                    .iter()
                    .position(|s| s.id == id)
                    .ok_or_else(|| LocalStripeError::NoSuchSubscription(id.to_owned()))?;
                let refuse =
                    |why: String| LocalStripeError::Refused { id: id.to_owned(), action: action.name(), why };
                let status = a.subscriptions[index].status.clone();
                use SubscriptionStatus as S;
                match action {
                    SubscriptionAction::ChangePlan { direction, .. } => {
                        let (plan, billing) = new_price.clone().unwrap_or_default();
                        if !matches!(status, S::Active | S::Trialing) {
                            return Err(refuse(format!(
                                "it is {}; only an active or trialing subscription changes plan",
                                status.as_str()
                            )));
                        }
                        let current = a.subscriptions[index].price.clone();
                        let billing = match billing {
                            Some(billing) => billing,
                            None => billing_of(&current)?,
                        };
                        let price = price_for(a, &self.catalog, &plan, billing)?;
                        if price.id == current.id {
                            return Err(refuse(format!("it is already on {plan} {billing}")));
                        }
                        if let Some(direction) = direction {
                            let tier = |p: &LocalPrice| {
                                let by_key =
                                    p.lookup_key.as_deref().and_then(|k| self.catalog.plan_for_lookup_key(k));
                                by_key
                                    .or_else(|| self.catalog.plan_for_price(&p.id))
                                    .map(|(plan, _)| plan.tier)
                                    .unwrap_or(0)
                            };
                            let (from, to) = (tier(&current), tier(&price));
                            let fits = match direction {
                                Direction::Upgrade => to > from,
                                Direction::Downgrade => to < from,
                            };
                            if !fits {
                                return Err(refuse(format!(
                                    "{plan} is tier {to}, the current plan tier {from}"
                                )));
                            }
                        }
                        Ok(change_price(a, index, price, now))
                    }
                    SubscriptionAction::CardFails => match status {
                        S::Active => Ok(renewal_fails(a, index, now)),
                        S::PastDue => Ok(retry_fails(a, index, now)),
                        _ => Err(refuse(format!(
                            "it is {}; a renewal is charged only while active",
                            status.as_str()
                        ))),
                    },
                    SubscriptionAction::CardRecovers => match status {
                        S::PastDue | S::Unpaid => Ok(recover(a, index, now)),
                        _ => Err(refuse(format!("it is {}; nothing is owed", status.as_str()))),
                    },
                    SubscriptionAction::Unpaid => match status {
                        S::PastDue => Ok(set_status(a, index, S::Unpaid, now)),
                        _ => Err(refuse(format!(
                            "it is {}; only a past_due subscription runs out of retries",
                            status.as_str()
                        ))),
                    },
                    SubscriptionAction::Pause | SubscriptionAction::TrialEnds(TrialOutcome::Pause) => {
                        match status {
                            S::Trialing => Ok(end_trial(
                                a,
                                index,
                                TrialOutcome::Pause,
                                now,
                                matches!(action, SubscriptionAction::TrialEnds(_)),
                            )),
                            _ => Err(refuse(format!(
                                "it is {}; Stripe pauses a subscription only when its trial ends without a \
                             payment method (pay with a trial to start one)",
                                status.as_str()
                            ))),
                        }
                    }
                    SubscriptionAction::Resume => match status {
                        S::Paused => Ok(resume(a, index, now)),
                        _ => Err(refuse(format!("it is {}, not paused", status.as_str()))),
                    },
                    SubscriptionAction::Cancel => match status {
                        S::Canceled | S::IncompleteExpired => {
                            Err(refuse(format!("it is already {}", status.as_str())))
                        }
                        _ => Ok(cancel(a, index, now)),
                    },
                    SubscriptionAction::TrialWillEnd => match status {
                        S::Trialing => Ok(announce_trial_end(a, index, now)),
                        _ => Err(refuse(format!("it is {}, not trialing", status.as_str()))),
                    },
                    SubscriptionAction::TrialEnds(outcome) => match status {
                        S::Trialing => Ok(end_trial(a, index, *outcome, now, true)),
                        _ => Err(refuse(format!("it is {}, not trialing", status.as_str()))),
                    },
                }
            })
            .map_err(LocalStripeError::Io)?
    }

    /// `GET /v1/subscriptions/{id}` as Stripe answers it in `api_version`,
    /// `latest_invoice` expanded if asked.
    pub fn subscription_json(&self, id: &str, expand_invoice: bool, api_version: &str) -> Option<Value> {
        self.account.read(|a| {
            let sub = a.subscriptions.iter().find(|s| s.id == id)?;
            let mut object = subscription_wire(sub, api_version);
            if expand_invoice
                && let Some(invoice) =
                    sub.latest_invoice.as_ref().and_then(|i| a.invoices.iter().find(|x| x.id == *i))
            {
                object["latest_invoice"] = invoice_wire(invoice, api_version);
            }
            Some(object)
        })
    }

    pub fn invoice_json(&self, id: &str, api_version: &str) -> Option<Value> {
        self.account.read(|a| a.invoices.iter().find(|i| i.id == id).map(|i| invoice_wire(i, api_version)))
    }

    pub fn customer_json(&self, id: &str) -> Option<Value> {
        self.account.read(|a| a.customers.iter().find(|c| c.id == id).map(customer_wire))
    }

    pub fn event_json(&self, id: &str) -> Option<Value> {
        self.account.read(|a| a.events.iter().find(|e| e["id"] == id).cloned())
    }

    /// `GET /v1/subscriptions?status=…&limit=…&starting_after=…`, newest
    /// first as at Stripe; without `status`, every one but the canceled.
    pub fn subscription_list_json(
        &self,
        status: Option<&str>,
        limit: usize,
        starting_after: Option<&str>,
        api_version: &str,
    ) -> Value {
        self.account.read(|a| {
            let newest_first = a.subscriptions.iter().rev().filter(|s| match status {
                None => s.status != SubscriptionStatus::Canceled,
                Some("all") => true,
                Some(wanted) => s.status == SubscriptionStatus::parse(wanted),
            });
            let after: Vec<&LocalSubscription> = match starting_after {
                Some(id) => newest_first.skip_while(|s| s.id != id).skip(1).collect(),
                None => newest_first.collect(),
            };
            let limit = limit.clamp(1, 100);
            let data: Vec<Value> =
                after.iter().take(limit).map(|s| subscription_wire(s, api_version)).collect();
            let mut list = list_wire("/v1/subscriptions", data);
            list["has_more"] = json!(after.len() > limit);
            list
        })
    }

    /// `GET /v1/invoices?subscription=…&status=…`, newest first as at Stripe.
    pub fn invoice_list_json(
        &self,
        subscription: Option<&str>,
        status: Option<&str>,
        api_version: &str,
    ) -> Value {
        self.account.read(|a| {
            let data: Vec<Value> = a
                .invoices
                .iter()
                .rev()
                .filter(|i| subscription.is_none_or(|s| i.subscription == s))
                .filter(|i| status.is_none_or(|s| i.status == s))
                .map(|i| invoice_wire(i, api_version))
                .collect();
            list_wire("/v1/invoices", data)
        })
    }

    /// `GET /v1/invoice_payments?invoice=…`: the payment of a paid invoice.
    pub fn invoice_payments_json(&self, invoice: &str) -> Value {
        self.account.read(|a| {
            let data: Vec<Value> = a
                .invoices
                .iter()
                .filter(|i| i.id == invoice && i.status == "paid")
                .filter_map(|i| Some(invoice_payment_wire(i, i.payment_intent.as_deref()?)))
                .collect();
            list_wire("/v1/invoice_payments", data)
        })
    }

    /// `GET /v1/refunds?payment_intent=…`, newest first.
    pub fn refund_list_json(&self, payment_intent: Option<&str>) -> Value {
        self.account.read(|a| {
            let data: Vec<Value> = a
                .refunds
                .iter()
                .rev()
                .filter(|r| payment_intent.is_none_or(|pi| r.payment_intent == pi))
                .map(refund_wire)
                .collect();
            list_wire("/v1/refunds", data)
        })
    }

    /// `POST /v1/refunds` of a whole PaymentIntent, as Stripe answers it:
    /// the same idempotency key returns the same refund (and refuses other
    /// parameters); a payment already refunded in full is refused with
    /// `charge_already_refunded`.
    pub fn create_refund(
        &self,
        payment_intent: &str,
        reason: Option<&str>,
        metadata: BTreeMap<String, String>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, LocalStripeError> {
        let now = self.clock.now_unix();
        self.account
            .update(|a| {
                if let Some(key) = idempotency_key
                    && let Some(earlier) =
                        a.refunds.iter().find(|r| r.idempotency_key.as_deref() == Some(key))
                {
                    return if earlier.payment_intent == payment_intent {
                        Ok(refund_wire(earlier))
                    } else {
                        Err(LocalStripeError::IdempotencyMismatch)
                    };
                }
                let invoice = a
                    .invoices
                    .iter()
                    .find(|i| i.payment_intent.as_deref() == Some(payment_intent))
                    .ok_or_else(|| LocalStripeError::NoSuchPayment(payment_intent.to_owned()))?;
                let refunded: i64 =
                    a.refunds.iter().filter(|r| r.payment_intent == payment_intent).map(|r| r.amount).sum();
                let left = invoice.amount_paid - refunded;
                if left <= 0 {
                    return Err(LocalStripeError::AlreadyRefunded(payment_intent.to_owned()));
                }
                let refund = LocalRefund {
                    id: format!("re_local{:06}", a.refunds.len() + 1),
                    payment_intent: payment_intent.to_owned(),
                    invoice: invoice.id.clone(),
                    amount: left,
                    currency: invoice.currency.clone(),
                    status: "succeeded".into(),
                    reason: reason.map(str::to_owned),
                    metadata,
                    created: now,
                    idempotency_key: idempotency_key.map(str::to_owned),
                };
                let wire = refund_wire(&refund);
                a.refunds.push(refund);
                Ok(wire)
            })
            .map_err(LocalStripeError::Io)?
    }
}

/// The account's price `price_id`, as a subscription item holds it.
fn price_by_id(a: &Account, price_id: &str) -> Result<LocalPrice, LocalStripeError> {
    a.prices
        .iter()
        .find(|p| p.price.id == price_id)
        .map(|p| p.price.clone())
        .ok_or_else(|| LocalStripeError::UnknownPrice(price_id.to_owned()))
}

/// The account's active price for `plan` and `billing`: the one holding
/// the catalog's lookup key for them, as the checkout finds it.
fn price_for(
    a: &Account,
    catalog: &Catalog,
    plan: &str,
    billing: BillingPeriod,
) -> Result<LocalPrice, LocalStripeError> {
    let plan = catalog.plan(plan)?;
    let no_price = || LocalStripeError::NoPrice { plan: plan.key.to_string(), billing };
    let key = &catalog.price(&plan.key, billing).ok_or_else(no_price)?.lookup_key;
    a.prices
        .iter()
        .find(|p| p.active && p.price.lookup_key.as_deref() == Some(key.as_str()))
        .map(|p| p.price.clone())
        .ok_or_else(no_price)
}

fn billing_of(price: &LocalPrice) -> Result<BillingPeriod, LocalStripeError> {
    BillingPeriod::from_stripe_interval(&price.interval, u64::from(price.interval_count))
        .ok_or_else(|| LocalStripeError::UnknownPrice(price.id.clone()))
}

fn is_period_on_items(api_version: &str) -> bool {
    // Versions are dates first (`2025-03-31.basil`), so they sort as text.
    api_version >= PERIOD_ON_ITEMS_SINCE
}

fn price_wire(price: &LocalPrice) -> Value {
    json!({
        "id": price.id,
        "object": "price",
        // As a subscription holds it; the account's own list says whether
        // it is still sold (admin::stored_price_wire).
        "active": true,
        "billing_scheme": "per_unit",
        "currency": price.currency,
        "livemode": false,
        "lookup_key": price.lookup_key,
        "metadata": {},
        "recurring": {
            "interval": price.interval,
            "interval_count": price.interval_count,
            "usage_type": "licensed",
        },
        "type": "recurring",
        "unit_amount": price.unit_amount,
    })
}

fn subscription_wire(sub: &LocalSubscription, api_version: &str) -> Value {
    let on_items = is_period_on_items(api_version);
    let mut item = json!({
        "id": sub.item_id,
        "object": "subscription_item",
        "created": sub.created,
        "metadata": {},
        "price": price_wire(&sub.price),
        "quantity": 1,
        "subscription": sub.id,
    });
    let mut object = json!({
        "id": sub.id,
        "object": "subscription",
        "billing_cycle_anchor": sub.current_period_start,
        "cancel_at": if sub.cancel_at_period_end { Some(sub.current_period_end) } else { None },
        "cancel_at_period_end": sub.cancel_at_period_end,
        "canceled_at": sub.canceled_at,
        "collection_method": "charge_automatically",
        "created": sub.created,
        "currency": sub.price.currency,
        "customer": sub.customer,
        "ended_at": sub.ended_at,
        "items": {
            "object": "list",
            "data": [],
            "has_more": false,
            "total_count": 1,
            "url": format!("/v1/subscription_items?subscription={}", sub.id),
        },
        "latest_invoice": sub.latest_invoice,
        "livemode": false,
        "metadata": sub.metadata,
        "pause_collection": sub.pause_collection.as_ref().map(|p| json!({"behavior": p.behavior, "resumes_at": p.resumes_at})),
        "start_date": sub.created,
        "status": sub.status.as_str(),
        "trial_end": sub.trial_end,
        "trial_start": sub.trial_start,
        "discounts": sub.discount.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
    });
    if on_items {
        item["current_period_start"] = json!(sub.current_period_start);
        item["current_period_end"] = json!(sub.current_period_end);
    } else {
        object["current_period_start"] = json!(sub.current_period_start);
        object["current_period_end"] = json!(sub.current_period_end);
    }
    object["items"]["data"] = json!([item]);
    object
}

fn invoice_wire(invoice: &LocalInvoice, api_version: &str) -> Value {
    let paid = invoice.status == "paid";
    let mut object = json!({
        "id": invoice.id,
        "object": "invoice",
        "amount_due": invoice.amount_due,
        "amount_paid": invoice.amount_paid,
        "amount_remaining": invoice.amount_due - invoice.amount_paid,
        "attempt_count": invoice.attempt_count,
        "attempted": invoice.attempt_count > 0,
        "billing_reason": invoice.billing_reason,
        "collection_method": "charge_automatically",
        "created": invoice.created,
        "currency": invoice.currency,
        "customer": invoice.customer,
        "lines": {
            "object": "list",
            "data": [{
                "id": format!("il_{}", invoice.id.trim_start_matches("in_")),
                "object": "line_item",
                "amount": invoice.amount_due,
                "currency": invoice.currency,
                "period": {"start": invoice.period_start, "end": invoice.period_end},
                "quantity": 1,
            }],
            "has_more": false,
            "total_count": 1,
            "url": format!("/v1/invoices/{}/lines", invoice.id),
        },
        "livemode": false,
        "metadata": {},
        "period_start": invoice.period_start,
        "period_end": invoice.period_end,
        "status": invoice.status,
        "status_transitions": {"paid_at": invoice.paid_at, "finalized_at": invoice.created},
        "subtotal": invoice.amount_due + invoice.amount_discount,
        "total": invoice.amount_due,
        "total_discount_amounts": if invoice.amount_discount > 0 {
            json!([{"amount": invoice.amount_discount}])
        } else {
            json!([])
        },
    });
    if is_period_on_items(api_version) {
        object["parent"] = json!({
            "type": "subscription_details",
            "subscription_details": {"subscription": invoice.subscription, "metadata": {}},
        });
        object["lines"]["data"][0]["pricing"] =
            json!({"type": "price_details", "price_details": {"price": invoice.price_id}});
    } else {
        object["subscription"] = json!(invoice.subscription);
        object["paid"] = json!(paid);
        object["payment_intent"] = json!(invoice.payment_intent);
        object["lines"]["data"][0]["price"] = json!({"id": invoice.price_id, "object": "price"});
    }
    object
}

fn list_wire(url: &str, data: Vec<Value>) -> Value {
    json!({"object": "list", "data": data, "has_more": false, "url": url})
}

fn invoice_payment_wire(invoice: &LocalInvoice, payment_intent: &str) -> Value {
    json!({
        "id": format!("inpay_{}", invoice.id.trim_start_matches("in_")),
        "object": "invoice_payment",
        "amount_paid": invoice.amount_paid,
        "amount_requested": invoice.amount_due,
        "created": invoice.created,
        "currency": invoice.currency,
        "invoice": invoice.id,
        "is_default": true,
        "livemode": false,
        "payment": {"type": "payment_intent", "payment_intent": payment_intent},
        "status": "paid",
        "status_transitions": {"paid_at": invoice.paid_at, "canceled_at": null},
    })
}

fn refund_wire(refund: &LocalRefund) -> Value {
    json!({
        "id": refund.id,
        "object": "refund",
        "amount": refund.amount,
        "charge": format!("ch_{}", refund.payment_intent.trim_start_matches("pi_")),
        "created": refund.created,
        "currency": refund.currency,
        "metadata": refund.metadata,
        "payment_intent": refund.payment_intent,
        "reason": refund.reason,
        "status": refund.status,
    })
}

fn customer_wire(customer: &LocalCustomer) -> Value {
    json!({
        "id": customer.id,
        "object": "customer",
        "created": customer.created,
        "email": customer.email,
        "livemode": false,
        "metadata": {},
    })
}

fn session_wire(session: &LocalCheckoutSession, amount: i64, currency: &str) -> Value {
    json!({
        "id": session.id,
        "object": "checkout.session",
        "mode": "subscription",
        "status": session.status,
        // A trial charges nothing at checkout, as Stripe reports it.
        "payment_status": match (session.status.as_str(), session.trial_days) {
            ("complete", Some(_)) => "no_payment_required",
            ("complete", None) => "paid",
            _ => "unpaid",
        },
        "customer": session.customer,
        "subscription": session.subscription,
        "customer_email": session.customer_email,
        "customer_details": {"email": session.customer_email},
        "metadata": session.metadata,
        "amount_total": amount,
        "currency": currency,
        "success_url": session.success_url,
        "cancel_url": session.cancel_url,
        "created": session.created,
        "expires_at": session.expires_at,
        "livemode": false,
        "url": null,
        "allow_promotion_codes": session.allow_promotion_codes,
        "discounts": session.promotion_code.iter().map(|id| json!({"coupon": null, "promotion_code": id})).collect::<Vec<_>>(),
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
    })
}

/// What changed at the top level, with the old values: Stripe's
/// `previous_attributes` (nested objects are given whole, as Stripe does).
fn previous_attributes(before: &Value, after: &Value) -> Value {
    let (Some(before), Some(after)) = (before.as_object(), after.as_object()) else { return json!({}) };
    let changed: Map<String, Value> = after
        .iter()
        .filter(|(key, value)| before.get(*key) != Some(*value))
        .map(|(key, _)| (key.clone(), before.get(key).cloned().unwrap_or(Value::Null)))
        .collect();
    Value::Object(changed)
}

/// Records an event and returns it. `created` rises strictly, so events
/// made in one second still sort in the order Stripe sent them.
fn emit(a: &mut Account, kind: &str, object: Value, previous: Option<Value>, now: i64) -> Value {
    let created = now.max(a.last_event_created + 1);
    a.last_event_created = created;
    let mut data = json!({"object": object});
    if let Some(previous) = previous {
        data["previous_attributes"] = previous;
    }
    let event = json!({
        "id": format!("evt_local{:010}", a.events.len() + 1),
        "object": "event",
        "api_version": EVENT_API_VERSION,
        "created": created,
        "data": data,
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": kind,
    });
    a.events.push(event.clone());
    event
}

fn sub_event(a: &mut Account, index: usize, kind: &str, before: Option<&Value>, now: i64) -> Value {
    let after = subscription_wire(&a.subscriptions[index], EVENT_API_VERSION);
    let previous = before.map(|before| previous_attributes(before, &after));
    emit(a, kind, after, previous, now)
}

fn invoice_event(a: &mut Account, invoice_id: &str, kind: &str, now: i64) -> Value {
    let object = a
        .invoices
        .iter()
        .find(|i| i.id == invoice_id)
        .map(|i| invoice_wire(i, EVENT_API_VERSION))
        .unwrap_or(Value::Null);
    emit(a, kind, object, None, now)
}

/// A new invoice for subscription `index`, billing `[start, end)`, made the latest.
fn new_invoice(
    a: &mut Account,
    index: usize,
    amount: i64,
    period: (i64, i64),
    reason: &str,
    now: i64,
) -> String {
    let id = format!("in_local{:06}", a.invoices.len() + 1);
    let amount_discount = coupons::take_discount(a, index, amount, now);
    let sub = &mut a.subscriptions[index];
    a.invoices.push(LocalInvoice {
        id: id.clone(),
        customer: sub.customer.clone(),
        subscription: sub.id.clone(),
        status: "open".into(),
        amount_due: amount - amount_discount,
        amount_discount,
        amount_paid: 0,
        currency: sub.price.currency.clone(),
        period_start: period.0,
        period_end: period.1,
        price_id: sub.price.id.clone(),
        billing_reason: reason.into(),
        attempt_count: 0,
        created: now,
        paid_at: None,
        payment_intent: None,
    });
    sub.latest_invoice = Some(id.clone());
    id
}

fn invoice_mut<'a>(a: &'a mut Account, id: &str) -> Option<&'a mut LocalInvoice> {
    a.invoices.iter_mut().find(|i| i.id == id)
}

fn mark_paid(a: &mut Account, id: &str, now: i64) {
    if let Some(invoice) = invoice_mut(a, id) {
        invoice.status = "paid".into();
        invoice.amount_paid = invoice.amount_due;
        invoice.attempt_count += 1;
        invoice.paid_at = Some(now);
        // Stripe charges nothing, and makes no payment, for an invoice of 0.
        if invoice.amount_due > 0 {
            invoice.payment_intent = Some(format!("pi_{}", invoice.id.trim_start_matches("in_")));
        }
    }
}

fn mark_failed(a: &mut Account, id: &str) {
    if let Some(invoice) = invoice_mut(a, id) {
        invoice.attempt_count += 1;
    }
}

fn complete_session(
    a: &mut Account,
    index: usize,
    price: LocalPrice,
    options: PayOptions,
    now: i64,
) -> Vec<Value> {
    let customer = format!("cus_local{:06}", a.customers.len() + 1);
    let sub_id = format!("sub_local{:06}", a.subscriptions.len() + 1);
    let session = &mut a.sessions[index];
    session.status = "complete".into();
    session.customer = Some(customer.clone());
    session.subscription = Some(sub_id.clone());
    let (email, metadata) = (session.customer_email.clone(), session.metadata.clone());
    let promotion_code = session.promotion_code.clone();
    let trial_days = options.trial_days.or(session.trial_days);
    let trial_without_card = session.trial_without_card;
    a.customers.push(LocalCustomer { id: customer.clone(), email, created: now });
    let trial_end = trial_days.map(|days| now + i64::from(days) * DAY);
    let period_end = trial_end.unwrap_or(now + price.period_seconds());
    let amount = if trial_end.is_some() { 0 } else { price.unit_amount };
    a.subscriptions.push(LocalSubscription {
        id: sub_id.clone(),
        customer: customer.clone(),
        created: now,
        status: if trial_end.is_some() { SubscriptionStatus::Trialing } else { SubscriptionStatus::Active },
        item_id: format!("si_local{:06}", a.subscriptions.len() + 1),
        price,
        metadata,
        current_period_start: now,
        current_period_end: period_end,
        cancel_at_period_end: false,
        canceled_at: None,
        pause_collection: None,
        trial_start: trial_end.map(|_| now),
        trial_end,
        ended_at: None,
        latest_invoice: None,
        discount: None,
        trial_end_announced: false,
        trial_without_card: trial_end.and(trial_without_card),
    });
    let sub_index = a.subscriptions.len() - 1;
    if let Some(code) = &promotion_code {
        coupons::redeem(a, sub_index, code, now);
    }
    let invoice = new_invoice(a, sub_index, amount, (now, period_end), "subscription_create", now);
    mark_paid(a, &invoice, now);
    let (amount, discounted) = a
        .invoices
        .iter()
        .find(|i| i.id == invoice)
        .map_or((amount, 0), |i| (i.amount_due, i.amount_discount));
    let customer_object = a.customers.last().map(customer_wire).unwrap_or(Value::Null);
    let mut events = vec![emit(a, "customer.created", customer_object, None, now)];
    events.push(sub_event(a, sub_index, "customer.subscription.created", None, now));
    events.push(invoice_event(a, &invoice, "invoice.paid", now));
    let mut session_object =
        session_wire(&a.sessions[index], amount, &a.subscriptions[sub_index].price.currency);
    session_object["total_details"]["amount_discount"] = json!(discounted);
    events.push(emit(a, "checkout.session.completed", session_object, None, now));
    a.sessions[index].events = events.iter().filter_map(|e| e["id"].as_str().map(str::to_owned)).collect();
    events
}

/// Upgrade or downgrade, prorated and invoiced at once (as with
/// `proration_behavior: always_invoice`). A change of billing interval
/// restarts the period now, as Stripe resets the billing cycle anchor.
fn change_price(a: &mut Account, index: usize, price: LocalPrice, now: i64) -> Vec<Value> {
    let before = subscription_wire(&a.subscriptions[index], EVENT_API_VERSION);
    let sub = &mut a.subscriptions[index];
    let old = std::mem::replace(&mut sub.price, price);
    let trialing = sub.status == SubscriptionStatus::Trialing;
    let length = (sub.current_period_end - sub.current_period_start).max(1);
    let unused = (sub.current_period_end - now).clamp(0, length) as f64 / length as f64;
    let new_term = (&sub.price.interval, sub.price.interval_count) != (&old.interval, old.interval_count);
    let amount = if new_term && !trialing {
        sub.current_period_start = now;
        sub.current_period_end = now + sub.price.period_seconds();
        sub.price.unit_amount - (old.unit_amount as f64 * unused).round() as i64
    } else {
        ((sub.price.unit_amount - old.unit_amount) as f64 * unused).round() as i64
    };
    let period = (now, sub.current_period_end);
    if trialing {
        // Nothing is charged during a trial.
        return vec![sub_event(a, index, "customer.subscription.updated", Some(&before), now)];
    }
    // A downgrade's credit goes to the customer's balance; the invoice is for nothing.
    let invoice = new_invoice(a, index, amount.max(0), period, "subscription_update", now);
    mark_paid(a, &invoice, now);
    vec![
        sub_event(a, index, "customer.subscription.updated", Some(&before), now),
        invoice_event(a, &invoice, "invoice.paid", now),
    ]
}

/// The period renews and its charge is declined: `past_due`.
fn renewal_fails(a: &mut Account, index: usize, now: i64) -> Vec<Value> {
    let before = subscription_wire(&a.subscriptions[index], EVENT_API_VERSION);
    let sub = &mut a.subscriptions[index];
    let start = sub.current_period_end;
    let end = start + sub.price.period_seconds();
    sub.current_period_start = start;
    sub.current_period_end = end;
    sub.status = SubscriptionStatus::PastDue;
    let amount = sub.price.unit_amount;
    let invoice = new_invoice(a, index, amount, (start, end), "subscription_cycle", now);
    mark_failed(a, &invoice);
    vec![
        invoice_event(a, &invoice, "invoice.payment_failed", now),
        sub_event(a, index, "customer.subscription.updated", Some(&before), now),
    ]
}

/// Smart Retries tries the open invoice again and fails again.
fn retry_fails(a: &mut Account, index: usize, now: i64) -> Vec<Value> {
    let Some(invoice) = a.subscriptions[index].latest_invoice.clone() else { return Vec::new() };
    mark_failed(a, &invoice);
    vec![invoice_event(a, &invoice, "invoice.payment_failed", now)]
}

fn recover(a: &mut Account, index: usize, now: i64) -> Vec<Value> {
    let before = subscription_wire(&a.subscriptions[index], EVENT_API_VERSION);
    let open = a.subscriptions[index]
        .latest_invoice
        .clone()
        .filter(|id| a.invoices.iter().any(|i| i.id == *id && i.status == "open"));
    a.subscriptions[index].status = SubscriptionStatus::Active;
    let mut events = Vec::new();
    if let Some(invoice) = open {
        mark_paid(a, &invoice, now);
        events.push(invoice_event(a, &invoice, "invoice.paid", now));
    }
    events.push(sub_event(a, index, "customer.subscription.updated", Some(&before), now));
    events
}

fn set_status(a: &mut Account, index: usize, status: SubscriptionStatus, now: i64) -> Vec<Value> {
    let before = subscription_wire(&a.subscriptions[index], EVENT_API_VERSION);
    a.subscriptions[index].status = status;
    vec![sub_event(a, index, "customer.subscription.updated", Some(&before), now)]
}

/// The trial ends now. `warn` first sends `trial_will_end` (Stripe sends it
/// three days ahead; here, just before).
/// Stripe's notice before a trial ends, once per trial.
fn announce_trial_end(a: &mut Account, index: usize, now: i64) -> Vec<Value> {
    a.subscriptions[index].trial_end_announced = true;
    vec![sub_event(a, index, "customer.subscription.trial_will_end", None, now)]
}

fn end_trial(a: &mut Account, index: usize, outcome: TrialOutcome, now: i64, warn: bool) -> Vec<Value> {
    let mut events = Vec::new();
    if warn && !a.subscriptions[index].trial_end_announced {
        events.extend(announce_trial_end(a, index, now));
    }
    let before = subscription_wire(&a.subscriptions[index], EVENT_API_VERSION);
    let sub = &mut a.subscriptions[index];
    // What is on file decides: without a card, the trial's missing_payment_method.
    let outcome = match (outcome, sub.trial_without_card) {
        (TrialOutcome::OnFile, Some(behavior)) => behavior.into(),
        (TrialOutcome::OnFile, None) => TrialOutcome::Pay,
        (given, _) => given,
    };
    sub.trial_end = Some(now);
    let amount = sub.price.unit_amount;
    let period = (now, now + sub.price.period_seconds());
    match outcome {
        // OnFile is settled above: a card is on file.
        TrialOutcome::Pay | TrialOutcome::OnFile | TrialOutcome::Fail => {
            sub.current_period_start = period.0;
            sub.current_period_end = period.1;
            let invoice = new_invoice(a, index, amount, period, "subscription_cycle", now);
            if outcome != TrialOutcome::Fail {
                a.subscriptions[index].status = SubscriptionStatus::Active;
                mark_paid(a, &invoice, now);
                events.push(sub_event(a, index, "customer.subscription.updated", Some(&before), now));
                events.push(invoice_event(a, &invoice, "invoice.paid", now));
            } else {
                a.subscriptions[index].status = SubscriptionStatus::PastDue;
                mark_failed(a, &invoice);
                events.push(invoice_event(a, &invoice, "invoice.payment_failed", now));
                events.push(sub_event(a, index, "customer.subscription.updated", Some(&before), now));
            }
        }
        TrialOutcome::Pause => {
            sub.status = SubscriptionStatus::Paused;
            sub.current_period_start = now;
            sub.current_period_end = now;
            events.push(sub_event(a, index, "customer.subscription.updated", Some(&before), now));
            events.push(sub_event(a, index, "customer.subscription.paused", None, now));
        }
        TrialOutcome::Cancel => events.extend(cancel(a, index, now)),
    }
    events
}

/// Resumed with `billing_cycle_anchor: now`: a new period, invoiced and paid.
fn resume(a: &mut Account, index: usize, now: i64) -> Vec<Value> {
    let before = subscription_wire(&a.subscriptions[index], EVENT_API_VERSION);
    let sub = &mut a.subscriptions[index];
    sub.status = SubscriptionStatus::Active;
    sub.current_period_start = now;
    sub.current_period_end = now + sub.price.period_seconds();
    let (amount, period) = (sub.price.unit_amount, (now, sub.current_period_end));
    let invoice = new_invoice(a, index, amount, period, "subscription_cycle", now);
    mark_paid(a, &invoice, now);
    vec![
        sub_event(a, index, "customer.subscription.updated", Some(&before), now),
        sub_event(a, index, "customer.subscription.resumed", None, now),
        invoice_event(a, &invoice, "invoice.paid", now),
    ]
}

fn cancel(a: &mut Account, index: usize, now: i64) -> Vec<Value> {
    let sub = &mut a.subscriptions[index];
    sub.status = SubscriptionStatus::Canceled;
    sub.canceled_at = Some(now);
    sub.ended_at = Some(now);
    sub.cancel_at_period_end = false;
    vec![sub_event(a, index, "customer.subscription.deleted", None, now)]
}

fn snapshot(a: &Account, sub: &LocalSubscription) -> Result<SubscriptionSnapshot, StripeApiError> {
    let corrupt = |what: String| StripeApiError::Unavailable(what.into());
    let id =
        SubscriptionId::parse(&sub.id).map_err(|e| corrupt(format!("local subscription {}: {e}", sub.id)))?;
    let customer = CustomerId::parse(&sub.customer)
        .map_err(|e| corrupt(format!("local subscription {}: {e}", sub.id)))?;
    let latest_invoice = sub.latest_invoice.as_ref().map(|id| {
        let invoice = a.invoices.iter().find(|i| i.id == *id);
        InvoiceSnapshot {
            id: id.clone(),
            status: invoice.map(|i| i.status.clone()),
            period_end: invoice.map(|i| i.period_end),
            period_start: invoice.map(|i| i.period_start),
        }
    });
    Ok(SubscriptionSnapshot {
        id,
        customer,
        status: sub.status.clone(),
        price_id: Some(sub.price.id.clone()),
        price_lookup_key: sub.price.lookup_key.clone(),
        price_term: BillingPeriod::from_stripe_interval(
            &sub.price.interval,
            u64::from(sub.price.interval_count),
        ),
        current_period_end: Some(sub.current_period_end),
        cancel_at_period_end: sub.cancel_at_period_end,
        collection_paused: sub.pause_collection.is_some(),
        trial_end: sub.trial_end,
        ended_at: sub.ended_at,
        metadata: sub.metadata.clone(),
        latest_invoice,
    })
}

/// The local adapter of [`SubscriptionSource`]: the stand-in's own state.
#[async_trait]
impl SubscriptionSource for LocalStripe {
    async fn subscription(
        &self,
        id: &SubscriptionId,
    ) -> Result<Option<SubscriptionSnapshot>, StripeApiError> {
        self.account.read(|a| {
            a.subscriptions.iter().find(|s| s.id == id.as_str()).map(|sub| snapshot(a, sub)).transpose()
        })
    }

    async fn live_subscriptions_with(
        &self,
        metadata_key: &str,
    ) -> Result<Vec<SubscriptionSnapshot>, StripeApiError> {
        self.account.read(|a| {
            a.subscriptions
                .iter()
                .rev()
                .filter(|s| s.status != SubscriptionStatus::Canceled && s.metadata.contains_key(metadata_key))
                .map(|sub| snapshot(a, sub))
                .collect()
        })
    }
}

#[async_trait]
impl StripeGateway for LocalStripe {
    async fn create_checkout_session(
        &self,
        request: &CheckoutSessionRequest,
    ) -> Result<CreatedSession, StripeApiError> {
        let now = self.clock.now_unix();
        let base = self.base_url.clone();
        let (promotion_code, allow_promotion_codes) = match &request.discount {
            crate::ports::Discount::None => (None, false),
            crate::ports::Discount::CustomerMayEnterCode => (None, true),
            crate::ports::Discount::PromotionCode(id) => (Some(id.to_string()), false),
        };
        self.account
            .update(|a| {
                if let Some(existing) =
                    a.sessions.iter().find(|s| s.idempotency_key == request.idempotency_key)
                {
                    let same = existing.price_id == request.price_id
                        && existing.customer_email == request.customer_email.as_str()
                        && existing.metadata == request.metadata
                        && existing.promotion_code == promotion_code
                        && existing.allow_promotion_codes == allow_promotion_codes
                        && existing.trial_days == request.trial_days
                        && existing.trial_without_card == request.trial_without_card;
                    return if same {
                        Ok(CreatedSession { id: existing.id.clone(), url: existing.url.clone() })
                    } else {
                        Err(StripeApiError::Rejected {
                            status: 400,
                            code: Some("idempotency_error".into()),
                            message: "Keys for idempotent requests can only be used with the same parameters"
                                .into(),
                        })
                    };
                }
                if let Some(code) = &promotion_code {
                    coupons::check_redeemable(a, code, &request.price_id, now).map_err(refused_by_stripe)?;
                }
                let id = format!("cs_test_local{:06}", a.sessions.len() + 1);
                let url = format!("{base}/local/stripe/checkout/{id}");
                a.sessions.push(LocalCheckoutSession {
                    id: id.clone(),
                    url: url.clone(),
                    idempotency_key: request.idempotency_key.clone(),
                    price_id: request.price_id.clone(),
                    customer_email: request.customer_email.to_string(),
                    metadata: request.metadata.clone(),
                    success_url: request.success_url.clone(),
                    cancel_url: request.cancel_url.clone(),
                    expires_at: request.expires_at,
                    created: now,
                    status: "open".into(),
                    customer: None,
                    subscription: None,
                    events: Vec::new(),
                    promotion_code: promotion_code.clone(),
                    allow_promotion_codes,
                    trial_days: request.trial_days,
                    trial_without_card: request.trial_without_card.filter(|_| request.trial_days.is_some()),
                });
                Ok(CreatedSession { id, url })
            })
            .map_err(|e| StripeApiError::Unavailable(e.into()))?
    }

    async fn create_portal_session(
        &self,
        customer: &CustomerId,
        _return_url: &str,
    ) -> Result<String, StripeApiError> {
        Ok(format!("{}/billing-portal/{customer}", self.base_url))
    }
    async fn price_by_lookup_key(
        &self,
        lookup_key: &crate::domain::LookupKey,
    ) -> Result<Option<crate::ports::SoldPrice>, StripeApiError> {
        Ok(self.account.read(|a| {
            a.prices
                .iter()
                .find(|p| p.active && p.price.lookup_key.as_deref() == Some(lookup_key.as_str()))
                .map(|p| crate::ports::SoldPrice { id: p.price.id.clone(), product: p.product.clone() })
        }))
    }

    async fn promotion_code(
        &self,
        code: &crate::domain::PromotionCode,
    ) -> Result<Option<crate::domain::PromotionOffer>, StripeApiError> {
        Ok(self.promotion_offer(code))
    }
}

fn refused_by_stripe(error: LocalStripeError) -> StripeApiError {
    match error {
        LocalStripeError::NoSuchSubscription(_)
        | LocalStripeError::NoSuchPayment(_)
        | LocalStripeError::NoSuchObject { .. } => StripeApiError::Rejected {
            status: 404,
            code: Some("resource_missing".into()),
            message: error.to_string(),
        },
        LocalStripeError::AlreadyRefunded(_) => StripeApiError::Rejected {
            status: 400,
            code: Some("charge_already_refunded".into()),
            message: error.to_string(),
        },
        LocalStripeError::Io(source) => StripeApiError::Unavailable(source.into()),
        other => StripeApiError::Rejected { status: 400, code: None, message: other.to_string() },
    }
}

/// The local adapter of [`MoneyBack`]: the same reads-then-writes the API
/// adapter makes, on the stand-in's own state.
#[async_trait]
impl MoneyBack for LocalStripe {
    async fn cancel_subscription(&self, id: &SubscriptionId) -> Result<(), StripeApiError> {
        let status = self
            .account
            .read(|a| a.subscriptions.iter().find(|s| s.id == id.as_str()).map(|s| s.status.clone()));
        match status {
            None => Err(refused_by_stripe(LocalStripeError::NoSuchSubscription(id.to_string()))),
            Some(SubscriptionStatus::Canceled | SubscriptionStatus::IncompleteExpired) => Ok(()),
            Some(_) => match self.act(id.as_str(), &SubscriptionAction::Cancel) {
                Ok(_) => Ok(()),
                // Cancelled by someone else since it was read: what was asked for.
                Err(LocalStripeError::Refused { .. }) => Ok(()),
                Err(other) => Err(refused_by_stripe(other)),
            },
        }
    }

    async fn refund_subscription(
        &self,
        id: &SubscriptionId,
        paid_since: Option<i64>,
        tenant: &str,
    ) -> Result<Vec<Refund>, StripeApiError> {
        let paid: Vec<(String, i64)> = self.account.read(|a| {
            a.invoices
                .iter()
                .filter(|i| i.subscription == id.as_str() && i.status == "paid")
                .filter(|i| paid_since.is_none_or(|since| i.paid_at.is_some_and(|at| at >= since)))
                .filter_map(|i| Some((i.payment_intent.clone()?, i.amount_paid)))
                .collect()
        });
        for (payment_intent, amount_paid) in &paid {
            let refunded: i64 =
                self.refunds().iter().filter(|r| r.payment_intent == *payment_intent).map(|r| r.amount).sum();
            if refunded >= *amount_paid {
                continue;
            }
            let metadata = BTreeMap::from([("tenant_id".to_owned(), tenant.to_owned())]);
            match self.create_refund(
                payment_intent,
                Some("requested_by_customer"),
                metadata,
                Some(&format!("refund-{payment_intent}")),
            ) {
                Ok(_) | Err(LocalStripeError::AlreadyRefunded(_)) => {}
                Err(other) => return Err(refused_by_stripe(other)),
            }
        }
        Ok(self
            .refunds()
            .into_iter()
            .filter(|r| paid.iter().any(|(pi, _)| *pi == r.payment_intent))
            .map(|r| Refund {
                id: r.id,
                payment_intent: r.payment_intent,
                invoice: r.invoice,
                amount: r.amount,
                currency: r.currency,
                status: r.status,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::domain::EmailAddress;

    const NOW: i64 = 1_760_000_000;

    fn stripe() -> LocalStripe {
        LocalStripe::open(None, "http://127.0.0.1:1", Arc::new(FixedClock(NOW))).unwrap()
    }

    async fn session(stripe: &LocalStripe, price: &str, key: &str) -> String {
        let metadata: BTreeMap<String, String> =
            [("subdomain", "acme"), ("plan", "basic")].map(|(k, v)| (k.to_owned(), v.to_owned())).into();
        let request = CheckoutSessionRequest {
            price_id: price.into(),
            customer_email: EmailAddress::parse("dana@acme.example").unwrap(),
            success_url: "https://e.com/ok".into(),
            cancel_url: "https://e.com/no".into(),
            metadata,
            discount: crate::ports::Discount::None,
            trial_days: None,
            trial_without_card: None,
            expires_at: None,
            idempotency_key: key.into(),
        };
        stripe.create_checkout_session(&request).await.unwrap().id
    }

    async fn paid(stripe: &LocalStripe, options: PayOptions) -> String {
        let id = session(stripe, "price_1QBasicMonthlyCAD", "k1").await;
        let events = stripe.pay_with(&id, options).unwrap();
        events[1]["data"]["object"]["id"].as_str().unwrap().to_owned()
    }

    fn types(events: &[Value]) -> Vec<&str> {
        events.iter().map(|e| e["type"].as_str().unwrap()).collect()
    }

    async fn snap(stripe: &LocalStripe, id: &str) -> SubscriptionSnapshot {
        stripe.subscription(&SubscriptionId::parse(id).unwrap()).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn paying_makes_a_customer_an_active_subscription_with_the_metadata_and_a_paid_invoice() {
        let stripe = stripe();
        let id = session(&stripe, "price_1QBasicMonthlyCAD", "k1").await;
        let events = stripe.pay(&id).unwrap();
        assert_eq!(
            types(&events),
            [
                "customer.created",
                "customer.subscription.created",
                "invoice.paid",
                "checkout.session.completed"
            ]
        );
        let ids: std::collections::HashSet<_> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 4, "event ids are unique");
        assert!(events.iter().all(|e| e["livemode"] == false && e["object"] == "event"));
        let created: Vec<i64> = events.iter().map(|e| e["created"].as_i64().unwrap()).collect();
        assert!(created.windows(2).all(|w| w[0] < w[1]), "created rises: {created:?}");

        let completed = &events[3]["data"]["object"];
        let sub_id = completed["subscription"].as_str().unwrap();
        let sub = snap(&stripe, sub_id).await;
        assert_eq!(sub.customer.as_str(), completed["customer"].as_str().unwrap());
        assert_eq!(sub.status, SubscriptionStatus::Active);
        assert_eq!(sub.metadata["subdomain"], "acme", "the checkout's metadata is on the subscription");
        assert_eq!(sub.price_id.as_deref(), Some("price_1QBasicMonthlyCAD"));
        assert_eq!(sub.price_lookup_key.as_deref(), Some("basic_monthly"));
        assert_eq!(sub.current_period_end, Some(NOW + 30 * DAY));
        let invoice = sub.latest_invoice.unwrap();
        assert_eq!((invoice.status.as_deref(), invoice.period_end), (Some("paid"), Some(NOW + 30 * DAY)));
        assert_eq!(stripe.invoices()[0].amount_paid, 2000);

        // Paying again is a redelivery: the same events, nothing new made.
        assert_eq!(stripe.pay(&id).unwrap(), events);
        assert_eq!((stripe.customers().len(), stripe.subscriptions().len()), (1, 1));
    }

    #[tokio::test]
    async fn two_paid_sessions_make_two_customers_and_subscriptions() {
        let stripe = stripe();
        let first = session(&stripe, "price_1QBasicMonthlyCAD", "k1").await;
        let second = session(&stripe, "price_1QProAnnualCAD", "k2").await;
        stripe.pay(&second).unwrap();
        stripe.pay(&first).unwrap();
        let subs = stripe.subscriptions();
        assert_ne!(subs[0].id, subs[1].id);
        assert_ne!(subs[0].customer, subs[1].customer);
        assert_eq!(subs[0].price.interval, "year");
        let unknown = session(&stripe, "price_nope", "k3").await;
        assert!(matches!(stripe.pay(&unknown), Err(LocalStripeError::UnknownPrice(_))));
    }

    #[tokio::test]
    async fn an_upgrade_changes_the_price_with_previous_attributes_and_a_paid_proration() {
        let stripe = stripe();
        let id = paid(&stripe, PayOptions::default()).await;
        let upgrade = SubscriptionAction::ChangePlan {
            plan: "pro".into(),
            billing: None,
            direction: Some(Direction::Upgrade),
        };
        let events = stripe.act(&id, &upgrade).unwrap();
        assert_eq!(types(&events), ["customer.subscription.updated", "invoice.paid"]);
        let previous = &events[0]["data"]["previous_attributes"];
        assert_eq!(previous["items"]["data"][0]["price"]["id"], "price_1QBasicMonthlyCAD");
        assert!(previous.get("status").is_none(), "only what changed: {previous}");
        assert_eq!(events[0]["data"]["object"]["items"]["data"][0]["price"]["lookup_key"], "pro_monthly");
        // Upgraded at the start of the period: the whole difference is owed.
        assert_eq!(events[1]["data"]["object"]["amount_paid"], 5000 - 2000);
        let sub = snap(&stripe, &id).await;
        assert_eq!(sub.price_id.as_deref(), Some("price_1QProMonthlyCAD"));
        assert_eq!(sub.latest_invoice.unwrap().id, events[1]["data"]["object"]["id"].as_str().unwrap());

        let err = stripe.act(&id, &upgrade).unwrap_err().to_string();
        assert_eq!(err, "cannot upgrade subscription sub_local000001: it is already on pro monthly");
        let not_an_upgrade = SubscriptionAction::ChangePlan {
            plan: "basic".into(),
            billing: Some(BillingPeriod::Annual),
            direction: Some(Direction::Upgrade),
        };
        assert!(matches!(stripe.act(&id, &not_an_upgrade), Err(LocalStripeError::Refused { .. })));
        let annual = SubscriptionAction::ChangePlan {
            plan: "basic".into(),
            billing: Some(BillingPeriod::Annual),
            direction: Some(Direction::Downgrade),
        };
        stripe.act(&id, &annual).unwrap();
        assert_eq!(
            snap(&stripe, &id).await.current_period_end,
            Some(NOW + 365 * DAY),
            "a new interval restarts the period"
        );
    }

    #[tokio::test]
    async fn a_failed_card_goes_past_due_then_unpaid_and_recovers_to_active() {
        let stripe = stripe();
        let id = paid(&stripe, PayOptions::default()).await;
        let events = stripe.act(&id, &SubscriptionAction::CardFails).unwrap();
        assert_eq!(types(&events), ["invoice.payment_failed", "customer.subscription.updated"]);
        assert_eq!(events[1]["data"]["previous_attributes"]["status"], "active");
        let sub = snap(&stripe, &id).await;
        assert_eq!(sub.status, SubscriptionStatus::PastDue);
        assert_eq!(sub.current_period_end, Some(NOW + 60 * DAY), "the period renewed");
        assert_eq!(sub.latest_invoice.as_ref().and_then(|i| i.status.as_deref()), Some("open"));

        assert_eq!(
            types(&stripe.act(&id, &SubscriptionAction::CardFails).unwrap()),
            ["invoice.payment_failed"]
        );
        assert_eq!(stripe.invoices().last().unwrap().attempt_count, 2);
        let events = stripe.act(&id, &SubscriptionAction::Unpaid).unwrap();
        assert_eq!(events[0]["data"]["object"]["status"], "unpaid");
        assert_eq!(events[0]["data"]["previous_attributes"]["status"], "past_due");
        assert!(matches!(
            stripe.act(&id, &SubscriptionAction::Unpaid),
            Err(LocalStripeError::Refused { .. })
        ));

        let events = stripe.act(&id, &SubscriptionAction::CardRecovers).unwrap();
        assert_eq!(types(&events), ["invoice.paid", "customer.subscription.updated"]);
        let sub = snap(&stripe, &id).await;
        assert_eq!(sub.status, SubscriptionStatus::Active);
        assert_eq!(sub.latest_invoice.and_then(|i| i.status).as_deref(), Some("paid"));
        assert!(matches!(
            stripe.act(&id, &SubscriptionAction::CardRecovers),
            Err(LocalStripeError::Refused { .. })
        ));
    }

    #[tokio::test]
    async fn a_trial_warns_then_pauses_without_a_card_and_resumes_paid() {
        let stripe = stripe();
        let id = paid(&stripe, PayOptions { trial_days: Some(14) }).await;
        let sub = snap(&stripe, &id).await;
        assert_eq!((sub.status.clone(), sub.trial_end), (SubscriptionStatus::Trialing, Some(NOW + 14 * DAY)));
        assert!(matches!(
            stripe.act(&id, &SubscriptionAction::Resume),
            Err(LocalStripeError::Refused { .. })
        ));

        let events = stripe.act(&id, &SubscriptionAction::TrialEnds(TrialOutcome::Pause)).unwrap();
        assert_eq!(
            types(&events),
            [
                "customer.subscription.trial_will_end",
                "customer.subscription.updated",
                "customer.subscription.paused"
            ]
        );
        assert_eq!(snap(&stripe, &id).await.status, SubscriptionStatus::Paused);
        assert!(matches!(stripe.act(&id, &SubscriptionAction::Pause), Err(LocalStripeError::Refused { .. })));

        let events = stripe.act(&id, &SubscriptionAction::Resume).unwrap();
        assert_eq!(
            types(&events),
            ["customer.subscription.updated", "customer.subscription.resumed", "invoice.paid"]
        );
        let sub = snap(&stripe, &id).await;
        assert_eq!(sub.status, SubscriptionStatus::Active);
        assert_eq!(sub.current_period_end, Some(NOW + 30 * DAY));
    }

    #[tokio::test]
    async fn a_trial_ends_as_what_is_on_file_says_charged_with_a_card_else_as_the_plan_says() {
        let stripe = stripe();
        let start = async |key: &str, without_card: Option<TrialWithoutCard>| {
            let metadata: BTreeMap<String, String> =
                [("subdomain", key), ("plan", "basic")].map(|(k, v)| (k.to_owned(), v.to_owned())).into();
            let request = CheckoutSessionRequest {
                price_id: "price_1QBasicMonthlyCAD".into(),
                customer_email: EmailAddress::parse("dana@acme.example").unwrap(),
                success_url: "https://e.com/ok".into(),
                cancel_url: "https://e.com/no".into(),
                metadata,
                discount: crate::ports::Discount::None,
                trial_days: Some(14),
                trial_without_card: without_card,
                expires_at: None,
                idempotency_key: key.into(),
            };
            let session = stripe.create_checkout_session(&request).await.unwrap().id;
            let events = stripe.pay_with(&session, PayOptions::default()).unwrap();
            let created = events.iter().find(|e| e["type"] == "customer.subscription.created").unwrap();
            created["data"]["object"]["id"].as_str().unwrap().to_owned()
        };
        let with_card = start("with-card", None).await;
        let paused = start("paused", Some(TrialWithoutCard::Pause)).await;
        let cancelled = start("cancelled", Some(TrialWithoutCard::Cancel)).await;
        for id in [&with_card, &paused, &cancelled] {
            stripe.act(id, &SubscriptionAction::TrialEnds(TrialOutcome::OnFile)).unwrap();
        }
        assert_eq!(snap(&stripe, &with_card).await.status, SubscriptionStatus::Active);
        assert_eq!(snap(&stripe, &paused).await.status, SubscriptionStatus::Paused);
        assert_eq!(snap(&stripe, &cancelled).await.status, SubscriptionStatus::Canceled);

        // A card added during a card-less trial is charged when it ends.
        let added = start("added", Some(TrialWithoutCard::Pause)).await;
        stripe.act(&added, &SubscriptionAction::TrialEnds(TrialOutcome::Pay)).unwrap();
        assert_eq!(snap(&stripe, &added).await.status, SubscriptionStatus::Active);
    }

    #[tokio::test]
    async fn a_trial_is_announced_once_whether_before_its_end_or_at_it() {
        let stripe = stripe();
        let id = paid(&stripe, PayOptions { trial_days: Some(14) }).await;
        let notice = stripe.act(&id, &SubscriptionAction::TrialWillEnd).unwrap();
        assert_eq!(types(&notice), ["customer.subscription.trial_will_end"]);
        assert_eq!(snap(&stripe, &id).await.status, SubscriptionStatus::Trialing, "the trial goes on");
        let ended = stripe.act(&id, &SubscriptionAction::TrialEnds(TrialOutcome::Pay)).unwrap();
        assert_eq!(types(&ended), ["customer.subscription.updated", "invoice.paid"], "not announced again");
        assert!(matches!(
            stripe.act(&id, &SubscriptionAction::TrialWillEnd),
            Err(LocalStripeError::Refused { .. })
        ));
    }

    #[tokio::test]
    async fn a_trial_ends_paid_or_failed_and_an_active_subscription_cannot_pause() {
        let stripe = stripe();
        let id = paid(&stripe, PayOptions { trial_days: Some(7) }).await;
        let events = stripe.act(&id, &SubscriptionAction::TrialEnds(TrialOutcome::Fail)).unwrap();
        assert_eq!(
            types(&events),
            [
                "customer.subscription.trial_will_end",
                "invoice.payment_failed",
                "customer.subscription.updated"
            ]
        );
        assert_eq!(snap(&stripe, &id).await.status, SubscriptionStatus::PastDue);

        let other = LocalStripe::open(None, "http://127.0.0.1:1", Arc::new(FixedClock(NOW))).unwrap();
        let id = paid(&other, PayOptions { trial_days: Some(7) }).await;
        other.act(&id, &SubscriptionAction::TrialEnds(TrialOutcome::Pay)).unwrap();
        let sub = snap(&other, &id).await;
        assert_eq!(sub.status, SubscriptionStatus::Active);
        assert_eq!(sub.latest_invoice.and_then(|i| i.status).as_deref(), Some("paid"));
        let err = other.act(&id, &SubscriptionAction::Pause).unwrap_err();
        assert!(err.to_string().contains("only when its trial ends"), "{err}");
        assert!(matches!(
            other.act(&id, &SubscriptionAction::TrialEnds(TrialOutcome::Pay)),
            Err(LocalStripeError::Refused { .. })
        ));
    }

    #[tokio::test]
    async fn subscriptions_are_listed_newest_first_in_pages_without_the_canceled_unless_asked() {
        let stripe = stripe();
        let mut ids = Vec::new();
        for key in ["k1", "k2", "k3"] {
            let session = session(&stripe, "price_1QBasicMonthlyCAD", key).await;
            let events = stripe.pay(&session).unwrap();
            ids.push(events[1]["data"]["object"]["id"].as_str().unwrap().to_owned());
        }
        stripe.act(&ids[0], &SubscriptionAction::Cancel).unwrap();
        let page_ids = |page: &Value| -> Vec<String> {
            page["data"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect()
        };
        let first = stripe.subscription_list_json(None, 1, None, "2026-09-30.endive");
        assert_eq!((page_ids(&first), first["has_more"].as_bool()), (vec![ids[2].clone()], Some(true)));
        let second = stripe.subscription_list_json(None, 1, Some(&ids[2]), "2026-09-30.endive");
        assert_eq!((page_ids(&second), second["has_more"].as_bool()), (vec![ids[1].clone()], Some(false)));
        let all = stripe.subscription_list_json(Some("all"), 100, None, "2026-09-30.endive");
        assert_eq!(page_ids(&all), [ids[2].clone(), ids[1].clone(), ids[0].clone()]);
        let live = stripe.live_subscriptions_with("subdomain").await.unwrap();
        assert_eq!(
            live.iter().map(|s| s.id.to_string()).collect::<Vec<_>>(),
            [ids[2].clone(), ids[1].clone()]
        );
        assert!(stripe.live_subscriptions_with("course").await.unwrap().is_empty(), "only ours");
    }

    #[tokio::test]
    async fn cancelling_ends_the_subscription_once() {
        let stripe = stripe();
        let id = paid(&stripe, PayOptions::default()).await;
        let events = stripe.act(&id, &SubscriptionAction::Cancel).unwrap();
        assert_eq!(types(&events), ["customer.subscription.deleted"]);
        assert_eq!(events[0]["data"]["object"]["status"], "canceled");
        let sub = snap(&stripe, &id).await;
        assert_eq!((sub.status, sub.ended_at), (SubscriptionStatus::Canceled, Some(NOW)));
        let again = stripe.act(&id, &SubscriptionAction::Cancel).unwrap_err().to_string();
        assert_eq!(again, "cannot cancel subscription sub_local000001: it is already canceled");
        assert!(matches!(
            stripe.act(&id, &SubscriptionAction::CardFails),
            Err(LocalStripeError::Refused { .. })
        ));
        assert!(matches!(
            stripe.act("sub_nope", &SubscriptionAction::Cancel),
            Err(LocalStripeError::NoSuchSubscription(_))
        ));
        assert_eq!(stripe.subscription(&SubscriptionId::parse("sub_nope").unwrap()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_wire_shape_follows_the_api_version() {
        let stripe = stripe();
        let id = paid(&stripe, PayOptions::default()).await;
        let old = stripe.subscription_json(&id, false, "2024-06-20").unwrap();
        assert_eq!(old["current_period_end"], NOW + 30 * DAY);
        assert!(old["items"]["data"][0].get("current_period_end").is_none());
        assert!(old["latest_invoice"].is_string(), "unexpanded: an id");
        let new = stripe.subscription_json(&id, true, "2026-09-30.endive").unwrap();
        assert!(new.get("current_period_end").is_none());
        assert_eq!(new["items"]["data"][0]["current_period_end"], NOW + 30 * DAY);
        assert_eq!(new["latest_invoice"]["object"], "invoice");
        assert_eq!(new["latest_invoice"]["parent"]["subscription_details"]["subscription"], id.as_str());
        let invoice_id = new["latest_invoice"]["id"].as_str().unwrap();
        assert_eq!(stripe.invoice_json(invoice_id, "2024-06-20").unwrap()["subscription"], id.as_str());
        assert_eq!(
            stripe.customer_json(old["customer"].as_str().unwrap()).unwrap()["email"],
            "dana@acme.example"
        );
        // Both shapes read back as what the stand-in holds.
        let held = snap(&stripe, &id).await;
        for wire in [stripe.subscription_json(&id, true, "2024-06-20").unwrap(), new] {
            assert_eq!(crate::adapters::stripe::subscription::snapshot_from_wire(&wire).unwrap(), held);
        }
    }

    #[tokio::test]
    async fn state_survives_a_reopen() {
        let dir = std::env::temp_dir().join(format!("local-stripe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let clock: Arc<dyn Clock> = Arc::new(FixedClock(NOW));
        let stripe = LocalStripe::open(Some(&dir), "http://127.0.0.1:1", clock.clone()).unwrap();
        let id = paid(&stripe, PayOptions::default()).await;
        stripe.act(&id, &SubscriptionAction::CardFails).unwrap();
        let before = snap(&stripe, &id).await;
        drop(stripe);
        let reopened = LocalStripe::open(Some(&dir), "http://127.0.0.1:1", clock).unwrap();
        assert_eq!(snap(&reopened, &id).await, before);
        let next = reopened.act(&id, &SubscriptionAction::CardRecovers).unwrap();
        assert_eq!(next[0]["id"], "evt_local0000000007", "event ids carry on after a restart");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
