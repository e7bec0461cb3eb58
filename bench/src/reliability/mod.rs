//! Benchmark 6, reliability: paid checkouts and subscription stories through
//! the whole stack (webhook, dispatcher, the state machine files in the local
//! interpreter, the steps) with the **AWS adapters on moto's server behind
//! the fault proxy**, which fails a share of their calls: throttled before
//! the effect, 500 after it, or stalled past the SDK's timeout. Stripe is the
//! local stand-in, read over HTTP through async-stripe as in AWS.
//!
//! Every event Stripe emits is delivered 1 to 3 times, all deliveries
//! shuffled. Stories change subscriptions in rounds while the previous
//! round's executions still run, and hold some deliveries back a round.
//! When everything has settled, the end state is read **from the emulator
//! without the proxy** (services, target groups, listener rules, DNS records,
//! mails sent) and compared with what Stripe's final subscriptions say.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::{Value, json};
use tenancy::adapters::faults::{FaultPlan, FaultReport, shuffle, splitmix64};
use tenancy::adapters::local::{Direction, SubscriptionAction, TrialOutcome};
use tenancy::domain::BillingPeriod;
use tenantctl::emulated::Emulator;
use tenantctl::fault_proxy::FaultProxy;
use tenantctl::local::{LocalOptions, LocalStack, router};
use tenantctl::server::{ServerOptions, build};
use tenantctl::stripe_standin::deliver_one;
use tenantctl::workflow::RunStatus;

mod end_state;
mod section;

use end_state::end_state;
pub use end_state::{Counted, EndState};
pub use section::section;
/// The webhook secret the stack is built with and deliveries are signed with.
const SECRET: &str = "whsec_bench_reliability_000000000000";
/// A stalled call is held this long: past the adapters' 5 s attempt timeout.
const STALL: Duration = Duration::from_secs(6);
/// Stories change their subscriptions in this many rounds at most.
const ROUNDS: usize = 4;
/// Between rounds: long enough that the last round's executions are still
/// running when Stripe changes again.
const ROUND_GAP: Duration = Duration::from_secs(2);
/// The share of a round's deliveries held back to the next round (late ones).
const HELD_BACK_PERCENT: u64 = 20;

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub checkouts: usize,
    pub stories: usize,
    /// Share of the adapters' AWS calls that fail, 0 to 1.
    pub rate: f64,
    pub seed: u64,
    /// Deliveries (and checkouts) in flight at once.
    pub concurrency: usize,
    /// A delivery waits while this many executions are at work ([`busy`]).
    /// moto's server answers 60 to 80 calls a second on 2 cores: with more
    /// executions at once it, not the system, is what fails (its answers
    /// pass the SDK's timeouts and health checks run out of time).
    pub max_running: usize,
    /// The stack's time scale (Wait states, retry intervals).
    pub time_scale: f64,
    /// Give up waiting for a phase to settle after this long.
    pub limit: Duration,
}

/// One phase: what was sent and how long until everything settled.
#[derive(Debug, Clone, Default)]
pub struct Phase {
    pub events: usize,
    pub deliveries: usize,
    /// Deliveries the webhook still refused after Stripe's retries.
    pub refused: usize,
    /// From the first delivery until no execution ran and the queue was empty.
    pub settled: Option<Duration>,
}

/// Calls to the Stripe stand-in's API, as it received them.
#[derive(Debug, Default)]
pub struct StripeCalls {
    calls: Mutex<Vec<(Instant, bool)>>,
}

impl StripeCalls {
    fn record(&self, read: bool) {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).push((Instant::now(), read));
    }

    /// (reads, writes).
    pub fn totals(&self) -> (usize, usize) {
        let calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let reads = calls.iter().filter(|(_, read)| *read).count();
        (reads, calls.len() - reads)
    }

    /// The most reads in any one-second window.
    pub fn peak_reads_per_second(&self) -> usize {
        let calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let reads: Vec<Instant> = calls.iter().filter(|(_, read)| *read).map(|(at, _)| *at).collect();
        let (mut peak, mut start) = (0, 0);
        for end in 0..reads.len() {
            while reads[end].duration_since(reads[start]) >= Duration::from_secs(1) {
                start += 1;
            }
            peak = peak.max(end + 1 - start);
        }
        peak
    }
}

