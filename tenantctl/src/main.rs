use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tenancy::adapters::faults::{FaultMix, FaultPlan};
use tenancy::config::ProcessEnv;
use tenancy::stripe::WebhookSecrets;
use tenantctl::emulated::Emulator;
use tenantctl::http_client::HttpClient;
use tenantctl::local::LocalOptions;
use tenantctl::report;
use tenantctl::send::{Delivery, send_file};
use tenantctl::server::ServerOptions;

#[derive(Parser)]
#[command(
    version,
    about = "Run the Stripe-to-tenant stack locally and talk to it, and repair a deployed stage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    stage: tenantctl::stage::args::StageArgs,
}

#[derive(Subcommand)]
enum Command {
    /// The go-live preflight of a deployed stage (--stage): each check ✔ or
    /// ✘ with what fixes it; exits non-zero on any ✘.
    Doctor {
        /// How many more tenants the quotas must leave room for.
        #[arg(long, default_value_t = 50)]
        expected_tenants: u64,
    },
    /// A deployed stage's Stripe events (--stage).
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// The events in a deployed stage's dead-letter queue back on its queue
    /// (--stage), where the dispatcher starts their executions again; and
    /// its executions that failed in the last 14 days outside a Fail state,
    /// redriven from the Task that failed (RedriveExecution). Both unless
    /// one is chosen; non-zero when an execution could not be redriven.
    Redrive {
        /// Only the dead-letter queue.
        #[arg(long, conflicts_with = "executions")]
        dead_letters: bool,
        /// Only the failed executions.
        #[arg(long)]
        executions: bool,
    },
    /// Tenant records ↔ what Stripe says ↔ what exists in ECS, the load
    /// balancer and Route 53 (--stage): drift, missing resources, orphans
    /// (our live subscriptions no tenant has among them), stuck executions.
    /// Exits non-zero when anything is found (with --fix: when anything is
    /// left unrepaired).
    Reconcile {
        /// Repair what was found: a lifecycle execution converges each
        /// drifted tenant to Stripe; orphans are removed. What needs a person
        /// (a tenant whose subscription Stripe does not have) is only listed.
        #[arg(long)]
        fix: bool,
    },
    /// A deployed stage's mails (--stage).
    Mail {
        #[command(subcommand)]
        command: MailCommand,
    },
    /// A deployed stage's tenants (--stage).
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// A deployed stage's Stripe account (with --stage test|live).
    Stripe {
        #[command(subcommand)]
        command: tenantctl::stage::stripe::StripeCommand,
    },
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
    /// An HTTP proxy in front of an AWS emulator (moto's server) that fails
    /// a share of requests: throttled before forwarding, 500 after the
    /// effect, or stalled past the client's timeout. Counts per API at
    /// GET /__fault-proxy/report.
    FaultProxy {
        /// The emulator, e.g. http://127.0.0.1:5000.
        #[arg(long)]
        upstream: String,
        /// Share of requests that fail, 0 to 1.
        #[arg(long)]
        rate: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "127.0.0.1:4580")]
        addr: SocketAddr,
        /// How long a stalled request is held (longer than the client's
        /// timeout; the adapters' attempt timeout is 5 s).
        #[arg(long, default_value_t = 6000)]
        stall_ms: u64,
        /// Weights of the kinds: before,after,timeout.
        #[arg(long, default_value = "1,1,1", value_parser = parse_mix)]
        mix: FaultMix,
    },
}

