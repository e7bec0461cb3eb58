//! The tenant table on DynamoDB: one table, partition key `pk`, no sort key.
//!
//! | item | `pk` | attributes |
//! |---|---|---|
//! | tenant | `TENANT#{tenant_id}` | the [`TenantRecord`] as native attributes, `kind = "tenant"`, and with a signup `subscription_id`, `customer_id` (GSI `by-subscription`) |
//! | subdomain claim | `SUBDOMAIN#{name}` | `kind = "subdomain"`, `tenant_id`, `claimed_at` |
//! | checkout hold | `HOLD#{name}` | `kind = "hold"`, `hold_id`, `hold_until`, `expires_at` (TTL), `form`, once its session is made `session_id`, `session_url`, `session_expires_at` |
//! | open holds of a buyer | `HOLDS#{owner}` | `kind = "hold-owner"`, `open` (subdomain → the hold's end), `version`, `expires_at` (TTL) |
//! | requests of a client in a window | `RATE#{client}#{window_start}` | `kind = "rate"`, `hits`, `expires_at` (TTL) |
//! | unmatched event | `EVENT#{event_id}` | the [`UnmatchedEvent`], `kind = "unmatched-event"` |
//! | lease | `LEASE#{tenant_id}` | `kind = "lease"`, `tenant`, the [`Lease`] (`owner`, `expires_at`, also the TTL) |
//! | trail entry | `TRAIL#{tenant_id}#{event_id}` | the [`TrailEntry`], `kind = "trail"` |
//! | mail | `MAIL#{tenant_id}#{key}` | the [`MailRecord`] (`sent` a map once sent), `kind = "mail"` |
//!
//! A tenant id has no `#`, so the keys that start with one cannot collide.
//! The trail and mails of a tenant are items of their own, so the tenant item
//! stays small (DynamoDB items stop at 400 KB); listing them is a filtered
//! Scan, as the table has no sort key (for operator views, not hot paths).
//!
//! Every write that creates or changes something is conditional (docs/architecture.md
//! decision 3), so a retried step has one effect.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, Put, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableStatus, TransactWriteItem, Update,
};

use super::error::{call_failed, unexpected};
use crate::config::{ConfigError, Lookup, required};
use crate::domain::{
    HoldId, Subdomain, SubscriptionId, TenantId, TenantRecord, TrialKey, TrialOffer, TrialReservation,
    TrialUse,
};
use crate::ports::{
    HeldSession, HoldOutcome, HoldRequest, Inserted, Lease, LeaseOutcome, MailMarked, MailRecord, MailSlot,
    RateOutcome, StoreError, SubdomainHold, TenantStore, TrailEntry, UnmatchedEvent,
};

/// The table's name, for functions that build the store from their environment.
pub const TENANT_TABLE: &str = "TENANT_TABLE";

/// The GSI that finds a tenant by its Stripe subscription.
pub const BY_SUBSCRIPTION_INDEX: &str = "by-subscription";

pub const ATTR_PK: &str = "pk";
pub const ATTR_KIND: &str = "kind";
pub const ATTR_SUBSCRIPTION_ID: &str = "subscription_id";
pub const ATTR_CUSTOMER_ID: &str = "customer_id";
pub const ATTR_TENANT_ID: &str = "tenant_id";
pub const ATTR_CLAIMED_AT: &str = "claimed_at";
pub const KIND_TENANT: &str = "tenant";
pub const KIND_SUBDOMAIN: &str = "subdomain";
pub const KIND_UNMATCHED_EVENT: &str = "unmatched-event";
pub const KIND_HOLD: &str = "hold";
pub const ATTR_HOLD_ID: &str = "hold_id";
pub const ATTR_HOLD_UNTIL: &str = "hold_until";
/// A DynamoDB TTL attribute: expired holds and leases are deleted by the table itself.
pub const ATTR_EXPIRES_AT: &str = "expires_at";
pub const ATTR_HOLD_FORM: &str = "form";
pub const ATTR_SESSION_ID: &str = "session_id";
pub const ATTR_SESSION_URL: &str = "session_url";
pub const ATTR_SESSION_EXPIRES_AT: &str = "session_expires_at";
pub const KIND_HOLD_OWNER: &str = "hold-owner";
/// An owner's open holds: a map of subdomain to the hold's end.
pub const ATTR_OPEN_HOLDS: &str = "open";
pub const ATTR_VERSION: &str = "version";
pub const KIND_RATE: &str = "rate";
pub const ATTR_HITS: &str = "hits";
/// A rate item outlives its window by this much before the TTL may remove it.
const RATE_ITEM_GRACE_SECONDS: i64 = 300;
pub const KIND_LEASE: &str = "lease";
pub const KIND_TRAIL: &str = "trail";
pub const KIND_MAIL: &str = "mail";
/// The tenant of a lease, trail entry or mail (`tenant_id` is the claim's holder).
pub const ATTR_TENANT: &str = "tenant";
pub const ATTR_OWNER: &str = "owner";
pub const ATTR_RESERVED_AT: &str = "reserved_at";
pub const ATTR_SENT: &str = "sent";
pub const ATTR_MAIL_KEY: &str = "key";

pub const KIND_TRIAL: &str = "trial";
/// A trial item's use, once its checkout was paid: a map of [`TrialUse`].
pub const ATTR_TRIAL_USED: &str = "used";
/// A reservation nobody paid for is removed by the TTL this long after its hold ended.
const TRIAL_RESERVATION_GRACE_SECONDS: i64 = 24 * 60 * 60;

pub fn trial_key(key: &TrialKey) -> String {
    format!("TRIAL#{key}")
}

pub fn lease_key(tenant: &TenantId) -> String {
    format!("LEASE#{tenant}")
}

pub fn trail_key(tenant: &TenantId, event_id: &str) -> String {
    format!("TRAIL#{tenant}#{event_id}")
}

pub fn mail_key(tenant: &TenantId, key: &str) -> String {
    format!("MAIL#{tenant}#{key}")
}

pub fn hold_key(subdomain: &Subdomain) -> String {
    format!("HOLD#{subdomain}")
}

pub fn hold_owner_key(owner: &str) -> String {
    format!("HOLDS#{owner}")
}

