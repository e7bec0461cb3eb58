//! `tenantctl local serve`: the whole stack on a laptop. The webhook handler,
//! the dispatcher and the steps are the same code as in Lambda; the state
//! machines are the same files; local adapters stand in for AWS.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use asl::RunOptions;
use async_trait::async_trait;
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tenancy::adapters::faults::{FaultPlan, faulty_steps, wrap};
use tenancy::adapters::local::{
    LocalDns, LocalEventQueue, LocalLauncher, LocalOutbox, LocalReceivedMail, LocalStripe, LocalTenantStore,
};
use tenancy::checkout::billing_link::BillingLinks;
use tenancy::clock::Clock;
use tenancy::config::TenantSettings;
use tenancy::dispatch::{Dispatcher, dispatch};
use tenancy::domain::password::PasswordKey;
use tenancy::domain::{Catalog, ReceivedMessageId};
use tenancy::ingress::WebhookAnswer;
use tenancy::ingress::WebhookIngress;
use tenancy::ports::{
    AlbQuotas, EventQueue, MailError, QueuedEvent, RawMailer, ReceivedMail, RoutingCapacity, TenantStore,
    WorkflowStarter,
};
use tenancy::steps::WorkflowSteps;
use tenancy::telemetry::error_chain;
use tokio::net::TcpListener;

use crate::stripe_standin;
use crate::workflow::{LocalStarter, LocalWorkflows, load_machines};

/// API Gateway refuses payloads over 10 MB before Lambda sees them; the
/// handler's own, smaller limit answers 413 below that.
const TRANSPORT_BODY_LIMIT: usize = 10 * 1024 * 1024;
/// SQS's redrive: after this many failed receives a message is dead-lettered.
const MAX_RECEIVES: u32 = 5;

/// Views of what the adapters made, for `GET /local/state`.
#[async_trait]
pub trait Inspect: Send + Sync {
    async fn services(&self) -> Value;
    async fn dns_records(&self) -> Value;
    async fn emails(&self) -> Value;
}

pub struct LocalInspect {
    pub launcher: Arc<LocalLauncher>,
    pub dns: Arc<LocalDns>,
    pub outbox: Arc<LocalOutbox>,
}

#[async_trait]
impl Inspect for LocalInspect {
    async fn services(&self) -> Value {
        json!(self.launcher.services())
    }
    async fn dns_records(&self) -> Value {
        json!(self.dns.records())
    }
    async fn emails(&self) -> Value {
        json!(self.outbox.sent())
    }
}

/// How the local stack runs.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Keep state here so it survives a restart; in memory when `None`.
    pub state: Option<PathBuf>,
    /// Multiplies Wait states, retry delays and simulated AWS delays.
    pub time_scale: f64,
    /// Read the state machines from this directory instead of the copies
    /// built in from infra/statemachine/.
    pub definitions: Option<PathBuf>,
    /// Run the executions on this runtime instead of the caller's. The
    /// server gives them a runtime of their own, so webhook answers never
    /// queue behind steps, as in AWS where each Lambda has its own sandbox.
    pub executor: Option<tokio::runtime::Handle>,
    /// The quotas each local load balancer holds tenants to (AWS's by default).
    pub quotas: AlbQuotas,
    /// Load balancers in the local pool (at least one), as the stack's
    /// `AlbListenerArn` and `MoreAlbListenerArns` give them.
    pub load_balancers: usize,
    /// Route 53 changes a (simulated) second the local zone accepts before
    /// it throttles, as Route 53 does (5 by default); scaled with the waits,
    /// and unlimited when they take no time (`time_scale` 0).
    pub dns_changes_per_second: f64,
}

/// The configuration every step shares.
pub struct StepConfig {
    pub settings: TenantSettings,
    pub catalog: Catalog,
    pub password_key: PasswordKey,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub event_id: String,
    pub event_type: String,
    pub error: String,
}

/// The signup side: the checkout API over a local Stripe whose sessions can
/// be paid, delivering Stripe's event to the webhook signed like Stripe.
/// Its Checkout Sessions live in the stack's own stand-in ([`LocalStack::stripe`]),
/// the one the steps read subscriptions back from.
pub struct LocalSignup {
    pub api: tenancy::checkout::CheckoutApi,
    pub webhook_secret: tenancy::stripe::WebhookSecret,
    /// Signs the delivery; the webhook's clock in tests.
    pub clock: Arc<dyn Clock>,
}

/// Everything the local server holds.
pub struct LocalStack {
    pub signup: Option<LocalSignup>,
    /// The local Stripe stand-in the steps read subscriptions from.
    pub stripe: Arc<LocalStripe>,
    pub ingress: WebhookIngress,
    pub queue: Arc<LocalEventQueue>,
    pub workflows: Arc<LocalWorkflows>,
    pub starter: Arc<dyn WorkflowStarter>,
    pub store: Arc<dyn TenantStore>,
    pub inspect: Arc<dyn Inspect>,
    pub time_scale: f64,
    /// Faults injected into the steps' ports, the webhook's queue and the
    /// dispatcher's starts (`--faults`); none when `None`.
    pub faults: Option<Arc<FaultPlan>>,
    dead_letters: Mutex<Vec<DeadLetter>>,
    /// Mail to the tenants' own addresses.
    pub inbound: LocalMailbox,
}

