use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tenancy::adapters::local::{InMemorySecretStore, LocalEventQueue, LocalStripe};
use tenancy::adapters::stripe::StripeApi;
use tenancy::checkout::{self, CheckoutApi, CheckoutSettings};
use tenancy::clock::{Clock, SystemClock};
use tenancy::config::{self, Lookup, ProcessEnv, SecretsSource, TenantSettings, WebhookConfig};
use tenancy::domain::Catalog;
use tenancy::ingress::WebhookIngress;
use tenancy::stripe::WebhookSecrets;
use tenantctl::http_client::HttpClient;
use tenantctl::local::{Adapters, LocalOptions, LocalSignup, LocalStack, StepConfig};
use tenantctl::report;
use tenantctl::send::{Delivery, send_file};

#[derive(Parser)]
#[command(version, about = "Run the Stripe-to-tenant stack locally and talk to it")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The local stack.
    Local {
        #[command(subcommand)]
        command: LocalCommand,
    },
    /// Sign event files with the webhook secret, as Stripe does, and POST them.
    Send {
        /// Webhook URL.
        #[arg(long, default_value = "http://127.0.0.1:8787/stripe/webhook")]
        url: String,
        /// Signing secret; the first of STRIPE_WEBHOOK_SECRET by default.
        #[arg(long, env = "STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
        /// Sign with this Unix time instead of now (to show stale deliveries).
        #[arg(long, allow_hyphen_values = true)]
        timestamp: Option<i64>,
        /// Event JSON files, sent in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum LocalCommand {
    /// Start a signup through the checkout API, as the marketing site would.
    Checkout {
        #[arg(long, default_value = "http://127.0.0.1:8787")]
        server: String,
        #[arg(long)]
        plan: String,
        #[arg(long)]
        billing: String,
        #[arg(long)]
        subdomain: String,
        #[arg(long)]
        organization: String,
        #[arg(long)]
        email: String,
    },
    /// Ask the checkout API whether a subdomain is available.
    Available {
        #[arg(long, default_value = "http://127.0.0.1:8787")]
        server: String,
        name: String,
    },
    /// Pay a local Checkout Session: Stripe's completed event goes to the webhook.
    Pay {
        #[arg(long, default_value = "http://127.0.0.1:8787")]
        server: String,
        session_id: String,
    },
    /// Serve the whole flow with local adapters: POST /stripe/webhook,
    /// GET /local/state, GET /local/executions/{name}.
    /// Reads STRIPE_WEBHOOK_SECRET (comma-separated) and STRIPE_MODE; optional
    /// TENANT_DOMAIN, OPERATOR_EMAIL, TENANT_PASSWORD_KEY.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8787")]
        addr: SocketAddr,
        /// Keep state in this directory so it survives a restart.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Multiplies Wait states, retry delays and simulated AWS delays
        /// (1.0 = real time). Timeouts are not scaled: a Task's is real time,
        /// and an execution's counts waits unscaled plus real task time.
        #[arg(long, default_value_t = 0.01)]
        time_scale: f64,
        /// Read the state machine files from here instead of the built-in
        /// copies of infra/statemachine/.
        #[arg(long)]
        definitions: Option<PathBuf>,
        /// Use the AWS adapters against this AWS emulator (moto's server)
        /// instead of the local adapters; it is bootstrapped with a table,
        /// cluster, load balancer, hosted zone and sender first.
        #[arg(long)]
        aws_endpoint: Option<String>,
    },
    /// Print the executions (like the Step Functions console), tenants,
    /// services, DNS records and mails of a running local server.
    State {
        #[arg(long, default_value = "http://127.0.0.1:8787")]
        server: String,
        /// Wait until no execution is running (up to this many seconds).
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Local {
            command: LocalCommand::Serve { addr, state, time_scale, definitions, aws_endpoint },
        } => {
            // The executions get a runtime of their own, so the webhook keeps
            // answering while steps run (see LocalOptions::executor).
            let workflows = tokio::runtime::Builder::new_multi_thread()
                .thread_name("workflows")
                .enable_all()
                .build()
                .context("starting the workflow runtime")?;
            let options =
                LocalOptions { state, time_scale, definitions, executor: Some(workflows.handle().clone()) };
            let served = serve(addr, options, aws_endpoint.as_deref()).await;
            workflows.shutdown_background();
            served
        }
        Command::Local { command: LocalCommand::State { server, wait } } => {
            report::print_state(&server, wait).await
        }
        Command::Local {
            command: LocalCommand::Checkout { server, plan, billing, subdomain, organization, email },
        } => {
            let form = serde_json::json!({
                "plan": plan, "billing": billing, "subdomain": subdomain, "organization": organization, "email": email,
            });
            post_json(&format!("{}/checkout", server.trim_end_matches('/')), &form).await
        }
        Command::Local { command: LocalCommand::Available { server, name } } => {
            let url = format!("{}/subdomains/{name}", server.trim_end_matches('/'));
            let (status, answer) = HttpClient::default().get(&url).await?;
            println!("{} {}", status.as_u16(), String::from_utf8_lossy(&answer));
            Ok(())
        }
        Command::Local { command: LocalCommand::Pay { server, session_id } } => {
            let url = format!("{}/local/stripe/checkout/{session_id}/pay", server.trim_end_matches('/'));
            post_json(&url, &serde_json::Value::Null).await
        }
        Command::Send { url, secret, timestamp, files } => send(&url, &secret, timestamp, &files).await,
    }
}

