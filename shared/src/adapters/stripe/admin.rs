//! What an operator's tools ask of Stripe (`tenantctl stripe …`): the
//! catalog's Products and Prices, found by lookup key, and the webhook
//! endpoint. Writes are form bodies through async-stripe's client core, as
//! for cancel and refund; answers are read as JSON, only the fields used.
//!
//! Each write carries an idempotency key derived from what it sends, so a
//! retried command repeats nothing while a changed one is a new request.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use stripe_client_core::StripeMethod;

use super::api::{AsJson, CallFailed, StripeApi, answer_field, is_missing};
use crate::domain::LookupKey;
use crate::ports::{SecretValue, StripeApiError};

/// Stripe takes at most this many `lookup_keys[]` in one price list.
const LOOKUP_KEYS_PER_LIST: usize = 10;

/// A price as Stripe answers it, the fields the catalog compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StripePrice {
    pub id: String,
    pub product: String,
    pub lookup_key: Option<LookupKey>,
    pub active: bool,
    pub unit_amount: Option<i64>,
    pub currency: String,
    /// `month` or `year` for a recurring price.
    pub interval: Option<String>,
    pub interval_count: Option<u32>,
}

/// A product as Stripe answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StripeProduct {
    pub id: String,
    pub name: String,
    pub active: bool,
}

/// A recurring price to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPrice<'a> {
    pub product: &'a str,
    pub lookup_key: &'a LookupKey,
    pub unit_amount: i64,
    pub currency: &'a str,
    /// `month` or `year`, times `interval_count`.
    pub interval: &'a str,
    pub interval_count: u32,
    /// Set on the price, for people reading the Dashboard.
    pub metadata: &'a [(&'a str, &'a str)],
}

/// A webhook endpoint as Stripe answers it (its secret only on creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    pub enabled_events: Vec<String>,
    pub api_version: Option<String>,
    /// `enabled` or `disabled`.
    pub status: String,
    pub created: i64,
}

fn unreadable(what: &str) -> StripeApiError {
    StripeApiError::Unavailable(Box::new(CallFailed(format!("Stripe answered an unreadable {what}"))))
}

fn price_from_wire(price: &Value) -> Option<StripePrice> {
    let text = |field: &str| price.get(field).and_then(Value::as_str).map(str::to_owned);
    // `product` is an id unless expanded.
    let product = text("product").or_else(|| price.pointer("/product/id")?.as_str().map(str::to_owned))?;
    Some(StripePrice {
        id: text("id")?,
        product,
        lookup_key: text("lookup_key").and_then(|key| LookupKey::parse(&key).ok()),
        active: price.get("active")?.as_bool()?,
        unit_amount: price.get("unit_amount").and_then(Value::as_i64),
        currency: text("currency")?,
        interval: price.pointer("/recurring/interval").and_then(Value::as_str).map(str::to_owned),
        interval_count: price
            .pointer("/recurring/interval_count")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok()),
    })
}

fn product_from_wire(product: &Value) -> Option<StripeProduct> {
    Some(StripeProduct {
        id: product.get("id")?.as_str()?.to_owned(),
        name: product.get("name")?.as_str()?.to_owned(),
        active: product.get("active")?.as_bool()?,
    })
}

fn endpoint_from_wire(endpoint: &Value) -> Option<WebhookEndpoint> {
    let text = |field: &str| endpoint.get(field).and_then(Value::as_str).map(str::to_owned);
    Some(WebhookEndpoint {
        id: text("id")?,
        url: text("url")?,
        enabled_events: endpoint
            .get("enabled_events")?
            .as_array()?
            .iter()
            .filter_map(|e| e.as_str().map(str::to_owned))
            .collect(),
        api_version: text("api_version"),
        status: text("status").unwrap_or_else(|| "enabled".into()),
        created: endpoint.get("created").and_then(Value::as_i64).unwrap_or_default(),
    })
}

/// The idempotency key of a write: the same request, the same key.
fn content_key(what: &str, path: &str, fields: &[(&str, &str)]) -> String {
    let mut hash = Sha256::new();
    hash.update(path.as_bytes());
    for (name, value) in fields {
        hash.update([0u8]);
        hash.update(name.as_bytes());
        hash.update([1u8]);
        hash.update(value.as_bytes());
    }
    format!("tenantctl-{what}-{}", &hex::encode(hash.finalize())[..32])
}

impl StripeApi {
    async fn write_form(
        &self,
        what: &str,
        method: StripeMethod,
        path: String,
        fields: &[(&str, &str)],
    ) -> Result<Value, StripeApiError> {
        let key = content_key(what, &path, fields);
        self.write_json(&AsJson::form(method, path, fields), &key).await
    }

