//! The local server's Stripe: the API's reads in Stripe's wire format
//! (`GET /v1/subscriptions/{id}`, invoices, customers, events), and the
//! developer's levers (`POST /local/stripe/...`): paying a checkout and
//! changing a subscription, each delivering the events Stripe sends for it
//! to the webhook, signed, optionally duplicated, reordered and spaced out.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tenancy::adapters::local::{
    Direction, EVENT_API_VERSION, LocalStripe, LocalStripeError, PayOptions, SubscriptionAction, TrialOutcome,
};
use tenancy::domain::BillingPeriod;
use tenancy::ingress::WebhookAnswer;

use crate::local::{LocalSignup, LocalStack};

/// Stripe's error body; `code` as Stripe names it (`resource_missing`, …).
pub fn stripe_error(
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) -> Response {
    let body = json!({"error": {"type": kind, "code": code, "message": message, "param": param}});
    (status, axum::Json(body)).into_response()
}

/// A test-mode secret or restricted key, as the stand-in only runs in test mode.
pub fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer sk_test_") || v.starts_with("Bearer rk_test_"))
}

fn invalid_key() -> Response {
    stripe_error(StatusCode::UNAUTHORIZED, "invalid_request_error", None, "Invalid API Key provided", None)
}

fn missing(kind: &str, id: &str) -> Response {
    stripe_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        Some("resource_missing"),
        &format!("No such {kind}: '{id}'"),
        Some("id"),
    )
}

/// The version the caller asked for, else the account's.
fn api_version(headers: &HeaderMap) -> String {
    headers
        .get("stripe-version")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| EVENT_API_VERSION.to_owned(), str::to_owned)
}

/// The `expand[]` (or `expand[0]`, …) paths of a query string.
fn expansions(query: Option<&str>) -> Vec<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(key, _)| key == "expand[]" || (key.starts_with("expand[") && key.ends_with(']')))
        .map(|(_, value)| value.into_owned())
        .collect()
}

fn local_stripe(stack: &LocalStack) -> Option<&LocalSignup> {
    stack.signup.as_ref()
}

fn no_local_stripe() -> Response {
    stripe_error(StatusCode::NOT_FOUND, "invalid_request_error", None, "no local Stripe", None)
}

/// A `GET /v1/…/{id}` of the stand-in: the object `read` finds, in Stripe's
/// wire format, or Stripe's 404 `resource_missing` for `kind`.
fn read_object(
    stack: &LocalStack,
    headers: &HeaderMap,
    kind: &str,
    id: &str,
    read: impl FnOnce(&LocalStripe) -> Option<Value>,
) -> Response {
    if local_stripe(stack).is_none() {
        return no_local_stripe();
    }
    if !authorized(headers) {
        return invalid_key();
    }
    match read(&stack.stripe) {
        Some(object) => axum::Json(object).into_response(),
        None => missing(kind, id),
    }
}

/// `GET /v1/subscriptions/{id}`. A subscription item's `price` always comes
/// whole (it is not expandable at Stripe), so `items.data.price` is accepted
/// and changes nothing; `latest_invoice` is an id unless expanded.
pub async fn get_subscription(
    State(stack): State<Arc<LocalStack>>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let expand_invoice = expansions(uri.query()).iter().any(|path| path == "latest_invoice");
    let version = api_version(&headers);
    read_object(&stack, &headers, "subscription", &id, |stripe| {
        stripe.subscription_json(&id, expand_invoice, &version)
    })
}

/// `GET /v1/invoices/{id}`.
pub async fn get_invoice(
    State(stack): State<Arc<LocalStack>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let version = api_version(&headers);
    read_object(&stack, &headers, "invoice", &id, |stripe| stripe.invoice_json(&id, &version))
}

/// `GET /v1/customers/{id}`.
pub async fn get_customer(
    State(stack): State<Arc<LocalStack>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    read_object(&stack, &headers, "customer", &id, |stripe| stripe.customer_json(&id))
}