pub fn rate_key(client: &str, window_start: i64) -> String {
    format!("RATE#{client}#{window_start}")
}

/// A claim taken away between our failed write and our read of the holder
/// is retried this many times before giving up as unavailable.
const CLAIM_ATTEMPTS: usize = 3;

pub fn tenant_key(id: &TenantId) -> String {
    format!("TENANT#{id}")
}

pub fn subdomain_key(subdomain: &Subdomain) -> String {
    format!("SUBDOMAIN#{subdomain}")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// The tenant store on Amazon DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoTenantStore {
    client: Client,
    table: String,
}

impl DynamoTenantStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoTenantStore { client, table: table.into() }
    }

    /// Reads the table name from [`TENANT_TABLE`].
    pub fn from_lookup(client: Client, env: &dyn Lookup) -> Result<Self, ConfigError> {
        let table = required(env, TENANT_TABLE)?.trim().to_owned();
        let valid = (3..=255).contains(&table.len())
            && table.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !valid {
            return Err(ConfigError::Invalid {
                var: TENANT_TABLE,
                reason: "expected a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)".into(),
            });
        }
        Ok(DynamoTenantStore::new(client, table))
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Every item of one `kind`, across scan pages.
    async fn scan_kind(&self, kind: &str) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        self.scan(kind, None).await
    }

    /// Every item of one `kind`, of one tenant if given (its `tenant`
    /// attribute), across scan pages.
    async fn scan(
        &self,
        kind: &str,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let request = self
                .client
                .scan()
                .table_name(&self.table)
                .expression_attribute_names("#kind", ATTR_KIND)
                .expression_attribute_values(":kind", s(kind))
                .set_exclusive_start_key(start.take());
            let request = match tenant {
                Some(tenant) => request
                    .filter_expression("#kind = :kind AND #tenant = :tenant")
                    .expression_attribute_names("#tenant", ATTR_TENANT)
                    .expression_attribute_values(":tenant", s(tenant.as_str())),
                None => request.filter_expression("#kind = :kind"),
            };
            let page =
                request.send().await.map_err(|e| StoreError::Unavailable(call_failed("DynamoDB Scan", e)))?;
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// The item that refused a conditional write, as it stood: returned with
    /// the refusal (`ReturnValuesOnConditionCheckFailure::AllOld`), or read
    /// when an older server returns none (`None` if gone by then). `refused`
    /// takes it out of the operation's error, and answers `None` for any
    /// error that is not a failed condition: that call is `Unavailable`.
    async fn refusing_item<E>(
        &self,
        pk: &str,
        operation: &'static str,
        error: SdkError<E, HttpResponse>,
        refused: impl Fn(&E) -> Option<Option<HashMap<String, AttributeValue>>>,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let returned = match &error {
            SdkError::ServiceError(context) => refused(context.err()),
            _ => None,
        };
        match returned {
            None => Err(StoreError::Unavailable(call_failed(operation, error))),
            Some(Some(item)) => Ok(Some(item)),
            Some(None) => self.get_item(pk).await,
        }
    }

    /// The item a conditional UpdateItem was refused over ([`Self::refusing_item`]).
    async fn refused_update(
        &self,
        pk: &str,
        error: SdkError<UpdateItemError, HttpResponse>,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        self.refusing_item(pk, "DynamoDB UpdateItem", error, |e| match e {
            UpdateItemError::ConditionalCheckFailedException(failed) => Some(failed.item().cloned()),
            _ => None,
        })
        .await
    }

    /// Runs one transaction: `None` when it was written, the refusals when
    /// a condition cancelled it. Anything else (a conflict with another
    /// transaction, throttling, the service down) is `Unavailable`: the
    /// caller's step is retried.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Option<Refused>, StoreError> {
        let result = self.client.transact_write_items().set_transact_items(Some(items)).send().await;
        let error = match result {
            Ok(_) => return Ok(None),
            Err(error) => error,
        };
        let reasons = match &error {
            SdkError::ServiceError(context) => match context.err() {
                TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                    Some(cancelled.cancellation_reasons().to_vec())
                }
                _ => None,
            },
            _ => None,
        };
        let mut refused = Vec::new();
        for reason in reasons.iter().flatten() {
            match reason.code() {
                None | Some("None") => refused.push((false, None)),
                Some("ConditionalCheckFailed") => refused.push((true, reason.item().cloned())),
                // TransactionConflict, ThrottlingError, …: not an answer.
                Some(_) => {
                    return Err(StoreError::Unavailable(call_failed("DynamoDB TransactWriteItems", error)));
                }
            }
        }
        if refused.iter().any(|(failed, _)| *failed) {
            Ok(Some(Refused(refused)))
        } else {
            Err(StoreError::Unavailable(call_failed("DynamoDB TransactWriteItems", error)))
        }
    }

    /// The item at `index` of a cancelled transaction if its condition
    /// failed: as returned, or read when an older server returns none
    /// (`None` if gone by then, or if its condition held).
    async fn refused_item(
        &self,
        refused: &Refused,
        index: usize,
        pk: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        match refused.0.get(index) {
            Some((true, Some(item))) => Ok(Some(item.clone())),
            Some((true, None)) => self.get_item(pk).await,
            _ => Ok(None),
        }
    }

    async fn get_item(&self, pk: &str) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ATTR_PK, s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(call_failed("DynamoDB GetItem", e)))?;
        Ok(output.item)
    }
}

/// The item for a tenant record: its fields as native attributes plus the keys.
pub fn tenant_item(record: &TenantRecord) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let pk = tenant_key(&record.id);
    let mut item: HashMap<String, AttributeValue> = serde_dynamo::aws_sdk_dynamodb_1::to_item(record)
        .map_err(|e| StoreError::Corrupt { key: pk.clone(), reason: format!("cannot be written: {e}") })?;
    for reserved in [ATTR_PK, ATTR_KIND, ATTR_SUBSCRIPTION_ID, ATTR_CUSTOMER_ID] {
        if item.contains_key(reserved) {
            return Err(StoreError::Corrupt {
                key: pk,
                reason: format!("the record has a field `{reserved}`, which the table keeps for itself"),
            });
        }
    }
    item.insert(ATTR_PK.into(), s(&pk));
    item.insert(ATTR_KIND.into(), s(KIND_TENANT));
    if let Some(subscription) = record.subscription() {
        item.insert(ATTR_SUBSCRIPTION_ID.into(), s(subscription.as_str()));
    }
    if let Some(signup) = &record.signup {
        item.insert(ATTR_CUSTOMER_ID.into(), s(signup.customer.as_str()));
    }
    Ok(item)
}

