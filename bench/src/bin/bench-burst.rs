//! Benchmark 5, burst: `tenantctl local serve` as a separate process, N signed
//! `checkout.session.completed` deliveries sent over loopback as fast as a
//! client with a fixed number of connections can, then redeliveries of some
//! of them (as Stripe retries). Measures the webhook's answer time while the
//! provisioning work queues behind it, and the time until every tenant is
//! ACTIVE; then checks that none was lost or doubled.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use serde_json::Value;
use tenancy::stripe::WebhookSecret;
use tenancy_bench::report::{Table, bytes, seconds, three_figures, write_section};
use tenancy_bench::stats::Samples;
use tenantctl::http_client::HttpClient;

const SECRET: &str = "whsec_bench_burst_0000000000000000";
const TEMPLATE: &str = include_str!("../../../events/01-checkout.session.completed.json");

#[derive(Parser)]
#[command(about = "Burst of signed checkouts through tenantctl local serve")]
struct Args {
    /// The tenantctl binary (a release build).
    #[arg(long)]
    tenantctl: PathBuf,
    /// Distinct checkouts sent.
    #[arg(long, default_value_t = 1000)]
    checkouts: usize,
    /// Of those, this many are delivered a second time after the burst.
    #[arg(long, default_value_t = 100)]
    redeliveries: usize,
    /// Requests in flight at once (one connection each).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The server's --time-scale (its Wait states and simulated AWS delays).
    #[arg(long, default_value_t = 0.01)]
    time_scale: f64,
    /// Give up waiting for every tenant to be ACTIVE after this many seconds.
    #[arg(long, default_value_t = 900)]
    limit_seconds: u64,
    /// The server's log goes here.
    #[arg(long)]
    server_log: PathBuf,
    /// The Markdown section written.
    #[arg(long)]
    out: PathBuf,
}

/// A running `tenantctl local serve`, stopped when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(args: &Args) -> Result<Server> {
        let mut child = Command::new(&args.tenantctl)
            .args(["local", "serve", "--addr", "127.0.0.1:0", "--time-scale"])
            .arg(args.time_scale.to_string())
            .env("STRIPE_WEBHOOK_SECRET", SECRET)
            .env("STRIPE_MODE", "test")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", args.tenantctl.display()))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout from tenantctl"))?;
        let mut log = std::fs::File::create(&args.server_log)
            .with_context(|| format!("creating {}", args.server_log.display()))?;
        let (found, address) = std::sync::mpsc::channel();
        // Reads the address it bound, then keeps draining its log into the file
        // so a full pipe never stalls the server.
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(tx) = &found
                    && let Some(rest) = line.split("listening on ").nth(1)
                {
                    let base = rest.split_whitespace().next().unwrap_or_default().to_owned();
                    let _ = tx.send(base);
                    found = None;
                }
                let _ = writeln!(log, "{line}");
            }
        });
        let mut server = Server { child, base: String::new() };
        server.base = address
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| anyhow!("tenantctl did not say where it listens within 30 s"))?;
        Ok(server)
    }

    /// Peak resident memory and CPU time so far, from /proc.
    fn usage(&self) -> (Option<u64>, Option<f64>) {
        let pid = self.child.id();
        let peak = std::fs::read_to_string(format!("/proc/{pid}/status")).ok().and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
        });
        // utime and stime are fields 14 and 15, after the parenthesised name.
        let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|stat| {
            let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
            let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0) // USER_HZ is 100 on Linux
        });
        (peak, cpu)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The i-th customer's completed checkout, as Stripe would send it.
fn checkout_event(template: &Value, i: usize, now: i64) -> Result<Vec<u8>> {
    let mut event = template.clone();
    let set = |event: &mut Value, pointer: &str, value: Value| -> Result<()> {
        *event.pointer_mut(pointer).ok_or_else(|| anyhow!("the template has no {pointer}"))? = value;
        Ok(())
    };
    set(&mut event, "/id", format!("evt_1Burst{i:06}").into())?;
    set(&mut event, "/created", now.into())?;
    set(&mut event, "/data/object/id", format!("cs_test_burst{i:06}").into())?;
    set(&mut event, "/data/object/created", (now - 60).into())?;
    set(&mut event, "/data/object/customer", format!("cus_Burst{i:06}").into())?;
    set(&mut event, "/data/object/subscription", format!("sub_Burst{i:06}").into())?;
    set(&mut event, "/data/object/invoice", format!("in_Burst{i:06}").into())?;
    let email = format!("owner{i}@customer{i}.example");
    set(&mut event, "/data/object/customer_email", email.clone().into())?;
    set(&mut event, "/data/object/customer_details/email", email.into())?;
    set(&mut event, "/data/object/metadata/subdomain", format!("burst-{i:04}").into())?;
    set(&mut event, "/data/object/metadata/organization", format!("Burst Customer {i}").into())?;
    Ok(serde_json::to_vec(&event)?)
}