/// `GET /v1/events/{id}`: what `tenantctl` replays from.
pub async fn get_event(
    State(stack): State<Arc<LocalStack>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    read_object(&stack, &headers, "event", &id, |stripe| stripe.event_json(&id))
}

/// The value of `name` in a query string.
fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// A `GET /v1/…` list of the stand-in.
fn read_list(stack: &LocalStack, headers: &HeaderMap, read: impl FnOnce(&LocalStripe) -> Value) -> Response {
    if local_stripe(stack).is_none() {
        return no_local_stripe();
    }
    if !authorized(headers) {
        return invalid_key();
    }
    axum::Json(read(&stack.stripe)).into_response()
}

/// `GET /v1/invoices?subscription=…&status=…`.
pub async fn list_invoices(
    State(stack): State<Arc<LocalStack>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let (subscription, status) =
        (query_value(uri.query(), "subscription"), query_value(uri.query(), "status"));
    let version = api_version(&headers);
    read_list(&stack, &headers, |stripe| {
        stripe.invoice_list_json(subscription.as_deref(), status.as_deref(), &version)
    })
}

/// `GET /v1/subscriptions?status=…&limit=…&starting_after=…` (a limit
/// of 10 unless given, as at Stripe).
pub async fn list_subscriptions_api(
    State(stack): State<Arc<LocalStack>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let query = uri.query();
    let status = query_value(query, "status");
    let limit = match query_value(query, "limit").map(|raw| raw.parse::<usize>()) {
        None => 10,
        Some(Ok(limit)) if (1..=100).contains(&limit) => limit,
        Some(_) => {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
                "Invalid integer: limit must be between 1 and 100.",
                Some("limit"),
            );
        }
    };
    let after = query_value(query, "starting_after");
    let version = api_version(&headers);
    read_list(&stack, &headers, |stripe| {
        stripe.subscription_list_json(status.as_deref(), limit, after.as_deref(), &version)
    })
}

/// `GET /v1/invoice_payments?invoice=…` (Stripe requires the invoice here).
pub async fn list_invoice_payments(
    State(stack): State<Arc<LocalStack>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let Some(invoice) = query_value(uri.query(), "invoice") else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            "Missing required param: invoice.",
            Some("invoice"),
        );
    };
    read_list(&stack, &headers, |stripe| stripe.invoice_payments_json(&invoice))
}

/// `GET /v1/refunds?payment_intent=…`.
pub async fn list_refunds(
    State(stack): State<Arc<LocalStack>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let payment_intent = query_value(uri.query(), "payment_intent");
    read_list(&stack, &headers, |stripe| stripe.refund_list_json(payment_intent.as_deref()))
}

/// `POST /v1/refunds` of a whole PaymentIntent, with Stripe's errors.
pub async fn create_refund(
    State(stack): State<Arc<LocalStack>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if local_stripe(&stack).is_none() {
        return no_local_stripe();
    }
    if !authorized(&headers) {
        return invalid_key();
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    let Some(payment_intent) = field("payment_intent") else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            "One of the following params should be provided for this request: payment_intent or charge.",
            Some("payment_intent"),
        );
    };
    let metadata = form
        .iter()
        .filter_map(|(key, value)| {
            Some((key.strip_prefix("metadata[")?.strip_suffix(']')?.to_owned(), value.clone()))
        })
        .collect();
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    match stack.stripe.create_refund(&payment_intent, field("reason").as_deref(), metadata, key) {
        Ok(refund) => axum::Json(refund).into_response(),
        Err(error) => stripe_refusal(&error, "payment_intent"),
    }
}