async fn count_stripe_calls(State(calls): State<Arc<StripeCalls>>, request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/v1/") {
        calls.record(request.method() == Method::GET);
    }
    next.run(request).await
}

/// What happened in one run.
#[derive(Debug)]
pub struct Outcome {
    pub plan: Plan,
    pub checkouts: Phase,
    pub stories: Phase,
    /// POST /checkout answers that were 5xx (the customer's browser tried again).
    pub checkout_retries: usize,
    /// Story actions Stripe refused (e.g. resuming what is not paused).
    pub refused_actions: usize,
    pub end: EndState,
    pub faults: FaultReport,
    pub stripe_reads: usize,
    pub stripe_writes: usize,
    pub stripe_peak_reads: usize,
    /// Executions by workflow and status.
    pub executions: BTreeMap<(String, String), usize>,
    /// Failed executions by error name.
    pub errors: BTreeMap<String, usize>,
    /// Task attempts that failed, by state and error, with one cause.
    pub task_failures: BTreeMap<String, (usize, String)>,
    pub dead_letters: usize,
    pub elapsed: Duration,
}

impl Outcome {
    /// SES sends that took effect and reported failure: each can explain one extra mail.
    pub fn ambiguous_sends(&self) -> u64 {
        let ses = self.faults.ports.get("ses.SendEmail").cloned().unwrap_or_default();
        ses.after + ses.timeout_with_effect
    }

    /// Writes of the tenant table that took effect and reported failure:
    /// a mail's "sent" mark among them sends it again.
    pub fn ambiguous_table_writes(&self) -> u64 {
        let update = self.faults.ports.get("dynamodb.UpdateItem").cloned().unwrap_or_default();
        update.after + update.timeout_with_effect
    }
}

/// A seeded source of choices.
struct Draw(u64);

impl Draw {
    fn below(&mut self, n: u64) -> u64 {
        splitmix64(&mut self.0) % n.max(1)
    }
}

/// A subscription change, weighted as the convergence property test weighs them.
fn any_action(draw: &mut Draw) -> SubscriptionAction {
    const PLANS: [&str; 3] = ["basic", "pro", "ultimate"];
    let billing = [None, Some(BillingPeriod::Monthly), Some(BillingPeriod::Annual)];
    match draw.below(12) {
        0..=2 => SubscriptionAction::ChangePlan {
            plan: PLANS[draw.below(3) as usize].to_owned(),
            billing: billing[draw.below(3) as usize],
            direction: None::<Direction>,
        },
        3 | 4 => SubscriptionAction::CardFails,
        5 | 6 => SubscriptionAction::CardRecovers,
        7 => SubscriptionAction::Unpaid,
        8 => SubscriptionAction::Pause,
        9 => SubscriptionAction::Resume,
        10 => SubscriptionAction::Cancel,
        _ => SubscriptionAction::TrialEnds(TrialOutcome::Pay),
    }
}

/// Each event 1 to 3 times, shuffled.
fn duplicated_and_shuffled(events: Vec<Value>, draw: &mut Draw) -> Vec<String> {
    let mut deliveries = Vec::new();
    for event in events {
        let body = event.to_string();
        for _ in 0..=draw.below(3) {
            deliveries.push(body.clone());
        }
    }
    shuffle(&mut deliveries, draw.below(u64::MAX));
    deliveries
}

/// Resets moto's server: each run starts from an empty emulator.
async fn reset_moto(endpoint: &str) -> Result<()> {
    let url = format!("{}/moto-api/reset", endpoint.trim_end_matches('/'));
    let request = http::Request::post(&url).body(http_body_util::Full::new(bytes::Bytes::new()))?;
    let (status, _) = tenantctl::http_client::HttpClient::default().call(request).await?;
    if !status.is_success() {
        bail!("resetting moto at {url}: HTTP {status}");
    }
    Ok(())
}

