//! Benchmark 6, reliability (see `tenancy_bench::reliability`): the whole
//! stack with the AWS adapters on moto behind the fault proxy, once per
//! fault rate, each run on a freshly reset moto.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use tenancy_bench::reliability::{Plan, run, section};
use tenancy_bench::report::write_section;

#[derive(Parser)]
#[command(about = "Checkouts and subscription stories under injected AWS faults, counted on the emulator")]
struct Args {
    /// moto's server.
    #[arg(long, env = "MOTO_ENDPOINT")]
    moto: String,
    #[arg(long, default_value_t = 2000)]
    checkouts: usize,
    #[arg(long, default_value_t = 1000)]
    stories: usize,
    /// Fault rates, one run each.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.3")]
    rates: Vec<f64>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// A delivery waits while this many executions run (moto's capacity).
    #[arg(long, default_value_t = 48)]
    max_running: usize,
    /// The stack's time scale. Stalls, the SDK's timeouts and the emulator's
    /// latency are real time: a tenth keeps retry and health-check windows
    /// in proportion to them.
    #[arg(long, default_value_t = 0.1)]
    time_scale: f64,
    /// Give up waiting for a phase to settle after this many seconds.
    #[arg(long, default_value_t = 3600)]
    limit_seconds: u64,
    /// The Markdown section written.
    #[arg(long)]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut runs = Vec::new();
    for rate in &args.rates {
        let plan = Plan {
            checkouts: args.checkouts,
            stories: args.stories.min(args.checkouts),
            rate: *rate,
            seed: args.seed,
            concurrency: args.concurrency,
            max_running: args.max_running,
            time_scale: args.time_scale,
            limit: Duration::from_secs(args.limit_seconds),
        };
        eprintln!("reliability: {} checkouts, {} stories at {rate} faults", plan.checkouts, plan.stories);
        let outcome = run(&plan, &args.moto).await?;
        eprintln!(
            "reliability: at {rate}: {} of {} tenants as Stripe says, {} orphans, in {:.0} s",
            outcome.end.subscriptions - outcome.end.records_off,
            outcome.end.subscriptions,
            outcome.end.orphans(),
            outcome.elapsed.as_secs_f64()
        );
        runs.push(outcome);
    }
    let rates: Vec<String> = args.rates.iter().map(f64::to_string).collect();
    let command = format!(
        "bench-reliability --checkouts {} --stories {} --rates {} --seed {} --concurrency {} --max-running {} --time-scale {}",
        args.checkouts,
        args.stories,
        rates.join(","),
        args.seed,
        args.concurrency,
        args.max_running,
        args.time_scale
    );
    write_section(&args.out, &section(&runs, &command))?;
    Ok(())
}
