//! make bench, section 2: cold start. Starts the webhook function (and the
//! Python and Node.js peers) as a Lambda would, against a local Runtime API
//! and moto's server, and times each from process start to its first
//! answered event; writes the section's Markdown. Run by
//! bench/sections/2-coldstart.sh.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use tenancy::stripe::WebhookSecret;
use tenancy_bench::coldstart::{
    Invocation, Outcome, RuntimeApi, api_gateway_event, check_answer, peak_rss, stripe_event,
};
use tenancy_bench::report::{Table, ratio, seconds, three_figures, write_section};
use tenancy_bench::stats::Samples;

const SECRET: &str = "whsec_bench_coldstart_secret";
const SECRET_PARAM: &str = "/tenancy/bench/stripe-webhook-secrets";
/// A start that has not answered by then has failed.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Issue 16's target (issue 6's was 15 ms).
const TARGET_MEDIAN_SECS: f64 = 0.012;
const TARGET_FACTOR: f64 = 10.0;
const TARGET_PEAK_BYTES: f64 = 30e6;

#[derive(Parser)]
#[command(about = "Cold start of the webhook function beside Python and Node.js peers")]
struct Args {
    /// The webhook function's release binary.
    #[arg(long)]
    rust: PathBuf,
    /// Python interpreter with stripe and boto3 (bench/.venv/bin/python).
    #[arg(long)]
    python: PathBuf,
    #[arg(long, default_value = "bench/peers/python/webhook_lambda.py")]
    python_script: PathBuf,
    /// Node.js; the script finds its packages in its own folder's node_modules.
    #[arg(long, default_value = "node")]
    node: PathBuf,
    #[arg(long, default_value = "bench/peers/node/webhook_lambda.mjs")]
    node_script: PathBuf,
    /// Recorded starts per implementation (after one warm-up start each).
    #[arg(long, default_value_t = 20)]
    starts: usize,
    #[arg(long, env = "MOTO_ENDPOINT")]
    moto_endpoint: String,
    /// Where the functions' output goes, one log per implementation.
    #[arg(long)]
    logs: PathBuf,
    /// The Markdown section to write.
    #[arg(long)]
    section: PathBuf,
    /// The command to print in the section as the way to reproduce it.
    #[arg(long)]
    command: String,
    /// Another build of the webhook function, measured beside ours in the
    /// same rounds (to see what a change bought); not in the section's
    /// targets.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Measure only these (rust, baseline, python, node), for
    /// experiments; the section's ratios and targets need rust first.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

struct Implementation {
    key: &'static str,
    label: &'static str,
    program: PathBuf,
    args: Vec<OsString>,
    /// Set on top of the Lambda environment.
    env: Vec<(String, OsString)>,
}

/// One start: process start to first GET /invocation/next (init), to the
/// answer (total), and the peak resident set by then; for ours, the init's
/// phases as it logged them.
#[derive(Debug, Clone)]
struct Start {
    init: Duration,
    total: Duration,
    peak: u64,
    phases: Option<Phases>,
}

/// Ours' init, phase by phase: from the process's start to `main`, then
/// each phase `InitPhases` logged (`name=µs`, in order).
#[derive(Debug, Clone)]
struct Phases {
    to_main: Duration,
    logged: Vec<(String, Duration)>,
}

/// The phases in the last `initialised` line of `log`, given when the
/// process was started.
fn logged_phases(log: &str, spawned_at: SystemTime) -> Option<Phases> {
    let line = log.lines().rev().find(|line| line.contains("\"initialised\""))?;
    let fields: serde_json::Value = serde_json::from_str(line).ok()?;
    let main_at = UNIX_EPOCH + Duration::from_micros(fields["main_at_us"].as_u64()?);
    let logged = fields["init_phases_us"]
        .as_str()?
        .split_whitespace()
        .map(|part| {
            let (name, micros) = part.split_once('=')?;
            Some((name.to_owned(), Duration::from_micros(micros.parse().ok()?)))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Phases { to_main: main_at.duration_since(spawned_at).unwrap_or_default(), logged })
}

struct Moto {
    ssm: aws_sdk_ssm::Client,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    probe_queue_url: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.starts == 0 {
        bail!("--starts must be at least 1");
    }
    std::fs::create_dir_all(&args.logs).with_context(|| format!("cannot create {}", args.logs.display()))?;
    let logs = std::path::absolute(&args.logs).context("cannot resolve the log folder")?;
    let [rust, python, node] = [
        Implementation {
            key: "rust",
            label: "Rust (this repository)",
            program: args.rust.clone(),
            args: vec![],
            env: vec![],
        },
        Implementation {
            key: "python",
            label: "Python (boto3 + stripe)",
            program: args.python.clone(),
            args: vec![args.python_script.clone().into()],
            env: vec![],
        },
        Implementation {
            key: "node",
            label: "Node.js (AWS SDK v3 + stripe)",
            program: args.node.clone(),
            args: vec![args.node_script.clone().into()],
            env: vec![],
        },
    ];
    let baseline = args.baseline.clone().map(|program| Implementation {
        key: "baseline",
        label: "Rust, baseline build (--baseline)",
        program,
        args: vec![],
        env: vec![],
    });
    let implementations: Vec<Implementation> = [Some(rust), baseline, Some(python), Some(node)]
        .into_iter()
        .flatten()
        .filter(|implementation| {
            args.only.is_empty() || args.only.iter().any(|key| key == implementation.key)
        })
        .collect();
    if implementations.is_empty() {
        bail!("--only names none of rust, baseline, python, node");
    }
    for implementation in &implementations {
        // Truncate old logs so a failure message points at this run's output.
        File::create(logs.join(format!("{}.log", implementation.key)))
            .with_context(|| format!("cannot create the {} log", implementation.key))?;
    }

    let moto = bootstrap_moto(&args.moto_endpoint).await?;
    let api = RuntimeApi::default();
    let (runtime_api, server) = api.serve().await?;
    tokio::spawn(server);
    let secret = WebhookSecret::parse(SECRET).context("the benchmark's webhook secret is invalid")?;
    let env = function_env(&runtime_api, &args.moto_endpoint, &moto.queue_url, &logs);

    // One unrecorded start each, so every implementation's files are in the
    // page cache before the figures start.
    for implementation in &implementations {
        start_once(implementation, &api, &moto, &secret, &env, &logs, "warmup").await?;
    }
    let mut starts: Vec<Vec<Start>> = vec![Vec::new(); implementations.len()];
    let (mut get_parameter, mut send_message) = (Vec::new(), Vec::new());
    for round in 0..args.starts {
        // Interleaved, so noise on this machine hits every implementation alike.
        for (index, implementation) in implementations.iter().enumerate() {
            let start =
                start_once(implementation, &api, &moto, &secret, &env, &logs, &round.to_string()).await?;
            starts[index].push(start);
        }
        let (get, send) = moto_round_trip(&moto).await?;
        get_parameter.push(get);
        send_message.push(send);
        eprintln!("round {}/{} done", round + 1, args.starts);
    }

    let summaries = implementations
        .iter()
        .zip(&starts)
        .map(|(implementation, starts)| Summary::new(implementation, starts))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let moto_times = MotoTimes {
        get_parameter: Samples::from_durations(&get_parameter).context("no moto timings")?.median(),
        send_message: Samples::from_durations(&send_message).context("no moto timings")?.median(),
    };
    let markdown = section(&summaries, &moto_times, args.starts, &args.command);
    write_section(&args.section, &markdown)
        .with_context(|| format!("cannot write {}", args.section.display()))?;
    print!("{markdown}");
    Ok(())
}

/// The SSM SecureString with the webhook secret, the queue the functions
/// send to, and a second queue for timing moto itself.
async fn bootstrap_moto(endpoint: &str) -> anyhow::Result<Moto> {
    let config = tenancy::adapters::aws::sdk_config(Some(endpoint)).await;
    let ssm = aws_sdk_ssm::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    ssm.put_parameter()
        .name(SECRET_PARAM)
        .value(SECRET)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .with_context(|| format!("cannot put SSM parameter {SECRET_PARAM} on moto at {endpoint}"))?;
    let suffix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default();
    let mut urls = Vec::new();
    for name in [format!("bench-coldstart-{suffix}"), format!("bench-coldstart-probe-{suffix}")] {
        let created = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .with_context(|| format!("cannot create SQS queue {name} on moto"))?;
        urls.push(created.queue_url.with_context(|| format!("moto returned no URL for queue {name}"))?);
    }
    let [queue_url, probe_queue_url] =
        <[String; 2]>::try_from(urls).map_err(|_| anyhow::anyhow!("two queues"))?;
    Ok(Moto { ssm, sqs, queue_url, probe_queue_url })
}

/// What Lambda's environment gives a function, plus the function's own
/// configuration; nothing from the harness's environment but PATH.
fn function_env(runtime_api: &str, moto: &str, queue_url: &str, home: &Path) -> Vec<(String, OsString)> {
    let mut env: Vec<(String, OsString)> = [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api),
        ("AWS_LAMBDA_FUNCTION_NAME", "stripe-webhook"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/stripe-webhook"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_ENDPOINT_URL", moto),
        ("LANG", "C.UTF-8"),
        ("TZ", ":UTC"),
        ("STRIPE_MODE", "test"),
        ("STRIPE_WEBHOOK_SECRET_PARAM", SECRET_PARAM),
        ("EVENT_QUEUE_URL", queue_url),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), OsString::from(value)))
    .collect();
    // A home with no ~/.aws, so no SDK reads a real profile.
    env.push(("HOME".to_owned(), home.as_os_str().to_owned()));
    if let Some(path) = std::env::var_os("PATH") {
        env.push(("PATH".to_owned(), path));
    }
    env
}

