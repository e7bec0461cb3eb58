//! Benchmark 4, cost per tenant: see `tenancy_bench::cost`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use tenancy_bench::cost::{customer_life, section};
use tenancy_bench::report::write_section;

#[derive(Parser)]
#[command(about = "State transitions, invocations and DynamoDB units per tenant")]
struct Args {
    /// Multiplies Wait states and simulated AWS delays (counts do not depend on it).
    #[arg(long, default_value_t = 0.001)]
    time_scale: f64,
    /// The Markdown section written.
    #[arg(long)]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let markdown = section(&customer_life(args.time_scale).await?, args.time_scale);
    write_section(&args.out, &markdown)?;
    print!("{markdown}");
    Ok(())
}