fn text_attr<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|value| value.as_s().ok()).map(String::as_str)
}

fn key_of(item: &HashMap<String, AttributeValue>) -> String {
    text_attr(item, ATTR_PK).unwrap_or("(no pk)").to_owned()
}

fn decode_tenant(item: HashMap<String, AttributeValue>) -> Result<TenantRecord, StoreError> {
    let key = key_of(&item);
    serde_dynamo::aws_sdk_dynamodb_1::from_item(item)
        .map_err(|e| StoreError::Corrupt { key, reason: super::error::one_line(&e.to_string()) })
}

/// An item of a kind other than the tenant's, decoded from its native attributes.
fn decode<T: serde::de::DeserializeOwned>(item: HashMap<String, AttributeValue>) -> Result<T, StoreError> {
    let key = key_of(&item);
    serde_dynamo::aws_sdk_dynamodb_1::from_item(item)
        .map_err(|e| StoreError::Corrupt { key, reason: super::error::one_line(&e.to_string()) })
}

/// `value` as native attributes, plus its `pk` and `kind`.
fn item_of<T: serde::Serialize>(
    value: &T,
    pk: &str,
    kind: &str,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let mut item: HashMap<String, AttributeValue> = serde_dynamo::aws_sdk_dynamodb_1::to_item(value)
        .map_err(|e| StoreError::Corrupt { key: pk.to_owned(), reason: format!("cannot be written: {e}") })?;
    item.insert(ATTR_PK.into(), s(pk));
    item.insert(ATTR_KIND.into(), s(kind));
    Ok(item)
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn number_attr(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name).and_then(|value| value.as_n().ok()).and_then(|raw| raw.parse().ok())
}

/// The hold item: `hold_id`, `hold_until`, `expires_at` (the TTL), `form`,
/// and once its session is made `session_id`, `session_url`, `session_expires_at`.
fn hold_item(request: &HoldRequest) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (ATTR_PK.to_owned(), s(hold_key(&request.subdomain))),
        (ATTR_KIND.to_owned(), s(KIND_HOLD)),
        (ATTR_HOLD_ID.to_owned(), s(request.hold_id.as_str())),
        (ATTR_HOLD_UNTIL.to_owned(), n(request.until)),
        (ATTR_EXPIRES_AT.to_owned(), n(request.until)),
        (ATTR_HOLD_FORM.to_owned(), s(&request.form)),
    ])
}

fn decode_hold(item: HashMap<String, AttributeValue>) -> Result<SubdomainHold, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt { key: key_of(&item), reason: reason.to_owned() };
    let hold_id = text_attr(&item, ATTR_HOLD_ID).ok_or_else(|| corrupt("hold without hold_id"))?;
    let until = number_attr(&item, ATTR_HOLD_UNTIL).ok_or_else(|| corrupt("hold without hold_until"))?;
    let session = match (
        text_attr(&item, ATTR_SESSION_ID),
        text_attr(&item, ATTR_SESSION_URL),
        number_attr(&item, ATTR_SESSION_EXPIRES_AT),
    ) {
        (Some(id), Some(url), Some(expires_at)) => {
            Some(HeldSession { id: id.to_owned(), url: url.to_owned(), expires_at })
        }
        _ => None,
    };
    Ok(SubdomainHold {
        hold_id: hold_id.to_owned(),
        until,
        // Holds from before the form was kept have none.
        form: text_attr(&item, ATTR_HOLD_FORM).unwrap_or_default().to_owned(),
        session,
    })
}

/// An owner item: its version and its holds' ends by subdomain.
fn decode_owner(item: &HashMap<String, AttributeValue>) -> Result<(i64, BTreeMap<String, i64>), StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt { key: key_of(item), reason: reason.to_owned() };
    let version = number_attr(item, ATTR_VERSION).ok_or_else(|| corrupt("hold owner without version"))?;
    let open = match item.get(ATTR_OPEN_HOLDS) {
        Some(AttributeValue::M(open)) => open
            .iter()
            .map(|(name, until)| {
                let until = until.as_n().ok().and_then(|raw| raw.parse().ok());
                until
                    .map(|until| (name.clone(), until))
                    .ok_or_else(|| corrupt("an open hold without its end"))
            })
            .collect::<Result<_, _>>()?,
        _ => BTreeMap::new(),
    };
    Ok((version, open))
}

/// An owner's unexpired holds on other names, plus this one until `until`:
/// expired entries are dropped on every write, so the map stays as small as
/// the limit.
fn others_with(
    open: BTreeMap<String, i64>,
    subdomain: &Subdomain,
    now: i64,
    until: i64,
) -> BTreeMap<String, i64> {
    let mut kept: BTreeMap<String, i64> = open.into_iter().filter(|(_, end)| *end >= now).collect();
    kept.insert(subdomain.to_string(), until);
    kept
}

fn build_failed(error: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Unavailable(unexpected(format!("a DynamoDB request could not be built: {error}")))
}

/// The items of a cancelled transaction, in order: whether each one's
/// condition failed, and the item as it stood if DynamoDB returned it.
struct Refused(Vec<(bool, Option<HashMap<String, AttributeValue>>)>);

/// A trial item as stored: the hold that reserved it and until when, and its use.
#[derive(serde::Deserialize)]
struct StoredTrial {
    #[serde(default)]
    hold_id: Option<String>,
    #[serde(default)]
    hold_until: Option<i64>,
    #[serde(default)]
    used: Option<TrialUse>,
}

fn used_attr(used: &TrialUse) -> Result<AttributeValue, StoreError> {
    serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(used)
        .map_err(|e| StoreError::Unavailable(unexpected(format!("trial use not encodable: {e}"))))
}