/// `DELETE /v1/subscriptions/{id}`: cancelled now, the events Stripe sends
/// for it delivered to the webhook as Stripe would.
pub async fn cancel_subscription(
    State(stack): State<Arc<LocalStack>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(signup) = local_stripe(&stack) else { return no_local_stripe() };
    if !authorized(&headers) {
        return invalid_key();
    }
    let events = match stack.stripe.act(&id, &SubscriptionAction::Cancel) {
        Ok(events) => events,
        Err(error) => return stripe_refusal(&error, "id"),
    };
    deliver(&stack, signup, &events, &DeliveryOptions::default()).await;
    let version = api_version(&headers);
    match stack.stripe.subscription_json(&id, false, &version) {
        Some(object) => axum::Json(object).into_response(),
        None => missing("subscription", &id),
    }
}

/// A stand-in refusal in Stripe's error envelope.
fn stripe_refusal(error: &LocalStripeError, param: &str) -> Response {
    let message = error.to_string();
    match error {
        LocalStripeError::NoSuchObject { .. } => stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("resource_missing"),
            &message,
            Some(param),
        ),
        LocalStripeError::InvalidRequest { param, .. } => {
            stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", None, &message, Some(param))
        }
        LocalStripeError::NoSuchSubscription(_) | LocalStripeError::NoSuchPayment(_) => stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("resource_missing"),
            &message,
            Some(param),
        ),
        LocalStripeError::AlreadyRefunded(_) => stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("charge_already_refunded"),
            &message,
            Some(param),
        ),
        LocalStripeError::IdempotencyMismatch => {
            stripe_error(StatusCode::BAD_REQUEST, "idempotency_error", None, &message, None)
        }
        LocalStripeError::Io(_) | LocalStripeError::Catalog(_) => {
            stripe_error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", None, &message, None)
        }
        _ => stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", None, &message, Some(param)),
    }
}

/// How events reach the webhook: Stripe delivers at least once, late and
/// in any order; these make a local run do the same on purpose.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DeliveryOptions {
    /// Each event is delivered this many extra times.
    pub duplicate: u32,
    /// Deliveries are shuffled.
    pub reorder: bool,
    /// The shuffle's seed (one is drawn from the clock and reported if not given).
    pub seed: Option<u64>,
    /// Milliseconds between deliveries.
    pub delay_ms: u64,
}

/// At most this many deliveries per request: a typo in `--duplicate` must
/// not keep the server busy for hours.
const MAX_DELIVERIES: usize = 1000;

/// The order events are delivered in: each `1 + duplicate` times, shuffled
/// if asked. Returns indexes into `events`.
pub fn delivery_order(count: usize, duplicate: u32, shuffle_seed: Option<u64>) -> Vec<usize> {
    let copies = usize::try_from(duplicate).unwrap_or(usize::MAX).saturating_add(1);
    let mut order: Vec<usize> =
        (0..count).flat_map(|i| std::iter::repeat_n(i, copies)).take(MAX_DELIVERIES).collect();
    if let Some(seed) = shuffle_seed {
        // Seedable, so a failing order can be replayed.
        tenancy::adapters::faults::shuffle(&mut order, seed);
    }
    order
}

/// How often the local Stripe delivers an event the webhook answered 5xx.
const STRIPE_DELIVERIES: u32 = 10;

/// Signs each delivery as Stripe does and hands it to the webhook handler.
/// Returns what was delivered and the seed a shuffle used.
pub async fn deliver(
    stack: &LocalStack,
    signup: &LocalSignup,
    events: &[Value],
    options: &DeliveryOptions,
) -> (Vec<Value>, Option<u64>) {
    let seed = options.reorder.then(|| {
        options.seed.unwrap_or_else(|| u64::try_from(signup.clock.now_millis()).unwrap_or_default())
    });
    let mut deliveries = Vec::new();
    for (n, index) in delivery_order(events.len(), options.duplicate, seed).into_iter().enumerate() {
        if n > 0 && options.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(options.delay_ms)).await;
        }
        let event = &events[index];
        let (answer, attempts) = deliver_one(stack, signup, &event.to_string()).await;
        deliveries.push(json!({
            "event_id": event["id"],
            "type": event["type"],
            "webhook_status": answer.status.as_u16(),
            "webhook_answer": serde_json::from_str::<Value>(&answer.body).unwrap_or(Value::Null),
            "attempts": attempts,
        }));
    }
    (deliveries, seed)
}

