//! Stripe's API through `async-stripe`: subscription-mode Checkout Sessions
//! and billing portal sessions ([`StripeGateway`], [`BillingPortal`]), and
//! subscriptions re-read ([`SubscriptionSource`]).
//!
//! Every call first waits its turn in a token bucket sized to Stripe's rate
//! limits ([`super::limit`]). A write is one attempt, bounded by a timeout:
//! whoever calls decides whether to try again (a Checkout Session carries its
//! idempotency key, so a retry makes the same session). A read is retried
//! here when Stripe says to slow down (429, `lock_timeout`), with backoff.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_checkout::CheckoutSessionMode;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionDiscounts, CreateCheckoutSessionLineItems,
    CreateCheckoutSessionSubscriptionData,
};
use stripe_client_core::{IdempotencyKey, RequestBuilder, RequestStrategy, StripeMethod, StripeRequest};

use super::limit::{Jitter, RandomJitter, RateLimit, RetryPolicy, TokenBucket};
use super::subscription::snapshot_from_wire;
use super::transport::{StripeCallError, StripeHttp};
use crate::config::{
    ConfigError, Lookup, STRIPE_SECRET_KEY, STRIPE_SECRET_KEY_PARAM, parse_parameter_name, required,
};
use crate::domain::{CustomerId, LookupKey, PromotionCode, PromotionOffer, SubscriptionId, TrialWithoutCard};
use crate::ports::{
    BillingError, BillingPortal, CheckoutSessionRequest, CreatedSession, Discount, MoneyBack, Refund,
    SecretStore, SoldPrice, StripeApiError, StripeGateway, SubscriptionSnapshot, SubscriptionSource,
};
use crate::stripe::{StripeMode, StripeSecretKey};

/// Where the API is, when not at Stripe (a local stand-in): optional.
pub const STRIPE_API_BASE: &str = "STRIPE_API_BASE";
/// Where a billing portal session sends the customer back to.
pub const BILLING_PORTAL_RETURN_URL: &str = "BILLING_PORTAL_RETURN_URL";

/// Stripe's API, unless [`STRIPE_API_BASE`] says otherwise.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";
/// How long one call may take, answer included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest message from Stripe kept in an error.
const MAX_MESSAGE_CHARS: usize = 300;

/// The Stripe API client, holding the stage's key.
pub struct StripeApi {
    client: StripeHttp,
    key: StripeSecretKey,
    api_base: String,
    portal_return_url: String,
    timeout: Duration,
    /// Stripe counts reads and writes apart.
    reads: TokenBucket,
    writes: TokenBucket,
    retry: RetryPolicy,
    jitter: Arc<dyn Jitter>,
}

