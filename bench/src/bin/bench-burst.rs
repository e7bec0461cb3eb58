//! Benchmark 5, burst (see `tenancy_bench::burst`): against `tenantctl
//! local serve` in a process of its own, as a user would run it.

use std::io::{BufRead, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use tenancy_bench::burst::{Plan, Run, SECRET, ServerUsage, run, section};
use tenancy_bench::coldstart::peak_rss;
use tenancy_bench::report::write_section;

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
    /// Connections, each with one delivery in flight; several values
    /// (comma-separated) make one run each, against a fresh server.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    concurrency: Vec<usize>,
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
            // Room for every checkout: the local launcher holds each load
            // balancer to AWS's 100 tenants, as the pool's operator would.
            .arg("--load-balancers")
            .arg(tenancy_bench::scale::pool_for(args.checkouts).to_string())
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
    fn usage(&self) -> ServerUsage {
        let pid = self.child.id();
        let peak = std::fs::read_to_string(format!("/proc/{pid}/status")).ok().and_then(|s| peak_rss(&s));
        // utime and stime are fields 14 and 15, after the parenthesised name.
        let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|stat| {
            let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
            let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0) // USER_HZ is 100 on Linux
        });
        ServerUsage { peak_memory: peak, cpu_seconds: cpu }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut runs = Vec::new();
    for &concurrency in &args.concurrency {
        let plan = Plan {
            checkouts: args.checkouts,
            redeliveries: args.redeliveries,
            concurrency,
            time_scale: args.time_scale,
            limit: Duration::from_secs(args.limit_seconds),
        };
        let server = Server::start(&args)?;
        let outcome = run(&server.base, &plan).await;
        let usage = server.usage();
        drop(server);
        runs.push(Run { plan, outcome: outcome?, usage });
    }
    let levels: Vec<String> = args.concurrency.iter().map(usize::to_string).collect();
    let command = format!(
        "target/release/bench-burst --tenantctl target/release/tenantctl --checkouts {} --redeliveries {} --concurrency {} --time-scale {}",
        args.checkouts,
        args.redeliveries,
        levels.join(","),
        args.time_scale
    );
    let markdown = section(&runs, &command)?;
    write_section(&args.out, &markdown)?;
    print!("{markdown}");
    for run in &runs {
        let (lost, doubled) = (run.outcome.lost(&run.plan), run.outcome.doubled(&run.plan));
        if lost > 0 || doubled > 0 {
            bail!(
                "{lost} tenants lost and {doubled} doubled at {} connections: {:?}",
                run.plan.concurrency,
                run.outcome.tally
            );
        }
    }
    Ok(())
}