/// SES receiving's own part in a local stack: keeping a received message
/// where the receipt rule's S3 action would (files or memory locally, the
/// bucket on an emulator), and the reader the forwarder reads it back with.
#[async_trait]
pub trait ReceiptRuleStandIn: Send + Sync {
    async fn keep(&self, message_id: &ReceivedMessageId, raw: &[u8]) -> Result<(), MailError>;
    fn reader(&self) -> &dyn ReceivedMail;
}

#[async_trait]
impl ReceiptRuleStandIn for LocalReceivedMail {
    async fn keep(&self, message_id: &ReceivedMessageId, raw: &[u8]) -> Result<(), MailError> {
        self.store(message_id, raw)
    }

    fn reader(&self) -> &dyn ReceivedMail {
        self
    }
}

/// The local stand-in for SES receiving: a message posted to it is kept,
/// then forwarded as the forwarding function would.
pub struct LocalMailbox {
    received: Arc<dyn ReceiptRuleStandIn>,
    mailer: Arc<dyn RawMailer>,
    pub addresses: tenancy::inbound::address::TenantMailAddresses,
    sender: tenancy::domain::EmailAddress,
    clock: Arc<dyn Clock>,
    next: std::sync::atomic::AtomicU64,
}

impl LocalMailbox {
    /// Receives `raw` for `recipients` (SES's envelope), as `message_id` or
    /// a new id, and forwards it.
    pub async fn receive(
        &self,
        store: &dyn TenantStore,
        recipients: Vec<String>,
        message_id: Option<String>,
        raw: &[u8],
    ) -> Result<Value, (StatusCode, String)> {
        use tenancy::inbound::forward::{Forwarder, InboundNotice, Scan};
        let message_id = message_id.unwrap_or_else(|| {
            let n = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            format!("local{}{n:04}", self.clock.now_millis())
        });
        let message_id = ReceivedMessageId::parse(&message_id)
            .map_err(|e| (StatusCode::BAD_REQUEST, format!("id `{message_id}`: {e}")))?;
        self.received
            .keep(&message_id, raw)
            .await
            .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, error_chain(&e)))?;
        let forwarder = Forwarder {
            store,
            received: self.received.reader(),
            mailer: self.mailer.as_ref(),
            clock: self.clock.as_ref(),
            addresses: &self.addresses,
            sender: &self.sender,
        };
        let notice = InboundNotice { message_id: message_id.clone(), recipients, scan: Scan::NotFlagged };
        let deliveries = forwarder
            .forward(&notice)
            .await
            .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, error_chain(&e)))?;
        Ok(json!({"message_id": message_id, "deliveries": deliveries}))
    }
}

/// The queue the webhook sends to: `queue`, failing as `faults` says. A
/// failed send answers Stripe 5xx and Stripe delivers again; the dispatcher
/// and SQS's own redelivery use `queue` itself.
pub fn ingress_queue(queue: &Arc<LocalEventQueue>, faults: Option<&Arc<FaultPlan>>) -> Arc<dyn EventQueue> {
    let queue: Arc<dyn EventQueue> = queue.clone();
    wrap(queue, faults)
}

/// The AWS-shaped parts a stack is built from (local adapters, or the AWS
/// adapters pointed at an emulator).
pub struct Adapters {
    pub steps: WorkflowSteps,
    pub inspect: Arc<dyn Inspect>,
    /// The local Stripe stand-in (Stripe is never emulated on moto).
    pub stripe: Arc<LocalStripe>,
    /// The room behind the load balancer, which the checkout asks before a sale.
    pub capacity: Arc<dyn RoutingCapacity>,
    /// Where received mail is kept and how it is sent on.
    pub inbound: InboundParts,
}

/// Mail to the tenants' own addresses: received messages kept as SES's
/// receipt rule keeps them (locally: files, or memory), and the mailer that
/// forwards them (the local outbox, or SES on an emulator).
pub struct InboundParts {
    pub received: Arc<dyn ReceiptRuleStandIn>,
    pub mailer: Arc<dyn RawMailer>,
}

impl InboundParts {
    /// The tenants' addresses (the settings', else under `mail.{tenant
    /// domain}`: a local stack always has them), and the forwarder's sender there.
    fn forwarding(
        &self,
        settings: &TenantSettings,
    ) -> anyhow::Result<(tenancy::inbound::address::TenantMailAddresses, tenancy::domain::EmailAddress)> {
        use tenancy::inbound::address::{DEFAULT_PATTERN, TenantMailAddresses};
        let addresses = match &settings.mail {
            Some(addresses) => addresses.clone(),
            None => TenantMailAddresses::new(DEFAULT_PATTERN, &format!("mail.{}", settings.domain.as_str()))?,
        };
        let sender = tenancy::domain::EmailAddress::parse(&format!("forwarder@{}", addresses.domain()))?;
        Ok((addresses, sender))
    }
}