impl fmt::Debug for StripeApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeApi")
            .field("key", &self.key)
            .field("api_base", &self.api_base)
            .field("portal_return_url", &self.portal_return_url)
            .field("timeout", &self.timeout)
            .field("rate_limit", &self.reads.limit())
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl StripeApi {
    /// A client for `key`, talking to `api_base` (Stripe's API when `None`;
    /// `http://` only on loopback, for a local stand-in) and sending portal
    /// customers back to `portal_return_url`.
    pub fn new(
        key: StripeSecretKey,
        api_base: Option<&str>,
        portal_return_url: &str,
    ) -> Result<Self, ConfigError> {
        let api_base = match api_base {
            None => DEFAULT_API_BASE.to_owned(),
            Some(raw) => {
                parse_api_base(raw).map_err(|reason| ConfigError::Invalid { var: STRIPE_API_BASE, reason })?
            }
        };
        let portal_return_url = parse_return_url(portal_return_url)
            .map_err(|reason| ConfigError::Invalid { var: BILLING_PORTAL_RETURN_URL, reason })?;
        let user_agent = format!("Stripe/v1 RustBindings tenancy/{}", env!("CARGO_PKG_VERSION"));
        // The key is ASCII by construction, so this is the user agent.
        let client = StripeHttp::new(key.expose(), &api_base, &user_agent)
            .map_err(|reason| ConfigError::Invalid { var: STRIPE_API_BASE, reason: one_line(&reason) })?;
        let limit = RateLimit::for_mode(key.mode());
        Ok(StripeApi {
            client,
            key,
            api_base,
            portal_return_url,
            timeout: DEFAULT_TIMEOUT,
            reads: TokenBucket::new(limit),
            writes: TokenBucket::new(limit),
            retry: RetryPolicy::default(),
            jitter: Arc::new(RandomJitter),
        })
    }

    /// Reads the configuration of a stage in `mode`: the key from
    /// [`STRIPE_SECRET_KEY_PARAM`] (an SSM SecureString's name) or, for local
    /// runs, [`STRIPE_SECRET_KEY`] (exactly one of them), refused if it is
    /// of the other mode; [`STRIPE_API_BASE`] (optional) and
    /// [`BILLING_PORTAL_RETURN_URL`]. No error shows the key.
    pub async fn from_lookup(
        env: &dyn Lookup,
        mode: StripeMode,
        store: &dyn SecretStore,
    ) -> Result<Self, ConfigError> {
        let key = match (env.get(STRIPE_SECRET_KEY), env.get(STRIPE_SECRET_KEY_PARAM)) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict(STRIPE_SECRET_KEY, STRIPE_SECRET_KEY_PARAM));
            }
            (Some(inline), None) => StripeSecretKey::for_mode(&inline, mode)
                .map_err(|e| ConfigError::Invalid { var: STRIPE_SECRET_KEY, reason: e.to_string() })?,
            (None, Some(name)) => {
                let name = parse_parameter_name(STRIPE_SECRET_KEY_PARAM, &name)?;
                let value = store.get_secret(&name).await?;
                StripeSecretKey::for_mode(value.expose(), mode).map_err(|e| ConfigError::Invalid {
                    var: STRIPE_SECRET_KEY_PARAM,
                    reason: format!("the key in `{name}`: {e}"),
                })?
            }
            (None, None) => return Err(ConfigError::Missing { var: STRIPE_SECRET_KEY_PARAM }),
        };
        let api_base = env.get(STRIPE_API_BASE);
        let return_url = required(env, BILLING_PORTAL_RETURN_URL)?;
        Self::new(key, api_base.as_deref(), &return_url)
    }

    /// Bounds each call by `timeout` instead of [`DEFAULT_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Holds reads and writes each to `limit` instead of Stripe's limit for
    /// the key's mode.
    pub fn with_rate_limit(mut self, limit: RateLimit) -> Self {
        self.reads = TokenBucket::new(limit);
        self.writes = TokenBucket::new(limit);
        self
    }

    /// Retries throttled reads by `retry` instead of [`RetryPolicy::default`].
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Draws the retries' jitter from `jitter` (tests).
    pub fn with_jitter(mut self, jitter: Arc<dyn Jitter>) -> Self {
        self.jitter = jitter;
        self
    }

    pub fn mode(&self) -> StripeMode {
        self.key.mode()
    }

    /// Where requests go (no trailing `/`).
    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    pub fn portal_return_url(&self) -> &str {
        &self.portal_return_url
    }

    pub(super) fn error(&self, err: StripeCallError) -> StripeApiError {
        map_error(err, &self.key, self.timeout)
    }

    /// A read, answered as JSON whatever the API version, retried while
    /// Stripe says to slow down and the retry policy allows.
    pub(super) async fn read_json(&self, request: &AsJson) -> Result<serde_json::Value, StripeCallError> {
        let started = tokio::time::Instant::now();
        let mut attempt = 0;
        loop {
            self.reads.acquire().await;
            attempt += 1;
            let error = match request.customize().timeout(self.timeout).send(&self.client).await {
                Ok(answer) => return to_serde(&answer),
                Err(error) => error,
            };
            if !is_throttled(&error) {
                return Err(error);
            }
            let Some(delay) = self.retry.backoff(attempt, started.elapsed(), self.jitter.as_ref()) else {
                return Err(error);
            };
            tracing::warn!(path = %request.path, attempt, delay_ms = delay.as_millis() as u64, "Stripe throttled a read; backing off");
            tokio::time::sleep(delay).await;
        }
    }
}

/// A request answered as JSON. Reads name no generated resource type
/// (those follow one API version, and each enables a module of
/// async-stripe); writes are encoded by async-stripe's request types, but
/// their answers, of which an id and a URL are used, are not read into its
/// generated objects (a Checkout Session's deserializer alone is hundreds of
/// KiB in the function's zip).
pub(super) struct AsJson {
    method: StripeMethod,
    path: String,
    query: Option<String>,
    body: Option<String>,
}

impl AsJson {
    pub(super) fn get(path: String, query: &str) -> Self {
        AsJson { method: StripeMethod::Get, path, query: Some(query.to_owned()), body: None }
    }