/// One event, signed as Stripe does, delivered to the webhook; a 5xx answer
/// is delivered again, as Stripe retries (for up to three days, with
/// backoff; here a few times, at the local scale). Returns the last answer
/// and how many deliveries it took.
pub async fn deliver_one(stack: &LocalStack, signup: &LocalSignup, body: &str) -> (WebhookAnswer, u32) {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut headers = HeaderMap::new();
        let signature = signup.webhook_secret.sign_header(signup.clock.now_unix(), body.as_bytes());
        if let Ok(value) = axum::http::HeaderValue::from_str(&signature) {
            headers.insert("stripe-signature", value);
        }
        let answer = stack.deliver(&headers, body.as_bytes()).await;
        if !answer.status.is_server_error() || attempts >= STRIPE_DELIVERIES {
            return (answer, attempts);
        }
        tokio::time::sleep(Duration::from_secs_f64(60.0 * stack.time_scale)).await;
    }
}

fn local_error(error: &LocalStripeError) -> Response {
    let status = match error {
        LocalStripeError::NoSuchSession(_)
        | LocalStripeError::NoSuchSubscription(_)
        | LocalStripeError::NoSuchPayment(_)
        | LocalStripeError::NoSuchObject { .. } => StatusCode::NOT_FOUND,
        LocalStripeError::AlreadyRefunded(_)
        | LocalStripeError::IdempotencyMismatch
        | LocalStripeError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
        LocalStripeError::Refused { .. } | LocalStripeError::Expired(_) => StatusCode::CONFLICT,
        LocalStripeError::UnknownPrice(_)
        | LocalStripeError::NoPrice { .. }
        | LocalStripeError::UnknownPlan(_) => StatusCode::BAD_REQUEST,
        LocalStripeError::Io(_) | LocalStripeError::Catalog(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, axum::Json(json!({"error": tenancy::telemetry::error_chain(error)}))).into_response()
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": message}))).into_response()
}

/// What `POST /local/stripe/checkout/{id}/pay` takes, in its query string.
#[derive(Debug, Default)]
pub struct PayQuery {
    /// Start with a trial of this many days (`trial_days=N`).
    pub trial_days: Option<u32>,
    /// Deliver every event paying makes (`customer.created`,
    /// `customer.subscription.created`, `invoice.paid`, then
    /// `checkout.session.completed`); by default only the last, as before
    /// (`all_events=true`).
    pub all_events: bool,
    /// `duplicate`, `reorder`, `seed`, `delay_ms`.
    pub delivery: DeliveryOptions,
}

impl PayQuery {
    pub fn parse(query: Option<&str>) -> Result<Self, String> {
        let mut parsed = PayQuery::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let number =
                |what: &str| value.parse::<u64>().map_err(|_| format!("`{what}` must be a whole number"));
            match key.as_ref() {
                "trial_days" => {
                    parsed.trial_days =
                        Some(u32::try_from(number("trial_days")?).map_err(|_| "`trial_days` is too large")?)
                }
                "all_events" => parsed.all_events = value == "true",
                "duplicate" => {
                    parsed.delivery.duplicate =
                        u32::try_from(number("duplicate")?).map_err(|_| "`duplicate` is too large")?
                }
                "reorder" => parsed.delivery.reorder = value == "true",
                "seed" => parsed.delivery.seed = Some(number("seed")?),
                "delay_ms" => parsed.delivery.delay_ms = number("delay_ms")?,
                other => return Err(format!("unknown parameter `{other}`")),
            }
        }
        Ok(parsed)
    }
}

