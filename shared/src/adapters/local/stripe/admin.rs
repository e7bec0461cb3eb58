//! The stand-in's catalog and webhook endpoints, as `tenantctl stripe …`
//! changes them: products (the caller's ids, as Stripe allows), prices
//! found by lookup key (one price holds a key; `transfer_lookup_key` moves
//! it; prices are immutable but for `active` and metadata), and webhook
//! endpoints whose signing secret is answered on creation only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{LocalPrice, LocalStripe, LocalStripeError, list_wire};

/// A product of the stand-in's account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalProduct {
    pub id: String,
    pub name: String,
    pub active: bool,
    pub created: i64,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// An admin write made with an `Idempotency-Key`: what a repeat answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct IdempotentWrite {
    key: String,
    /// Method, path and sorted form: a repeat must be this request.
    request: String,
    answer: Value,
}

/// A price of the stand-in's account: what a subscription item copies,
/// and whether it is still sold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPrice {
    #[serde(flatten)]
    pub price: LocalPrice,
    pub product: String,
    pub active: bool,
    pub created: i64,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// A webhook endpoint of the stand-in's account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalWebhookEndpoint {
    pub id: String,
    pub url: String,
    pub enabled_events: Vec<String>,
    pub api_version: Option<String>,
    pub description: Option<String>,
    /// `enabled` or `disabled`.
    pub status: String,
    pub created: i64,
    pub secret: String,
}

/// A form's fields, as the stand-in's HTTP routes pass them.
pub type Form = [(String, String)];

pub(super) fn field<'a>(form: &'a Form, name: &str) -> Option<&'a str> {
    form.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

/// `metadata[k]=v` fields.
pub(super) fn metadata(form: &Form) -> BTreeMap<String, String> {
    form.iter()
        .filter_map(|(key, value)| {
            Some((key.strip_prefix("metadata[")?.strip_suffix(']')?.to_owned(), value.clone()))
        })
        .collect()
}

/// `name[]=…` or `name[0]=…` fields, in order.
fn list_field(form: &Form, name: &str) -> Option<Vec<String>> {
    let prefix = format!("{name}[");
    let items: Vec<String> = form
        .iter()
        .filter(|(key, _)| key.starts_with(&prefix) && key.ends_with(']'))
        .map(|(_, value)| value.clone())
        .collect();
    (!items.is_empty()).then_some(items)
}

fn required<'a>(form: &'a Form, name: &'static str) -> Result<&'a str, LocalStripeError> {
    field(form, name).ok_or_else(|| LocalStripeError::InvalidRequest {
        param: name,
        message: format!("Missing required param: {name}."),
    })
}

pub(super) fn boolean(form: &Form, name: &'static str) -> Result<Option<bool>, LocalStripeError> {
    match field(form, name) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(LocalStripeError::InvalidRequest {
            param: name,
            message: format!("Invalid boolean: {other}"),
        }),
    }
}

fn stored_price_wire(price: &StoredPrice) -> Value {
    let mut wire = super::price_wire(&price.price);
    wire["active"] = json!(price.active);
    wire["product"] = json!(price.product);
    wire["created"] = json!(price.created);
    wire["metadata"] = json!(price.metadata);
    wire
}

fn product_wire(product: &LocalProduct) -> Value {
    json!({
        "id": product.id, "object": "product", "active": product.active, "name": product.name,
        "created": product.created, "livemode": false, "metadata": product.metadata,
    })
}

fn endpoint_wire(endpoint: &LocalWebhookEndpoint, with_secret: bool) -> Value {
    let mut wire = json!({
        "id": endpoint.id, "object": "webhook_endpoint", "url": endpoint.url,
        "enabled_events": endpoint.enabled_events, "api_version": endpoint.api_version,
        "description": endpoint.description, "status": endpoint.status, "created": endpoint.created,
        "livemode": false, "metadata": {},
    });
    if with_secret {
        wire["secret"] = json!(endpoint.secret);
    }
    wire
}

fn missing(kind: &'static str, id: &str) -> LocalStripeError {
    LocalStripeError::NoSuchObject { kind, id: id.to_owned() }
}