    /// A write whose form body is `fields`, percent-encoded as Stripe takes it.
    pub(super) fn form(method: StripeMethod, path: String, fields: &[(&str, &str)]) -> Self {
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (name, value) in fields {
            body.append_pair(name, value);
        }
        AsJson { method, path, query: None, body: Some(body.finish()) }
    }

    /// What async-stripe's `request` sends.
    fn encoded(request: &impl StripeRequest) -> Self {
        let built = request.build();
        AsJson { method: built.method, path: built.path, query: built.query, body: built.body }
    }
}

impl StripeRequest for AsJson {
    type Output = miniserde::json::Value;

    fn build(&self) -> RequestBuilder {
        let mut builder = RequestBuilder::new(self.method, self.path.clone());
        builder.query = self.query.clone();
        builder.body = self.body.clone();
        builder
    }
}

/// miniserde's value back to text, then to serde_json: answers are small
/// and this keeps one JSON model in our code.
fn to_serde(answer: &miniserde::json::Value) -> Result<serde_json::Value, StripeCallError> {
    serde_json::from_str(&miniserde::json::to_string(answer))
        .map_err(|e| StripeCallError::Unreadable(e.to_string()))
}

/// A string field of an answer, or why it is not there.
pub(super) fn answer_field(
    answer: &serde_json::Value,
    field: &str,
    what: &str,
) -> Result<String, StripeApiError> {
    answer.get(field).and_then(serde_json::Value::as_str).map(str::to_owned).ok_or_else(|| {
        StripeApiError::Unavailable(Box::new(CallFailed(format!(
            "Stripe answered a {what} without `{field}`"
        ))))
    })
}

/// Stripe asks the caller to slow down: a rate limit (429) or an object
/// locked by a concurrent request (`lock_timeout`).
fn is_throttled(error: &StripeCallError) -> bool {
    match error {
        StripeCallError::Status { status, code, .. } => {
            *status == 429 || code.as_deref() == Some("lock_timeout")
        }
        _ => false,
    }
}

pub(super) fn is_missing(error: &StripeCallError) -> bool {
    matches!(error, StripeCallError::Status { status: 404, code: Some(code), .. } if code == "resource_missing")
}

#[async_trait]
impl SubscriptionSource for StripeApi {
    async fn subscription(
        &self,
        id: &SubscriptionId,
    ) -> Result<Option<SubscriptionSnapshot>, StripeApiError> {
        // The items' prices come whole without asking (a subscription item's
        // `price` is not an expandable field); the latest invoice must be expanded.
        let request = AsJson::get(format!("/subscriptions/{id}"), "expand[0]=latest_invoice");
        let answer = match self.read_json(&request).await {
            Ok(answer) => answer,
            Err(error) if is_missing(&error) => return Ok(None),
            Err(error) => return Err(self.error(error)),
        };
        snapshot_from_wire(&answer).map(Some).map_err(|e| {
            StripeApiError::Unavailable(Box::new(CallFailed(format!("unreadable answer from Stripe: {e}"))))
        })
    }

    async fn live_subscriptions_with(
        &self,
        metadata_key: &str,
    ) -> Result<Vec<SubscriptionSnapshot>, StripeApiError> {
        // Stripe's list leaves out the canceled ones unless asked; it pages
        // by the last id read.
        let unreadable = |what: String| StripeApiError::Unavailable(Box::new(CallFailed(what)));
        let mut found = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let query = match &after {
                Some(id) => format!("limit=100&starting_after={id}"),
                None => "limit=100".to_owned(),
            };
            let answer = self
                .read_json(&AsJson::get("/subscriptions".to_owned(), &query))
                .await
                .map_err(|e| self.error(e))?;
            let data = answer
                .get("data")
                .and_then(serde_json::Value::as_array)
                .ok_or_else(|| unreadable("Stripe answered /subscriptions without `data`".into()))?;
            for wire in data {
                let snapshot = snapshot_from_wire(wire)
                    .map_err(|e| unreadable(format!("unreadable subscription from Stripe: {e}")))?;
                if snapshot.metadata.contains_key(metadata_key) {
                    found.push(snapshot);
                }
            }
            let more = answer.get("has_more").and_then(serde_json::Value::as_bool) == Some(true);
            match (more, data.last().and_then(|last| last.get("id")).and_then(serde_json::Value::as_str)) {
                (true, Some(last)) => after = Some(last.to_owned()),
                _ => return Ok(found),
            }
        }
    }
}