/// `POST /local/stripe/checkout/{id}/pay`: the customer pays; Stripe's
/// events are signed and delivered to the webhook. The answer keeps
/// `event_id`, `webhook_status` and `webhook_answer` of the
/// `checkout.session.completed` delivery, and lists every delivery.
pub async fn pay(
    State(stack): State<Arc<LocalStack>>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
) -> Response {
    let Some(signup) = local_stripe(&stack) else {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"error": "the checkout API is not configured"})))
            .into_response();
    };
    let query = match PayQuery::parse(uri.query()) {
        Ok(query) => query,
        Err(message) => return bad_request(&message),
    };
    let events = match stack.stripe.pay_with(&id, PayOptions { trial_days: query.trial_days }) {
        Ok(events) => events,
        Err(error) => return local_error(&error),
    };
    let delivered: Vec<Value> = if query.all_events {
        events.clone()
    } else {
        events.iter().filter(|e| e["type"] == "checkout.session.completed").cloned().collect()
    };
    let (deliveries, seed) = deliver(&stack, signup, &delivered, &query.delivery).await;
    let completed =
        deliveries.iter().find(|d| d["type"] == "checkout.session.completed").cloned().unwrap_or_default();
    let session = events.iter().find(|e| e["type"] == "checkout.session.completed");
    axum::Json(json!({
        "event_id": completed["event_id"],
        "webhook_status": completed["webhook_status"],
        "webhook_answer": completed["webhook_answer"],
        "customer": session.map(|e| e["data"]["object"]["customer"].clone()),
        "subscription": session.map(|e| e["data"]["object"]["subscription"].clone()),
        "events": events.iter().map(|e| json!({"id": e["id"], "type": e["type"]})).collect::<Vec<_>>(),
        "deliveries": deliveries,
        "seed": seed,
    }))
    .into_response()
}

/// What `POST /local/stripe/subscriptions/{id}/{action}` takes.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ActionRequest {
    /// For `change-plan`, `upgrade`, `downgrade`.
    pub plan: Option<String>,
    /// `monthly`, `annual`, `biennial` or `triennial`; the current term when absent.
    pub billing: Option<String>,
    /// For `trial-ends`: `on-file` (default: the card the checkout took is
    /// charged; a trial taken without one ends as its plan says), `pay` (a
    /// card was added), `fail`, `pause` or `cancel`.
    pub then: Option<String>,
    #[serde(flatten)]
    pub delivery: DeliveryOptions,
}

/// The names the endpoint and `tenantctl local subscription` accept.
pub const ACTIONS: &[&str] = &[
    "change-plan",
    "upgrade",
    "downgrade",
    "card-fails",
    "card-recovers",
    "unpaid",
    "pause",
    "resume",
    "cancel",
    "trial-will-end",
    "trial-ends",
];

pub fn parse_action(name: &str, request: &ActionRequest) -> Result<SubscriptionAction, String> {
    let plan_change = |direction| {
        let plan = request.plan.clone().ok_or_else(|| format!("`{name}` needs a plan"))?;
        let billing =
            request.billing.as_deref().map(BillingPeriod::parse).transpose().map_err(|e| e.to_string())?;
        Ok(SubscriptionAction::ChangePlan { plan, billing, direction })
    };
    match name {
        "change-plan" => plan_change(None),
        "upgrade" => plan_change(Some(Direction::Upgrade)),
        "downgrade" => plan_change(Some(Direction::Downgrade)),
        "card-fails" => Ok(SubscriptionAction::CardFails),
        "card-recovers" => Ok(SubscriptionAction::CardRecovers),
        "unpaid" => Ok(SubscriptionAction::Unpaid),
        "pause" => Ok(SubscriptionAction::Pause),
        "resume" => Ok(SubscriptionAction::Resume),
        "cancel" => Ok(SubscriptionAction::Cancel),
        "trial-will-end" => Ok(SubscriptionAction::TrialWillEnd),
        "trial-ends" => {
            let then = request.then.as_deref().unwrap_or("on-file");
            TrialOutcome::parse(then)
                .map(SubscriptionAction::TrialEnds)
                .ok_or_else(|| format!("`then` must be on-file, pay, fail, pause or cancel, got `{then}`"))
        }
        other => Err(format!("unknown action `{other}`; one of: {}", ACTIONS.join(", "))),
    }
}