/// The product a plan's prices are seeded under.
fn seed_product_id(plan: &str) -> String {
    format!("tenancy_{plan}")
}

impl LocalStripe {
    /// A fresh account holds the plan catalog already (as a test account
    /// someone ran `tenantctl stripe sync-catalog` against), its prices
    /// under the catalog's `local` ids, so local checkouts, the sample
    /// events and the demo find them.
    pub(super) fn seed_catalog(&self) -> std::io::Result<()> {
        let now = self.clock.now_unix();
        let catalog = &self.catalog;
        self.account.update(|a| {
            if !a.prices.is_empty() || !a.products.is_empty() {
                return;
            }
            for (plan, prices) in catalog.priced_plans() {
                let product = seed_product_id(plan.key.as_str());
                a.products.push(LocalProduct {
                    id: product.clone(),
                    name: plan.name.clone(),
                    active: true,
                    created: now,
                    metadata: BTreeMap::from([("plan".into(), plan.key.to_string())]),
                });
                for (billing, price) in prices {
                    let id =
                        price.local.clone().unwrap_or_else(|| format!("price_local_{}", price.lookup_key));
                    a.prices.push(StoredPrice {
                        price: LocalPrice {
                            id,
                            lookup_key: Some(price.lookup_key.to_string()),
                            interval: billing.stripe_interval().unit.as_str().into(),
                            interval_count: billing.stripe_interval().count,
                            unit_amount: price.amount,
                            currency: catalog.currency().to_owned(),
                        },
                        product: product.clone(),
                        active: true,
                        created: now,
                        metadata: BTreeMap::new(),
                    });
                }
            }
        })
    }

    pub fn products(&self) -> Vec<LocalProduct> {
        self.account.read(|a| a.products.clone())
    }

    pub fn prices(&self) -> Vec<StoredPrice> {
        self.account.read(|a| a.prices.clone())
    }

    pub fn webhook_endpoints(&self) -> Vec<LocalWebhookEndpoint> {
        self.account.read(|a| a.webhook_endpoints.clone())
    }

    /// `write` once per idempotency key, as Stripe does: a repeat of the
    /// same request (method, path and form) answers what the first did, and
    /// another request under the key is refused. A refused write is not
    /// kept, so it may be tried again.
    pub fn idempotent_write(
        &self,
        key: Option<&str>,
        request: &str,
        form: &Form,
        write: impl FnOnce(&LocalStripe) -> Result<Value, LocalStripeError>,
    ) -> Result<Value, LocalStripeError> {
        let Some(key) = key else { return write(self) };
        let mut fields: Vec<String> = form.iter().map(|(k, v)| format!("{k}={v}")).collect();
        fields.sort_unstable();
        let request = format!("{request}?{}", fields.join("&"));
        let earlier = self.account.read(|a| a.idempotent_writes.iter().find(|w| w.key == key).cloned());
        if let Some(earlier) = earlier {
            return match earlier.request == request {
                true => Ok(earlier.answer),
                false => Err(LocalStripeError::IdempotencyMismatch),
            };
        }
        let answer = write(self)?;
        let kept = IdempotentWrite { key: key.to_owned(), request, answer: answer.clone() };
        self.account.update(|a| a.idempotent_writes.push(kept)).map_err(LocalStripeError::Io)?;
        Ok(answer)
    }

    /// `GET /v1/prices?lookup_keys[]=…&product=…&active=…`.
    pub fn price_list_json(
        &self,
        lookup_keys: &[String],
        product: Option<&str>,
        active: Option<bool>,
    ) -> Value {
        self.account.read(|a| {
            let data = a
                .prices
                .iter()
                .filter(|p| {
                    lookup_keys.is_empty()
                        || p.price.lookup_key.as_ref().is_some_and(|k| lookup_keys.contains(k))
                })
                .filter(|p| product.is_none_or(|product| p.product == product))
                .filter(|p| active.is_none_or(|active| p.active == active))
                .map(stored_price_wire)
                .collect();
            list_wire("/v1/prices", data)
        })
    }