impl Adapters {
    /// Local adapters, with simulated delays scaled like the waits; billing
    /// portal links point at `portal_base` (the local server); subscriptions
    /// are read from `stripe` (the local Stripe stand-in), directly.
    pub fn local(
        config: StepConfig,
        clock: Arc<dyn Clock>,
        options: &LocalOptions,
        portal_base: &str,
        stripe: Arc<LocalStripe>,
    ) -> anyhow::Result<Adapters> {
        let dir = options.state.as_deref();
        let scaled = |secs: f64| Duration::from_secs_f64((secs * options.time_scale).max(0.0));
        let launcher = Arc::new(
            LocalLauncher::open(dir, clock.clone(), scaled(20.0))?
                .with_pool(options.load_balancers, options.quotas),
        );
        let dns_rate =
            (options.time_scale > 0.0).then(|| options.dns_changes_per_second / options.time_scale);
        let dns = Arc::new(LocalDns::open(dir, clock.clone(), scaled(30.0))?.with_change_rate(dns_rate));
        let outbox = Arc::new(LocalOutbox::open(dir, clock.clone())?);
        let store = Arc::new(LocalTenantStore::open(dir, clock.clone())?);
        let steps = WorkflowSteps {
            store,
            launcher: launcher.clone(),
            dns: dns.clone(),
            mailer: outbox.clone(),
            // The mails' card links: ours, on the local server's checkout API.
            billing: Arc::new(BillingLinks::new(portal_base, config.password_key.clone(), clock.clone())),
            stripe: stripe.clone(),
            money_back: stripe.clone(),
            clock,
            settings: config.settings,
            catalog: config.catalog,
            // The apps ask the local server's `GET /status`.
            status: tenancy::checkout::status::StatusTokens::new(portal_base, config.password_key.clone()),
            password_key: config.password_key,
        };
        let capacity = launcher.clone();
        let inbound =
            InboundParts { received: Arc::new(LocalReceivedMail::open(dir)?), mailer: outbox.clone() };
        let inspect = Arc::new(LocalInspect { launcher, dns, outbox });
        Ok(Adapters { steps, inspect, stripe, capacity, inbound })
    }
}

impl LocalStack {
    pub fn new(
        ingress: WebhookIngress,
        queue: Arc<LocalEventQueue>,
        adapters: Adapters,
        options: &LocalOptions,
        signup: Option<LocalSignup>,
    ) -> anyhow::Result<Arc<LocalStack>> {
        Self::with_faults(ingress, queue, adapters, options, signup, None)
    }

    /// A stack whose steps' ports and dispatcher fail as `faults` says (the
    /// webhook's queue is the caller's: see [`ingress_queue`]).
    pub fn with_faults(
        ingress: WebhookIngress,
        queue: Arc<LocalEventQueue>,
        adapters: Adapters,
        options: &LocalOptions,
        signup: Option<LocalSignup>,
        faults: Option<Arc<FaultPlan>>,
    ) -> anyhow::Result<Arc<LocalStack>> {
        // The state page reads the store without faults: it is a view for
        // the developer, not a step that must survive them.
        let store = adapters.steps.store.clone();
        let mut adapters = adapters;
        let (mail_addresses, mail_sender) = adapters.inbound.forwarding(&adapters.steps.settings)?;
        // The welcome mail and the app name the address the mailbox receives for.
        adapters.steps.settings.mail = Some(mail_addresses.clone());
        let inbound = LocalMailbox {
            received: adapters.inbound.received,
            mailer: adapters.inbound.mailer,
            addresses: mail_addresses,
            sender: mail_sender,
            clock: adapters.steps.clock.clone(),
            next: std::sync::atomic::AtomicU64::new(0),
        };
        let steps = match &faults {
            Some(plan) => faulty_steps(adapters.steps, plan),
            None => adapters.steps,
        };
        let run_options = RunOptions { time_scale: options.time_scale, ..RunOptions::default() };
        let workflows = LocalWorkflows::open(
            load_machines(options.definitions.as_deref())?,
            Arc::new(steps),
            run_options,
            options.state.as_deref(),
            options.executor.clone(),
        )?;
        Ok(Arc::new(LocalStack {
            signup,
            stripe: adapters.stripe,
            ingress,
            queue,
            starter: wrap::<dyn WorkflowStarter>(Arc::new(LocalStarter(workflows.clone())), faults.as_ref()),
            workflows,
            store,
            inspect: adapters.inspect,
            time_scale: options.time_scale,
            faults,
            dead_letters: Mutex::new(Vec::new()),
            inbound,
        }))
    }

    /// A delivery to the webhook. A paid checkout the stand-in never made (a
    /// hand-written or generated event) is adopted into it first, so that
    /// provisioning can read its subscription back as it would from Stripe.
    pub async fn deliver(&self, headers: &HeaderMap, body: &[u8]) -> WebhookAnswer {
        if let Ok(event) = serde_json::from_slice::<Value>(body)
            && let Err(error) = self.stripe.adopt_checkout(&event)
        {
            tracing::warn!(error = %error, "the local Stripe could not adopt a checkout");
        }
        self.ingress.handle(headers, body).await
    }