fn decode_holder(item: &HashMap<String, AttributeValue>) -> Result<TenantId, StoreError> {
    let key = key_of(item);
    let raw = text_attr(item, ATTR_TENANT_ID)
        .ok_or_else(|| StoreError::Corrupt { key: key.clone(), reason: "no tenant_id".into() })?;
    TenantId::parse(raw).map_err(|e| StoreError::Corrupt { key, reason: e.to_string() })
}

#[async_trait]
impl TenantStore for DynamoTenantStore {
    async fn record_signup(
        &self,
        subdomain: &Subdomain,
        record: &TenantRecord,
        hold: Option<&HoldId>,
        now: i64,
    ) -> Result<Inserted, StoreError> {
        let claim_pk = subdomain_key(subdomain);
        let tenant_pk = tenant_key(&record.id);
        let hold_pk = hold_key(subdomain);
        let tenant = tenant_item(record)?;
        for _ in 0..CLAIM_ATTEMPTS {
            // 0: the claim. UpdateItem rather than Put: a repeated claim keeps the first claimed_at.
            let claim = Update::builder()
                .table_name(&self.table)
                .key(ATTR_PK, s(&claim_pk))
                .update_expression(
                    "SET #kind = :kind, #tenant = :tenant, #claimed = if_not_exists(#claimed, :now)",
                )
                .condition_expression("attribute_not_exists(#pk) OR #tenant = :tenant")
                .expression_attribute_names("#pk", ATTR_PK)
                .expression_attribute_names("#kind", ATTR_KIND)
                .expression_attribute_names("#tenant", ATTR_TENANT_ID)
                .expression_attribute_names("#claimed", ATTR_CLAIMED_AT)
                .expression_attribute_values(":kind", s(KIND_SUBDOMAIN))
                .expression_attribute_values(":tenant", s(record.id.as_str()))
                .expression_attribute_values(":now", n(now))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .build()
                .map_err(build_failed)?;
            // 1: the tenant, unless it exists (a retried step).
            let insert = Put::builder()
                .table_name(&self.table)
                .set_item(Some(tenant.clone()))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", ATTR_PK)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .build()
                .map_err(build_failed)?;
            // 2: the hold. The checkout's own (or an expired one) is deleted: it
            // became the claim. Without a hold id (a session from before holds
            // were carried) nobody's live hold may be there, and an expired one
            // is left to the TTL.
            let hold_write = match hold {
                Some(hold_id) => TransactWriteItem::builder().delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .key(ATTR_PK, s(&hold_pk))
                        .condition_expression("attribute_not_exists(#pk) OR #hold = :hold OR #until < :now")
                        .expression_attribute_names("#pk", ATTR_PK)
                        .expression_attribute_names("#hold", ATTR_HOLD_ID)
                        .expression_attribute_names("#until", ATTR_HOLD_UNTIL)
                        .expression_attribute_values(":hold", s(hold_id.as_str()))
                        .expression_attribute_values(":now", n(now))
                        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                        .build()
                        .map_err(build_failed)?,
                ),
                // SubdomainHold::admits, as a condition.
                None => TransactWriteItem::builder().condition_check(
                    ConditionCheck::builder()
                        .table_name(&self.table)
                        .key(ATTR_PK, s(&hold_pk))
                        .condition_expression(
                            "attribute_not_exists(#pk) OR #until < :now OR NOT begins_with(#hold, :buyer)",
                        )
                        .expression_attribute_names("#pk", ATTR_PK)
                        .expression_attribute_names("#until", ATTR_HOLD_UNTIL)
                        .expression_attribute_names("#hold", ATTR_HOLD_ID)
                        .expression_attribute_values(":now", n(now))
                        .expression_attribute_values(":buyer", s(HoldId::PREFIX))
                        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                        .build()
                        .map_err(build_failed)?,
                ),
            };
            let items = vec![
                TransactWriteItem::builder().update(claim).build(),
                TransactWriteItem::builder().put(insert).build(),
                hold_write.build(),
            ];
            let Some(refused) = self.transact(items).await? else { return Ok(Inserted::New) };
            // Decoded in the order the trait promises: another tenant's claim,
            // someone else's hold, then our own tenant already there.
            if let Some(item) = self.refused_item(&refused, 0, &claim_pk).await? {
                let holder = decode_holder(&item)?;
                if holder != record.id {
                    return Err(StoreError::SubdomainTaken { subdomain: subdomain.clone(), holder });
                }
            }
            if let Some(item) = self.refused_item(&refused, 2, &hold_pk).await? {
                let held = decode_hold(item)?;
                if !held.admits(hold, now) {
                    return Err(StoreError::SubdomainHeld {
                        subdomain: subdomain.clone(),
                        until: held.until,
                    });
                }
            }
            if let Some(item) = self.refused_item(&refused, 1, &tenant_pk).await? {
                return Ok(Inserted::Existing(Box::new(decode_tenant(item)?)));
            }
            // What refused the write had changed when read (an older server
            // returns no item): try again.
        }
        Err(StoreError::Unavailable(unexpected(format!(
            "subdomain `{subdomain}` changed {CLAIM_ATTEMPTS} times while recording tenant {}",
            record.id
        ))))
    }

    async fn release_subdomain(&self, subdomain: &Subdomain, tenant: &TenantId) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(ATTR_PK, s(subdomain_key(subdomain)))
            .condition_expression("#tenant = :tenant")
            .expression_attribute_names("#tenant", ATTR_TENANT_ID)
            .expression_attribute_values(":tenant", s(tenant.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Held by someone else, or not held at all: nothing to release.
            Err(SdkError::ServiceError(context)) if context.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(error) => Err(StoreError::Unavailable(call_failed("DynamoDB DeleteItem", error))),
        }
    }

    async fn subdomain_holder(&self, subdomain: &Subdomain) -> Result<Option<TenantId>, StoreError> {
        match self.get_item(&subdomain_key(subdomain)).await? {
            Some(item) => decode_holder(&item).map(Some),
            None => Ok(None),
        }
    }

    async fn hold_subdomain(&self, request: &HoldRequest, now: i64) -> Result<HoldOutcome, StoreError> {
        let subdomain = &request.subdomain;
        let (claim_pk, hold_pk) = (subdomain_key(subdomain), hold_key(subdomain));
        for _ in 0..CLAIM_ATTEMPTS {
            // Read first: our own live hold is answered without a write (never
            // extended), and the owners' counts are what the write is
            // conditional on.
            if let Some(item) = self.get_item(&hold_pk).await? {
                let held = decode_hold(item)?;
                if held.until >= now {
                    return if held.hold_id == request.hold_id.as_str() {
                        Ok(HoldOutcome::Existing(held))
                    } else {
                        Err(StoreError::SubdomainHeld { subdomain: subdomain.clone(), until: held.until })
                    };
                }
            }
            let mut owners = Vec::with_capacity(request.limits.len());
            for limit in &request.limits {
                let pk = hold_owner_key(&limit.owner);
                let owned = self.get_item(&pk).await?.map(|item| decode_owner(&item)).transpose()?;
                let (version, open) = owned.unwrap_or_default();
                let others: Vec<i64> = open
                    .iter()
                    .filter(|(name, until)| name.as_str() != subdomain.as_str() && **until >= now)
                    .map(|(_, until)| *until)
                    .collect();
                if others.len() >= limit.max_open as usize {
                    return Ok(HoldOutcome::OwnerAtLimit {
                        owner: limit.owner.clone(),
                        max_open: limit.max_open,
                        free_at: others.iter().copied().min().unwrap_or(now),
                    });
                }
                owners.push((pk, version, others_with(open, subdomain, now, request.until)));
            }

            // One transaction: the hold is written only if nobody claimed the
            // name (a ConditionCheck on the claim item, which stays its own
            // item so existing claims and their TTL-less life are untouched)
            // and no live hold is there, and each owner's count moves with it
            // (a version per owner item, so two holds racing for one owner's
            // last slot cannot both win).
            let mut items = vec![
                TransactWriteItem::builder()
                    .condition_check(
                        ConditionCheck::builder()
                            .table_name(&self.table)
                            .key(ATTR_PK, s(&claim_pk))
                            .condition_expression("attribute_not_exists(#pk)")
                            .expression_attribute_names("#pk", ATTR_PK)
                            .return_values_on_condition_check_failure(
                                ReturnValuesOnConditionCheckFailure::AllOld,
                            )
                            .build()
                            .map_err(build_failed)?,
                    )
                    .build(),
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(hold_item(request)))
                            .condition_expression("attribute_not_exists(#pk) OR #until < :now")
                            .expression_attribute_names("#pk", ATTR_PK)
                            .expression_attribute_names("#until", ATTR_HOLD_UNTIL)
                            .expression_attribute_values(":now", n(now))
                            .build()
                            .map_err(build_failed)?,
                    )
                    .build(),
            ];
            for (pk, version, open) in owners {
                let expires = open.values().copied().max().unwrap_or(request.until);
                let item = HashMap::from([
                    (ATTR_PK.to_owned(), s(&pk)),
                    (ATTR_KIND.to_owned(), s(KIND_HOLD_OWNER)),
                    (
                        ATTR_OPEN_HOLDS.to_owned(),
                        AttributeValue::M(open.into_iter().map(|(k, v)| (k, n(v))).collect()),
                    ),
                    (ATTR_VERSION.to_owned(), n(version + 1)),
                    (ATTR_EXPIRES_AT.to_owned(), n(expires)),
                ]);
                let put = Put::builder().table_name(&self.table).set_item(Some(item));
                let put = if version == 0 {
                    put.condition_expression("attribute_not_exists(#pk)")
                        .expression_attribute_names("#pk", ATTR_PK)
                } else {
                    put.condition_expression("#version = :version")
                        .expression_attribute_names("#version", ATTR_VERSION)
                        .expression_attribute_values(":version", n(version))
                };
                items.push(TransactWriteItem::builder().put(put.build().map_err(build_failed)?).build());
            }
            let Some(refused) = self.transact(items).await? else {
                let hold = SubdomainHold {
                    hold_id: request.hold_id.to_string(),
                    until: request.until,
                    form: request.form.clone(),
                    session: None,
                };
                return Ok(HoldOutcome::Held(hold));
            };
            if let Some(item) = self.refused_item(&refused, 0, &claim_pk).await? {
                return Err(StoreError::SubdomainTaken {
                    subdomain: subdomain.clone(),
                    holder: decode_holder(&item)?,
                });
            }
            // A hold written meanwhile, or an owner's count moved: read again.
        }
        Err(StoreError::Unavailable(unexpected(format!(
            "the hold on `{subdomain}` changed {CLAIM_ATTEMPTS} times while holding it"
        ))))
    }

    async fn record_hold_session(
        &self,
        subdomain: &Subdomain,
        hold_id: &HoldId,
        session: &HeldSession,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ATTR_PK, s(hold_key(subdomain)))
            .update_expression("SET #sid = :sid, #surl = :surl, #sexp = :sexp")
            .condition_expression("#hold = :hold")
            .expression_attribute_names("#hold", ATTR_HOLD_ID)
            .expression_attribute_names("#sid", ATTR_SESSION_ID)
            .expression_attribute_names("#surl", ATTR_SESSION_URL)
            .expression_attribute_names("#sexp", ATTR_SESSION_EXPIRES_AT)
            .expression_attribute_values(":hold", s(hold_id.as_str()))
            .expression_attribute_values(":sid", s(&session.id))
            .expression_attribute_values(":surl", s(&session.url))
            .expression_attribute_values(":sexp", n(session.expires_at))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // The hold is gone or someone else's: nothing to record it on.
            Err(SdkError::ServiceError(context)) if context.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(error) => Err(StoreError::Unavailable(call_failed("DynamoDB UpdateItem", error))),
        }
    }

    async fn count_request(
        &self,
        client: &str,
        now: i64,
        window_seconds: i64,
        limit: u32,
    ) -> Result<RateOutcome, StoreError> {
        let window = window_seconds.max(1);
        let start = now - now.rem_euclid(window);
        let retry_after = start + window - now;
        // One item per client and window, counted with a conditional ADD, so
        // every Lambda instance counts against the same number; the TTL
        // removes it a while after its window (the sweep lags, and the window
        // is in the key, so a lingering item counts for nothing).
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ATTR_PK, s(rate_key(client, start)))
            .update_expression("SET #kind = :kind, #expires = :expires ADD #hits :one")
            .condition_expression("attribute_not_exists(#hits) OR #hits < :limit")
            .expression_attribute_names("#kind", ATTR_KIND)
            .expression_attribute_names("#expires", ATTR_EXPIRES_AT)
            .expression_attribute_names("#hits", ATTR_HITS)
            .expression_attribute_values(":kind", s(KIND_RATE))
            .expression_attribute_values(":expires", n(start + window + RATE_ITEM_GRACE_SECONDS))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(i64::from(limit)))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(output) => {
                let count = output
                    .attributes()
                    .and_then(|item| item.get(ATTR_HITS))
                    .and_then(|value| value.as_n().ok())
                    .and_then(|raw| raw.parse().ok())
                    .unwrap_or(limit);
                Ok(RateOutcome::Allowed { count })
            }
            Err(SdkError::ServiceError(context)) if context.err().is_conditional_check_failed_exception() => {
                Ok(RateOutcome::Limited { retry_after })
            }
            Err(error) => Err(StoreError::Unavailable(call_failed("DynamoDB UpdateItem", error))),
        }
    }

    async fn subdomain_hold(
        &self,
        subdomain: &Subdomain,
        now: i64,
    ) -> Result<Option<SubdomainHold>, StoreError> {
        let Some(item) = self.get_item(&hold_key(subdomain)).await? else { return Ok(None) };
        let hold = decode_hold(item)?;
        // TTL deletes lazily: an expired hold may still be there.
        Ok((hold.until >= now).then_some(hold))
    }

    async fn insert_tenant(&self, record: &TenantRecord) -> Result<Inserted, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(tenant_item(record)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", ATTR_PK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(Inserted::New),
            Err(error) => error,
        };
        let existing = self
            .refusing_item(&tenant_key(&record.id), "DynamoDB PutItem", error, |e| match e {
                PutItemError::ConditionalCheckFailedException(failed) => Some(failed.item().cloned()),
                _ => None,
            })
            .await?
            .ok_or_else(|| {
                StoreError::Unavailable(unexpected(format!(
                    "tenant {} existed when inserting and was gone when read",
                    record.id
                )))
            })?;
        Ok(Inserted::Existing(Box::new(decode_tenant(existing)?)))
    }

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        self.get_item(&tenant_key(id)).await?.map(decode_tenant).transpose()
    }

    async fn replace_tenant(&self, record: &TenantRecord) -> Result<(), StoreError> {
        let conflict = |expected| StoreError::VersionConflict { tenant: record.id.clone(), expected };
        let previous = record.version.checked_sub(1).ok_or_else(|| conflict(0))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(tenant_item(record)?))
            // The version alone: it guards against lost updates. Which event
            // wins is decided above the store, by the desired state's generation.
            .condition_expression("#version = :previous")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":previous", AttributeValue::N(previous.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(context)) if context.err().is_conditional_check_failed_exception() => {
                Err(conflict(previous))
            }
            Err(error) => Err(StoreError::Unavailable(call_failed("DynamoDB PutItem", error))),
        }
    }

    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        let mut tenants = self
            .scan_kind(KIND_TENANT)
            .await?
            .into_iter()
            .map(decode_tenant)
            .collect::<Result<Vec<_>, _>>()?;
        tenants.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(tenants)
    }

    async fn find_by_subscription(
        &self,
        subscription: &SubscriptionId,
    ) -> Result<Option<TenantRecord>, StoreError> {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_SUBSCRIPTION_INDEX)
            .key_condition_expression("#subscription = :subscription")
            .expression_attribute_names("#subscription", ATTR_SUBSCRIPTION_ID)
            .expression_attribute_values(":subscription", s(subscription.as_str()))
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(call_failed("DynamoDB Query", e)))?;
        match page.items.unwrap_or_default().into_iter().next() {
            // The index holds keys only: read the item itself, strongly
            // consistent, with the current version.
            Some(item) => match text_attr(&item, ATTR_PK) {
                Some(pk) => match self.get_item(pk).await? {
                    Some(item) => decode_tenant(item).map(Some),
                    None => Ok(None),
                },
                None => Err(StoreError::Corrupt { key: key_of(&item), reason: "no pk".into() }),
            },
            None => Ok(None),
        }
    }

    async fn record_unmatched_event(&self, event: &UnmatchedEvent) -> Result<(), StoreError> {
        let pk = format!("EVENT#{}", event.event_id);
        let mut item: HashMap<String, AttributeValue> = serde_dynamo::aws_sdk_dynamodb_1::to_item(event)
            .map_err(|e| StoreError::Corrupt {
                key: pk.clone(),
                reason: format!("cannot be written: {e}"),
            })?;
        item.insert(ATTR_PK.into(), s(&pk));
        item.insert(ATTR_KIND.into(), s(KIND_UNMATCHED_EVENT));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", ATTR_PK)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Recorded by an earlier run: nothing to change.
            Err(SdkError::ServiceError(context)) if context.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(error) => Err(StoreError::Unavailable(call_failed("DynamoDB PutItem", error))),
        }
    }

    async fn list_unmatched_events(&self) -> Result<Vec<UnmatchedEvent>, StoreError> {
        let mut events = Vec::new();
        for item in self.scan_kind(KIND_UNMATCHED_EVENT).await? {
            let key = key_of(&item);
            let event: UnmatchedEvent = serde_dynamo::aws_sdk_dynamodb_1::from_item(item)
                .map_err(|e| StoreError::Corrupt { key, reason: super::error::one_line(&e.to_string()) })?;
            events.push(event);
        }
        events.sort_by_key(|event| event.created);
        Ok(events)
    }

    async fn acquire_lease(
        &self,
        tenant: &TenantId,
        owner: &str,
        now: i64,
        ttl_seconds: i64,
    ) -> Result<LeaseOutcome, StoreError> {
        let pk = lease_key(tenant);
        let lease = Lease { owner: owner.to_owned(), expires_at: now.saturating_add(ttl_seconds) };
        let mut item = item_of(&lease, &pk, KIND_LEASE)?;
        item.insert(ATTR_TENANT.into(), s(tenant.as_str()));
        for _ in 0..CLAIM_ATTEMPTS {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                // None, expired (the TTL sweep lags), or ours (a renewal).
                .condition_expression("attribute_not_exists(#pk) OR #expires <= :now OR #owner = :owner")
                .expression_attribute_names("#pk", ATTR_PK)
                .expression_attribute_names("#expires", ATTR_EXPIRES_AT)
                .expression_attribute_names("#owner", ATTR_OWNER)
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":owner", s(owner))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(LeaseOutcome::Acquired),
                Err(error) => error,
            };
            let holder = self
                .refusing_item(&pk, "DynamoDB PutItem", error, |e| match e {
                    PutItemError::ConditionalCheckFailedException(failed) => Some(failed.item().cloned()),
                    _ => None,
                })
                .await?;
            match holder.map(decode::<Lease>).transpose()? {
                Some(held) if held.owner != owner && held.expires_at > now => {
                    return Ok(LeaseOutcome::HeldBy(held));
                }
                // Read after the refusal (an older server) and since released,
                // expired or ours: try again.
                _ => continue,
            }
        }
        Err(StoreError::Unavailable(unexpected(format!(
            "the lease of tenant {tenant} changed hands {CLAIM_ATTEMPTS} times while acquiring it"
        ))))
    }

    async fn release_lease(&self, tenant: &TenantId, owner: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(ATTR_PK, s(lease_key(tenant)))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", ATTR_OWNER)
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Someone else's, or none: nothing to give back.
            Err(SdkError::ServiceError(context)) if context.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(error) => Err(StoreError::Unavailable(call_failed("DynamoDB DeleteItem", error))),
        }
    }

    async fn record_trail(&self, entry: &TrailEntry) -> Result<bool, StoreError> {
        let pk = trail_key(&entry.tenant, &entry.event_id);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_of(entry, &pk, KIND_TRAIL)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", ATTR_PK)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            // Recorded by an earlier delivery or run: the first entry stays.
            Err(SdkError::ServiceError(context)) if context.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(error) => Err(StoreError::Unavailable(call_failed("DynamoDB PutItem", error))),
        }
    }

    async fn trail(&self, tenant: &TenantId) -> Result<Vec<TrailEntry>, StoreError> {
        let mut entries = self
            .scan(KIND_TRAIL, Some(tenant))
            .await?
            .into_iter()
            .map(decode::<TrailEntry>)
            .collect::<Result<Vec<_>, _>>()?;
        TrailEntry::sort_oldest_first(&mut entries);
        Ok(entries)
    }

    async fn reserve_mail(
        &self,
        tenant: &TenantId,
        key: &str,
        owner: &str,
        now: i64,
        stale_after: i64,
    ) -> Result<MailSlot, StoreError> {
        let pk = mail_key(tenant, key);
        let stale_before = now.saturating_sub(stale_after);
        for _ in 0..CLAIM_ATTEMPTS {
            // UpdateItem: SET touches only the reservation, and a sent mail is
            // never written here (the condition needs `sent` absent).
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(ATTR_PK, s(&pk))
                .update_expression(
                    "SET #kind = :kind, #tenant = :tenant, #key = :key, #owner = :owner, #reserved = :now",
                )
                .condition_expression(
                    "attribute_not_exists(#pk) OR (attribute_not_exists(#sent) \
                     AND (#owner = :owner OR #reserved < :stale_before))",
                )
                .expression_attribute_names("#pk", ATTR_PK)
                .expression_attribute_names("#kind", ATTR_KIND)
                .expression_attribute_names("#tenant", ATTR_TENANT)
                .expression_attribute_names("#key", ATTR_MAIL_KEY)
                .expression_attribute_names("#owner", ATTR_OWNER)
                .expression_attribute_names("#reserved", ATTR_RESERVED_AT)
                .expression_attribute_names("#sent", ATTR_SENT)
                .expression_attribute_values(":kind", s(KIND_MAIL))
                .expression_attribute_values(":tenant", s(tenant.as_str()))
                .expression_attribute_values(":key", s(key))
                .expression_attribute_values(":owner", s(owner))
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":stale_before", n(stale_before))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(MailSlot::Reserved),
                Err(error) => error,
            };
            let found = self.refused_update(&pk, error).await?;
            match found.map(decode::<MailRecord>).transpose()? {
                Some(MailRecord { sent: Some(sent), .. }) => {
                    return Ok(MailSlot::Sent { message_id: sent.message_id });
                }
                Some(held) if held.owner != owner && held.reserved_at >= stale_before => {
                    return Ok(MailSlot::HeldBy { owner: held.owner, since: held.reserved_at });
                }
                // Read after the refusal (an older server) and changed since: try again.
                _ => continue,
            }
        }
        Err(StoreError::Unavailable(unexpected(format!(
            "mail `{key}` of tenant {tenant} changed hands {CLAIM_ATTEMPTS} times while reserving it"
        ))))
    }

    async fn mail_sent(
        &self,
        tenant: &TenantId,
        key: &str,
        owner: &str,
        message_id: &str,
        now: i64,
    ) -> Result<MailMarked, StoreError> {
        let pk = mail_key(tenant, key);
        let sent = HashMap::from([("message_id".to_owned(), s(message_id)), ("sent_at".to_owned(), n(now))]);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ATTR_PK, s(&pk))
            // A missing item is created: the mail has gone out, and recording
            // that is what keeps it from going out again.
            .update_expression(
                "SET #kind = :kind, #tenant = :tenant, #key = :key, #owner = :owner, \
                 #reserved = if_not_exists(#reserved, :now), #sent = :sent",
            )
            // Only an unsent mail is written, so a retry changes nothing.
            .condition_expression("attribute_not_exists(#sent)")
            .expression_attribute_names("#kind", ATTR_KIND)
            .expression_attribute_names("#tenant", ATTR_TENANT)
            .expression_attribute_names("#key", ATTR_MAIL_KEY)
            .expression_attribute_names("#owner", ATTR_OWNER)
            .expression_attribute_names("#reserved", ATTR_RESERVED_AT)
            .expression_attribute_names("#sent", ATTR_SENT)
            .expression_attribute_values(":kind", s(KIND_MAIL))
            .expression_attribute_values(":tenant", s(tenant.as_str()))
            .expression_attribute_values(":key", s(key))
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":sent", AttributeValue::M(sent))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(MailMarked::Recorded),
            Err(error) => error,
        };
        let found = self.refused_update(&pk, error).await?;
        // Refused, so it was sent: `sent` is never removed.
        match found.map(decode::<MailRecord>).transpose()?.and_then(|record| record.sent) {
            Some(sent) if sent.message_id == message_id => Ok(MailMarked::Recorded),
            Some(sent) => Ok(MailMarked::SentBefore { message_id: sent.message_id }),
            None => Err(StoreError::Unavailable(unexpected(format!(
                "mail `{key}` of tenant {tenant} was sent when marking it and gone when read"
            )))),
        }
    }

    async fn reserve_trial(
        &self,
        reservation: &TrialReservation,
        now: i64,
    ) -> Result<TrialOffer, StoreError> {
        let pk = trial_key(&reservation.key);
        for _ in 0..CLAIM_ATTEMPTS {
            // A reservation lapses with its hold and the TTL removes it a day
            // later; a used trial has no TTL and is never reserved again.
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(ATTR_PK, s(&pk))
                .update_expression("SET #kind = :kind, #hold = :hold, #until = :until, #expires = :expires")
                .condition_expression(
                    "attribute_not_exists(#used) AND (attribute_not_exists(#hold) OR #until < :now)",
                )
                .expression_attribute_names("#kind", ATTR_KIND)
                .expression_attribute_names("#hold", ATTR_HOLD_ID)
                .expression_attribute_names("#until", ATTR_HOLD_UNTIL)
                .expression_attribute_names("#expires", ATTR_EXPIRES_AT)
                .expression_attribute_names("#used", ATTR_TRIAL_USED)
                .expression_attribute_values(":kind", s(KIND_TRIAL))
                .expression_attribute_values(":hold", s(reservation.hold.as_str()))
                .expression_attribute_values(":until", n(reservation.until))
                .expression_attribute_values(
                    ":expires",
                    n(reservation.until + TRIAL_RESERVATION_GRACE_SECONDS),
                )
                .expression_attribute_values(":now", n(now))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(TrialOffer::Reserved),
                Err(error) => error,
            };
            let found = self.refused_update(&pk, error).await?;
            match found.map(decode::<StoredTrial>).transpose()? {
                Some(StoredTrial { used: Some(used), .. }) => return Ok(TrialOffer::Used(used)),
                // Ours already (a retried request): kept as it is, not extended.
                Some(StoredTrial { hold_id: Some(ours), .. }) if ours == reservation.hold.as_str() => {
                    return Ok(TrialOffer::Reserved);
                }
                Some(StoredTrial { hold_id: Some(other), hold_until: Some(until), .. })
                    if other != reservation.hold.as_str() && until >= now =>
                {
                    return Ok(TrialOffer::InAnotherCheckout { until });
                }
                // Changed between the refusal and the read: try again.
                _ => continue,
            }
        }
        Err(StoreError::Unavailable(unexpected(format!(
            "trial {} changed hands {CLAIM_ATTEMPTS} times while reserving it",
            reservation.key
        ))))
    }

    async fn record_trial_use(&self, key: &TrialKey, used: &TrialUse) -> Result<TrialUse, StoreError> {
        let pk = trial_key(key);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ATTR_PK, s(&pk))
            .update_expression("SET #kind = :kind, #used = :used REMOVE #expires")
            .condition_expression("attribute_not_exists(#used)")
            .expression_attribute_names("#kind", ATTR_KIND)
            .expression_attribute_names("#used", ATTR_TRIAL_USED)
            .expression_attribute_names("#expires", ATTR_EXPIRES_AT)
            .expression_attribute_values(":kind", s(KIND_TRIAL))
            .expression_attribute_values(":used", used_attr(used)?)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(used.clone()),
            Err(error) => error,
        };
        let found = self.refused_update(&pk, error).await?;
        // Refused, so it was used: `used` is never removed.
        match found.map(decode::<StoredTrial>).transpose()?.and_then(|trial| trial.used) {
            Some(first) => Ok(first),
            None => Err(StoreError::Unavailable(unexpected(format!(
                "trial {key} was used when recording its use and not when read"
            )))),
        }
    }

    async fn mails(&self, tenant: &TenantId) -> Result<Vec<MailRecord>, StoreError> {
        let mut mails = self
            .scan(KIND_MAIL, Some(tenant))
            .await?
            .into_iter()
            .map(decode::<MailRecord>)
            .collect::<Result<Vec<_>, _>>()?;
        mails.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(mails)
    }
}

/// Creates the tenant table (on-demand, with the `by-subscription` GSI) and
/// waits until it is ACTIVE. A table that already exists is left as it is.
pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let key = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(|e| StoreError::Unavailable(e.into()))
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| StoreError::Unavailable(e.into()))
    };
    let index = GlobalSecondaryIndex::builder()
        .index_name(BY_SUBSCRIPTION_INDEX)
        .key_schema(key(ATTR_SUBSCRIPTION_ID, KeyType::Hash)?)
        .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
        .build()
        .map_err(|e| StoreError::Unavailable(e.into()))?;
    let created = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(ATTR_PK)?)
        .attribute_definitions(attribute(ATTR_SUBSCRIPTION_ID)?)
        .key_schema(key(ATTR_PK, KeyType::Hash)?)
        .global_secondary_indexes(index)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(SdkError::ServiceError(context)) if context.err().is_resource_in_use_exception() => {}
        Err(error) => return Err(StoreError::Unavailable(call_failed("DynamoDB CreateTable", error))),
    }
    for _ in 0..60 {
        let described = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(call_failed("DynamoDB DescribeTable", e)))?;
        if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(StoreError::Unavailable(unexpected(format!("table {name} did not become ACTIVE within a minute"))))
}