    /// `POST /v1/prices`: a recurring price; a lookup key another price
    /// holds is refused unless `transfer_lookup_key=true` moves it.
    pub fn create_price(&self, form: &Form) -> Result<Value, LocalStripeError> {
        let now = self.clock.now_unix();
        let product = required(form, "product")?.to_owned();
        let currency = required(form, "currency")?.to_ascii_lowercase();
        let unit_amount = required(form, "unit_amount")?.parse::<i64>().map_err(|_| {
            LocalStripeError::InvalidRequest { param: "unit_amount", message: "Invalid integer".into() }
        })?;
        let interval = required(form, "recurring[interval]")?.to_owned();
        if !matches!(interval.as_str(), "day" | "week" | "month" | "year") {
            return Err(LocalStripeError::InvalidRequest {
                param: "recurring[interval]",
                message: format!("Invalid recurring[interval]: {interval}"),
            });
        }
        let interval_count = match field(form, "recurring[interval_count]") {
            None => 1,
            Some(raw) => raw.parse::<u32>().map_err(|_| LocalStripeError::InvalidRequest {
                param: "recurring[interval_count]",
                message: "Invalid integer".into(),
            })?,
        };
        let lookup_key = field(form, "lookup_key").map(str::to_owned);
        let transfer = boolean(form, "transfer_lookup_key")?.unwrap_or(false);
        let metadata = metadata(form);
        self.account
            .update(|a| {
                if !a.products.iter().any(|p| p.id == product) {
                    return Err(missing("product", &product));
                }
                if let Some(key) = &lookup_key {
                    let holder = a.prices.iter_mut().find(|p| p.price.lookup_key.as_ref() == Some(key));
                    match holder {
                        Some(holder) if transfer => holder.price.lookup_key = None,
                        Some(holder) => {
                            return Err(LocalStripeError::InvalidRequest {
                                param: "lookup_key",
                                message: format!(
                                    "A price (`{}`) already uses that lookup key. Set `transfer_lookup_key` to move it.",
                                    holder.price.id
                                ),
                            });
                        }
                        None => {}
                    }
                }
                let stored = StoredPrice {
                    price: LocalPrice {
                        id: format!("price_local{:06}", a.prices.len() + 1),
                        lookup_key,
                        interval,
                        interval_count,
                        unit_amount,
                        currency,
                    },
                    product,
                    active: true,
                    created: now,
                    metadata,
                };
                let wire = stored_price_wire(&stored);
                a.prices.push(stored);
                Ok(wire)
            })
            .map_err(LocalStripeError::Io)?
    }

    /// `POST /v1/prices/{id}`: only `active` and metadata change (a price's
    /// amount, currency and interval are fixed at Stripe).
    pub fn update_price(&self, id: &str, form: &Form) -> Result<Value, LocalStripeError> {
        let active = boolean(form, "active")?;
        let metadata = metadata(form);
        self.account
            .update(|a| {
                let price =
                    a.prices.iter_mut().find(|p| p.price.id == id).ok_or_else(|| missing("price", id))?;
                if let Some(active) = active {
                    price.active = active;
                }
                price.metadata.extend(metadata);
                Ok(stored_price_wire(price))
            })
            .map_err(LocalStripeError::Io)?
    }

    /// `GET /v1/products/{id}`.
    pub fn product_json(&self, id: &str) -> Option<Value> {
        self.account.read(|a| a.products.iter().find(|p| p.id == id).map(product_wire))
    }

    /// `GET /v1/products`.
    pub fn product_list_json(&self) -> Value {
        self.account.read(|a| list_wire("/v1/products", a.products.iter().map(product_wire).collect()))
    }

    /// `POST /v1/products`, with the caller's `id` if given.
    pub fn create_product(&self, form: &Form) -> Result<Value, LocalStripeError> {
        let now = self.clock.now_unix();
        let name = required(form, "name")?.to_owned();
        let given = field(form, "id").map(str::to_owned);
        let metadata = metadata(form);
        self.account
            .update(|a| {
                let id = given.unwrap_or_else(|| format!("prod_local{:06}", a.products.len() + 1));
                if a.products.iter().any(|p| p.id == id) {
                    return Err(LocalStripeError::InvalidRequest {
                        param: "id",
                        message: format!("Product already exists: {id}"),
                    });
                }
                let product = LocalProduct { id, name, active: true, created: now, metadata };
                let wire = product_wire(&product);
                a.products.push(product);
                Ok(wire)
            })
            .map_err(LocalStripeError::Io)?
    }

