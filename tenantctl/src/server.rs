//! Building what `tenantctl local serve` runs: the webhook, the checkout API
//! on the local Stripe stand-in, the steps on local adapters or on the AWS
//! adapters against an emulator, and the state machines. `make bench`
//! builds the same stack in its own process.

use std::net::SocketAddr;
use std::sync::Arc;
use tenancy::checkout::billing_link::BillingLinks;

use anyhow::{Context, Result, bail};
use tenancy::adapters::faults::{FaultPlan, wrap};
use tenancy::adapters::local::{InMemorySecretStore, LocalEventQueue, LocalStripe};
use tenancy::adapters::stripe::StripeApi;
use tenancy::checkout::{self, CheckoutApi, CheckoutSettings};
use tenancy::clock::{Clock, SystemClock};
use tenancy::config::{self, Lookup, SecretsSource, TenantSettings, WebhookConfig};
use tenancy::domain::Catalog;
use tenancy::ingress::WebhookIngress;
use tokio::net::TcpListener;

use crate::emulated::Emulator;
use crate::local::{Adapters, LocalOptions, LocalSignup, LocalStack, StepConfig};

/// What the stack is built from, besides its configuration.
pub struct ServerOptions {
    pub local: LocalOptions,
    /// The AWS adapters against this emulator instead of the local adapters.
    pub emulator: Option<Emulator>,
    /// Faults injected into the local ports (`--faults`).
    pub faults: Option<Arc<FaultPlan>>,
}

/// A stack, built and bound, not yet serving.
pub struct Server {
    pub listener: TcpListener,
    pub bound: SocketAddr,
    pub stack: Arc<LocalStack>,
    /// The Stripe mode of the webhook secret and keys.
    pub mode: tenancy::stripe::StripeMode,
    /// The task playing Fargate on the emulator: abort it when done.
    pub platform: Option<tokio::task::JoinHandle<()>>,
}

/// Local runs work with no configuration beyond the webhook secret: what
/// `env` leaves unset falls back to these.
pub fn local_default(var: &str) -> Option<String> {
    match var {
        config::TENANT_DOMAIN => Some("apps.example.test".into()),
        config::OPERATOR_EMAIL => Some("operator@example.test".into()),
        config::TENANT_PASSWORD_KEY => Some("local-development-key-never-use-in-aws-0001".into()),
        // A day is long for a laptop: release a cancelled subdomain after a minute (scaled).
        config::SUBDOMAIN_GRACE_SECONDS => Some("60".into()),
        checkout::CHECKOUT_SUCCESS_URL => {
            Some("http://localhost:3000/welcome?session={CHECKOUT_SESSION_ID}".into())
        }
        checkout::CHECKOUT_CANCEL_URL => Some("http://localhost:3000/pricing".into()),
        checkout::ALLOWED_ORIGINS => Some("http://localhost:3000".into()),
        _ => None,
    }
}

/// `env`, then [`local_default`].
pub struct WithLocalDefaults<'a>(pub &'a dyn Lookup);

impl Lookup for WithLocalDefaults<'_> {
    fn get(&self, var: &str) -> Option<String> {
        self.0.get(var).or_else(|| local_default(var))
    }
}

/// Binds `addr` and builds the stack configured by `env` (with
/// [`local_default`]s) as `options` say.
pub async fn build(addr: SocketAddr, options: ServerOptions, env: &dyn Lookup) -> Result<Server> {
    let ServerOptions { local: options, emulator, faults } = options;
    if !(options.time_scale.is_finite() && options.time_scale >= 0.0) {
        bail!("--time-scale must be a number ≥ 0");
    }
    let env = &WithLocalDefaults(env);
    let config = WebhookConfig::from_lookup(env)?;
    // The local Stripe signs its deliveries with the first webhook secret.
    let SecretsSource::Inline(list) = &config.secrets else {
        bail!("local serve reads its webhook secrets from STRIPE_WEBHOOK_SECRET")
    };
    let webhook_secret = list.primary().clone();
    let secrets = InMemorySecretStore::default();
    let verifier = config.verifier(&secrets).await?;
    let step_config = StepConfig {
        settings: TenantSettings::from_lookup(env)?,
        catalog: Catalog::embedded()?,
        password_key: config::password_key(env, &secrets).await?,
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let links = BillingLinks::checker(step_config.password_key.clone(), clock.clone());
    let status_key = step_config.password_key.clone();
    let (listener, bound) = crate::local::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let portal = format!("http://{bound}");
    let stripe = Arc::new(LocalStripe::open(options.state.as_deref(), &portal, clock.clone())?);
    // Subscriptions are read back from the stand-in over HTTP through the
    // same async-stripe client as in AWS, with a test-mode key.
    let stripe_api = Arc::new(local_stripe_client(config.mode, &portal)?);
    let (mut adapters, platform) = match &emulator {
        None => (Adapters::local(step_config, clock.clone(), &options, &portal, stripe.clone())?, None),
        Some(emulator) => {
            let (adapters, platform) = crate::emulated::adapters(
                emulator,
                step_config,
                clock.clone(),
                &portal,
                stripe.clone(),
                options.load_balancers,
            )
            .await
            .with_context(|| format!("setting up the AWS adapters against {}", emulator.endpoint))?;
            (adapters, Some(platform))
        }
    };
    adapters.steps.stripe = stripe_api.clone();
    // Money back through the same client: its cancellations reach the
    // stand-in over HTTP, which delivers Stripe's events for them.
    adapters.steps.money_back = stripe_api.clone();
    let queue = Arc::new(LocalEventQueue::default());
    let ingress = WebhookIngress::new(
        verifier,
        config.mode,
        crate::local::ingress_queue(&queue, faults.as_ref()),
        clock.clone(),
    );
    let settings = CheckoutSettings::from_lookup(env, config.mode)?;
    let gateway: Arc<dyn tenancy::ports::StripeGateway> = stripe_api;
    let api = CheckoutApi::new(
        wrap(adapters.steps.store.clone(), faults.as_ref()),
        wrap(gateway, faults.as_ref()),
        Catalog::embedded()?,
        settings,
        clock.clone(),
    )
    .with_billing_links(links, &format!("http://{bound}/"))
    .with_room_check(adapters.capacity.clone(), tenancy::checkout::room::room_reserve(env)?)
    .with_status(status_key, Some(&portal));
    let signup = LocalSignup { api, webhook_secret, clock };
    let stack = LocalStack::with_faults(ingress, queue, adapters, &options, Some(signup), faults)?;
    Ok(Server { listener, bound, stack, mode: config.mode, platform })
}

/// The async-stripe client pointed at the local Stripe stand-in on
/// `base_url`, with a test-mode key (the stand-in runs in test mode only).
fn local_stripe_client(mode: tenancy::stripe::StripeMode, base_url: &str) -> Result<StripeApi> {
    let key = tenancy::stripe::StripeSecretKey::for_mode("sk_test_local_stand_in_0000", mode)
        .context("the local Stripe stand-in only runs in test mode")?;
    Ok(StripeApi::new(key, Some(base_url), &format!("{base_url}/"))?)
}