/// Runs `plan` against moto's server at `moto`.
pub async fn run(plan: &Plan, moto: &str) -> Result<Outcome> {
    let started = Instant::now();
    reset_moto(moto).await?;
    let faults = Arc::new(FaultPlan::new(plan.rate, plan.seed)?.with_timeout_delay(STALL));
    let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], 0)), moto, faults.clone()).await?;
    let env = |var: &str| match var {
        "STRIPE_WEBHOOK_SECRET" => Some(SECRET.to_owned()),
        "STRIPE_MODE" => Some("test".to_owned()),
        _ => None,
    };
    let options = ServerOptions {
        local: LocalOptions {
            state: None,
            time_scale: plan.time_scale,
            definitions: None,
            executor: None,
            quotas: Default::default(),
            // A pool with room for every checkout: the launcher holds each
            // load balancer to AWS's quotas, which moto does not.
            load_balancers: crate::scale::pool_for(plan.checkouts),
            dns_changes_per_second: tenancy::adapters::local::ROUTE53_CHANGES_PER_SECOND,
        },
        emulator: Some(Emulator { endpoint: moto.to_owned(), via: Some(proxy.url()) }),
        faults: None,
    };
    let server = build(SocketAddr::from(([127, 0, 0, 1], 0)), options, &env).await?;
    let stack = server.stack.clone();
    let calls = Arc::new(StripeCalls::default());
    let app =
        router(stack.clone()).layer(axum::middleware::from_fn_with_state(calls.clone(), count_stripe_calls));
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let serving = tokio::spawn(async move { axum::serve(server.listener, app).await });
    let dispatcher = stack.spawn_dispatcher();
    let progress = tokio::spawn(report_progress(stack.clone(), faults.clone(), started));
    let mut draw = Draw(plan.seed ^ 0x5EED);

    let (paid, checkout_retries) = checkouts(&stack, plan).await?;
    let events: Vec<Value> = paid.iter().flat_map(|(_, events)| events.iter().cloned()).collect();
    let mut checkout_phase = Phase { events: events.len(), ..Phase::default() };
    let first = Instant::now();
    let deliveries = duplicated_and_shuffled(events, &mut draw);
    checkout_phase.deliveries = deliveries.len();
    checkout_phase.refused = deliver_all(&stack, deliveries, plan).await?;
    checkout_phase.settled = settle(&stack, plan.limit).await.then(|| first.elapsed());

    let subscriptions: Vec<String> = paid.iter().take(plan.stories).map(|(sub, _)| sub.clone()).collect();
    let (story_phase, refused_actions) = stories(&stack, &subscriptions, plan, &mut draw).await?;

    let end = end_state(&stack, moto, crate::scale::pool_for(plan.checkouts)).await?;
    let (stripe_reads, stripe_writes) = calls.totals();
    let mut executions = BTreeMap::new();
    let mut errors = BTreeMap::new();
    let mut task_failures: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for (workflow, status, error, failures) in stack.workflows.each_execution(|e| {
        let failures: Vec<(String, String)> = e
            .history
            .iter()
            .filter(|event| event.kind == "TaskFailed" || event.kind == "TaskTimedOut")
            .map(|event| {
                let state = event.state.clone().unwrap_or_default();
                let error = event.detail["error"].as_str().unwrap_or(&event.kind).to_owned();
                (format!("{state}: {error}"), event.detail["cause"].as_str().unwrap_or_default().to_owned())
            })
            .collect();
        (e.workflow.clone(), e.status, e.error.clone(), failures)
    }) {
        *executions.entry((workflow, format!("{status:?}"))).or_default() += 1;
        if status != RunStatus::Succeeded {
            *errors.entry(error.unwrap_or_else(|| format!("{status:?}"))).or_default() += 1;
        }
        for (key, cause) in failures {
            task_failures.entry(key).or_insert((0, cause)).0 += 1;
        }
    }
    let outcome = Outcome {
        plan: plan.clone(),
        checkouts: checkout_phase,
        stories: story_phase,
        checkout_retries,
        refused_actions,
        end,
        faults: proxy.report(),
        stripe_reads,
        stripe_writes,
        stripe_peak_reads: calls.peak_reads_per_second(),
        executions,
        errors,
        task_failures,
        dead_letters: stack.dead_letters().len(),
        elapsed: started.elapsed(),
    };
    progress.abort();
    dispatcher.abort();
    serving.abort();
    if let Some(platform) = server.platform {
        platform.abort();
    }
    Ok(outcome)
}