struct Delivery {
    body: Bytes,
    header: String,
}

/// Sends every delivery with `concurrency` in flight; returns each answer
/// time. Every answer must be 200.
async fn send_all(
    client: &HttpClient,
    url: &str,
    deliveries: Arc<Vec<Delivery>>,
    concurrency: usize,
) -> Result<Vec<Duration>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, url, deliveries, next) =
            (client.clone(), url.to_owned(), deliveries.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut times = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(delivery) = deliveries.get(i) else { return Ok::<_, anyhow::Error>(times) };
                let request = http::Request::post(&url)
                    .header("content-type", "application/json")
                    .header("stripe-signature", &delivery.header)
                    .body(Full::new(delivery.body.clone()))?;
                let started = Instant::now();
                let (status, answer) = client.call(request).await?;
                times.push(started.elapsed());
                ensure!(
                    status == http::StatusCode::OK,
                    "delivery {i} answered {status}: {}",
                    String::from_utf8_lossy(&answer)
                );
            }
        }));
    }
    let mut times = Vec::new();
    for worker in workers {
        times.extend(worker.await.context("a sender panicked")??);
    }
    Ok(times)
}

/// What the server holds, summarised.
#[derive(Debug, Default)]
struct Tally {
    tenants: usize,
    active: usize,
    distinct_subdomains: usize,
    services: usize,
    dns_records: usize,
    welcome_mails: usize,
    distinct_welcome_recipients: usize,
    executions: usize,
    succeeded: usize,
    running: usize,
    queued: usize,
    dead_letters: usize,
}

fn count(state: &Value, key: &str) -> usize {
    state[key].as_array().map_or(0, Vec::len)
}

fn tally(state: &Value) -> Tally {
    let list = |key: &str| state[key].as_array().cloned().unwrap_or_default();
    let tenants = list("tenants");
    let subdomains: BTreeSet<&str> =
        tenants.iter().filter_map(|t| t["signup"]["subdomain"].as_str()).collect();
    let welcome: Vec<&Value> = state["emails"]
        .as_array()
        .map(|mails| {
            mails
                .iter()
                .filter(|m| m["subject"].as_str().is_some_and(|s| s.ends_with("workspace is ready")))
                .collect()
        })
        .unwrap_or_default();
    let recipients: BTreeSet<&str> = welcome.iter().filter_map(|m| m["to"].as_str()).collect();
    let executions = list("executions");
    let with_status = |status: &str| executions.iter().filter(|e| e["status"] == status).count();
    Tally {
        tenants: tenants.len(),
        active: tenants.iter().filter(|t| t["status"] == "ACTIVE").count(),
        distinct_subdomains: subdomains.len(),
        services: count(state, "services"),
        dns_records: count(state, "dns_records"),
        welcome_mails: welcome.len(),
        distinct_welcome_recipients: recipients.len(),
        executions: executions.len(),
        succeeded: with_status("SUCCEEDED"),
        running: with_status("RUNNING"),
        queued: count(state, "queue"),
        dead_letters: count(state, "dead_letters"),
    }
}