/// `POST /local/stripe/subscriptions/{id}/{action}`: changes the
/// subscription as Stripe would and delivers the events Stripe sends for it.
pub async fn act(
    State(stack): State<Arc<LocalStack>>,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let Some(signup) = local_stripe(&stack) else { return no_local_stripe() };
    let request: ActionRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ActionRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(error) => return bad_request(&format!("the body is not a valid request: {error}")),
        }
    };
    let parsed = match parse_action(&action, &request) {
        Ok(parsed) => parsed,
        Err(message) => return bad_request(&message),
    };
    let events = match stack.stripe.act(&id, &parsed) {
        Ok(events) => events,
        Err(error) => return local_error(&error),
    };
    let (deliveries, seed) = deliver(&stack, signup, &events, &request.delivery).await;
    let status = stack.stripe.subscriptions().into_iter().find(|s| s.id == id).map(|s| s.status);
    axum::Json(json!({
        "subscription": id,
        "action": action,
        "status": status.as_ref().map(tenancy::domain::SubscriptionStatus::as_str),
        "events": events.iter().map(|e| json!({"id": e["id"], "type": e["type"]})).collect::<Vec<_>>(),
        "deliveries": deliveries,
        "seed": seed,
    }))
    .into_response()
}

/// The stand-in's subscriptions, for finding a tenant's (`GET /local/stripe/subscriptions`
/// and `stripe_subscriptions` in `/local/state`).
pub fn subscription_list(stripe: &LocalStripe) -> Value {
    let (invoices, refunds) = (stripe.invoices(), stripe.refunds());
    let subscriptions: Vec<Value> = stripe
        .subscriptions()
        .iter()
        .map(|s| {
            let refunded: i64 = refunds
                .iter()
                .filter(|r| invoices.iter().any(|i| i.id == r.invoice && i.subscription == s.id))
                .map(|r| r.amount)
                .sum();
            json!({
                "id": s.id,
                "customer": s.customer,
                "status": s.status.as_str(),
                "subdomain": s.metadata.get("subdomain"),
                "price": s.price.id,
                "lookup_key": s.price.lookup_key,
                "current_period_end": s.current_period_end,
                "trial_end": s.trial_end,
                "latest_invoice": s.latest_invoice,
                // Minor units of the price's currency.
                "refunded": refunded,
            })
        })
        .collect();
    json!(subscriptions)
}

pub async fn list_subscriptions(State(stack): State<Arc<LocalStack>>) -> Response {
    if local_stripe(&stack).is_none() {
        return no_local_stripe();
    }
    axum::Json(subscription_list(&stack.stripe)).into_response()
}

