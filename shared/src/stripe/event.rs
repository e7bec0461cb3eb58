//! The Stripe event envelope, parsed tolerantly.
//!
//! Only the envelope fields are read (id, type, created, livemode,
//! api_version, data.object); unknown fields are ignored so that a newer
//! Stripe API version does not break ingress. `data.object` is left as raw
//! JSON: the workflow parses the parts it needs.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

/// Step Functions execution names are at most 80 characters of
/// `[A-Za-z0-9_-]`; an event id must fit, since it becomes one.
const MAX_EVENT_ID_LEN: usize = 80;
const MAX_EVENT_TYPE_LEN: usize = 100;

/// A Stripe event id (`evt_…`), valid as a Step Functions execution name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StripeEventId(String);

impl TryFrom<String> for StripeEventId {
    type Error = InvalidEventId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        StripeEventId::parse(&value)
    }
}

impl From<StripeEventId> for String {
    fn from(value: StripeEventId) -> Self {
        value.0
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("event id must be `evt_` followed by up to 76 letters, digits or underscores")]
pub struct InvalidEventId;

impl StripeEventId {
    pub fn parse(value: &str) -> Result<Self, InvalidEventId> {
        let rest = value.strip_prefix("evt_").ok_or(InvalidEventId)?;
        let well_formed = !rest.is_empty()
            && value.len() <= MAX_EVENT_ID_LEN
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if well_formed { Ok(StripeEventId(value.to_owned())) } else { Err(InvalidEventId) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StripeEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The event types the system acts on, and everything else by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventType {
    CheckoutSessionCompleted,
    /// A delayed payment method (ACSS debit, SEPA, …) settled after checkout.
    CheckoutSessionAsyncPaymentSucceeded,
    CheckoutSessionAsyncPaymentFailed,
    CustomerSubscriptionCreated,
    CustomerSubscriptionUpdated,
    CustomerSubscriptionDeleted,
    InvoicePaid,
    InvoicePaymentFailed,
    /// Any other type: acknowledged and ignored.
    Other(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("event type must be up to 100 characters of lower-case letters, digits, `.` and `_`")]
pub struct InvalidEventType;

impl EventType {
    /// Every type the system acts on: what the webhook endpoint subscribes to.
    pub const ACTED_ON: [EventType; 8] = [
        EventType::CheckoutSessionCompleted,
        EventType::CheckoutSessionAsyncPaymentSucceeded,
        EventType::CheckoutSessionAsyncPaymentFailed,
        EventType::CustomerSubscriptionCreated,
        EventType::CustomerSubscriptionUpdated,
        EventType::CustomerSubscriptionDeleted,
        EventType::InvoicePaid,
        EventType::InvoicePaymentFailed,
    ];

    pub fn parse(value: &str) -> Result<Self, InvalidEventType> {
        if let Some(known) = Self::ACTED_ON.iter().find(|known| known.as_str() == value) {
            return Ok(known.clone());
        }
        let well_formed = !value.is_empty()
            && value.len() <= MAX_EVENT_TYPE_LEN
            && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_');
        if well_formed { Ok(EventType::Other(value.to_owned())) } else { Err(InvalidEventType) }
    }

    pub fn as_str(&self) -> &str {
        match self {
            EventType::CheckoutSessionCompleted => "checkout.session.completed",
            EventType::CheckoutSessionAsyncPaymentSucceeded => "checkout.session.async_payment_succeeded",
            EventType::CheckoutSessionAsyncPaymentFailed => "checkout.session.async_payment_failed",
            EventType::CustomerSubscriptionCreated => "customer.subscription.created",
            EventType::CustomerSubscriptionUpdated => "customer.subscription.updated",
            EventType::CustomerSubscriptionDeleted => "customer.subscription.deleted",
            EventType::InvoicePaid => "invoice.paid",
            EventType::InvoicePaymentFailed => "invoice.payment_failed",
            EventType::Other(name) => name,
        }
    }

    /// Whether the system does anything with this type.
    pub fn is_acted_on(&self) -> bool {
        !matches!(self, EventType::Other(_))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The envelope of a Stripe event, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEnvelope {
    pub id: StripeEventId,
    pub event_type: EventType,
    /// Unix seconds at which Stripe created the event: the ordering key.
    pub created: i64,
    pub livemode: bool,
    pub api_version: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("body is not a Stripe event: {0}")]
    NotAnEvent(#[source] serde_json::Error),
    #[error(transparent)]
    Id(#[from] InvalidEventId),
    #[error(transparent)]
    Type(#[from] InvalidEventType),
    #[error("event `created` must be a positive Unix time")]
    Created,
    #[error("event `data.object` must be a JSON object")]
    DataObject,
}

#[derive(Deserialize)]
struct WireEnvelope<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    created: i64,
    livemode: bool,
    #[serde(default, borrow)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    data: WireData<'a>,
}

#[derive(Deserialize)]
struct WireData<'a> {
    #[serde(borrow)]
    object: &'a RawValue,
}

impl EventEnvelope {
    /// Parses the envelope from the raw body bytes Stripe sent.
    pub fn parse(body: &[u8]) -> Result<Self, EnvelopeError> {
        let wire: WireEnvelope<'_> = serde_json::from_slice(body).map_err(EnvelopeError::NotAnEvent)?;
        if !wire.data.object.get().starts_with('{') {
            return Err(EnvelopeError::DataObject);
        }
        if wire.created <= 0 {
            return Err(EnvelopeError::Created);
        }
        Ok(EventEnvelope {
            id: StripeEventId::parse(&wire.id)?,
            event_type: EventType::parse(&wire.event_type)?,
            created: wire.created,
            livemode: wire.livemode,
            api_version: wire.api_version.map(Cow::into_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(fields: &str) -> Vec<u8> {
        format!(r#"{{"object":"event",{fields}}}"#).into_bytes()
    }

    const GOOD: &str = r#""id":"evt_1Q2w3E4r5T6y","type":"checkout.session.completed","created":1700000000,"livemode":false,"api_version":"2024-06-20","data":{"object":{"id":"cs_test_1"}}"#;

    #[test]
    fn parses_the_envelope_and_ignores_unknown_fields() {
        let body = event(&format!(r#"{GOOD},"pending_webhooks":1,"request":{{"id":null}},"context":"x""#));
        let parsed = EventEnvelope::parse(&body).unwrap();
        assert_eq!(parsed.id.as_str(), "evt_1Q2w3E4r5T6y");
        assert_eq!(parsed.event_type, EventType::CheckoutSessionCompleted);
        assert_eq!(parsed.created, 1_700_000_000);
        assert!(!parsed.livemode);
        assert_eq!(parsed.api_version.as_deref(), Some("2024-06-20"));
    }

    #[test]
    fn api_version_may_be_absent_or_null() {
        let body = GOOD.replace(r#","api_version":"2024-06-20""#, "");
        assert_eq!(EventEnvelope::parse(&event(&body)).unwrap().api_version, None);
        let body = GOOD.replace(r#""2024-06-20""#, "null");
        assert_eq!(EventEnvelope::parse(&event(&body)).unwrap().api_version, None);
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let body = GOOD.replace("evt_1Q2w3E4r5T6y", r"evt_\u0041bc");
        assert_eq!(EventEnvelope::parse(&event(&body)).unwrap().id.as_str(), "evt_Abc");
    }

    #[test]
    fn every_acted_on_type_round_trips_and_others_are_ignored() {
        for known in EventType::ACTED_ON {
            assert_eq!(EventType::parse(known.as_str()), Ok(known.clone()));
            assert!(known.is_acted_on());
        }
        let other = EventType::parse("charge.succeeded").unwrap();
        assert_eq!(other, EventType::Other("charge.succeeded".into()));
        assert!(!other.is_acted_on());
        assert_eq!(EventType::parse("Charge Succeeded"), Err(InvalidEventType));
        assert_eq!(EventType::parse(""), Err(InvalidEventType));
    }

    #[test]
    fn event_ids_must_be_valid_execution_names() {
        assert!(StripeEventId::parse("evt_1NG8Du2eZvKYlo2CUI79vXWy").is_ok());
        assert!(StripeEventId::parse("evt_test_webhook").is_ok());
        for bad in ["", "evt_", "cs_123", "evt_a b", "evt_a-b", "evt_ä", &format!("evt_{}", "a".repeat(77))]
        {
            assert_eq!(StripeEventId::parse(bad), Err(InvalidEventId), "{bad:?}");
        }
        assert!(StripeEventId::parse(&format!("evt_{}", "a".repeat(76))).is_ok());
    }

    #[test]
    fn bad_envelopes_say_which_part_is_wrong() {
        let msg = |body: &[u8]| EventEnvelope::parse(body).unwrap_err().to_string();
        assert!(msg(b"not json").starts_with("body is not a Stripe event: "));
        assert!(msg(&event(&GOOD.replace(r#""livemode":false,"#, ""))).contains("missing field `livemode`"));
        assert!(msg(&event(&GOOD.replace("evt_1Q2w3E4r5T6y", "ch_1"))).starts_with("event id must be"));
        assert!(msg(&event(&GOOD.replace("1700000000", "-1"))).contains("created"));
        assert!(msg(&event(&GOOD.replace(r#"{"id":"cs_test_1"}"#, "[]"))).contains("data.object"));
        assert!(
            msg(&event(&GOOD.replace("checkout.session.completed", "DROP TABLE"))).starts_with("event type")
        );
    }
}
