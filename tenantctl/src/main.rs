use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tenancy::adapters::local::{InMemorySecretStore, LocalEventQueue};
use tenancy::clock::SystemClock;
use tenancy::config::{ProcessEnv, SecretsSource, WebhookConfig};
use tenancy::ingress::WebhookIngress;
use tenancy::stripe::{WebhookSecret, WebhookSecrets};
use tenantctl::http_client::HttpClient;
use tenantctl::local::{LocalStack, QueuedView};
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
    /// Serve POST /stripe/webhook and GET /local/queue with local adapters.
    /// Reads STRIPE_WEBHOOK_SECRET (comma-separated) and STRIPE_MODE.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8787")]
        addr: SocketAddr,
    },
    /// Print what the local server's queue holds.
    Queue {
        #[arg(long, default_value = "http://127.0.0.1:8787")]
        server: String,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Local { command: LocalCommand::Serve { addr } } => serve(addr).await,
        Command::Local { command: LocalCommand::Queue { server } } => show_queue(&server).await,
        Command::Send { url, secret, timestamp, files } => send(&url, &secret, timestamp, &files).await,
    }
}

async fn serve(addr: SocketAddr) -> Result<()> {
    tenancy::telemetry::init_json_logs();
    let config = WebhookConfig::from_lookup(&ProcessEnv)?;
    if !matches!(config.secrets, SecretsSource::Inline(_)) {
        bail!("local serve reads its webhook secrets from STRIPE_WEBHOOK_SECRET");
    }
    let verifier = config.verifier(&InMemorySecretStore::default()).await?;
    let queue = Arc::new(LocalEventQueue::default());
    let ingress = WebhookIngress::new(verifier, config.mode, queue.clone(), Arc::new(SystemClock));
    let stack = Arc::new(LocalStack { ingress, queue });
    let (listener, bound) = tenantctl::local::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    println!("tenantctl local: listening on http://{bound} (Stripe mode: {})", config.mode);
    tenantctl::local::serve(listener, stack, async {
        // Ctrl-C or SIGTERM; if the signal cannot be installed, run until killed.
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

async fn send(url: &str, secret: &str, timestamp: Option<i64>, files: &[PathBuf]) -> Result<()> {
    let secrets = WebhookSecrets::parse_list(secret).context("STRIPE_WEBHOOK_SECRET / --secret")?;
    let secret: &WebhookSecret = secrets.primary();
    let client = HttpClient::default();
    let delivery = Delivery { url, secret, timestamp };
    for file in files {
        let sent = send_file(&client, &delivery, file).await?;
        println!("{:<48} -> {} {}", sent.file.display(), sent.status.as_u16(), sent.answer);
    }
    Ok(())
}

async fn show_queue(server: &str) -> Result<()> {
    let url = format!("{}/local/queue", server.trim_end_matches('/'));
    let (status, body) = HttpClient::default().get(&url).await?;
    if !status.is_success() {
        bail!("{url} answered {status}");
    }
    #[derive(serde::Deserialize)]
    struct Listing {
        queue: Vec<QueuedView>,
    }
    let listing: Listing = serde_json::from_slice(&body).with_context(|| format!("reading {url}"))?;
    println!("{} message(s) on the local queue", listing.queue.len());
    for event in listing.queue {
        println!(
            "  {:<32} {:<32} created {} ({} bytes)",
            event.event_id, event.event_type, event.created, event.body_bytes
        );
    }
    Ok(())
}