#[async_trait]
impl StripeGateway for StripeApi {
    async fn create_checkout_session(
        &self,
        request: &CheckoutSessionRequest,
    ) -> Result<CreatedSession, StripeApiError> {
        let idempotency_key =
            IdempotencyKey::new(&request.idempotency_key).map_err(|e| StripeApiError::Rejected {
                // What Stripe would answer; refused before sending.
                status: 400,
                code: None,
                message: e.to_string(),
            })?;
        let metadata: HashMap<String, String> =
            request.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut subscription_data = CreateCheckoutSessionSubscriptionData::new();
        subscription_data.metadata = Some(metadata.clone());
        subscription_data.trial_period_days = request.trial_days;
        let without_card = request.trial_without_card.filter(|_| request.trial_days.is_some());
        if let Some(behavior) = without_card {
            use stripe_checkout::checkout_session::{
                CreateCheckoutSessionSubscriptionDataTrialSettings as Settings,
                CreateCheckoutSessionSubscriptionDataTrialSettingsEndBehavior as EndBehavior,
                CreateCheckoutSessionSubscriptionDataTrialSettingsEndBehaviorMissingPaymentMethod as Missing,
            };
            let missing_payment_method = match behavior {
                TrialWithoutCard::Pause => Missing::Pause,
                TrialWithoutCard::Cancel => Missing::Cancel,
            };
            subscription_data.trial_settings =
                Some(Settings { end_behavior: EndBehavior { missing_payment_method } });
        }
        let mut line_item = CreateCheckoutSessionLineItems::new();
        line_item.price = Some(request.price_id.clone());
        line_item.quantity = Some(1);
        let mut create = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Subscription)
            .line_items(vec![line_item])
            .customer_email(request.customer_email.as_str())
            .success_url(request.success_url.as_str())
            .cancel_url(request.cancel_url.as_str())
            .metadata(metadata)
            .subscription_data(subscription_data);
        // Stripe refuses both at once: a code given, or a field to type one.
        match &request.discount {
            Discount::None => create = create.allow_promotion_codes(false),
            Discount::CustomerMayEnterCode => create = create.allow_promotion_codes(true),
            Discount::PromotionCode(id) => {
                let mut discount = CreateCheckoutSessionDiscounts::new();
                discount.promotion_code = Some(id.to_string());
                create = create.discounts(vec![discount]);
            }
        }
        if let Some(expires_at) = request.expires_at {
            create = create.expires_at(expires_at);
        }
        if without_card.is_some() {
            create = create.payment_method_collection(
                stripe_checkout::checkout_session::CreateCheckoutSessionPaymentMethodCollection::IfRequired,
            );
        }
        self.writes.acquire().await;
        let session = AsJson::encoded(&create)
            .customize()
            .request_strategy(RequestStrategy::Idempotent(idempotency_key))
            .timeout(self.timeout)
            .send(&self.client)
            .await
            .and_then(|answer| to_serde(&answer))
            .map_err(|e| self.error(e))?;
        let id = answer_field(&session, "id", "Checkout Session")?;
        match answer_field(&session, "url", "Checkout Session") {
            Ok(url) => Ok(CreatedSession { id, url }),
            Err(_) => Err(StripeApiError::Unavailable(
                format!("Stripe answered with session {id} but no url").into(),
            )),
        }
    }

    async fn create_portal_session(
        &self,
        customer: &CustomerId,
        return_url: &str,
    ) -> Result<String, StripeApiError> {
        self.writes.acquire().await;
        let create = CreateBillingPortalSession::new().customer(customer.as_str()).return_url(return_url);
        let session = AsJson::encoded(&create)
            .customize()
            .timeout(self.timeout)
            .send(&self.client)
            .await
            .and_then(|answer| to_serde(&answer))
            .map_err(|e| self.error(e))?;
        answer_field(&session, "url", "billing portal session")
    }
    async fn price_by_lookup_key(&self, lookup_key: &LookupKey) -> Result<Option<SoldPrice>, StripeApiError> {
        let prices = self.prices_by_lookup_keys(std::slice::from_ref(lookup_key), true).await?;
        Ok(prices
            .into_iter()
            .find(|p| p.lookup_key.as_ref() == Some(lookup_key))
            .map(|p| SoldPrice { id: p.id, product: p.product }))
    }

    async fn promotion_code(&self, code: &PromotionCode) -> Result<Option<PromotionOffer>, StripeApiError> {
        self.find_promotion_code(code).await
    }
}