    /// Waits, up to `limit`, until the dispatcher has taken what was queued
    /// and every execution it started has finished.
    pub async fn wait_settled(&self, limit: Duration) -> bool {
        // Until the dispatcher has handled everything queued (an event it
        // has taken counts until its execution is started), then until the
        // executions finish. Redeliveries of failed dispatches wait out a
        // visibility timeout, so this gives up on the queue after 2 s.
        for _ in 0..400 {
            if self.queue.is_idle() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.workflows.wait_idle(limit).await
    }

    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead_letters.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The dispatcher: takes events off the queue and starts executions,
    /// returning failures to the queue like SQS does (then dead-lettering).
    pub fn spawn_dispatcher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let stack = Arc::clone(self);
        tokio::spawn(async move {
            let mut receives: HashMap<String, u32> = HashMap::new();
            loop {
                let event = stack.queue.next().await;
                let dispatcher = Dispatcher {
                    starter: stack.starter.as_ref(),
                    unmatched: stack.store.as_ref(),
                    clock: &tenancy::clock::SystemClock,
                };
                match dispatch(&dispatcher, &event).await {
                    Ok(_) => {
                        receives.remove(event.event_id.as_str());
                    }
                    Err(error) => stack.redeliver(&mut receives, event, &error_chain(&error)),
                }
                stack.queue.done();
            }
        })
    }

    fn redeliver(self: &Arc<Self>, receives: &mut HashMap<String, u32>, event: QueuedEvent, error: &str) {
        let count = receives.entry(event.event_id.to_string()).or_insert(0);
        *count += 1;
        if *count >= MAX_RECEIVES {
            tracing::error!(event_id = %event.event_id, error, "dead-lettered after {MAX_RECEIVES} receives");
            self.dead_letters.lock().unwrap_or_else(PoisonError::into_inner).push(DeadLetter {
                event_id: event.event_id.to_string(),
                event_type: event.event_type.to_string(),
                error: error.to_owned(),
            });
            return;
        }
        tracing::warn!(event_id = %event.event_id, error, receive = *count, "returned to the queue");
        let stack = Arc::clone(self);
        // The visibility timeout, scaled like every other local delay.
        let delay = Duration::from_secs_f64(30.0 * self.time_scale);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tenancy::ports::EventQueue::enqueue(stack.queue.as_ref(), &event).await;
        });
    }

    /// Counts, as `GET /local/progress` shows them: enough to wait on a
    /// burst without building [`Self::state`] (4 MB of JSON at 1,000
    /// tenants) at each poll.
    pub async fn progress(&self) -> Value {
        let tenants = match self.store.list_tenants().await {
            Ok(tenants) => {
                let mut by_status = std::collections::BTreeMap::new();
                for tenant in &tenants {
                    *by_status.entry(tenant.status.as_str()).or_insert(0usize) += 1;
                }
                json!(by_status)
            }
            Err(error) => json!({ "error": error_chain(&error) }),
        };
        let (working, queue_idle) = (self.workflows.running(), self.queue.is_idle());
        json!({
            "tenants": tenants,
            "executions": self.workflows.status_counts(),
            "queued": self.queue.len(),
            "dead_letters": self.dead_letters.lock().unwrap_or_else(PoisonError::into_inner).len(),
            // Nothing waits in the queue or is being dispatched, and no
            // execution (or its clean-up) runs.
            "settled": working == 0 && queue_idle,
        })
    }

    /// Everything, as `GET /local/state` shows it.
    /// Sends a tenant's welcome mail again (after its failure was fixed):
    /// SendWelcomeMail on behalf of the execution that first reserved it,
    /// so a mail that did go out is never sent twice.
    pub async fn resend_welcome(&self, subdomain: &str) -> Result<Value, (StatusCode, String)> {
        use crate::stage::tenants::{TenantsError, find};
        let tenant = find(self.store.as_ref(), subdomain).await.map_err(|e| match e {
            TenantsError::NotFound(_) => (StatusCode::NOT_FOUND, e.to_string()),
            other => (StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
        })?;
        let steps = self.workflows.steps();
        let (store, mailer) = (steps.store.as_ref(), steps.mailer.as_ref());
        let report = tenancy::steps::provision::resend_welcome_mail(
            store,
            mailer,
            &steps.password_key,
            &steps.context(),
            &tenant.id,
        )
        .await
        .map_err(|e| (StatusCode::CONFLICT, tenancy::telemetry::error_chain(&e)))?;
        serde_json::to_value(report).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    }

    /// `tenantctl local rotate-status-token`: the tenant's next status
    /// token recorded (the old one refused from then on), and a lifecycle
    /// execution started that relaunches its app with it, as on a stage.
    pub async fn rotate_status_token(&self, subdomain: &str) -> Result<Value, (StatusCode, String)> {
        use crate::stage::tenants::{TenantsError, find};
        let tenant = find(self.store.as_ref(), subdomain).await.map_err(|e| match e {
            TenantsError::NotFound(_) => (StatusCode::NOT_FOUND, e.to_string()),
            other => (StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
        })?;
        if tenant.signup.is_none() {
            return Err((StatusCode::CONFLICT, format!("{} never became a tenant", tenant.id)));
        }
        let steps = self.workflows.steps();
        let rotated = tenancy::steps::status_token::rotate_status_token(
            steps.store.as_ref(),
            steps.clock.as_ref(),
            &steps.status,
            &tenant.id,
        )
        .await
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, error_chain(&e)))?;
        let execution = crate::stage::status_token::execution_name(&tenant.id, steps.clock.now_millis());
        let input = json!({"tenant_id": tenant.id});
        if !self.workflows.start_named(tenancy::ports::Workflow::Lifecycle, &execution, input) {
            return Err((StatusCode::CONFLICT, format!("rotated, but execution {execution} already exists")));
        }
        Ok(json!({
            "tenant_id": tenant.id,
            "token_generation": rotated.status_token.map(|t| t.generation),
            "execution": execution,
        }))
    }

    pub async fn state(&self) -> Value {
        let tenants = match self.store.list_tenants().await {
            Ok(tenants) => {
                let mut listed = Vec::with_capacity(tenants.len());
                for tenant in tenants {
                    // The trail is kept in items of its own: shown beside the record.
                    let trail = match self.store.trail(&tenant.id).await {
                        Ok(trail) => json!(trail),
                        Err(error) => json!({ "error": error_chain(&error) }),
                    };
                    let mut view = json!(tenant);
                    view["trail"] = trail;
                    listed.push(view);
                }
                json!(listed)
            }
            Err(error) => json!({ "error": error_chain(&error) }),
        };
        let executions = self.workflows.summaries();
        let queue: Vec<Value> = self
            .queue
            .snapshot()
            .iter()
            .map(|e| json!({"event_id": e.event_id.as_str(), "event_type": e.event_type.as_str(), "created": e.created}))
            .collect();
        let unmatched = match self.store.list_unmatched_events().await {
            Ok(events) => json!(events),
            Err(error) => json!({ "error": error_chain(&error) }),
        };
        json!({
            "tenants": tenants,
            "unmatched_events": unmatched,
            "services": self.inspect.services().await,
            "dns_records": self.inspect.dns_records().await,
            "emails": self.inspect.emails().await,
            "executions": executions,
            "queue": queue,
            "dead_letters": self.dead_letters(),
            "stripe_subscriptions": self.signup.as_ref().map(|_| stripe_standin::subscription_list(&self.stripe)),
            "faults": self.faults.as_ref().map(|plan| plan.report()),
        })
    }
}