    /// The prices holding any of `keys` (only active ones when `active_only`).
    pub async fn prices_by_lookup_keys(
        &self,
        keys: &[LookupKey],
        active_only: bool,
    ) -> Result<Vec<StripePrice>, StripeApiError> {
        let mut prices = Vec::new();
        for chunk in keys.chunks(LOOKUP_KEYS_PER_LIST) {
            let query = {
                let mut query = form_urlencoded::Serializer::new(String::new());
                for key in chunk {
                    query.append_pair("lookup_keys[]", key.as_str());
                }
                if active_only {
                    query.append_pair("active", "true");
                }
                query.finish()
            };
            for price in self.list("/prices", &query).await? {
                prices.push(price_from_wire(&price).ok_or_else(|| unreadable("price"))?);
            }
        }
        Ok(prices)
    }

    /// The active prices of `product` (one page: a product holds a price per
    /// billing period, and a few an interrupted change left).
    pub async fn active_prices_of(&self, product: &str) -> Result<Vec<StripePrice>, StripeApiError> {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("product", product)
            .append_pair("active", "true")
            .finish();
        let listed = self.list("/prices", &query).await?;
        listed.iter().map(|price| price_from_wire(price).ok_or_else(|| unreadable("price"))).collect()
    }

    /// The product `id`, if there is one.
    pub async fn product(&self, id: &str) -> Result<Option<StripeProduct>, StripeApiError> {
        match self.read_json(&AsJson::get(format!("/products/{id}"), "")).await {
            Ok(answer) => product_from_wire(&answer).map(Some).ok_or_else(|| unreadable("product")),
            Err(error) if is_missing(&error) => Ok(None),
            Err(error) => Err(self.error(error)),
        }
    }

    /// Creates the product `id` (Stripe takes the caller's id for products).
    pub async fn create_product(
        &self,
        id: &str,
        name: &str,
        metadata: &[(&str, &str)],
    ) -> Result<StripeProduct, StripeApiError> {
        let keys: Vec<String> = metadata.iter().map(|(k, _)| format!("metadata[{k}]")).collect();
        let mut fields = vec![("id", id), ("name", name)];
        fields.extend(keys.iter().map(String::as_str).zip(metadata.iter().map(|(_, v)| *v)));
        let answer = self.write_form("product", StripeMethod::Post, "/products".into(), &fields).await?;
        product_from_wire(&answer).ok_or_else(|| unreadable("product"))
    }

    /// Names the product `name` and makes it active.
    pub async fn update_product(&self, id: &str, name: &str) -> Result<StripeProduct, StripeApiError> {
        let fields = [("name", name), ("active", "true")];
        let answer =
            self.write_form("product", StripeMethod::Post, format!("/products/{id}"), &fields).await?;
        product_from_wire(&answer).ok_or_else(|| unreadable("product"))
    }

    /// Creates a recurring price holding `lookup_key`, taking the key from
    /// whichever price held it (`transfer_lookup_key`: Stripe prices are
    /// immutable, so a new amount is a new price and the key moves to it).
    pub async fn create_price(&self, price: &NewPrice<'_>) -> Result<StripePrice, StripeApiError> {
        let amount = price.unit_amount.to_string();
        let interval_count = price.interval_count.to_string();
        let keys: Vec<String> = price.metadata.iter().map(|(k, _)| format!("metadata[{k}]")).collect();
        let mut fields = vec![
            ("product", price.product),
            ("currency", price.currency),
            ("unit_amount", amount.as_str()),
            ("recurring[interval]", price.interval),
            ("recurring[interval_count]", interval_count.as_str()),
            ("lookup_key", price.lookup_key.as_str()),
            ("transfer_lookup_key", "true"),
        ];
        fields.extend(keys.iter().map(String::as_str).zip(price.metadata.iter().map(|(_, v)| *v)));
        let answer = self.write_form("price", StripeMethod::Post, "/prices".into(), &fields).await?;
        price_from_wire(&answer).ok_or_else(|| unreadable("price"))
    }

    /// Archives the price `id`: nobody can buy it any more, subscriptions
    /// on it go on.
    pub async fn archive_price(&self, id: &str) -> Result<StripePrice, StripeApiError> {
        let fields = [("active", "false")];
        let answer = self.write_form("price", StripeMethod::Post, format!("/prices/{id}"), &fields).await?;
        price_from_wire(&answer).ok_or_else(|| unreadable("price"))
    }