impl StripeApi {
    /// A write, once, with `key` as its idempotency key.
    pub(super) async fn write_json(
        &self,
        request: &AsJson,
        key: &str,
    ) -> Result<serde_json::Value, StripeApiError> {
        let key = IdempotencyKey::new(key).map_err(|e| StripeApiError::Rejected {
            status: 400,
            code: None,
            message: e.to_string(),
        })?;
        self.writes.acquire().await;
        request
            .customize()
            .request_strategy(RequestStrategy::Idempotent(key))
            .timeout(self.timeout)
            .send(&self.client)
            .await
            .and_then(|answer| to_serde(&answer))
            .map_err(|e| self.error(e))
    }

    /// A list's `data`, from the first page. The lists read here (a
    /// subscription's paid invoices, an invoice's payments, a payment's
    /// refunds) hold a handful; more than a page is reported, not followed.
    pub(super) async fn list(
        &self,
        path: &str,
        query: &str,
    ) -> Result<Vec<serde_json::Value>, StripeApiError> {
        let answer = self
            .read_json(&AsJson::get(path.to_owned(), &format!("{query}&limit=100")))
            .await
            .map_err(|e| self.error(e))?;
        if answer.get("has_more").and_then(serde_json::Value::as_bool) == Some(true) {
            tracing::warn!(path, query, "Stripe list longer than one page: only the first 100 read");
        }
        match answer.get("data").and_then(serde_json::Value::as_array) {
            Some(data) => Ok(data.clone()),
            None => Err(StripeApiError::Unavailable(Box::new(CallFailed(format!(
                "Stripe answered {path} without `data`"
            ))))),
        }
    }

    /// The subscription's status, as Stripe holds it now (`None`: no such subscription).
    async fn subscription_status(&self, id: &SubscriptionId) -> Result<Option<String>, StripeApiError> {
        let request = AsJson::get(format!("/subscriptions/{id}"), "");
        match self.read_json(&request).await {
            Ok(answer) => Ok(Some(answer_field(&answer, "status", "subscription")?)),
            Err(error) if is_missing(&error) => Ok(None),
            Err(error) => Err(self.error(error)),
        }
    }

    /// The refunds of `payment_intent` that stand (not failed or canceled).
    async fn standing_refunds(
        &self,
        payment_intent: &str,
        invoice: &str,
    ) -> Result<Vec<Refund>, StripeApiError> {
        let refunds = self.list("/refunds", &format!("payment_intent={payment_intent}")).await?;
        Ok(refunds
            .iter()
            .filter_map(|r| refund_from_wire(r, invoice))
            .filter(|r| r.status != "failed" && r.status != "canceled")
            .collect())
    }
}

impl StripeApi {
    /// An event as Stripe keeps it (30 days), for replaying it; `None` when
    /// Stripe has no such event.
    pub async fn event(
        &self,
        id: &crate::stripe::StripeEventId,
    ) -> Result<Option<serde_json::Value>, StripeApiError> {
        match self.read_json(&AsJson::get(format!("/events/{id}"), "")).await {
            Ok(event) => Ok(Some(event)),
            Err(error) if is_missing(&error) => Ok(None),
            Err(error) => Err(self.error(error)),
        }
    }
}

/// A refund as Stripe answers it, if it has the fields one always has.
fn refund_from_wire(refund: &serde_json::Value, invoice: &str) -> Option<Refund> {
    let text = |field: &str| refund.get(field).and_then(serde_json::Value::as_str).map(str::to_owned);
    Some(Refund {
        id: text("id")?,
        payment_intent: text("payment_intent")?,
        invoice: invoice.to_owned(),
        amount: refund.get("amount")?.as_i64()?,
        currency: text("currency")?,
        status: text("status")?,
    })
}

