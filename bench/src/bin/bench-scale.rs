//! Benchmark 7, scale (see `tenancy_bench::scale`): each size in a process
//! of its own (this binary again, with `--one`), so each peak memory is that
//! size's alone.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use tenancy_bench::report::write_section;
use tenancy_bench::scale::{Row, run, section};

#[derive(Parser)]
#[command(about = "Provisioning 100, 1,000 and 10,000 tenants on a pool of load balancers")]
struct Args {
    /// Tenants per run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    sizes: Vec<usize>,
    /// Multiplies Wait states and simulated AWS delays (and Route 53's rate with them).
    #[arg(long, default_value_t = 0.01)]
    time_scale: f64,
    /// Give up on a size after this many seconds.
    #[arg(long, default_value_t = 3600)]
    limit_seconds: u64,
    /// The Markdown section written.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run this one size here and print its row as JSON (what each size's process does).
    #[arg(long, hide = true)]
    one: Option<usize>,
}

fn main() -> Result<()> {
    // The allocator set as `tenantctl local serve` sets it.
    tenantctl::memory::runtime_with_one_arena_per_core()?.block_on(measure(Args::parse()))
}

async fn measure(args: Args) -> Result<()> {
    if let Some(tenants) = args.one {
        let row = run(tenants, args.time_scale, Duration::from_secs(args.limit_seconds)).await?;
        println!("{}", serde_json::to_string(&row)?);
        return Ok(());
    }
    let mut rows = Vec::new();
    for &tenants in &args.sizes {
        eprintln!("scale: {tenants} tenants");
        let output = Command::new(std::env::current_exe()?)
            .args(["--one", &tenants.to_string(), "--time-scale", &args.time_scale.to_string()])
            .args(["--limit-seconds", &args.limit_seconds.to_string()])
            .env("RUST_LOG", "off")
            .output()
            .context("running a size")?;
        if !output.status.success() {
            bail!("{tenants} tenants: {}", String::from_utf8_lossy(&output.stderr));
        }
        let row: Row = serde_json::from_slice(&output.stdout).context("a size's row")?;
        rows.push(row);
    }
    let sizes: Vec<String> = args.sizes.iter().map(usize::to_string).collect();
    let command =
        format!("target/release/bench-scale --sizes {} --time-scale {}", sizes.join(","), args.time_scale);
    let markdown = section(&rows, &command);
    if let Some(out) = &args.out {
        write_section(out, &markdown)?;
    }
    print!("{markdown}");
    Ok(())
}