pub fn router(stack: Arc<LocalStack>) -> Router {
    Router::new()
        .route("/stripe/webhook", post(stripe_webhook))
        .route("/local/state", get(local_state))
        .route("/local/progress", get(local_progress))
        .route("/local/executions/{name}", get(execution_history))
        .route("/local/tenants/{subdomain}/resend-welcome", post(resend_welcome))
        .route("/local/tenants/{subdomain}/rotate-status-token", post(rotate_status_token))
        .route("/local/mail/inbound", post(receive_mail))
        .route("/status", get(signup_api).post(signup_api))
        .route("/billing-portal/{customer}", get(billing_portal))
        .route("/checkout", post(signup_api).options(signup_api).get(signup_api))
        .route("/subdomains/{name}", get(signup_api).options(signup_api))
        .route("/billing/{token}", get(signup_api))
        .route("/local/stripe/checkout/{id}", get(stripe_checkout_page))
        .route("/local/stripe/checkout/{id}/pay", post(stripe_standin::pay))
        .route("/local/stripe/subscriptions", get(stripe_standin::list_subscriptions))
        .route("/local/stripe/subscriptions/{id}/{action}", post(stripe_standin::act))
        .route("/v1/checkout/sessions", post(stripe_api_checkout_session))
        .route("/v1/billing_portal/sessions", post(stripe_api_portal_session))
        .route("/v1/subscriptions", get(stripe_standin::list_subscriptions_api))
        .route(
            "/v1/subscriptions/{id}",
            get(stripe_standin::get_subscription).delete(stripe_standin::cancel_subscription),
        )
        .route("/v1/invoices", get(stripe_standin::list_invoices))
        .route("/v1/invoices/{id}", get(stripe_standin::get_invoice))
        .route("/v1/invoice_payments", get(stripe_standin::list_invoice_payments))
        .route("/v1/refunds", get(stripe_standin::list_refunds).post(stripe_standin::create_refund))
        .route("/v1/customers/{id}", get(stripe_standin::get_customer))
        .route("/v1/events/{id}", get(stripe_standin::get_event))
        .route("/v1/prices", get(stripe_standin::list_prices).post(stripe_standin::create_price))
        .route("/v1/prices/{id}", post(stripe_standin::update_price))
        .route("/v1/products", get(stripe_standin::list_products).post(stripe_standin::create_product))
        .route("/v1/products/{id}", get(stripe_standin::get_product).post(stripe_standin::update_product))
        .route("/v1/coupons", post(stripe_standin::create_coupon))
        .route(
            "/v1/promotion_codes",
            get(stripe_standin::list_promotion_codes).post(stripe_standin::create_promotion_code),
        )
        .route("/v1/promotion_codes/{id}", post(stripe_standin::update_promotion_code))
        .route(
            "/v1/webhook_endpoints",
            get(stripe_standin::list_webhook_endpoints).post(stripe_standin::create_webhook_endpoint),
        )
        .route(
            "/v1/webhook_endpoints/{id}",
            post(stripe_standin::update_webhook_endpoint).delete(stripe_standin::delete_webhook_endpoint),
        )
        .layer(DefaultBodyLimit::max(TRANSPORT_BODY_LIMIT))
        .with_state(stack)
}

