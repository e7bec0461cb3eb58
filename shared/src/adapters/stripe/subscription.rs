//! A subscription as Stripe's API returns it, read into a
//! [`SubscriptionSnapshot`] tolerantly across API versions: the period end
//! sits on the subscription in older versions and on each item in newer
//! ones (2025-03-31 and later); an invoice's period is on its first line and,
//! in older versions, on the invoice itself. Expandable fields may come as an
//! object or as an id.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::domain::{BillingPeriod, CustomerId, InvalidId, SubscriptionId, SubscriptionStatus};
use crate::ports::{InvoiceSnapshot, SubscriptionSnapshot};

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("Stripe's subscription has no `{0}`")]
    Missing(&'static str),
    #[error("Stripe's subscription has an invalid `{field}`")]
    InvalidId {
        field: &'static str,
        #[source]
        source: InvalidId,
    },
}

/// An expandable field's id: the string itself, or the object's `id`.
fn id_of(value: &Value) -> Option<&str> {
    value.as_str().or_else(|| value.get("id").and_then(Value::as_str))
}

fn int(value: &Value, pointer: &str) -> Option<i64> {
    value.pointer(pointer).and_then(Value::as_i64)
}

/// Reads a retrieved subscription.
pub fn snapshot_from_wire(sub: &Value) -> Result<SubscriptionSnapshot, WireError> {
    let id = sub.get("id").and_then(Value::as_str).ok_or(WireError::Missing("id"))?;
    let id = SubscriptionId::parse(id).map_err(|source| WireError::InvalidId { field: "id", source })?;
    let customer = sub.get("customer").and_then(id_of).ok_or(WireError::Missing("customer"))?;
    let customer =
        CustomerId::parse(customer).map_err(|source| WireError::InvalidId { field: "customer", source })?;
    let status = sub.get("status").and_then(Value::as_str).ok_or(WireError::Missing("status"))?;
    let first_item = sub.pointer("/items/data/0");
    let price = first_item.and_then(|item| item.get("price"));
    let price_id = price.and_then(id_of).map(str::to_owned);
    let price_lookup_key = price.and_then(|p| p.get("lookup_key")).and_then(Value::as_str).map(str::to_owned);
    let price_term = price.and_then(|p| {
        let interval = p.pointer("/recurring/interval")?.as_str()?;
        BillingPeriod::from_stripe_interval(interval, p.pointer("/recurring/interval_count")?.as_u64()?)
    });
    let current_period_end = int(sub, "/current_period_end")
        .or_else(|| first_item.and_then(|item| int(item, "/current_period_end")));
    let metadata: BTreeMap<String, String> = sub
        .get("metadata")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default();
    let latest_invoice = sub.get("latest_invoice").and_then(invoice_from_wire);
    Ok(SubscriptionSnapshot {
        id,
        customer,
        status: SubscriptionStatus::parse(status),
        price_id,
        price_lookup_key,
        price_term,
        current_period_end,
        cancel_at_period_end: sub.get("cancel_at_period_end").and_then(Value::as_bool).unwrap_or(false),
        collection_paused: sub.get("pause_collection").is_some_and(|p| !p.is_null()),
        trial_end: int(sub, "/trial_end"),
        ended_at: int(sub, "/ended_at"),
        metadata,
        latest_invoice,
    })
}