/// A line on stderr every 30 s, so a long run shows it is moving.
async fn report_progress(stack: Arc<LocalStack>, faults: Arc<FaultPlan>, started: Instant) {
    loop {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let total = faults.report().total();
        eprintln!(
            "reliability: {:>5.0} s: {} executions, {} running, {} at work or queued; {} AWS calls, {} failed",
            started.elapsed().as_secs_f64(),
            stack.workflows.each_execution(|_| ()).len(),
            stack.workflows.running(),
            busy(&stack),
            total.calls,
            total.injected()
        );
        // Where the executions at work are, the most crowded states first.
        let mut states: BTreeMap<String, usize> = BTreeMap::new();
        let running = stack.workflows.each_execution(|e| {
            (e.status == RunStatus::Running).then(|| {
                let last = e.history.last();
                let state = last.and_then(|l| l.state.clone()).unwrap_or_default();
                let error =
                    last.and_then(|l| l.detail["error"].as_str().map(str::to_owned)).unwrap_or_default();
                format!("{state} {} {error}", last.map(|l| l.kind.as_str()).unwrap_or_default())
            })
        });
        for state in running.into_iter().flatten() {
            *states.entry(state).or_default() += 1;
        }
        let mut crowded: Vec<(String, usize)> = states.into_iter().collect();
        crowded.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let top: Vec<String> = crowded.iter().take(5).map(|(s, n)| format!("{s}: {n}")).collect();
        eprintln!("reliability:          {}", top.join("; "));
    }
}

/// Every customer checks out through the checkout API (which holds the name
/// in the tenant table, through the proxy, and creates the session in the
/// stand-in) and pays. Returns each subscription with the events paying
/// made, and how many answers were 5xx and tried again.
async fn checkouts(stack: &Arc<LocalStack>, plan: &Plan) -> Result<(Vec<(String, Vec<Value>)>, usize)> {
    let next = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..plan.concurrency.max(1) {
        let (stack, next, retries, count) = (stack.clone(), next.clone(), retries.clone(), plan.checkouts);
        workers.push(tokio::spawn(async move {
            let mut paid = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, anyhow::Error>(paid);
                }
                let session = check_out(&stack, i, &retries).await?;
                let events = stack.stripe.pay(&session).map_err(|e| anyhow!("paying {session}: {e}"))?;
                let subscription = events
                    .iter()
                    .find(|e| e["type"] == "checkout.session.completed")
                    .and_then(|e| e["data"]["object"]["subscription"].as_str())
                    .ok_or_else(|| anyhow!("paying {session} made no subscription"))?
                    .to_owned();
                paid.push((i, subscription, events));
            }
        }));
    }
    let mut paid = Vec::new();
    for worker in workers {
        paid.extend(worker.await??);
    }
    paid.sort_by_key(|(i, _, _)| *i);
    Ok((paid.into_iter().map(|(_, sub, events)| (sub, events)).collect(), retries.load(Ordering::Relaxed)))
}