fn parse_mix(raw: &str) -> Result<FaultMix, String> {
    let weights: Vec<u32> = raw
        .split(',')
        .map(|w| w.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    match weights.as_slice() {
        [before, after, timeout] => Ok(FaultMix { before: *before, after: *after, timeout: *timeout }),
        _ => Err("expected three weights: before,after,timeout".into()),
    }
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Fetch the event from Stripe's Events API and run its workflow again,
    /// as EVT_ID-replay-TIME (the original execution name stays used).
    Replay { event_id: String },
}

#[derive(Subcommand)]
enum MailCommand {
    /// Send a tenant's mail that could not be sent (its reason is on the
    /// tenant: `tenants show`) again, once the cause is fixed; a mail that
    /// went out is never sent twice. KIND: welcome.
    Resend { kind: String, tenant: String },
    /// Forward a received message again, as SES's event for RECIPIENTS
    /// would have (after a failed event reached the alarm topic): from the
    /// stage's bucket, to each addressed tenant's customer; a copy that
    /// went out before is not sent again. MESSAGE is SES's message id.
    Forward {
        message: String,
        #[arg(required = true)]
        recipients: Vec<String>,
    },
}

#[derive(Subcommand)]
enum TenantsCommand {
    /// Every tenant (or those with --status), a line each.
    List {
        /// AWAITING_PAYMENT, PROVISIONING, ACTIVE, PAST_DUE, SUSPENDED, CANCELLED or FAILED.
        #[arg(long)]
        status: Option<String>,
    },
    /// One tenant: its record, desired vs reached generation, whether its
    /// resources really exist, its event trail and its executions' console pages.
    Show {
        /// Its subdomain or tenant id.
        tenant: String,
    },
    /// Revoke a tenant app's status token (TENANCY_STATUS_TOKEN): the old
    /// one gets 401 at once, and a lifecycle execution relaunches the app
    /// with the next one. Also gives a token to a tenant from before them.
    RotateStatusToken {
        /// Its subdomain or tenant id.
        tenant: String,
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
        /// monthly, annual, biennial or triennial.
        #[arg(long)]
        billing: String,
        #[arg(long)]
        subdomain: String,
        #[arg(long)]
        organization: String,
        #[arg(long)]
        email: String,
        /// A promotion code (`WELCOME10`), checked against Stripe.
        #[arg(long)]
        coupon: Option<String>,
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
        /// Start the subscription with a trial of this many days.
        #[arg(long)]
        trial_days: Option<u32>,
        /// Deliver every event paying makes (customer.created,
        /// customer.subscription.created, invoice.paid, then
        /// checkout.session.completed), not only the last.
        #[arg(long)]
        all_events: bool,
        #[command(flatten)]
        delivery: DeliveryArgs,
    },
    /// Change a subscription on the local Stripe as Stripe would, and deliver
    /// the events Stripe sends for it to the webhook. ACTION is one of
    /// change-plan PLAN, upgrade PLAN, downgrade PLAN, card-fails,
    /// card-recovers, unpaid, pause, resume, cancel, trial-will-end, trial-ends.
    Subscription {
        #[arg(long, default_value = "http://127.0.0.1:8787")]
        server: String,
        /// The subscription (`tenantctl local subscriptions` lists them).
        id: String,
        action: String,
        /// The plan, for change-plan, upgrade and downgrade.
        plan: Option<String>,
        /// monthly, annual, biennial or triennial (the current term by default).
        #[arg(long)]
        billing: Option<String>,
        /// What happens when the trial ends: on-file (the card the checkout
        /// took is charged; a card-less trial ends as its plan says), pay,
        /// fail, pause or cancel.
        #[arg(long, default_value = "on-file")]
        then: String,
        #[command(flatten)]
        delivery: DeliveryArgs,
    },
    /// Send a tenant's welcome mail again, once what stopped it is fixed
    /// (its failure is on the tenant in `/local/state`, and was mailed to
    /// the operator). A mail that did go out is not sent twice.
    ResendWelcome {
        #[arg(long, default_value = "http://127.0.0.1:8787")]
        server: String,
        subdomain: String,
    },
    /// Revoke a local tenant app's status token: the old one gets 401 at
    /// once, and a lifecycle execution relaunches the app with the next one.
    RotateStatusToken {
        #[arg(long, default_value = "http://127.0.0.1:8787")]
        server: String,
        subdomain: String,
    },
    /// List the local Stripe's subscriptions (id, status, subdomain, price).
    Subscriptions {
        #[arg(long, default_value = "http://127.0.0.1:8787")]
        server: String,
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
        /// The steps' AWS calls go through this URL (e.g. `tenantctl
        /// fault-proxy` in front of the emulator); bootstrapping and the
        /// emulated Fargate go to --aws-endpoint directly.
        #[arg(long, requires = "aws_endpoint")]
        aws_via: Option<String>,
        /// Fail this share (0 to 1) of calls to every port (store, launcher,
        /// DNS, mail, the webhook's queue, the dispatcher's starts), as
        /// transient errors before or after the effect, or timeouts.
        #[arg(long, default_value_t = 0.0)]
        faults: f64,
        /// The seed that picks which calls fail.
        #[arg(long, default_value_t = 0)]
        fault_seed: u64,
        /// Load balancers in the local pool, each holding AWS's quotas
        /// (ALB_MAX_TARGET_GROUPS, ALB_MAX_RULES): one holds 100 tenants.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        load_balancers: u16,
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

/// How the local Stripe delivers events: as Stripe may, more than once, out
/// of order, late.
#[derive(clap::Args, Debug, Clone)]
struct DeliveryArgs {
    /// Deliver each event this many extra times.
    #[arg(long, default_value_t = 0)]
    duplicate: u32,
    /// Shuffle the deliveries.
    #[arg(long)]
    reorder: bool,
    /// Seed for --reorder (the server draws one and prints it otherwise).
    #[arg(long)]
    seed: Option<u64>,
    /// Wait this long between deliveries.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

impl DeliveryArgs {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "duplicate": self.duplicate, "reorder": self.reorder, "seed": self.seed, "delay_ms": self.delay_ms,
        })
    }

    fn query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("duplicate", &self.duplicate.to_string());
        query.append_pair("reorder", if self.reorder { "true" } else { "false" });
        if let Some(seed) = self.seed {
            query.append_pair("seed", &seed.to_string());
        }
        query.append_pair("delay_ms", &self.delay_ms.to_string());
        query.finish()
    }
}