#[async_trait]
impl MoneyBack for StripeApi {
    async fn cancel_subscription(&self, id: &SubscriptionId) -> Result<(), StripeApiError> {
        let ended = |status: &str| status == "canceled" || status == "incomplete_expired";
        match self.subscription_status(id).await? {
            None => {
                return Err(StripeApiError::Rejected {
                    status: 404,
                    code: Some("resource_missing".into()),
                    message: format!("Stripe has no subscription {id}"),
                });
            }
            Some(status) if ended(&status) => return Ok(()),
            Some(_) => {}
        }
        // No proration and no final invoice: nothing more is charged.
        let cancel = AsJson::form(StripeMethod::Delete, format!("/subscriptions/{id}"), &[]);
        match self.write_json(&cancel, &format!("cancel-{id}")).await {
            Ok(_) => Ok(()),
            // Cancelled by someone else since it was read: what was asked for.
            Err(refused @ StripeApiError::Rejected { .. }) => match self.subscription_status(id).await? {
                Some(status) if ended(&status) => Ok(()),
                _ => Err(refused),
            },
            Err(other) => Err(other),
        }
    }

    async fn refund_subscription(
        &self,
        id: &SubscriptionId,
        paid_since: Option<i64>,
        tenant: &str,
    ) -> Result<Vec<Refund>, StripeApiError> {
        let mut refunds = Vec::new();
        for invoice in self.list("/invoices", &format!("subscription={id}&status=paid")).await? {
            let invoice_id = answer_field(&invoice, "id", "invoice")?;
            let paid_at = invoice.pointer("/status_transitions/paid_at").and_then(serde_json::Value::as_i64);
            let in_range = paid_since.is_none_or(|since| paid_at.is_some_and(|at| at >= since));
            if !in_range
                || invoice.get("amount_paid").and_then(serde_json::Value::as_i64).unwrap_or_default() <= 0
            {
                continue;
            }
            for payment in
                self.list("/invoice_payments", &format!("invoice={invoice_id}&status=paid")).await?
            {
                // Payments made out of band (`type: charge` without a
                // PaymentIntent) are left to the operator.
                let Some(payment_intent) = payment
                    .pointer("/payment/payment_intent")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
                else {
                    continue;
                };
                let paid = payment.get("amount_paid").and_then(serde_json::Value::as_i64).unwrap_or_default();
                let standing = self.standing_refunds(&payment_intent, &invoice_id).await?;
                if standing.iter().map(|r| r.amount).sum::<i64>() < paid {
                    let create = AsJson::form(
                        StripeMethod::Post,
                        "/refunds".to_owned(),
                        &[
                            ("payment_intent", payment_intent.as_str()),
                            ("reason", "requested_by_customer"),
                            ("metadata[tenant_id]", tenant),
                        ],
                    );
                    match self.write_json(&create, &format!("refund-{payment_intent}")).await {
                        Ok(_) => {}
                        // Refunded since it was read (a concurrent run, or the operator).
                        Err(StripeApiError::Rejected { code: Some(code), .. })
                            if code == "charge_already_refunded" => {}
                        Err(other) => return Err(other),
                    }
                    refunds.extend(self.standing_refunds(&payment_intent, &invoice_id).await?);
                } else {
                    refunds.extend(standing);
                }
            }
        }
        Ok(refunds)
    }
}

/// A portal session per customer, returning to the configured URL.
#[async_trait]
impl BillingPortal for StripeApi {
    async fn portal_url(&self, customer: &CustomerId) -> Result<String, BillingError> {
        self.create_portal_session(customer, &self.portal_return_url).await.map_err(|e| match e {
            StripeApiError::Unavailable(source) => BillingError::Unavailable(source),
            refused @ (StripeApiError::Rejected { .. } | StripeApiError::Unauthorized { .. }) => {
                BillingError::Rejected(refused.to_string())
            }
        })
    }
}

/// Why a call that may succeed later did not (the `Unavailable` cause).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct CallFailed(pub(super) String);