/// Customer `i`'s `POST /checkout`, tried again on 5xx as a browser would.
async fn check_out(stack: &LocalStack, i: usize, retries: &AtomicUsize) -> Result<String> {
    let signup = stack.signup.as_ref().context("the stack has no checkout API")?;
    const PLANS: [(&str, &str); 4] =
        [("basic", "monthly"), ("pro", "monthly"), ("pro", "annual"), ("ultimate", "monthly")];
    let (plan, billing) = PLANS[i % PLANS.len()];
    let body = json!({
        "plan": plan,
        "billing": billing,
        "subdomain": format!("rel-{i:05}"),
        "organization": format!("Reliability Customer {i}"),
        "email": format!("owner{i}@rel{i}.example"),
    })
    .to_string();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("origin", HeaderValue::from_static("http://localhost:3000"));
    for _ in 0..50 {
        // Each customer from an address of their own, as real buyers are:
        // the per-address limits are not what this run measures.
        let client = Some(std::net::IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]));
        let answer = signup.api.handle(&Method::POST, "/checkout", &headers, body.as_bytes(), client).await;
        if answer.status.is_success() {
            let created: Value = serde_json::from_str(&answer.body)?;
            return created["id"]
                .as_str()
                .map(str::to_owned)
                .context("POST /checkout answered without an id");
        }
        if !(answer.status.is_server_error() || answer.status.as_u16() == 429) {
            bail!("POST /checkout for customer {i}: {} {}", answer.status, answer.body);
        }
        retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("POST /checkout for customer {i} kept failing")
}

/// Executions at work, and events queued to become ones. A lifecycle
/// execution waiting for its tenant to be provisioned (retrying
/// `Tenancy.TenantNotYetKnown` for hours) makes no calls: counted, they
/// would hold back the very checkouts they wait for.
fn busy(stack: &LocalStack) -> usize {
    let at_work = stack
        .workflows
        .each_execution(|e| {
            e.status == RunStatus::Running
                && !e.history.last().is_some_and(|last| {
                    last.kind == "TaskFailed"
                        && last.detail["error"].as_str() == Some("Tenancy.TenantNotYetKnown")
                })
        })
        .into_iter()
        .filter(|at_work| *at_work)
        .count();
    at_work + stack.queue.len()
}

/// Delivers every body, `concurrency` at once, each while fewer than
/// `max_running` executions are at work ([`busy`]); returns how many the
/// webhook still refused after Stripe's retries.
async fn deliver_all(stack: &Arc<LocalStack>, deliveries: Vec<String>, plan: &Plan) -> Result<usize> {
    let (concurrency, max_running) = (plan.concurrency, plan.max_running.max(1));
    // One task counts what is at work (a scan of every execution) a few
    // times a second; the senders read the count.
    let at_work = Arc::new(AtomicUsize::new(busy(stack)));
    let counter = {
        let (stack, at_work) = (stack.clone(), at_work.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                at_work.store(busy(&stack), Ordering::Relaxed);
            }
        })
    };
    let deliveries = Arc::new(deliveries);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (stack, deliveries, next, at_work) =
            (stack.clone(), deliveries.clone(), next.clone(), at_work.clone());
        workers.push(tokio::spawn(async move {
            let signup = stack.signup.as_ref().context("the stack has no local Stripe")?;
            let mut refused = 0;
            while let Some(body) = deliveries.get(next.fetch_add(1, Ordering::Relaxed)) {
                while at_work.load(Ordering::Relaxed) >= max_running {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // Counted until the next scan sees the execution it starts.
                at_work.fetch_add(1, Ordering::Relaxed);
                let (answer, _) = deliver_one(&stack, signup, body).await;
                refused += usize::from(!answer.status.is_success());
            }
            Ok::<_, anyhow::Error>(refused)
        }));
    }
    let mut refused = 0;
    for worker in workers {
        refused += worker.await??;
    }
    counter.abort();
    Ok(refused)
}