async fn start_once(
    implementation: &Implementation,
    api: &RuntimeApi,
    moto: &Moto,
    secret: &WebhookSecret,
    env: &[(String, OsString)],
    logs: &Path,
    round: &str,
) -> anyhow::Result<Start> {
    let key = implementation.key;
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or_default();
    // Event ids take letters, digits and underscores only.
    let event_id = format!("evt_bench_{}_{round}_{nanos}", key.replace('-', "_"));
    let request_id = format!("{nanos:08x}-0000-4000-8000-{:012x}", std::process::id());
    let body = stripe_event(&event_id)?;
    let event = api_gateway_event(&body, secret, SystemTime::now(), &request_id)?;
    let watch = api.offer(Invocation { request_id, event });

    let log_path = logs.join(format!("{key}.log"));
    let log = File::options()
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let log_err = log.try_clone().context("cannot share the log file")?;
    let mut command = Command::new(&implementation.program);
    command
        .args(&implementation.args)
        .env_clear()
        .envs(env.iter().chain(&implementation.env).map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);

    let spawned_at = SystemTime::now();
    let started = Instant::now();
    let mut child =
        command.spawn().with_context(|| format!("cannot start {}", implementation.program.display()))?;
    let waited = wait_for_answer(&mut child, watch).await;
    // Read before the kill: the peak up to the answer.
    let peak =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok().and_then(|s| peak_rss(&s));
    let _ = child.kill(); // fails only if it already exited, which `waited` reports
    let _ = child.wait();
    let see_log = || format!("{key}: see {}", log_path.display());

    let (fetched, outcome) = waited.with_context(see_log)?;
    let (answered, answer) = match outcome {
        Outcome::Answered { at, body } => (at, body),
        Outcome::Failed { body } => bail!("{key}: invocation error: {}", String::from_utf8_lossy(&body)),
        Outcome::InitFailed { body } => bail!("{key}: init error: {}", String::from_utf8_lossy(&body)),
    };
    check_answer(&answer).with_context(|| format!("{key}: wrong answer"))?;
    check_queued(moto, &event_id).await.with_context(|| format!("{key}: the event did not reach SQS"))?;
    let phases = match key {
        "rust" => {
            let log = std::fs::read_to_string(&log_path).with_context(see_log)?;
            Some(logged_phases(&log, spawned_at).with_context(|| format!("{key}: no `initialised` line"))?)
        }
        _ => None,
    };
    Ok(Start {
        init: fetched.unwrap_or(answered).saturating_duration_since(started),
        total: answered.saturating_duration_since(started),
        peak: peak.with_context(|| format!("{key}: no VmHWM in /proc/{}/status", child.id()))?,
        phases,
    })
}