/// A write to the stand-in's account (`POST`/`DELETE /v1/…`, named by
/// `request`): its form, Stripe's answer or Stripe's refusal; once per
/// `Idempotency-Key`, as at Stripe.
fn write_object(
    stack: &LocalStack,
    headers: &HeaderMap,
    request: &str,
    body: &[u8],
    write: impl FnOnce(&LocalStripe, &[(String, String)]) -> Result<Value, LocalStripeError>,
) -> Response {
    if local_stripe(stack).is_none() {
        return no_local_stripe();
    }
    if !authorized(headers) {
        return invalid_key();
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    match stack.stripe.idempotent_write(key, request, &form, |stripe| write(stripe, &form)) {
        Ok(object) => axum::Json(object).into_response(),
        Err(error) => stripe_refusal(&error, "id"),
    }
}

/// `GET /v1/prices?lookup_keys[]=…&product=…&active=true|false`.
pub async fn list_prices(
    State(stack): State<Arc<LocalStack>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let query: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect();
    let keys: Vec<String> = query
        .iter()
        .filter(|(key, _)| key.starts_with("lookup_keys[") && key.ends_with(']'))
        .map(|(_, value)| value.clone())
        .collect();
    let active = query.iter().find(|(key, _)| key == "active").map(|(_, value)| value == "true");
    let product = query.iter().find(|(key, _)| key == "product").map(|(_, value)| value.as_str());
    read_list(&stack, &headers, |stripe| stripe.price_list_json(&keys, product, active))
}

/// `POST /v1/prices`.
pub async fn create_price(
    State(stack): State<Arc<LocalStack>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    write_object(&stack, &headers, "POST /v1/prices", &body, |stripe, form| stripe.create_price(form))
}

/// `POST /v1/prices/{id}`.
pub async fn update_price(
    State(stack): State<Arc<LocalStack>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    write_object(&stack, &headers, &format!("POST /v1/prices/{id}"), &body, |stripe, form| {
        stripe.update_price(&id, form)
    })
}

/// `POST /v1/coupons`.
pub async fn create_coupon(
    State(stack): State<Arc<LocalStack>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    write_object(&stack, &headers, "POST /v1/coupons", &body, |stripe, form| stripe.create_coupon(form))
}

/// `POST /v1/promotion_codes`, answered in the caller's API version.
pub async fn create_promotion_code(
    State(stack): State<Arc<LocalStack>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let version = api_version(&headers);
    write_object(&stack, &headers, "POST /v1/promotion_codes", &body, |stripe, form| {
        stripe.create_promotion_code(form, &version)
    })
}

/// `POST /v1/promotion_codes/{id}`: `active` and metadata.
pub async fn update_promotion_code(
    State(stack): State<Arc<LocalStack>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let version = api_version(&headers);
    write_object(&stack, &headers, &format!("POST /v1/promotion_codes/{id}"), &body, |stripe, form| {
        stripe.update_promotion_code(&id, form, &version)
    })
}

/// `GET /v1/promotion_codes?code=…&active=…&coupon=…&limit=…&expand[]=…`
/// (a limit of 10 unless given, as at Stripe).
pub async fn list_promotion_codes(
    State(stack): State<Arc<LocalStack>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let query = uri.query();
    let active = match query_value(query, "active").as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            let message = format!("Invalid boolean: {other}");
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
                &message,
                Some("active"),
            );
        }
    };
    let limit = match query_value(query, "limit").map(|raw| raw.parse::<usize>()) {
        None => 10,
        Some(Ok(limit)) if (1..=100).contains(&limit) => limit,
        Some(_) => {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
                "Invalid integer: limit must be between 1 and 100.",
                Some("limit"),
            );
        }
    };
    let (code, coupon) = (query_value(query, "code"), query_value(query, "coupon"));
    let expand = expansions(query);
    let version = api_version(&headers);
    read_list(&stack, &headers, |stripe| {
        stripe.promotion_code_list_json(code.as_deref(), active, coupon.as_deref(), limit, &expand, &version)
    })
}

/// `GET /v1/products`.
pub async fn list_products(State(stack): State<Arc<LocalStack>>, headers: HeaderMap) -> Response {
    read_list(&stack, &headers, LocalStripe::product_list_json)
}

/// `POST /v1/products`.
pub async fn create_product(
    State(stack): State<Arc<LocalStack>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    write_object(&stack, &headers, "POST /v1/products", &body, |stripe, form| stripe.create_product(form))
}

/// `GET /v1/products/{id}`.
pub async fn get_product(
    State(stack): State<Arc<LocalStack>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    read_object(&stack, &headers, "product", &id, |stripe| stripe.product_json(&id))
}