async fn stripe_webhook(State(stack): State<Arc<LocalStack>>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = stack.deliver(&headers, &body).await;
    (answer.status, [(header::CONTENT_TYPE, "application/json")], answer.body).into_response()
}

/// `POST /local/tenants/{subdomain}/resend-welcome`.
async fn resend_welcome(State(stack): State<Arc<LocalStack>>, Path(subdomain): Path<String>) -> Response {
    match stack.resend_welcome(&subdomain).await {
        Ok(report) => axum::Json(report).into_response(),
        Err((status, message)) => (status, axum::Json(json!({"error": message}))).into_response(),
    }
}

/// `POST /local/mail/inbound?to=a@x,b@y[&id=…]` with a raw RFC 5322
/// message: what SES receiving does for the tenants' mail domain.
async fn receive_mail(
    State(stack): State<Arc<LocalStack>>,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> Response {
    let query: std::collections::BTreeMap<String, String> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect();
    let recipients: Vec<String> = query
        .get("to")
        .map(|to| to.split(',').map(|r| r.trim().to_owned()).filter(|r| !r.is_empty()).collect())
        .unwrap_or_default();
    if recipients.is_empty() {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "name the recipients: ?to=a@x,b@y"})))
            .into_response();
    }
    match stack.inbound.receive(stack.store.as_ref(), recipients, query.get("id").cloned(), &body).await {
        Ok(report) => axum::Json(report).into_response(),
        Err((status, message)) => (status, axum::Json(json!({"error": message}))).into_response(),
    }
}

async fn rotate_status_token(
    State(stack): State<Arc<LocalStack>>,
    Path(subdomain): Path<String>,
) -> Response {
    match stack.rotate_status_token(&subdomain).await {
        Ok(report) => axum::Json(report).into_response(),
        Err((status, message)) => (status, axum::Json(json!({"error": message}))).into_response(),
    }
}

async fn local_state(State(stack): State<Arc<LocalStack>>) -> Response {
    axum::Json(stack.state().await).into_response()
}

async fn local_progress(State(stack): State<Arc<LocalStack>>) -> Response {
    axum::Json(stack.progress().await).into_response()
}

async fn execution_history(State(stack): State<Arc<LocalStack>>, Path(name): Path<String>) -> Response {
    match stack.workflows.execution(&name) {
        Some(execution) => axum::Json(execution).into_response(),
        None => (StatusCode::NOT_FOUND, axum::Json(json!({"error": format!("no execution named {name}")})))
            .into_response(),
    }
}