    /// `POST /v1/products/{id}`: its name, `active` and metadata.
    pub fn update_product(&self, id: &str, form: &Form) -> Result<Value, LocalStripeError> {
        let active = boolean(form, "active")?;
        let (name, metadata) = (field(form, "name").map(str::to_owned), metadata(form));
        self.account
            .update(|a| {
                let product =
                    a.products.iter_mut().find(|p| p.id == id).ok_or_else(|| missing("product", id))?;
                if let Some(name) = name {
                    product.name = name;
                }
                if let Some(active) = active {
                    product.active = active;
                }
                product.metadata.extend(metadata);
                Ok(product_wire(product))
            })
            .map_err(LocalStripeError::Io)?
    }

    /// `GET /v1/webhook_endpoints`: without their secrets, as at Stripe.
    pub fn webhook_endpoint_list_json(&self) -> Value {
        self.account.read(|a| {
            let data = a.webhook_endpoints.iter().map(|e| endpoint_wire(e, false)).collect();
            list_wire("/v1/webhook_endpoints", data)
        })
    }

    /// `POST /v1/webhook_endpoints`: the answer holds the signing secret,
    /// the only time it is shown.
    pub fn create_webhook_endpoint(&self, form: &Form) -> Result<Value, LocalStripeError> {
        let now = self.clock.now_unix();
        let url = required(form, "url")?.to_owned();
        let events = list_field(form, "enabled_events").ok_or_else(|| LocalStripeError::InvalidRequest {
            param: "enabled_events",
            message: "Missing required param: enabled_events.".into(),
        })?;
        let api_version = field(form, "api_version").map(str::to_owned);
        let description = field(form, "description").map(str::to_owned);
        self.account
            .update(|a| {
                let number = a.webhook_endpoints.len() + 1;
                let id = format!("we_local{number:06}");
                // Unique per endpoint and per account (its first event time), not guessable by a test.
                let mut hash = Sha256::new();
                hash.update(format!("{id}:{now}:{}:{}", a.last_event_created, a.events.len()).as_bytes());
                let secret = format!("whsec_local{}", &hex::encode(hash.finalize())[..32]);
                let endpoint = LocalWebhookEndpoint {
                    id,
                    url,
                    enabled_events: events,
                    api_version,
                    description,
                    status: "enabled".into(),
                    created: now,
                    secret,
                };
                let wire = endpoint_wire(&endpoint, true);
                a.webhook_endpoints.push(endpoint);
                Ok(wire)
            })
            .map_err(LocalStripeError::Io)?
    }

    /// `POST /v1/webhook_endpoints/{id}`: url, events, `disabled`; never
    /// the API version (fixed at creation) and never the secret.
    pub fn update_webhook_endpoint(&self, id: &str, form: &Form) -> Result<Value, LocalStripeError> {
        if field(form, "api_version").is_some() {
            return Err(LocalStripeError::InvalidRequest {
                param: "api_version",
                message: "Received unknown parameter: api_version".into(),
            });
        }
        let disabled = boolean(form, "disabled")?;
        let (url, events) = (field(form, "url").map(str::to_owned), list_field(form, "enabled_events"));
        self.account
            .update(|a| {
                let endpoint = a
                    .webhook_endpoints
                    .iter_mut()
                    .find(|e| e.id == id)
                    .ok_or_else(|| missing("webhook_endpoint", id))?;
                if let Some(url) = url {
                    endpoint.url = url;
                }
                if let Some(events) = events {
                    endpoint.enabled_events = events;
                }
                if let Some(disabled) = disabled {
                    endpoint.status = if disabled { "disabled" } else { "enabled" }.into();
                }
                Ok(endpoint_wire(endpoint, false))
            })
            .map_err(LocalStripeError::Io)?
    }