/// One line on failure (the cause chain, never a backtrace, whatever
/// RUST_BACKTRACE says) and a non-zero exit.
fn main() -> std::process::ExitCode {
    let runtime = tenantctl::memory::runtime_with_one_arena_per_core();
    match runtime.context("starting the runtime").and_then(|runtime| runtime.block_on(run(Cli::parse()))) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Events { command: EventsCommand::Replay { event_id } } => {
            use tenantctl::stage::events;
            let stage = cli.stage.find().await?;
            let secrets = tenancy::adapters::aws::secret_store(&stage.sdk);
            let stripe =
                events::stripe_client(&stage, &secrets, cli.stage.stripe_api_base.as_deref()).await?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
            let replayed = events::replay(&stage, &stripe, &event_id, i64::try_from(now)?).await?;
            if cli.stage.json {
                println!("{}", serde_json::to_string_pretty(&replayed)?);
            } else {
                println!(
                    "{} ({}) runs again as {}",
                    replayed.event_id, replayed.event_type, replayed.execution_arn
                );
            }
            Ok(())
        }
        Command::Mail { command: MailCommand::Resend { kind, tenant } } => {
            let stage = cli.stage.find().await?;
            let secrets = tenancy::adapters::aws::secret_store(&stage.sdk);
            let report = tenantctl::stage::mail::resend(&stage, &secrets, &kind, &tenant).await?;
            if cli.stage.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                match (&report.sent, &report.failed) {
                    (Some(sent), _) if sent.already_sent => {
                        println!("{kind} mail of {tenant}: sent before ({})", sent.message_id)
                    }
                    (Some(sent), _) => println!("{kind} mail of {tenant}: sent ({})", sent.message_id),
                    (None, Some(why)) => bail!("{kind} mail of {tenant} not sent: {why}"),
                    (None, None) => bail!("{kind} mail of {tenant} not sent"),
                }
            }
            Ok(())
        }
        Command::Mail { command: MailCommand::Forward { message, recipients } } => {
            let stage = cli.stage.find().await?;
            let deliveries = tenantctl::stage::mail::forward(&stage, &message, &recipients).await?;
            if cli.stage.json {
                println!("{}", serde_json::to_string_pretty(&deliveries)?);
            } else {
                use tenancy::inbound::forward::Delivery;
                for delivery in &deliveries {
                    match delivery {
                        Delivery::Forwarded { recipient, to, message_id, .. } => {
                            println!("{recipient}: forwarded to {to} ({message_id})")
                        }
                        Delivery::AlreadyForwarded { recipient, .. } => {
                            println!("{recipient}: forwarded before")
                        }
                        Delivery::Dropped { recipient, reason } => {
                            println!("{recipient}: dropped ({reason})")
                        }
                    }
                }
            }
            Ok(())
        }
        Command::Reconcile { fix } => {
            use tenantctl::stage::{events, reconcile, tenants};
            let stage = cli.stage.find().await?;
            let secrets = tenancy::adapters::aws::secret_store(&stage.sdk);
            let stripe =
                events::stripe_client(&stage, &secrets, cli.stage.stripe_api_base.as_deref()).await?;
            let catalog = tenancy::domain::Catalog::embedded()?;
            let inventory = reconcile::inventory(&stage).await?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
            let now = i64::try_from(now)?;
            let mut findings =
                reconcile::reconcile(&tenants::store(&stage)?, &stripe, &catalog, &inventory).await?;
            findings.extend(reconcile::stuck_executions(&stage, now).await?);
            if !fix {
                if cli.stage.json {
                    println!("{}", serde_json::to_string_pretty(&findings)?);
                } else {
                    tenantctl::stage::paint::print(&reconcile::render(&findings));
                }
                if !findings.is_empty() {
                    bail!("{} finding(s); tenantctl reconcile --fix repairs them", findings.len());
                }
                return Ok(());
            }
            let repaired = reconcile::fix(&stage, &findings, now).await?;
            if cli.stage.json {
                let both = serde_json::json!({ "findings": findings, "repairs": repaired });
                println!("{}", serde_json::to_string_pretty(&both)?);
            } else {
                tenantctl::stage::paint::print(&reconcile::render(&findings));
                tenantctl::stage::paint::print(&reconcile::render_repairs(&repaired));
            }
            let left = repaired.iter().filter(|r| r.done.is_none()).count();
            if left > 0 {
                bail!("{left} finding(s) not repaired");
            }
            Ok(())
        }
        Command::Redrive { dead_letters, executions } => {
            use tenantctl::stage::redrive;
            let stage = cli.stage.find().await?;
            let moved = match executions {
                true => None,
                false => Some(redrive::redrive_dead_letters(&stage).await?),
            };
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
            let runs = match dead_letters {
                true => Vec::new(),
                false => redrive::redrive_executions(&stage, i64::try_from(now)?).await?,
            };
            if cli.stage.json {
                let both = serde_json::json!({ "dead_letters": moved, "executions": runs });
                println!("{}", serde_json::to_string_pretty(&both)?);
            } else {
                if let Some(moved) = moved {
                    println!("{} event(s) moved from the dead-letter queue back to the queue", moved.moved);
                }
                if !dead_letters {
                    println!("{} failed execution(s) in the last 14 days", runs.len());
                    tenantctl::stage::paint::print(&redrive::render_executions(&runs));
                }
            }
            let refused = runs
                .iter()
                .filter(|run| matches!(run.outcome, redrive::ExecutionOutcome::NotRedriven { .. }))
                .count();
            if refused > 0 {
                bail!("{refused} execution(s) not redriven");
            }
            Ok(())
        }
        Command::Tenants { command } => {
            use tenantctl::stage::tenants;
            let stage = cli.stage.find().await?;
            let store = tenants::store(&stage)?;
            match command {
                TenantsCommand::List { status } => {
                    let status = status.as_deref().map(tenants::parse_status).transpose()?;
                    let list = tenants::list(&store, status).await?;
                    if cli.stage.json {
                        println!("{}", serde_json::to_string_pretty(&list)?);
                    } else {
                        tenantctl::stage::paint::print(&tenants::render_list(&list));
                    }
                }
                TenantsCommand::RotateStatusToken { tenant } => {
                    let secrets = tenancy::adapters::aws::secret_store(&stage.sdk);
                    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
                    let rotated = tenantctl::stage::status_token::rotate(
                        &stage,
                        &secrets,
                        &tenant,
                        i64::try_from(now)?,
                    )
                    .await?;
                    if cli.stage.json {
                        println!("{}", serde_json::to_string_pretty(&rotated)?);
                    } else {
                        println!(
                            "status token of {} rotated to generation {}: the old one is refused; {} relaunches its app",
                            rotated.tenant_id, rotated.token_generation, rotated.execution
                        );
                    }
                }
                TenantsCommand::Show { tenant } => {
                    let view = tenants::show(&stage, &store, &tenant).await?;
                    if cli.stage.json {
                        println!("{}", serde_json::to_string_pretty(&view)?);
                    } else {
                        tenantctl::stage::paint::print(&tenants::render_show(&view));
                    }
                }
            }
            Ok(())
        }
        Command::Doctor { expected_tenants } => {
            let stage = cli.stage.find().await?;
            let secrets = tenancy::adapters::aws::secret_store(&stage.sdk);
            let mut checks = tenantctl::stage::doctor::doctor(&stage, &secrets, expected_tenants).await;
            // Stripe is asked only with a key that passed (the right mode).
            if checks
                .iter()
                .any(|c| c.name == "Stripe key" && c.verdict == tenantctl::stage::doctor::Verdict::Pass)
            {
                let stripe = tenantctl::stage::events::stripe_client(
                    &stage,
                    &secrets,
                    cli.stage.stripe_api_base.as_deref(),
                )
                .await?;
                let catalog = tenancy::domain::Catalog::embedded()?;
                checks.extend(tenantctl::stage::doctor::doctor_stripe(&stage, &stripe, &catalog).await);
            }
            if cli.stage.json {
                println!("{}", serde_json::to_string_pretty(&checks)?);
            } else {
                println!("{} ({})", stage.stack, stage.name);
                tenantctl::stage::paint::print(&tenantctl::stage::doctor::render(&checks));
            }
            if !tenantctl::stage::doctor::all_passed(&checks) {
                bail!("the stage is not ready: fix each ✘ above");
            }
            Ok(())
        }
        Command::Stripe { command } => {
            std::process::exit(tenantctl::stage::stripe::main(&cli.stage, &command).await)
        }
        Command::Local {
            command:
                LocalCommand::Serve {
                    addr,
                    state,
                    time_scale,
                    definitions,
                    aws_endpoint,
                    aws_via,
                    faults,
                    fault_seed,
                    load_balancers,
                },
        } => {
            let faults = fault_plan(faults, fault_seed, time_scale)?;
            // Configuration first: a runtime dropped on the way out of this
            // async function (a `?` below it) would panic instead of saying
            // what was wrong.
            // Each local load balancer's quotas: AWS's, or ALB_MAX_TARGET_GROUPS / ALB_MAX_RULES.
            let quotas = tenancy::ports::AlbQuotas::from_lookup(&tenancy::config::ProcessEnv)?;
            // Route 53's change rate: AWS's, or ROUTE53_CHANGES_PER_SECOND.
            let dns_changes_per_second =
                tenancy::adapters::local::dns_change_rate(&tenancy::config::ProcessEnv)?;
            // The executions get a runtime of their own, so the webhook keeps
            // answering while steps run (see LocalOptions::executor), on one
            // core fewer than the machine has: a burst of executions cannot
            // take every core from the deliveries (BENCHMARKS.md, section 5).
            let workflows = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(tenancy::spare_cores())
                .thread_name("workflows")
                .enable_all()
                .build()
                .context("starting the workflow runtime")?;
            let executor = Some(workflows.handle().clone());
            let options = LocalOptions {
                state,
                time_scale,
                definitions,
                executor,
                quotas,
                load_balancers: usize::from(load_balancers),
                dns_changes_per_second,
            };
            let emulator = aws_endpoint.map(|endpoint| Emulator { endpoint, via: aws_via });
            let served = serve(addr, ServerOptions { local: options, emulator, faults }).await;
            workflows.shutdown_background();
            served
        }
        Command::Local { command: LocalCommand::State { server, wait } } => {
            report::print_state(&server, wait).await
        }
        Command::Local {
            command: LocalCommand::Checkout { server, plan, billing, subdomain, organization, email, coupon },
        } => {
            let form = serde_json::json!({
                "plan": plan, "billing": billing, "subdomain": subdomain, "organization": organization, "email": email,
                "coupon": coupon,
            });
            post_json(&format!("{}/checkout", server.trim_end_matches('/')), &form).await
        }
        Command::Local { command: LocalCommand::Available { server, name } } => {
            let url = format!("{}/subdomains/{name}", server.trim_end_matches('/'));
            let (status, answer) = HttpClient::default().get(&url).await?;
            println!("{} {}", status.as_u16(), String::from_utf8_lossy(&answer));
            Ok(())
        }
        Command::Local {
            command: LocalCommand::Pay { server, session_id, trial_days, all_events, delivery },
        } => {
            let mut query = delivery.query();
            if let Some(days) = trial_days {
                query.push_str(&format!("&trial_days={days}"));
            }
            if all_events {
                query.push_str("&all_events=true");
            }
            let url =
                format!("{}/local/stripe/checkout/{session_id}/pay?{query}", server.trim_end_matches('/'));
            post_json(&url, &serde_json::Value::Null).await
        }
        Command::Local {
            command: LocalCommand::Subscription { server, id, action, plan, billing, then, delivery },
        } => {
            let mut body = delivery.json();
            body["plan"] = serde_json::json!(plan);
            body["billing"] = serde_json::json!(billing);
            body["then"] = serde_json::json!(then);
            let url = format!("{}/local/stripe/subscriptions/{id}/{action}", server.trim_end_matches('/'));
            let (status, answer) = call_json(&url, &body).await?;
            print!("{}", report::render_deliveries(&answer));
            if !status.is_success() {
                bail!("the local Stripe refused: HTTP {}", status.as_u16());
            }
            Ok(())
        }
        Command::Local { command: LocalCommand::ResendWelcome { server, subdomain } } => {
            let url = format!("{}/local/tenants/{subdomain}/resend-welcome", server.trim_end_matches('/'));
            let (status, answer) = call_json(&url, &serde_json::Value::Null).await?;
            println!("{answer}");
            if !status.is_success() {
                bail!("not resent: HTTP {}", status.as_u16());
            }
            Ok(())
        }
        Command::Local { command: LocalCommand::RotateStatusToken { server, subdomain } } => {
            let url =
                format!("{}/local/tenants/{subdomain}/rotate-status-token", server.trim_end_matches('/'));
            let (status, answer) = call_json(&url, &serde_json::Value::Null).await?;
            println!("{answer}");
            if !status.is_success() {
                bail!("not rotated: HTTP {}", status.as_u16());
            }
            Ok(())
        }
        Command::Local { command: LocalCommand::Subscriptions { server } } => {
            let url = format!("{}/local/stripe/subscriptions", server.trim_end_matches('/'));
            let (status, answer) = HttpClient::default().get(&url).await?;
            if !status.is_success() {
                bail!("HTTP {}: {}", status.as_u16(), String::from_utf8_lossy(&answer));
            }
            let list: serde_json::Value = serde_json::from_slice(&answer).context("the server's answer")?;
            print!("{}", report::render_subscriptions(&list));
            Ok(())
        }
        Command::Send { url, secret, timestamp, files } => send(&url, &secret, timestamp, &files).await,
        Command::FaultProxy { upstream, rate, seed, addr, stall_ms, mix } => {
            tenancy::telemetry::init_json_logs();
            let plan = FaultPlan::new(rate, seed)?
                .with_mix(mix)?
                .with_timeout_delay(std::time::Duration::from_millis(stall_ms));
            let plan = Arc::new(plan);
            let proxy = tenantctl::fault_proxy::FaultProxy::start(addr, &upstream, plan.clone()).await?;
            println!(
                "tenantctl fault-proxy: http://{} -> {upstream}, rate {rate}, seed {seed}; counts at {}",
                proxy.addr(),
                tenantctl::fault_proxy::REPORT_PATH
            );
            proxy
                .run_until(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await;
            println!("{}", serde_json::to_string_pretty(&plan.report())?);
            Ok(())
        }
    }
}