/// Stripe's answers, sorted by what the caller can do about them:
/// network trouble, timeouts, 409 (a concurrent request with the same
/// idempotency key), 429 and 5xx are worth retrying; 401/403 are the key's
/// fault; any other 4xx is Stripe refusing this request, with its code and
/// message (one line, never the key).
fn map_error(err: StripeCallError, key: &StripeSecretKey, timeout: Duration) -> StripeApiError {
    let unavailable = |why: String| StripeApiError::Unavailable(Box::new(CallFailed(why)));
    match err {
        StripeCallError::Status { status, kind, code, message } => {
            let message = message.as_deref().map(|m| scrub(m, key));
            match status {
                401 | 403 => StripeApiError::Unauthorized { status },
                409 | 429 | 500..=599 => {
                    let what =
                        [code.as_deref(), message.as_deref()].into_iter().flatten().collect::<Vec<_>>();
                    let why = format!("HTTP {status} from Stripe: {}", what.join(": "))
                        .trim_end_matches(": ")
                        .to_owned();
                    match status {
                        // Stripe's rate limit: waited out, not counted as a failure.
                        429 => StripeApiError::Unavailable(Box::new(crate::ports::Throttled(Box::new(
                            CallFailed(why),
                        )))),
                        _ => unavailable(why),
                    }
                }
                // A 4xx that is not Stripe's error envelope (a proxy's page) says nothing of the request.
                400..=499 if kind.is_none() && code.is_none() && message.is_none() => {
                    unavailable(format!("HTTP {status} from something other than Stripe's API"))
                }
                400..=499 => StripeApiError::Rejected {
                    status,
                    code,
                    message: message.or(kind).unwrap_or_else(|| format!("HTTP {status}")),
                },
                _ => unavailable(format!("unexpected HTTP {status} from Stripe")),
            }
        }
        StripeCallError::Timeout => {
            unavailable(format!("no answer from Stripe within {} ms", timeout.as_millis()))
        }
        StripeCallError::Transport(reason) => {
            unavailable(format!("cannot reach Stripe: {}", scrub(&reason, key)))
        }
        StripeCallError::Unreadable(reason) => {
            unavailable(format!("unreadable answer from Stripe: {}", scrub(&reason, key)))
        }
    }
}

/// One line of at most [`MAX_MESSAGE_CHARS`], without the key.
fn scrub(text: &str, key: &StripeSecretKey) -> String {
    one_line(&text.replace(key.expose(), "***"))
}

fn one_line(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > MAX_MESSAGE_CHARS {
        let cut: String = line.chars().take(MAX_MESSAGE_CHARS).collect();
        format!("{cut}…")
    } else {
        line
    }
}

/// An origin such as `https://api.stripe.com`; plain `http://` only on
/// loopback, so the key never crosses a network in the clear.
fn parse_api_base(raw: &str) -> Result<String, String> {
    let url = raw.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://").filter(|rest| is_loopback(rest)))
        .ok_or_else(|| {
            format!(
                "expected https://… (or http:// on localhost/127.0.0.1), got `{}`",
                url.chars().take(80).collect::<String>()
            )
        })?;
    let host_and_port_only =
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    if host_and_port_only {
        Ok(url.to_owned())
    } else {
        Err(format!(
            "expected a scheme, host and port only, got `{}`",
            url.chars().take(80).collect::<String>()
        ))
    }
}

/// Where a portal customer goes back to: `https://…`, or `http://` on
/// loopback for local runs.
fn parse_return_url(raw: &str) -> Result<String, String> {
    let url = raw.trim();
    let after_scheme =
        url.strip_prefix("https://").or_else(|| url.strip_prefix("http://").filter(|rest| is_loopback(rest)));
    match after_scheme {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !url.contains(char::is_whitespace) => {
            Ok(url.to_owned())
        }
        _ => Err("expected an https:// URL (http:// only on localhost/127.0.0.1)".into()),
    }
}

