//! Subscription and invoice events, parsed into the change they report.
//!
//! Read tolerantly across Stripe API versions: newer versions moved an
//! invoice's subscription under `parent.subscription_details` and the
//! period end onto subscription items, so both places are read.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids::{CustomerId, SubscriptionId};
use crate::stripe::{EventType, StripeEventId};

/// A subscription's status, as Stripe names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Active,
    Trialing,
    PastDue,
    Unpaid,
    Paused,
    Canceled,
    Incomplete,
    IncompleteExpired,
    Other(String),
}

impl SubscriptionStatus {
    pub fn parse(raw: &str) -> Self {
        match raw {
            "active" => Self::Active,
            "trialing" => Self::Trialing,
            "past_due" => Self::PastDue,
            "unpaid" => Self::Unpaid,
            "paused" => Self::Paused,
            "canceled" => Self::Canceled,
            "incomplete" => Self::Incomplete,
            "incomplete_expired" => Self::IncompleteExpired,
            other => Self::Other(other.chars().take(40).collect()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillingChange {
    SubscriptionCreated,
    SubscriptionUpdated {
        status: SubscriptionStatus,
        /// The price of the first item: the plan.
        price_id: Option<String>,
        /// The invoice that made it past due, when there is one.
        latest_invoice: Option<String>,
    },
    SubscriptionDeleted,
    InvoicePaid {
        invoice_id: String,
        period_end: Option<i64>,
    },
    InvoicePaymentFailed {
        invoice_id: String,
    },
}

/// A lifecycle event: who it is about and what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingEvent {
    pub id: StripeEventId,
    pub event_type: EventType,
    pub created: i64,
    pub subscription: SubscriptionId,
    pub customer: Option<CustomerId>,
    pub change: BillingChange,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{event_type} event cannot be read: {reason}")]
pub struct InvalidBillingEvent {
    pub event_type: String,
    pub reason: String,
}

fn text<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(value, |value, key| value.get(key)).and_then(Value::as_str)
}

fn id_of<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    // An expandable field is an id string or, expanded, an object with `id`.
    let field = path.iter().try_fold(value, |value, key| value.get(key))?;
    field.as_str().or_else(|| field.get("id").and_then(Value::as_str))
}

impl BillingEvent {
    /// Parses a whole Stripe event of one of the lifecycle types.
    pub fn parse(event: &Value) -> Result<Self, InvalidBillingEvent> {
        let raw_type = text(event, &["type"]).unwrap_or("event");
        let invalid =
            |reason: &str| InvalidBillingEvent { event_type: raw_type.to_owned(), reason: reason.to_owned() };
        let id = text(event, &["id"])
            .and_then(|id| StripeEventId::parse(id).ok())
            .ok_or_else(|| invalid("no valid event id"))?;
        let event_type = EventType::parse(raw_type).map_err(|e| invalid(&e.to_string()))?;
        let created =
            event.get("created").and_then(Value::as_i64).ok_or_else(|| invalid("no created time"))?;
        let object =
            event.get("data").and_then(|data| data.get("object")).ok_or_else(|| invalid("no data.object"))?;
        let customer = id_of(object, &["customer"]).and_then(|c| CustomerId::parse(c).ok());

        let (subscription, change) = match event_type {
            EventType::CustomerSubscriptionCreated
            | EventType::CustomerSubscriptionUpdated
            | EventType::CustomerSubscriptionDeleted => {
                let subscription = text(object, &["id"]);
                let change = match event_type {
                    EventType::CustomerSubscriptionCreated => BillingChange::SubscriptionCreated,
                    EventType::CustomerSubscriptionDeleted => BillingChange::SubscriptionDeleted,
                    _ => BillingChange::SubscriptionUpdated {
                        status: SubscriptionStatus::parse(
                            text(object, &["status"]).ok_or_else(|| invalid("no status"))?,
                        ),
                        price_id: object
                            .pointer("/items/data/0/price/id")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        latest_invoice: id_of(object, &["latest_invoice"]).map(str::to_owned),
                    },
                };
                (subscription, change)
            }
            EventType::InvoicePaid | EventType::InvoicePaymentFailed => {
                let subscription = id_of(object, &["subscription"])
                    .or_else(|| id_of(object, &["parent", "subscription_details", "subscription"]));
                let invoice_id = text(object, &["id"]).ok_or_else(|| invalid("no invoice id"))?.to_owned();
                let change = if event_type == EventType::InvoicePaid {
                    let period_end = object
                        .pointer("/lines/data/0/period/end")
                        .and_then(Value::as_i64)
                        .or_else(|| object.get("period_end").and_then(Value::as_i64));
                    BillingChange::InvoicePaid { invoice_id, period_end }
                } else {
                    BillingChange::InvoicePaymentFailed { invoice_id }
                };
                (subscription, change)
            }
            _ => return Err(invalid("not a subscription or invoice event")),
        };
        let subscription =
            subscription.ok_or_else(|| invalid("no subscription (a one-off invoice is not a tenant's)"))?;
        let subscription = SubscriptionId::parse(subscription).map_err(|e| invalid(&e.to_string()))?;
        Ok(BillingEvent { id, event_type, created, subscription, customer, change })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(file: &str) -> Value {
        let path = format!("{}/../events/{file}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn reads_each_sample_lifecycle_event() {
        let upgrade = BillingEvent::parse(&sample("04-customer.subscription.updated.json")).unwrap();
        assert_eq!(upgrade.subscription.as_str(), "sub_1QAcmeR0b0t1csPro");
        assert_eq!(
            upgrade.change,
            BillingChange::SubscriptionUpdated {
                status: SubscriptionStatus::Active,
                price_id: Some("price_1QUltimateMonthlyCAD".into()),
                latest_invoice: Some("in_1QAcmeInvoice01".into()),
            }
        );
        let failed = BillingEvent::parse(&sample("05-invoice.payment_failed.json")).unwrap();
        assert_eq!(
            failed.change,
            BillingChange::InvoicePaymentFailed { invoice_id: "in_1QAcmeInvoice02".into() }
        );
        let paid = BillingEvent::parse(&sample("06-invoice.paid.json")).unwrap();
        assert!(matches!(paid.change, BillingChange::InvoicePaid { period_end: Some(_), .. }));
        let deleted = BillingEvent::parse(&sample("07-customer.subscription.deleted.json")).unwrap();
        assert_eq!(deleted.change, BillingChange::SubscriptionDeleted);
    }

    #[test]
    fn newer_api_versions_put_the_invoice_subscription_under_parent() {
        let mut event = sample("06-invoice.paid.json");
        let object = event["data"]["object"].as_object_mut().unwrap();
        object.remove("subscription");
        object.insert(
            "parent".into(),
            serde_json::json!({"subscription_details": {"subscription": "sub_1QAcmeR0b0t1csPro"}}),
        );
        assert_eq!(BillingEvent::parse(&event).unwrap().subscription.as_str(), "sub_1QAcmeR0b0t1csPro");
    }

    #[test]
    fn an_invoice_without_a_subscription_is_not_a_lifecycle_event() {
        let mut event = sample("06-invoice.paid.json");
        event["data"]["object"]["subscription"] = Value::Null;
        let error = BillingEvent::parse(&event).unwrap_err();
        assert!(error.to_string().contains("no subscription"), "{error}");
    }
}