/// Until the queue is empty and no execution runs, twice in a row (a failed
/// dispatch comes back after the visibility timeout).
async fn settle(stack: &LocalStack, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut quiet = 0;
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        if stack.wait_settled(left).await && stack.queue.is_idle() {
            quiet += 1;
            if quiet == 2 {
                return true;
            }
        } else {
            quiet = 0;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    false
}

/// Each subscription's story: 1 to ROUNDS changes, one per round, all
/// stories' changes of a round at once; the round's events (and those held
/// back from the last) delivered duplicated and shuffled, a share held back
/// to the next round; the next round starts while executions still run.
async fn stories(
    stack: &Arc<LocalStack>,
    subscriptions: &[String],
    plan: &Plan,
    draw: &mut Draw,
) -> Result<(Phase, usize)> {
    let scripts: Vec<Vec<SubscriptionAction>> = subscriptions
        .iter()
        .map(|_| {
            let length = 1 + draw.below(ROUNDS as u64) as usize;
            (0..length).map(|_| any_action(draw)).collect()
        })
        .collect();
    let mut phase = Phase::default();
    let mut refused_actions = 0;
    let mut held_back: Vec<String> = Vec::new();
    let first = Instant::now();
    for round in 0..ROUNDS {
        let mut events = Vec::new();
        for (subscription, script) in subscriptions.iter().zip(&scripts) {
            let Some(action) = script.get(round) else { continue };
            match stack.stripe.act(subscription, action) {
                Ok(emitted) => events.extend(emitted),
                Err(_) => refused_actions += 1,
            }
        }
        phase.events += events.len();
        let mut deliveries = duplicated_and_shuffled(events, draw);
        deliveries.append(&mut held_back);
        shuffle(&mut deliveries, draw.below(u64::MAX));
        if round + 1 < ROUNDS {
            let keep = deliveries.len() * (100 - HELD_BACK_PERCENT as usize) / 100;
            held_back = deliveries.split_off(keep);
        }
        phase.deliveries += deliveries.len();
        phase.refused += deliver_all(stack, deliveries, plan).await?;
        if round + 1 < ROUNDS {
            tokio::time::sleep(ROUND_GAP).await;
        }
    }
    phase.settled = settle(stack, plan.limit).await.then(|| first.elapsed());
    Ok((phase, refused_actions))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_the_most_reads_in_any_one_second_window() {
        let calls = StripeCalls::default();
        let start = Instant::now();
        let at = |ms: u64| (start + Duration::from_millis(ms), true);
        *calls.calls.lock().unwrap() = vec![at(0), at(100), at(900), at(1050), at(1100), at(1200), at(2500)];
        calls.calls.lock().unwrap().push((start + Duration::from_millis(1150), false));
        calls.calls.lock().unwrap().sort_by_key(|(t, _)| *t);
        // 900, 1050, 1100 and 1200 fall within one second (as do 100 to
        // 1100); the write among them does not count.
        assert_eq!(calls.peak_reads_per_second(), 4);
        assert_eq!(calls.totals(), (7, 1));
    }

    #[test]
    fn each_event_is_delivered_one_to_three_times_in_a_replayable_order() {
        let events: Vec<Value> = (0..50).map(|i| json!({ "id": format!("evt_{i}") })).collect();
        let first = duplicated_and_shuffled(events.clone(), &mut Draw(7));
        assert_eq!(
            first,
            duplicated_and_shuffled(events.clone(), &mut Draw(7)),
            "the same seed, the same deliveries"
        );
        let mut copies: BTreeMap<&str, usize> = BTreeMap::new();
        for body in &first {
            *copies.entry(body.as_str()).or_default() += 1;
        }
        assert_eq!(copies.len(), 50, "every event is delivered");
        assert!(copies.values().all(|n| (1..=3).contains(n)), "{copies:?}");
        assert!(copies.values().any(|n| *n > 1), "some are duplicated");
        let in_order: Vec<String> = events.iter().map(Value::to_string).collect();
        assert_ne!(first.iter().take(10).collect::<Vec<_>>(), in_order.iter().take(10).collect::<Vec<_>>());
    }
}