/// Whether `host…` (what follows `http://`) names this machine.
fn is_loopback(after_scheme: &str) -> bool {
    let host = after_scheme.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::local::InMemorySecretStore;
    use crate::config::env_of;

    const TEST_KEY: &str = "sk_test_51HabcSecretKeyMaterial01";
    const LIVE_KEY: &str = "sk_live_51HabcSecretKeyMaterial01";

    fn key() -> StripeSecretKey {
        StripeSecretKey::parse(TEST_KEY).unwrap()
    }

    #[test]
    fn api_base_is_an_origin_and_plain_http_stays_on_this_machine() {
        assert_eq!(parse_api_base("https://api.stripe.com/").unwrap(), "https://api.stripe.com");
        assert_eq!(parse_api_base("http://127.0.0.1:12111").unwrap(), "http://127.0.0.1:12111");
        assert_eq!(parse_api_base("http://localhost:12111").unwrap(), "http://localhost:12111");
        assert_eq!(parse_api_base("http://[::1]:12111").unwrap(), "http://[::1]:12111");
        for bad in ["http://stripe.example.com", "api.stripe.com", "https://", "https://a/b", "ftp://x"] {
            assert!(parse_api_base(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn return_url_is_https_or_local() {
        assert!(parse_return_url("https://example.com/account").is_ok());
        assert!(parse_return_url("http://localhost:3000/account").is_ok());
        assert!(parse_return_url("http://127.0.0.1/account").is_ok());
        for bad in ["", "http://example.com/account", "https://", "https:///x", "https://a b", "example.com"]
        {
            assert!(parse_return_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn new_names_each_bad_variable() {
        let err = StripeApi::new(key(), Some("http://stripe.example.com"), "https://e.com").unwrap_err();
        assert!(err.to_string().starts_with("configuration: STRIPE_API_BASE is invalid"), "{err}");
        let err = StripeApi::new(key(), None, "http://e.com").unwrap_err();
        assert!(err.to_string().starts_with("configuration: BILLING_PORTAL_RETURN_URL is invalid"), "{err}");
        let api = StripeApi::new(key(), None, "https://e.com/account").unwrap();
        assert_eq!(api.api_base(), DEFAULT_API_BASE);
        assert_eq!(api.mode(), StripeMode::Test);
        assert!(!format!("{api:?}").contains("KeyMaterial"), "{api:?}");
    }

    #[tokio::test]
    async fn from_lookup_reads_the_key_inline_or_from_the_store_and_guards_the_mode() {
        let store = InMemorySecretStore::default();
        let ok = StripeApi::from_lookup(
            &env_of(&[(STRIPE_SECRET_KEY, TEST_KEY), (BILLING_PORTAL_RETURN_URL, "https://e.com/a")]),
            StripeMode::Test,
            &store,
        )
        .await
        .unwrap();
        assert_eq!(ok.portal_return_url(), "https://e.com/a");

        store.put("/tenancy/live/stripe-secret-key", TEST_KEY);
        let err = StripeApi::from_lookup(
            &env_of(&[
                (STRIPE_SECRET_KEY_PARAM, "/tenancy/live/stripe-secret-key"),
                (BILLING_PORTAL_RETURN_URL, "https://e.com/a"),
            ]),
            StripeMode::Live,
            &store,
        )
        .await
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "configuration: STRIPE_SECRET_KEY_PARAM is invalid: the key in `/tenancy/live/stripe-secret-key`: \
             Stripe mode is live but the key is a test key; use the live-mode key for this stage"
        );

        let err = |pairs: &[(&str, &str)]| {
            let env = env_of(pairs);
            async move {
                let store = InMemorySecretStore::default();
                StripeApi::from_lookup(&env, StripeMode::Test, &store).await.unwrap_err()
            }
        };
        let live_in_test =
            err(&[(STRIPE_SECRET_KEY, LIVE_KEY), (BILLING_PORTAL_RETURN_URL, "https://e.com")])
                .await
                .to_string();
        assert!(live_in_test.contains("STRIPE_SECRET_KEY is invalid") && live_in_test.contains("live key"));
        assert!(!live_in_test.contains("SecretKeyMaterial"), "{live_in_test}");
        let both = err(&[(STRIPE_SECRET_KEY, TEST_KEY), (STRIPE_SECRET_KEY_PARAM, "/p")]).await;
        assert!(matches!(both, ConfigError::Conflict(STRIPE_SECRET_KEY, STRIPE_SECRET_KEY_PARAM)));
        let none = err(&[(BILLING_PORTAL_RETURN_URL, "https://e.com")]).await;
        assert!(matches!(none, ConfigError::Missing { var: STRIPE_SECRET_KEY_PARAM }));
        let no_return = err(&[(STRIPE_SECRET_KEY, TEST_KEY)]).await;
        assert!(matches!(no_return, ConfigError::Missing { var: BILLING_PORTAL_RETURN_URL }));
        let missing_param =
            err(&[(STRIPE_SECRET_KEY_PARAM, "/nope"), (BILLING_PORTAL_RETURN_URL, "https://e.com")]).await;
        assert!(matches!(missing_param, ConfigError::SecretStore(_)));
    }

    #[test]
    fn errors_are_one_line_and_never_hold_the_key() {
        let key = key();
        let scrubbed = scrub(&format!("bad key {TEST_KEY}\n  second line"), &key);
        assert_eq!(scrubbed, "bad key *** second line");
        let long = "x".repeat(1000);
        assert_eq!(one_line(&long).chars().count(), MAX_MESSAGE_CHARS + 1);
        let timeout = map_error(StripeCallError::Timeout, &key, Duration::from_millis(1500));
        assert!(matches!(timeout, StripeApiError::Unavailable(ref e) if e.to_string().contains("1500 ms")));
    }
}