/// Waits for the invocation's outcome, noting when the event was fetched;
/// fails early if the process exits first.
async fn wait_for_answer(
    child: &mut Child,
    watch: tenancy_bench::coldstart::Watch,
) -> anyhow::Result<(Option<Instant>, Outcome)> {
    let mut fetched = watch.fetched;
    let mut fetched_at = None;
    let mut fetched_done = false;
    let mut outcome = watch.outcome;
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    let deadline = tokio::time::sleep(START_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            at = &mut fetched, if !fetched_done => {
                fetched_done = true;
                fetched_at = at.ok();
            }
            result = &mut outcome => {
                return result.map(|outcome| (fetched_at, outcome)).context("the runtime API stopped");
            }
            _ = poll.tick() => {
                if let Some(status) = child.try_wait().context("cannot check the process")? {
                    bail!("the process exited ({status}) before answering");
                }
            }
            () = &mut deadline => bail!("no answer within {} s", START_TIMEOUT.as_secs()),
        }
    }
}

/// Exactly one message, the one this start sent, is on the queue; removes it.
async fn check_queued(moto: &Moto, event_id: &str) -> anyhow::Result<()> {
    let received = moto
        .sqs
        .receive_message()
        .queue_url(&moto.queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .context("cannot receive from moto's SQS")?;
    let messages = received.messages.unwrap_or_default();
    for message in &messages {
        if let Some(handle) = &message.receipt_handle {
            moto.sqs
                .delete_message()
                .queue_url(&moto.queue_url)
                .receipt_handle(handle)
                .send()
                .await
                .context("cannot delete from moto's SQS")?;
        }
    }
    let ids: Vec<String> = messages
        .iter()
        .filter_map(|m| m.body.as_deref())
        .filter_map(|body| serde_json::from_str::<serde_json::Value>(body).ok())
        .map(|event| event["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    if ids != [event_id] {
        bail!("expected one message for {event_id}, found {ids:?}");
    }
    Ok(())
}

/// moto's own time for the two calls every implementation makes, from a
/// warm client: what part of each figure is the emulator.
async fn moto_round_trip(moto: &Moto) -> anyhow::Result<(Duration, Duration)> {
    let started = Instant::now();
    moto.ssm
        .get_parameter()
        .name(SECRET_PARAM)
        .with_decryption(true)
        .send()
        .await
        .context("cannot time moto's GetParameter")?;
    let get = started.elapsed();
    let started = Instant::now();
    moto.sqs
        .send_message()
        .queue_url(&moto.probe_queue_url)
        .message_body(stripe_event("evt_bench_probe")?)
        .send()
        .await
        .context("cannot time moto's SendMessage")?;
    Ok((get, started.elapsed()))
}

struct Summary {
    key: &'static str,
    label: &'static str,
    total: Samples,
    init: Samples,
    /// Total less init: the event itself.
    event: Samples,
    peak: Samples,
    /// Ours: each init phase's samples, in order.
    phases: Vec<(String, Samples)>,
}

impl Summary {
    fn new(implementation: &Implementation, starts: &[Start]) -> anyhow::Result<Self> {
        let of =
            |f: fn(&Start) -> f64| Samples::new(starts.iter().map(f).collect()).context("no starts recorded");
        Ok(Summary {
            key: implementation.key,
            label: implementation.label,
            total: of(|s| s.total.as_secs_f64())?,
            init: of(|s| s.init.as_secs_f64())?,
            event: of(|s| s.total.saturating_sub(s.init).as_secs_f64())?,
            peak: of(|s| s.peak as f64)?,
            phases: phase_samples(starts)?,
        })
    }
}

/// Each phase's samples across starts: process start to `main`, each
/// logged phase, then the Lambda runtime's start (the rest of the init).
fn phase_samples(starts: &[Start]) -> anyhow::Result<Vec<(String, Samples)>> {
    let Some(first) = starts.first().and_then(|start| start.phases.as_ref()) else { return Ok(Vec::new()) };
    let mut names = vec!["main".to_owned()];
    names.extend(first.logged.iter().map(|(name, _)| name.clone()));
    names.push("runtime".to_owned());
    let mut columns = vec![Vec::new(); names.len()];
    for start in starts {
        let phases = start.phases.as_ref().context("a start logged no phases")?;
        let logged: Vec<Duration> = phases.logged.iter().map(|(_, took)| *took).collect();
        anyhow::ensure!(logged.len() + 2 == names.len(), "starts logged different phases");
        let before_runtime = phases.to_main + logged.iter().sum::<Duration>();
        let mut row = vec![phases.to_main];
        row.extend(logged);
        row.push(start.init.saturating_sub(before_runtime));
        for (column, took) in columns.iter_mut().zip(row) {
            column.push(took.as_secs_f64());
        }
    }
    names
        .into_iter()
        .zip(columns)
        .map(|(name, column)| Ok((name, Samples::new(column).context("no phases recorded")?)))
        .collect()
}

struct MotoTimes {
    get_parameter: f64,
    send_message: f64,
}

/// `p10–p90` of samples in seconds.
fn spread(samples: &Samples) -> String {
    format!("{}–{}", seconds(samples.percentile(10.0)), seconds(samples.percentile(90.0)))
}

/// Ours' start, phase by phase.
fn breakdown(ours: &Summary, moto: &MotoTimes) -> String {
    let mut table = Table::new(["Phase", "Median", "p10–p90"]);
    for (name, samples) in &ours.phases {
        let what = match name.as_str() {
            "main" => "Process start to `main`: exec, the loader, the Tokio runtime".to_owned(),
            "config" => "Logging, typed configuration, the catalog check".to_owned(),
            "sdk" => "AWS SDK configuration; the shared HTTPS client and its CA bundle file read".to_owned(),
            "secrets" => format!(
                "The SSM read of the signing secrets, the first connection's TLS set-up included \
                 (moto's own GetParameter: {}); the SQS client is built while it waits",
                seconds(moto.get_parameter)
            ),
            "runtime" => "The Lambda runtime's start, to its first `GET /invocation/next`".to_owned(),
            other => format!("`{other}`"),
        };
        table.row([what, seconds(samples.median()), spread(samples)]);
    }
    table.row([
        format!(
            "The event: signature check, envelope, SQS send (moto's own SendMessage: {}), the answer",
            seconds(moto.send_message)
        ),
        seconds(ours.event.median()),
        spread(&ours.event),
    ]);
    table.to_markdown()
}

/// Bytes in decimal megabytes, the unit of the memory target.
fn megabytes(value: f64) -> String {
    format!("{} MB", three_figures(value / 1e6))
}

fn times_less(peer: f64, ours: f64) -> String {
    if ours <= 0.0 || peer <= 0.0 {
        "n/a".to_owned()
    } else if peer >= ours {
        format!("{}× less", three_figures(peer / ours))
    } else {
        format!("{}× more", three_figures(ours / peer))
    }
}

/// "met (x to spare)" or "missed by x (y %)" for an upper limit.
fn verdict_below(measured: f64, limit: f64, show: fn(f64) -> String) -> String {
    if measured < limit {
        format!("met ({} to spare)", show(limit - measured))
    } else {
        format!(
            "**missed** by {} ({} % over)",
            show(measured - limit),
            three_figures((measured / limit - 1.0) * 100.0)
        )
    }
}

fn verdict_factor(factor: f64) -> String {
    if factor >= TARGET_FACTOR {
        "met".to_owned()
    } else {
        format!("**missed**: {}× short of {TARGET_FACTOR}×", three_figures(TARGET_FACTOR / factor))
    }
}

fn section(summaries: &[Summary], moto: &MotoTimes, starts: usize, command: &str) -> String {
    let mut table = Table::new([
        "Implementation",
        "Median start",
        "p10–p90",
        "Max",
        "Init (median)",
        "Median peak memory",
        "Max peak memory",
    ]);
    for s in summaries {
        table.row([
            s.label.to_owned(),
            seconds(s.total.median()),
            spread(&s.total),
            seconds(s.total.max()),
            seconds(s.init.median()),
            megabytes(s.peak.median()),
            megabytes(s.peak.max()),
        ]);
    }
    let Some(ours) = summaries.iter().find(|s| s.key == "rust") else {
        return format!("## 2. Cold start\n\n{}", table.to_markdown());
    };
    let peers = summaries.iter().filter(|s| s.key == "python" || s.key == "node");
    let mut ratios = Table::new(["Ours vs", "Median start", "Median peak memory"]);
    let mut targets = Table::new(["Target", "Measured", "Verdict"]);
    targets.row([
        format!("Median start under {}", seconds(TARGET_MEDIAN_SECS)),
        seconds(ours.total.median()),
        verdict_below(ours.total.median(), TARGET_MEDIAN_SECS, seconds),
    ]);
    for peer in peers {
        ratios.row([
            peer.label.to_owned(),
            ratio(peer.total.median(), ours.total.median()),
            times_less(peer.peak.median(), ours.peak.median()),
        ]);
        let factor = peer.total.median() / ours.total.median();
        targets.row([
            format!("At least 10× faster than {}", peer.label),
            format!("{}×", three_figures(factor)),
            verdict_factor(factor),
        ]);
    }
    targets.row([
        "Peak memory under 30 MB".to_owned(),
        format!("{} (max {})", megabytes(ours.peak.median()), megabytes(ours.peak.max())),
        verdict_below(ours.peak.max(), TARGET_PEAK_BYTES, megabytes),
    ]);
    let ours_total = ours.total.median();
    let ours_init = ours.init.median();
    let breakdown = breakdown(ours, moto);
    format!(
        "## 2. Cold start

Time from starting the webhook function's process to its first answered
event, and the process's peak memory by then: this repository's
`stripe-webhook` (release build) beside the same job written the usual way in
Python (boto3 + stripe, `bench/peers/python/webhook_lambda.py`) and Node.js
(@aws-sdk/client-ssm and client-sqs + stripe, `bench/peers/node/webhook_lambda.mjs`).
Each does the production job: at init it reads the webhook secret from an SSM
SecureString; for the event it verifies the Stripe signature and sends the
event to SQS, then answers API Gateway. Medians over {starts} starts per
implementation, after one unrecorded warm-up start each, interleaved round by
round (Rust, Python, Node.js, Rust, …) so noise on this machine hits all alike.
Every answer was checked to be status 200 and every event read back from the
queue.

{table}
*Init* is process start to its first `GET /invocation/next` (runtime
start-up, configuration, SDK set-up, the SSM read); the rest of the start is
the event itself (signature check, SQS send, the answer's POST). Peak memory is
the process's VmHWM (peak resident set, shared libraries included) read from
/proc when its answer arrived.

Ratios, from the same run:

{ratios}
Targets (issues 6 and 16), for the first row:

{targets}
Where ours goes: of our median {ours_total_s}, init takes {ours_init_s}
and the event {ours_event_s}. The function logs its init's phases (one
`initialised` line, `init_phases_us`, at every cold start, in production too);
medians over the same starts (so they need not add up to the median start):

{breakdown}
moto's server itself answers a GetParameter in {get} and a SendMessage in
{send} (medians, from the harness's warm client on loopback), so about
{emulator_s} of every implementation's figure is the emulator, not the
function: less that share, ours is about {ours_own_s}. Against real SSM and
SQS from inside a region that part is network and service time instead.

The CA certificates: all of a process's AWS SDK clients share one HTTPS
client (`shared/src/adapters/aws/https.rs`), whose trusted certificates are
read once from one bundle file: the one `SSL_CERT_FILE` names, else the OS's
(`/etc/ssl/certs/ca-certificates.crt` here, `/etc/pki/tls/certs/ca-bundle.crt`
on Amazon Linux, Lambda's OS), else the OS's whole store as the SDK finds it.
Left to itself, the SDK gives each client its own connector, and each parses
every certificate the OS has: on this Debian machine the bundle and then a
folder of one file per certificate holding the same ones again; and it builds
a connector, certificates and all, to check each client as it is made. Ours
decodes the bundle once, for the first request's connector. The peers load
no CA certificates against an `http://` endpoint (botocore and Node.js load
theirs on the first TLS connection); ours parses them when it first connects,
whatever the scheme, so its figure includes what a deployed function pays.

What the figure includes: process creation and exec, the language runtime's
start-up and module loading, the function's init (for ours: typed
configuration, the catalog check, AWS SDK set-up, the SSM read), one event
through a local Lambda Runtime API (`bench-coldstart`, the 2018-06-01 API on a
loopback port, the event an API Gateway HTTP API payload 2.0), its SQS send
and the answer's arrival. What it leaves out: Lambda's own sandbox set-up
(Firecracker microVM, fetching and unpacking the code), and the managed
runtimes' bootstrap (awslambdaric for Python, the Node.js runtime interface
client): each peer runs a minimal runtime loop of its own instead, which
favours the peers. Files are in the page cache (the warm-up start) and the
Python packages' bytecode is precompiled, as pip leaves it; both favour the
peers, whose start reads many more files.

Reproduce (after `bash bench/peers/install.sh`, with moto's server from
scripts/with-moto.sh):

```
{command}
```
",
        table = table.to_markdown(),
        ratios = ratios.to_markdown(),
        targets = targets.to_markdown(),
        ours_total_s = seconds(ours_total),
        ours_init_s = seconds(ours_init),
        ours_event_s = seconds((ours_total - ours_init).max(0.0)),
        get = seconds(moto.get_parameter),
        send = seconds(moto.send_message),
        emulator_s = seconds(moto.get_parameter + moto.send_message),
        breakdown = breakdown,
        ours_own_s = seconds((ours_total - moto.get_parameter - moto.send_message).max(0.0)),
    )
}