async fn fetch_state(client: &HttpClient, base: &str) -> Result<Value> {
    let (status, body) = client.get(&format!("{base}/local/state")).await?;
    ensure!(status.is_success(), "GET /local/state answered {status}");
    Ok(serde_json::from_slice(&body)?)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.redeliveries <= args.checkouts, "--redeliveries cannot exceed --checkouts");
    let secret = WebhookSecret::parse(SECRET).map_err(|e| anyhow!("{e}"))?;
    let template: Value = serde_json::from_str(TEMPLATE).context("events/01 is not JSON")?;
    let server = Server::start(&args)?;
    let client = HttpClient::default();
    let url = format!("{}/stripe/webhook", server.base);

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let mut bodies = Vec::with_capacity(args.checkouts);
    for i in 0..args.checkouts {
        bodies.push(Bytes::from(checkout_event(&template, i, now)?));
    }
    let signed = |body: &Bytes| Delivery { header: secret.sign_header(now, body), body: body.clone() };
    let burst: Arc<Vec<Delivery>> = Arc::new(bodies.iter().map(signed).collect());
    // Stripe redelivers the same event (same id and body), signed anew.
    let step = (args.checkouts / args.redeliveries.max(1)).max(1);
    let again: Arc<Vec<Delivery>> =
        Arc::new(bodies.iter().step_by(step).take(args.redeliveries).map(signed).collect());

    let started = Instant::now();
    let answers = send_all(&client, &url, burst, args.concurrency).await?;
    let burst_time = started.elapsed();
    let redelivery_answers = send_all(&client, &url, again, args.concurrency).await?;

    let limit = Duration::from_secs(args.limit_seconds);
    let (all_active, last) = loop {
        let now = tally(&fetch_state(&client, &server.base).await?);
        if now.active >= args.checkouts && now.running == 0 && now.queued == 0 {
            break (Some(started.elapsed()), now);
        }
        if started.elapsed() > limit {
            break (None, now);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (peak_memory, cpu_seconds) = server.usage();
    drop(server);

    let times = Samples::from_durations(&answers).ok_or_else(|| anyhow!("no answers"))?;
    let again_times = Samples::from_durations(&redelivery_answers);
    let n = args.checkouts;
    let lost = n.saturating_sub(last.active);
    let doubled = [last.tenants, last.services, last.dns_records, last.welcome_mails, last.executions]
        .iter()
        .map(|&c| c.saturating_sub(n))
        .max()
        .unwrap_or(0);

    let mut table = Table::new(["Measure", "Figure", "Target"]);
    let p99 = times.percentile(99.0);
    table
        .row(["Checkouts sent (distinct events)".to_string(), n.to_string(), String::new()])
        .row(["Webhook answer time, p50".to_string(), seconds(times.median()), String::new()])
        .row(["Webhook answer time, p90".to_string(), seconds(times.percentile(90.0)), String::new()])
        .row([
            "Webhook answer time, p99".to_string(),
            seconds(p99),
            target(p99 < 0.005, &format!("under 5 ms: {}", margin(p99, 0.005))),
        ])
        .row(["Webhook answer time, max".to_string(), seconds(times.max()), String::new()])
        .row([
            "Burst sent in".to_string(),
            format!(
                "{} ({} deliveries/s)",
                seconds(burst_time.as_secs_f64()),
                three_figures(n as f64 / burst_time.as_secs_f64())
            ),
            String::new(),
        ])
        .row([
            "Redeliveries of the same events (answered 200), p99".to_string(),
            match &again_times {
                Some(t) => format!("{} × {}", redelivery_answers.len(), seconds(t.percentile(99.0))),
                None => "none sent".to_string(),
            },
            String::new(),
        ])
        .row([
            "First delivery to all tenants ACTIVE".to_string(),
            all_active
                .map_or_else(|| format!("not within {} s", args.limit_seconds), |t| seconds(t.as_secs_f64())),
            target(all_active.is_some() && lost == 0, &format!("all {n} ACTIVE")),
        ])
        .row([
            "Tenants ACTIVE / lost / doubled".to_string(),
            format!("{} / {lost} / {doubled}", last.active),
            target(lost == 0 && doubled == 0, "none lost or doubled"),
        ])
        .row([
            "Executions (succeeded) / services / DNS records / welcome mails (distinct recipients)"
                .to_string(),
            format!(
                "{} ({}) / {} / {} / {} ({})",
                last.executions,
                last.succeeded,
                last.services,
                last.dns_records,
                last.welcome_mails,
                last.distinct_welcome_recipients
            ),
            format!("{n} each"),
        ])
        .row([
            "Distinct subdomains / dead letters".to_string(),
            format!("{} / {}", last.distinct_subdomains, last.dead_letters),
            String::new(),
        ])
        .row([
            "Server peak memory (VmHWM)".to_string(),
            peak_memory.map_or("n/a".into(), bytes),
            String::new(),
        ])
        .row([
            "Server CPU time (user + system)".to_string(),
            cpu_seconds.map_or("n/a".into(), seconds),
            String::new(),
        ]);

    let command = format!(
        "target/release/bench-burst --tenantctl target/release/tenantctl --checkouts {n} --redeliveries {} --concurrency {} --time-scale {}",
        args.redeliveries, args.concurrency, args.time_scale
    );
    let markdown = format!(
        "## 5. Burst\n\n\
         {n} signed `checkout.session.completed` deliveries (distinct customers and subdomains) \
         POSTed to `tenantctl local serve` over loopback by {c} connections as fast as each gets its \
         answers; then {r} of them delivered again, as Stripe retries. The server runs the same webhook \
         handler, dispatcher, provisioning state machine and steps as Lambda, with local adapters in \
         memory, at `--time-scale {ts}` (its Wait states and simulated ECS/DNS delays scaled by {ts}). \
         Answer time is measured by the client, request sent to answer read; the provisioning work \
         queues behind the answers and runs while later deliveries are answered.\n\n{table}\n\
         Command: `{cmd}`\n",
        c = args.concurrency,
        r = redelivery_answers.len(),
        ts = args.time_scale,
        table = table.to_markdown(),
        cmd = command,
    );
    write_section(&args.out, &markdown)?;
    print!("{markdown}");
    if lost > 0 || doubled > 0 {
        bail!("{lost} tenants lost and {doubled} doubled: {last:?}");
    }
    Ok(())
}

fn target(met: bool, what: &str) -> String {
    format!("{} {what}", if met { "met:" } else { "**missed**:" })
}

/// How far `value` is under (or over) `limit`, as a percentage of the limit.
fn margin(value: f64, limit: f64) -> String {
    if value <= limit {
        format!("{} under", seconds(limit - value))
    } else {
        format!("{} over ({}×)", seconds(value - limit), three_figures(value / limit))
    }
}