/// Local runs work with no configuration beyond the webhook secret.
fn with_local_defaults(var: &str) -> Option<String> {
    ProcessEnv.get(var).or_else(|| match var {
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
    })
}

async fn serve(addr: SocketAddr, options: LocalOptions, aws_endpoint: Option<&str>) -> Result<()> {
    tenancy::telemetry::init_json_logs();
    if !(options.time_scale.is_finite() && options.time_scale >= 0.0) {
        bail!("--time-scale must be a number ≥ 0");
    }
    let env = &with_local_defaults;
    let config = WebhookConfig::from_lookup(env)?;
    if !matches!(config.secrets, SecretsSource::Inline(_)) {
        bail!("local serve reads its webhook secrets from STRIPE_WEBHOOK_SECRET");
    }
    let secrets = InMemorySecretStore::default();
    let verifier = config.verifier(&secrets).await?;
    // The local Stripe signs its deliveries with the first webhook secret.
    let verifier_secret = match &config.secrets {
        SecretsSource::Inline(list) => list.primary().clone(),
        SecretsSource::Parameter(_) => {
            bail!("local serve reads its webhook secrets from STRIPE_WEBHOOK_SECRET")
        }
    };
    let step_config = StepConfig {
        settings: TenantSettings::from_lookup(env)?,
        catalog: Catalog::embedded()?,
        password_key: config::password_key(env, &secrets).await?,
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (listener, bound) = tenantctl::local::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let portal = format!("http://{bound}");
    let (adapters, emulated_ecs) = match aws_endpoint {
        None => (Adapters::local(step_config, clock.clone(), &options, &portal)?, None),
        Some(endpoint) => {
            let (adapters, platform) = tenantctl::emulated::adapters(
                endpoint,
                step_config.settings,
                step_config.password_key,
                clock.clone(),
                &portal,
            )
            .await
            .with_context(|| format!("setting up the AWS adapters against {endpoint}"))?;
            (adapters, Some(platform))
        }
    };
    let queue = Arc::new(LocalEventQueue::default());
    let ingress = WebhookIngress::new(verifier, config.mode, queue.clone(), clock.clone());
    let signup = local_signup(
        env,
        config.mode,
        adapters.steps.store.clone(),
        &verifier_secret,
        clock,
        &portal,
        &options,
    )?;
    let stack = LocalStack::new(ingress, queue, adapters, &options, Some(signup))?;
    let backend = aws_endpoint.map_or("local adapters".to_owned(), |url| format!("AWS adapters on {url}"));
    println!("tenantctl local: listening on http://{bound} (Stripe mode: {}, {backend})", config.mode);
    tenantctl::local::serve(listener, stack, async {
        // Ctrl-C or SIGTERM; if the signal cannot be installed, run until killed.
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    if let Some(platform) = emulated_ecs {
        platform.abort();
    }
    Ok(())
}

/// The checkout API on a local Stripe (Stripe is never emulated on moto).
fn local_signup(
    env: &dyn Lookup,
    mode: tenancy::stripe::StripeMode,
    store: Arc<dyn tenancy::ports::TenantStore>,
    webhook_secret: &tenancy::stripe::WebhookSecret,
    clock: Arc<dyn Clock>,
    base_url: &str,
    options: &LocalOptions,
) -> Result<LocalSignup> {
    let stripe = Arc::new(LocalStripe::open(options.state.as_deref(), base_url, clock.clone())?);
    let settings = CheckoutSettings::from_lookup(env, mode)?;
    // The checkout API calls the local Stripe over HTTP through the same
    // async-stripe adapter it uses in AWS, with a test-mode key.
    let key = tenancy::stripe::StripeSecretKey::for_mode("sk_test_local_stand_in_0000", mode)
        .context("the local Stripe stand-in only runs in test mode")?;
    let client = StripeApi::new(key, Some(base_url), &format!("{base_url}/"))?;
    let api = CheckoutApi::new(store, Arc::new(client), Catalog::for_stage(mode)?, settings, clock.clone())?;
    Ok(LocalSignup { api, stripe, webhook_secret: webhook_secret.clone(), clock })
}

async fn post_json(url: &str, body: &serde_json::Value) -> Result<()> {
    let request = http::Request::post(url)
        .header("content-type", "application/json")
        .header("origin", "http://localhost:3000")
        .body(http_body_util::Full::new(bytes::Bytes::from(body.to_string())))?;
    let (status, answer) = HttpClient::default().call(request).await?;
    println!("{} {}", status.as_u16(), String::from_utf8_lossy(&answer));
    Ok(())
}

async fn send(url: &str, secret: &str, timestamp: Option<i64>, files: &[PathBuf]) -> Result<()> {
    let secrets = WebhookSecrets::parse_list(secret).context("STRIPE_WEBHOOK_SECRET / --secret")?;
    let client = HttpClient::default();
    let delivery = Delivery { url, secret: secrets.primary(), timestamp };
    for file in files {
        let sent = send_file(&client, &delivery, file).await?;
        println!("{:<48} -> {} {}", sent.file.display(), sent.status.as_u16(), sent.answer);
    }
    Ok(())
}