/// `GET /subdomains/{name}` and `POST /checkout`: the same handler as the
/// checkout Lambda.
async fn signup_api(
    State(stack): State<Arc<LocalStack>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(signup) = &stack.signup else {
        return (StatusCode::NOT_FOUND, "the checkout API is not configured").into_response();
    };
    // The connection's peer, as API Gateway's source IP is in AWS (served
    // without connect info, e.g. in a test router, it is unknown: one
    // shared client for the limits).
    let client = extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip());
    let answer = signup.api.handle(&method, uri.path(), &headers, &body, client).await;
    let mut response = (answer.status, answer.body).into_response();
    // The answer names its own (axum's default for a String is text/plain).
    response.headers_mut().remove(header::CONTENT_TYPE);
    for (name, value) in answer.headers {
        if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// The local Stripe's hosted checkout page (what `url` points at).
async fn stripe_checkout_page(State(stack): State<Arc<LocalStack>>, Path(id): Path<String>) -> Response {
    let Some(session) =
        stack.signup.as_ref().and_then(|_| stack.stripe.sessions().into_iter().find(|s| s.id == id))
    else {
        return (StatusCode::NOT_FOUND, "no such checkout session").into_response();
    };
    let page = format!(
        "<!doctype html><title>Checkout (local Stripe)</title><h1>Checkout</h1>\
         <p>{} for <code>{}</code>, {} ({}).</p>\
         <form method=post action=\"/local/stripe/checkout/{}/pay\"><button>Pay (test mode)</button></form>",
        session.customer_email,
        session.metadata.get("subdomain").map(String::as_str).unwrap_or("-"),
        session.price_id,
        session.status,
        session.id,
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

/// Stripe's response shapes (as recorded for the adapter's tests), filled in
/// with what the local Stripe made: the async-stripe client parses them.
const CHECKOUT_SESSION_SHAPE: &str = include_str!("../../tests/fixtures/stripe/checkout_session.json");
const PORTAL_SESSION_SHAPE: &str = include_str!("../../tests/fixtures/stripe/billing_portal_session.json");

fn stripe_error(status: StatusCode, kind: &str, message: &str, param: Option<&str>) -> Response {
    stripe_standin::stripe_error(status, kind, None, message, param)
}

/// The form Stripe's API takes, if the caller sent a test key.
fn stripe_form(headers: &HeaderMap, body: &[u8]) -> Option<Vec<(String, String)>> {
    stripe_standin::authorized(headers).then(|| form_urlencoded::parse(body).into_owned().collect())
}

fn form_value(form: &[(String, String)], name: &str) -> Option<String> {
    form.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone())
}

fn invalid_key() -> Response {
    stripe_error(StatusCode::UNAUTHORIZED, "invalid_request_error", "Invalid API Key provided", None)
}

/// `POST /v1/checkout/sessions` of a Stripe stand-in, so that local runs go
/// through the same async-stripe adapter as AWS.
async fn stripe_api_checkout_session(
    State(stack): State<Arc<LocalStack>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(signup) = &stack.signup else {
        return stripe_error(StatusCode::NOT_FOUND, "invalid_request_error", "no local Stripe", None);
    };
    let Some(form) = stripe_form(&headers, &body) else { return invalid_key() };
    let field = |name: &str| form_value(&form, name);
    let missing = |name: &str| {
        stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &format!("Missing required param: {name}."),
            Some(name),
        )
    };
    let metadata: std::collections::BTreeMap<String, String> = form
        .iter()
        .filter_map(|(key, value)| {
            Some((key.strip_prefix("metadata[")?.strip_suffix(']')?.to_owned(), value.clone()))
        })
        .collect();
    if field("mode").as_deref() != Some("subscription") {
        return missing("mode");
    }
    let Some(price_id) = field("line_items[0][price]") else { return missing("line_items[0][price]") };
    let Some(email) = field("customer_email").and_then(|e| tenancy::domain::EmailAddress::parse(&e).ok())
    else {
        return missing("customer_email");
    };
    let (Some(success_url), Some(cancel_url)) = (field("success_url"), field("cancel_url")) else {
        return missing("success_url");
    };
    let discount = match session_discount(&form) {
        Ok(discount) => discount,
        Err(refusal) => {
            return stripe_standin::stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                refusal.code,
                &refusal.message,
                Some(refusal.param),
            );
        }
    };
    const TRIAL_PARAM: &str = "subscription_data[trial_period_days]";
    let trial_days = match field(TRIAL_PARAM).map(|raw| raw.parse::<u32>()) {
        None => None,
        Some(Ok(days)) if (1..=tenancy::domain::trial::MAX_TRIAL_DAYS).contains(&days) => Some(days),
        Some(_) => {
            let message = format!(
                "Invalid {TRIAL_PARAM}: must be an integer from 1 to {}",
                tenancy::domain::trial::MAX_TRIAL_DAYS
            );
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &message,
                Some(TRIAL_PARAM),
            );
        }
    };
    // A trial without a card: no payment method asked for, and Stripe's
    // behaviour when the trial ends without one (the stand-in models pause
    // and cancel, the two the catalog can ask for).
    const COLLECTION_PARAM: &str = "payment_method_collection";
    const MISSING_PARAM: &str = "subscription_data[trial_settings][end_behavior][missing_payment_method]";
    let trial_without_card = match (field(COLLECTION_PARAM).as_deref(), field(MISSING_PARAM)) {
        (None | Some("always"), None) => None,
        (Some("if_required"), Some(missing)) if trial_days.is_some() => {
            match tenancy::domain::TrialWithoutCard::parse(&missing) {
                Some(behavior) => Some(behavior),
                None => {
                    let message = format!("Invalid {MISSING_PARAM}: the stand-in models pause or cancel");
                    return stripe_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        &message,
                        Some(MISSING_PARAM),
                    );
                }
            }
        }
        _ => {
            let message = format!(
                "{COLLECTION_PARAM}=if_required needs a trial and {MISSING_PARAM} (pause or cancel) in the stand-in"
            );
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &message,
                Some(COLLECTION_PARAM),
            );
        }
    };
    let request = tenancy::ports::CheckoutSessionRequest {
        price_id,
        customer_email: email.clone(),
        success_url: success_url.clone(),
        cancel_url: cancel_url.clone(),
        metadata: metadata.clone(),
        discount,
        trial_days,
        trial_without_card,
        expires_at: field("expires_at").and_then(|at| at.parse().ok()),
        idempotency_key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    };
    use tenancy::ports::StripeGateway;
    let created = match stack.stripe.create_checkout_session(&request).await {
        Ok(created) => created,
        Err(tenancy::ports::StripeApiError::Rejected { status, code, message }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            let kind = if code.as_deref() == Some("idempotency_error") {
                "idempotency_error"
            } else {
                "invalid_request_error"
            };
            let param = (kind == "invalid_request_error").then_some("discounts");
            return stripe_standin::stripe_error(status, kind, code.as_deref(), &message, param);
        }
        Err(error) => {
            return stripe_error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", &error.to_string(), None);
        }
    };
    let Ok(mut session) = serde_json::from_str::<Value>(CHECKOUT_SESSION_SHAPE) else {
        return stripe_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "session shape unreadable",
            None,
        );
    };
    session["id"] = json!(created.id);
    session["url"] = json!(created.url);
    session["metadata"] = json!(metadata);
    session["customer_email"] = json!(email.as_str());
    session["customer_details"]["email"] = json!(email.as_str());
    session["success_url"] = json!(success_url);
    session["cancel_url"] = json!(cancel_url);
    session["expires_at"] = json!(request.expires_at);
    session["allow_promotion_codes"] =
        json!(request.discount == tenancy::ports::Discount::CustomerMayEnterCode);
    session["discounts"] = match &request.discount {
        tenancy::ports::Discount::PromotionCode(id) => {
            json!([{"coupon": null, "promotion_code": id.as_str()}])
        }
        _ => json!([]),
    };
    session["created"] = json!(signup.clock.now_unix());
    axum::Json(session).into_response()
}