    /// `DELETE /v1/webhook_endpoints/{id}`.
    pub fn delete_webhook_endpoint(&self, id: &str) -> Result<Value, LocalStripeError> {
        self.account
            .update(|a| {
                let index = a
                    .webhook_endpoints
                    .iter()
                    .position(|e| e.id == id)
                    .ok_or_else(|| missing("webhook_endpoint", id))?;
                a.webhook_endpoints.remove(index);
                Ok(json!({"id": id, "object": "webhook_endpoint", "deleted": true}))
            })
            .map_err(LocalStripeError::Io)?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::FixedClock;

    fn stripe() -> LocalStripe {
        LocalStripe::open(None, "http://127.0.0.1", Arc::new(FixedClock(1_700_000_000))).unwrap()
    }

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_write_under_an_idempotency_key_happens_once_and_only_for_the_same_request() {
        let stripe = stripe();
        let product = form(&[("id", "tenancy_starter"), ("name", "Starter")]);
        let create = |key: Option<&str>, form: &Form| {
            stripe.idempotent_write(key, "POST /v1/products", form, |s| s.create_product(form))
        };
        let first = create(Some("k-starter"), &product).unwrap();
        // Retried after a lost answer: the same answer, nothing made twice.
        assert_eq!(create(Some("k-starter"), &product).unwrap(), first);
        assert_eq!(stripe.products().len(), 4);
        let other = form(&[("id", "tenancy_other"), ("name", "Other")]);
        assert!(matches!(create(Some("k-starter"), &other), Err(LocalStripeError::IdempotencyMismatch)));
        // Without a key, Stripe runs every request (this one is refused: the id is taken).
        assert!(create(None, &product).is_err());
        assert_eq!(stripe.products().len(), 4);
    }

    #[test]
    fn a_fresh_account_holds_the_catalog_under_its_local_ids() {
        let stripe = stripe();
        assert_eq!(stripe.products().len(), 3);
        assert!(stripe.prices().iter().any(|p| p.price.id == "price_1QProMonthlyCAD"));
        let listed = stripe.price_list_json(&["pro_monthly".into()], None, Some(true));
        assert_eq!(listed["data"][0]["id"], "price_1QProMonthlyCAD");
        assert_eq!(listed["data"][0]["product"], "tenancy_pro");
    }

    #[test]
    fn a_lookup_key_moves_only_when_transferred_and_archived_prices_stay_listed_inactive() {
        let stripe = stripe();
        let new = [
            ("product", "tenancy_pro"),
            ("currency", "cad"),
            ("unit_amount", "5500"),
            ("recurring[interval]", "month"),
            ("lookup_key", "pro_monthly"),
        ];
        let refused = stripe.create_price(&form(&new)).unwrap_err().to_string();
        assert!(refused.contains("already uses that lookup key"), "{refused}");
        let mut moved = new.to_vec();
        moved.push(("transfer_lookup_key", "true"));
        let created = stripe.create_price(&form(&moved)).unwrap();
        stripe.update_price("price_1QProMonthlyCAD", &form(&[("active", "false")])).unwrap();
        let active = stripe.price_list_json(&["pro_monthly".into()], None, Some(true));
        assert_eq!(active["data"].as_array().unwrap().len(), 1);
        assert_eq!(active["data"][0]["id"], created["id"]);
        let old = stripe.prices().into_iter().find(|p| p.price.id == "price_1QProMonthlyCAD").unwrap();
        assert!(!old.active && old.price.lookup_key.is_none());
    }

    #[test]
    fn an_endpoint_secret_is_answered_on_creation_only() {
        let stripe = stripe();
        let created = stripe
            .create_webhook_endpoint(&form(&[
                ("url", "https://x/stripe/webhook"),
                ("enabled_events[0]", "invoice.paid"),
                ("api_version", "2026-09-30.endive"),
            ]))
            .unwrap();
        assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
        let id = created["id"].as_str().unwrap();
        let listed = stripe.webhook_endpoint_list_json();
        assert!(listed["data"][0].get("secret").is_none());
        let refused = stripe.update_webhook_endpoint(id, &form(&[("api_version", "2024-06-20")]));
        assert!(refused.is_err(), "the version is fixed at creation");
        let updated =
            stripe.update_webhook_endpoint(id, &form(&[("enabled_events[0]", "invoice.payment_failed")]));
        assert_eq!(updated.unwrap()["enabled_events"][0], "invoice.payment_failed");
    }
}
