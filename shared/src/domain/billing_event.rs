//! Subscription and invoice events, parsed into the change they report.
//!
//! Read tolerantly across Stripe API versions: newer versions moved an
//! invoice's subscription under `parent.subscription_details` and the
//! period end onto subscription items, so both places are read.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    /// As Stripe spells it.
    pub fn as_str(&self) -> &str {
        match self {
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::Trialing => "trialing",
            SubscriptionStatus::PastDue => "past_due",
            SubscriptionStatus::Unpaid => "unpaid",
            SubscriptionStatus::Paused => "paused",
            SubscriptionStatus::Canceled => "canceled",
            SubscriptionStatus::Incomplete => "incomplete",
            SubscriptionStatus::IncompleteExpired => "incomplete_expired",
            SubscriptionStatus::Other(other) => other,
        }
    }

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

/// A lifecycle event: which subscription it is about. What it says about
/// that subscription is not used: the subscription is read from Stripe
/// again (docs/architecture.md decision 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingEvent {
    pub id: StripeEventId,
    pub event_type: EventType,
    pub created: i64,
    pub subscription: SubscriptionId,
    pub customer: Option<CustomerId>,
    /// The subscription's metadata where the payload carries it (on a
    /// subscription; on an invoice under `parent.subscription_details` or,
    /// in older API versions, `subscription_details`); `None` when absent.
    pub subscription_metadata: Option<Map<String, Value>>,
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
    /// Whether the payload shows the subscription was sold by someone else:
    /// its metadata is there and lacks `key`. Unknown (no metadata in the
    /// payload) is not "someone else's": the subscription is read to tell.
    pub fn is_someone_elses(&self, key: &str) -> bool {
        self.subscription_metadata.as_ref().is_some_and(|metadata| {
            metadata.get(key).and_then(Value::as_str).is_none_or(|value| value.trim().is_empty())
        })
    }

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

        let (subscription, metadata) = match event_type {
            EventType::CustomerSubscriptionCreated
            | EventType::CustomerSubscriptionUpdated
            | EventType::CustomerSubscriptionDeleted
            | EventType::CustomerSubscriptionTrialWillEnd => {
                (text(object, &["id"]), object.get("metadata").and_then(Value::as_object))
            }
            EventType::InvoicePaid | EventType::InvoicePaymentFailed => {
                let subscription = id_of(object, &["subscription"])
                    .or_else(|| id_of(object, &["parent", "subscription_details", "subscription"]));
                let metadata = object
                    .pointer("/parent/subscription_details/metadata")
                    .or_else(|| object.pointer("/subscription_details/metadata"))
                    .and_then(Value::as_object);
                (subscription, metadata)
            }
            _ => return Err(invalid("not a subscription or invoice event")),
        };
        let subscription =
            subscription.ok_or_else(|| invalid("no subscription (a one-off invoice is not a tenant's)"))?;
        let subscription = SubscriptionId::parse(subscription).map_err(|e| invalid(&e.to_string()))?;
        Ok(BillingEvent {
            id,
            event_type,
            created,
            subscription,
            customer,
            subscription_metadata: metadata.cloned(),
        })
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
    fn reads_the_subscription_of_each_sample_lifecycle_event() {
        for file in [
            "04-customer.subscription.updated.json",
            "05-invoice.payment_failed.json",
            "06-invoice.paid.json",
            "07-customer.subscription.deleted.json",
        ] {
            let event = BillingEvent::parse(&sample(file)).unwrap();
            assert_eq!(event.subscription.as_str(), "sub_1QAcmeR0b0t1csPro", "{file}");
        }
    }

    #[test]
    fn a_subscription_with_metadata_but_not_ours_is_someone_elses() {
        let mut event = sample("04-customer.subscription.updated.json");
        event["data"]["object"]["metadata"] = serde_json::json!({"course": "yoga"});
        assert!(BillingEvent::parse(&event).unwrap().is_someone_elses("subdomain"));
        event["data"]["object"]["metadata"] = serde_json::json!({"subdomain": "acme"});
        assert!(!BillingEvent::parse(&event).unwrap().is_someone_elses("subdomain"));
        let mut invoice = sample("06-invoice.paid.json");
        let object = invoice["data"]["object"].as_object_mut().unwrap();
        object.remove("subscription_details");
        object.remove("parent");
        assert!(
            !BillingEvent::parse(&invoice).unwrap().is_someone_elses("subdomain"),
            "unknown is not someone else's"
        );
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