    /// Every webhook endpoint of the account (a handful; one page).
    pub async fn webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>, StripeApiError> {
        self.list("/webhook_endpoints", "")
            .await?
            .iter()
            .map(|endpoint| endpoint_from_wire(endpoint).ok_or_else(|| unreadable("webhook endpoint")))
            .collect()
    }

    /// Creates an endpoint; its signing secret is in this answer only.
    pub async fn create_webhook_endpoint(
        &self,
        url: &str,
        events: &[&str],
        api_version: &str,
        description: &str,
    ) -> Result<(WebhookEndpoint, SecretValue), StripeApiError> {
        let names: Vec<String> = (0..events.len()).map(|i| format!("enabled_events[{i}]")).collect();
        let mut fields = vec![("url", url), ("api_version", api_version), ("description", description)];
        fields.extend(names.iter().map(String::as_str).zip(events.iter().copied()));
        // Never retried under the same key by a later run: each creation is
        // a new secret, wanted only when asked for.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos().to_string())
            .unwrap_or_default();
        let key = content_key("webhook", &now, &fields);
        let answer = self
            .write_json(&AsJson::form(StripeMethod::Post, "/webhook_endpoints".into(), &fields), &key)
            .await?;
        let endpoint = endpoint_from_wire(&answer).ok_or_else(|| unreadable("webhook endpoint"))?;
        let secret = answer_field(&answer, "secret", "webhook endpoint")?;
        Ok((endpoint, SecretValue::new(secret)))
    }

    /// Sets an endpoint's URL and events and enables it (its API version
    /// cannot be changed: Stripe fixes it when the endpoint is created).
    pub async fn update_webhook_endpoint(
        &self,
        id: &str,
        url: &str,
        events: &[&str],
    ) -> Result<WebhookEndpoint, StripeApiError> {
        let names: Vec<String> = (0..events.len()).map(|i| format!("enabled_events[{i}]")).collect();
        let mut fields = vec![("url", url), ("disabled", "false")];
        fields.extend(names.iter().map(String::as_str).zip(events.iter().copied()));
        let answer = self
            .write_form("webhook", StripeMethod::Post, format!("/webhook_endpoints/{id}"), &fields)
            .await?;
        endpoint_from_wire(&answer).ok_or_else(|| unreadable("webhook endpoint"))
    }

    /// Deletes an endpoint; one already gone is what was asked for.
    pub async fn delete_webhook_endpoint(&self, id: &str) -> Result<(), StripeApiError> {
        let request = AsJson::form(StripeMethod::Delete, format!("/webhook_endpoints/{id}"), &[]);
        match self.write_json(&request, &content_key("webhook-delete", id, &[])).await {
            Ok(_) => Ok(()),
            Err(StripeApiError::Rejected { status: 404, .. }) => Ok(()),
            Err(other) => Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_price_is_read_from_stripes_wire_format() {
        let wire = json!({"id": "price_1", "object": "price", "active": true, "currency": "cad",
            "lookup_key": "pro_monthly", "product": "prod_1", "unit_amount": 5000,
            "recurring": {"interval": "month", "interval_count": 1}});
        let price = price_from_wire(&wire).unwrap();
        assert_eq!(price.lookup_key.as_ref().map(LookupKey::as_str), Some("pro_monthly"));
        assert_eq!(
            (price.unit_amount, price.interval.as_deref(), price.interval_count),
            (Some(5000), Some("month"), Some(1))
        );
        let expanded =
            json!({"id": "price_2", "active": false, "currency": "cad", "product": {"id": "prod_2"}});
        assert_eq!(price_from_wire(&expanded).unwrap().product, "prod_2");
        assert!(price_from_wire(&json!({"id": "price_3"})).is_none());
    }

    #[test]
    fn an_endpoint_is_read_without_its_secret_and_keys_follow_the_content() {
        let wire = json!({"id": "we_1", "url": "https://x/stripe/webhook", "enabled_events": ["invoice.paid"],
            "api_version": "2026-09-30.endive", "status": "enabled", "created": 5, "secret": "whsec_x"});
        let endpoint = endpoint_from_wire(&wire).unwrap();
        assert_eq!(endpoint.enabled_events, ["invoice.paid"]);
        assert!(!serde_json::to_string(&endpoint).unwrap().contains("whsec"));
        let key = |amount| content_key("price", "/prices", &[("unit_amount", amount)]);
        assert_eq!(key("5000"), key("5000"));
        assert_ne!(key("5000"), key("6000"));
    }
}