/// `--faults RATE --fault-seed N`: timeouts last 5 s (a Lambda's SDK
/// attempt timeout), scaled like every other local delay.
fn fault_plan(rate: f64, seed: u64, time_scale: f64) -> Result<Option<Arc<FaultPlan>>> {
    if rate == 0.0 {
        return Ok(None);
    }
    let delay = std::time::Duration::from_secs_f64((5.0 * time_scale).clamp(0.0, 5.0));
    let plan = FaultPlan::new(rate, seed).context("--faults")?.with_timeout_delay(delay);
    Ok(Some(Arc::new(plan)))
}

async fn serve(addr: SocketAddr, options: ServerOptions) -> Result<()> {
    tenancy::telemetry::init_json_logs();
    let backend =
        options.emulator.as_ref().map_or("local adapters".to_owned(), |emulator| match &emulator.via {
            None => format!("AWS adapters on {}", emulator.endpoint),
            Some(via) => format!("AWS adapters on {} through {via}", emulator.endpoint),
        });
    let injected = options.faults.as_ref().map_or(String::new(), |plan| {
        format!(", faults at rate {} seed {} (counts in /local/state)", plan.rate(), plan.seed())
    });
    let server = tenantctl::server::build(addr, options, &ProcessEnv).await?;
    let mode = server.mode;
    println!(
        "tenantctl local: listening on http://{} (Stripe mode: {mode}, {backend}{injected})",
        server.bound
    );
    tenantctl::local::serve(server.listener, server.stack, async {
        // Ctrl-C or SIGTERM; if the signal cannot be installed, run until killed.
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    if let Some(platform) = server.platform {
        platform.abort();
    }
    Ok(())
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

/// POSTs `body` and reads the answer as JSON (an answer that is not JSON is kept as text).
async fn call_json(url: &str, body: &serde_json::Value) -> Result<(http::StatusCode, serde_json::Value)> {
    let request = http::Request::post(url)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body.to_string())))?;
    let (status, answer) = HttpClient::default().call(request).await?;
    let value = serde_json::from_slice(&answer)
        .unwrap_or_else(|_| serde_json::json!({"error": String::from_utf8_lossy(&answer)}));
    Ok((status, value))
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