/// `POST /v1/products/{id}`.
pub async fn update_product(
    State(stack): State<Arc<LocalStack>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    write_object(&stack, &headers, &format!("POST /v1/products/{id}"), &body, |stripe, form| {
        stripe.update_product(&id, form)
    })
}

/// `GET /v1/webhook_endpoints`.
pub async fn list_webhook_endpoints(State(stack): State<Arc<LocalStack>>, headers: HeaderMap) -> Response {
    read_list(&stack, &headers, LocalStripe::webhook_endpoint_list_json)
}

/// `POST /v1/webhook_endpoints`.
pub async fn create_webhook_endpoint(
    State(stack): State<Arc<LocalStack>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    write_object(&stack, &headers, "POST /v1/webhook_endpoints", &body, |stripe, form| {
        stripe.create_webhook_endpoint(form)
    })
}

/// `POST /v1/webhook_endpoints/{id}`.
pub async fn update_webhook_endpoint(
    State(stack): State<Arc<LocalStack>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    write_object(&stack, &headers, &format!("POST /v1/webhook_endpoints/{id}"), &body, |stripe, form| {
        stripe.update_webhook_endpoint(&id, form)
    })
}

/// `DELETE /v1/webhook_endpoints/{id}`.
pub async fn delete_webhook_endpoint(
    State(stack): State<Arc<LocalStack>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    write_object(&stack, &headers, &format!("DELETE /v1/webhook_endpoints/{id}"), &[], |stripe, _| {
        stripe.delete_webhook_endpoint(&id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_repeat_each_event_and_a_seeded_shuffle_is_a_replayable_permutation() {
        assert_eq!(delivery_order(3, 0, None), [0, 1, 2]);
        assert_eq!(delivery_order(2, 2, None), [0, 0, 0, 1, 1, 1]);
        let shuffled = delivery_order(6, 1, Some(42));
        assert_eq!(shuffled, delivery_order(6, 1, Some(42)), "the same seed, the same order");
        let mut sorted = shuffled.clone();
        sorted.sort();
        assert_eq!(sorted, delivery_order(6, 1, None), "every delivery once, none lost");
        let orders: std::collections::HashSet<_> =
            (0..20).map(|seed| delivery_order(6, 0, Some(seed))).collect();
        assert!(orders.len() > 10, "seeds give different orders: {}", orders.len());
        assert_eq!(delivery_order(10, u32::MAX, None).len(), MAX_DELIVERIES);
    }

    #[test]
    fn actions_parse_with_their_arguments_and_bad_ones_are_named() {
        let with = |plan: Option<&str>, billing: Option<&str>, then: Option<&str>| ActionRequest {
            plan: plan.map(str::to_owned),
            billing: billing.map(str::to_owned),
            then: then.map(str::to_owned),
            delivery: DeliveryOptions::default(),
        };
        assert_eq!(
            parse_action("upgrade", &with(Some("pro"), Some("annual"), None)).unwrap(),
            SubscriptionAction::ChangePlan {
                plan: "pro".into(),
                billing: Some(BillingPeriod::Annual),
                direction: Some(Direction::Upgrade)
            }
        );
        assert_eq!(parse_action("upgrade", &with(None, None, None)).unwrap_err(), "`upgrade` needs a plan");
        assert!(parse_action("change-plan", &with(Some("pro"), Some("weekly"), None)).is_err());
        assert_eq!(
            parse_action("trial-ends", &with(None, None, Some("pause"))).unwrap(),
            SubscriptionAction::TrialEnds(TrialOutcome::Pause)
        );
        assert_eq!(
            parse_action("trial-ends", &with(None, None, None)).unwrap(),
            SubscriptionAction::TrialEnds(TrialOutcome::OnFile)
        );
        assert!(parse_action("explode", &with(None, None, None)).unwrap_err().contains("card-fails"));
        assert_eq!(
            expansions(Some("expand[0]=latest_invoice&expand[]=items.data.price&x=1")),
            ["latest_invoice", "items.data.price"]
        );
    }
}