/// An invoice, expanded or not (an id alone says nothing of its status).
pub fn invoice_from_wire(invoice: &Value) -> Option<InvoiceSnapshot> {
    let id = id_of(invoice)?.to_owned();
    Some(InvoiceSnapshot {
        id,
        status: invoice.get("status").and_then(Value::as_str).map(str::to_owned),
        period_end: int(invoice, "/lines/data/0/period/end").or_else(|| int(invoice, "/period_end")),
        period_start: int(invoice, "/lines/data/0/period/start").or_else(|| int(invoice, "/period_start")),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn older_version() -> Value {
        json!({
            "id": "sub_1Old", "object": "subscription", "customer": "cus_Old", "status": "past_due",
            "current_period_end": 1_700_000_000,
            "cancel_at_period_end": true, "pause_collection": null, "trial_end": null, "ended_at": null,
            "metadata": {"subdomain": "acme", "plan": "pro", "count": 3},
            "items": {"object": "list", "data": [
                {"id": "si_1", "price": {"id": "price_1", "lookup_key": "pro_monthly"}}
            ]},
            "latest_invoice": {"id": "in_1", "object": "invoice", "status": "open", "period_start": 1_696_400_000, "period_end": 1_699_000_000},
        })
    }

    #[test]
    fn older_versions_keep_the_period_on_the_subscription_and_invoice() {
        let snapshot = snapshot_from_wire(&older_version()).unwrap();
        assert_eq!(snapshot.id.as_str(), "sub_1Old");
        assert_eq!(snapshot.customer.as_str(), "cus_Old");
        assert_eq!(snapshot.status, SubscriptionStatus::PastDue);
        assert_eq!(snapshot.price_id.as_deref(), Some("price_1"));
        assert_eq!(snapshot.price_lookup_key.as_deref(), Some("pro_monthly"));
        assert_eq!(snapshot.current_period_end, Some(1_700_000_000));
        assert!(snapshot.cancel_at_period_end);
        assert!(!snapshot.collection_paused);
        // Stripe's metadata values are strings; anything else is not ours.
        assert_eq!(snapshot.metadata.len(), 2);
        assert_eq!(
            snapshot.latest_invoice,
            Some(InvoiceSnapshot {
                id: "in_1".into(),
                status: Some("open".into()),
                period_end: Some(1_699_000_000),
                period_start: Some(1_696_400_000),
            })
        );
    }

    #[test]
    fn newer_versions_keep_the_period_on_items_and_invoice_lines() {
        let newer = json!({
            "id": "sub_1New", "customer": {"id": "cus_New", "object": "customer"}, "status": "active",
            "pause_collection": {"behavior": "void", "resumes_at": null},
            "trial_end": 1_690_000_000, "ended_at": null,
            "items": {"data": [{"id": "si_1", "current_period_end": 1_800_000_000,
                                "price": {"id": "price_2", "lookup_key": null}}]},
            "latest_invoice": {"id": "in_2", "status": "paid", "period_end": 1_000,
                               "lines": {"data": [{"period": {"start": 1, "end": 1_800_000_000}}]}},
        });
        let snapshot = snapshot_from_wire(&newer).unwrap();
        assert_eq!(snapshot.customer.as_str(), "cus_New", "an expanded customer");
        assert_eq!(snapshot.current_period_end, Some(1_800_000_000));
        assert_eq!(snapshot.price_lookup_key, None);
        assert!(snapshot.collection_paused);
        assert_eq!(snapshot.trial_end, Some(1_690_000_000));
        assert!(snapshot.metadata.is_empty());
        let invoice = snapshot.latest_invoice.unwrap();
        assert_eq!(invoice.period_end, Some(1_800_000_000), "the first line's period wins");
    }

    #[test]
    fn unexpanded_fields_are_ids_and_missing_ones_are_named() {
        let mut sub = older_version();
        sub["latest_invoice"] = json!("in_9");
        sub["items"]["data"][0]["price"] = json!("price_9");
        let snapshot = snapshot_from_wire(&sub).unwrap();
        assert_eq!(snapshot.price_id.as_deref(), Some("price_9"));
        assert_eq!(
            snapshot.latest_invoice,
            Some(InvoiceSnapshot { id: "in_9".into(), status: None, period_end: None, period_start: None })
        );

        sub["latest_invoice"] = Value::Null;
        assert_eq!(snapshot_from_wire(&sub).unwrap().latest_invoice, None);
        sub.as_object_mut().unwrap().remove("status");
        assert_eq!(
            snapshot_from_wire(&sub).unwrap_err().to_string(),
            "Stripe's subscription has no `status`"
        );
        sub["status"] = json!("active");
        sub["customer"] = json!("acct_x");
        assert!(matches!(snapshot_from_wire(&sub), Err(WireError::InvalidId { field: "customer", .. })));
    }
}