/// Why the stand-in refuses a session's discount fields, as Stripe words it.
struct DiscountRefusal {
    code: Option<&'static str>,
    message: String,
    param: &'static str,
}

/// A session's `allow_promotion_codes` and `discounts[0][promotion_code]`:
/// one or the other, as Stripe takes them.
fn session_discount(form: &[(String, String)]) -> Result<tenancy::ports::Discount, DiscountRefusal> {
    use tenancy::ports::Discount;
    let refuse = |param, message: String| DiscountRefusal { code: None, message, param };
    let allow = match form_value(form, "allow_promotion_codes").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(refuse("allow_promotion_codes", format!("Invalid boolean: {other}"))),
    };
    let discounts: Vec<&(String, String)> =
        form.iter().filter(|(key, _)| key.starts_with("discounts[")).collect();
    let promotion = match discounts.as_slice() {
        [] => None,
        [(key, id)] if key == "discounts[0][promotion_code]" => {
            match tenancy::domain::PromotionCodeId::parse(id) {
                Ok(id) => Some(id),
                Err(_) => {
                    return Err(DiscountRefusal {
                        code: Some("resource_missing"),
                        message: format!("No such promotion code: '{id}'"),
                        param: "discounts[0][promotion_code]",
                    });
                }
            }
        }
        _ => {
            let message =
                "the local Stripe takes one discount, a promotion code (discounts[0][promotion_code])";
            return Err(refuse("discounts", message.to_owned()));
        }
    };
    match (allow, promotion) {
        (true, Some(_)) => Err(refuse(
            "allow_promotion_codes",
            "You may only specify one of these parameters: allow_promotion_codes, discounts.".to_owned(),
        )),
        (true, None) => Ok(Discount::CustomerMayEnterCode),
        (false, Some(id)) => Ok(Discount::PromotionCode(id)),
        (false, None) => Ok(Discount::None),
    }
}

/// `POST /v1/billing_portal/sessions` of the Stripe stand-in.
async fn stripe_api_portal_session(
    State(stack): State<Arc<LocalStack>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(signup) = &stack.signup else {
        return stripe_error(StatusCode::NOT_FOUND, "invalid_request_error", "no local Stripe", None);
    };
    let Some(form) = stripe_form(&headers, &body) else { return invalid_key() };
    let field = |name: &str| form_value(&form, name);
    let Some(customer) = field("customer").and_then(|c| tenancy::domain::CustomerId::parse(&c).ok()) else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "No such customer",
            Some("customer"),
        );
    };
    let return_url = field("return_url").unwrap_or_default();
    use tenancy::ports::StripeGateway;
    let Ok(url) = stack.stripe.create_portal_session(&customer, &return_url).await else {
        return stripe_error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", "portal session failed", None);
    };
    let Ok(mut session) = serde_json::from_str::<Value>(PORTAL_SESSION_SHAPE) else {
        return stripe_error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", "portal shape unreadable", None);
    };
    session["url"] = json!(url);
    session["customer"] = json!(customer.as_str());
    session["return_url"] = json!(return_url);
    session["created"] = json!(signup.clock.now_unix());
    axum::Json(session).into_response()
}

/// Where the card mails send customers on a laptop, in place of Stripe's
/// billing portal.
async fn billing_portal(Path(customer): Path<String>) -> Response {
    let Ok(customer) = tenancy::domain::CustomerId::parse(&customer) else {
        return (StatusCode::NOT_FOUND, "no such customer").into_response();
    };
    let page = format!(
        "<!doctype html><title>Billing portal (local)</title><h1>Billing portal</h1>\
         <p>Stripe's billing portal would let customer <code>{customer}</code> update their card here.</p>"
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

/// Binds `addr` (port 0 picks a free one) and returns the bound address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    stack: Arc<LocalStack>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let dispatcher = stack.spawn_dispatcher();
    let app = router(stack).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    dispatcher.abort();
    served
}
