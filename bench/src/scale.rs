//! Benchmark 7, scale: N paid checkouts through the local stack in one
//! process (the same webhook handler, dispatcher, state machine files and
//! steps as in AWS, local adapters in memory), its launcher a pool of load
//! balancers held to AWS's quotas and its Route 53 zone to AWS's rate. Per
//! size it measures the time until every tenant is ACTIVE, the process's
//! peak memory, the DynamoDB requests and units per tenant (counted as the
//! AWS adapter would make them), the load balancers used, and the Route 53
//! changes accepted per (simulated) second at the peak. The `bench-scale`
//! binary runs each size in a process of its own, so each peak is its own.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenancy::adapters::aws::dynamodb::tenant_item;
use tenancy::clock::{Clock, SystemClock};
use tenancy::ports::{AliasTarget, ChangeStatus, DnsError, DnsPublisher, is_throttled};
use tenancy::stripe::WebhookSecret;

use crate::burst::{TEMPLATE, checkout_event};
use crate::cost::{Cost, default_options, history_counts, local_stack, price};
use crate::report::{Table, bytes, seconds, three_figures};

const SECRET: &str = "whsec_bench_scale_0000000000000000";

/// Tenants one load balancer holds (AWS's 100 target groups per ALB).
const PER_BALANCER: usize = 100;

/// The pool a run of `tenants` is given: room for all of them and a tenth
/// more, as an operator who grows the pool before it fills would keep it.
pub fn pool_for(tenants: usize) -> usize {
    (tenants + tenants / 10).div_ceil(PER_BALANCER).max(1)
}

/// Route 53 as the steps see it, counting the changes it accepts (when) and
/// the ones it throttles.
struct CountingDns {
    inner: Arc<dyn DnsPublisher>,
    accepted: Mutex<Vec<Instant>>,
    throttled: AtomicU64,
}

impl CountingDns {
    fn count<T>(&self, result: Result<T, DnsError>) -> Result<T, DnsError> {
        match &result {
            Ok(_) => self.accepted.lock().unwrap_or_else(PoisonError::into_inner).push(Instant::now()),
            Err(error) if is_throttled(error) => {
                self.throttled.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {}
        }
        result
    }
}

#[async_trait]
impl DnsPublisher for CountingDns {
    async fn upsert_alias(&self, name: &str, target: &AliasTarget) -> Result<String, DnsError> {
        self.count(self.inner.upsert_alias(name, target).await)
    }

    async fn change_status(&self, change_id: &str) -> Result<ChangeStatus, DnsError> {
        self.inner.change_status(change_id).await
    }

    async fn delete_alias(&self, name: &str) -> Result<(), DnsError> {
        self.count(self.inner.delete_alias(name).await)
    }
}

/// The most of `times` within any `window`.
pub fn peak_within(times: &[Instant], window: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let mut start = 0;
    let mut peak = 0;
    for end in 0..sorted.len() {
        while sorted[end].duration_since(sorted[start]) >= window {
            start += 1;
        }
        peak = peak.max(end + 1 - start);
    }
    peak
}

/// One size's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub tenants: usize,
    pub pool: usize,
    pub time_scale: f64,
    /// From the first delivery until every tenant was ACTIVE (real time).
    pub all_active_seconds: f64,
    pub active: usize,
    pub failed_executions: usize,
    pub peak_memory: Option<u64>,
    pub balancers_used: usize,
    /// Tenants on the fullest load balancer.
    pub fullest_balancer: usize,
    pub transitions: u64,
    pub step_invocations: u64,
    pub events: u64,
    pub mails: u64,
    pub writes: u64,
    pub write_units: u64,
    pub reads: u64,
    pub read_units: f64,
    /// The tenant items' size as DynamoDB bills it, all tenants together.
    pub tenant_item_bytes: u64,
    pub dns_changes: usize,
    pub dns_throttled: u64,
    /// Most changes accepted within one simulated second.
    pub dns_peak_per_second: Option<usize>,
}

impl Row {
    fn per_tenant(&self, total: f64) -> f64 {
        total / self.tenants.max(1) as f64
    }

    /// What provisioning all of them cost, as [`Cost`] prices it.
    fn provisioning(&self) -> Cost {
        Cost {
            events: self.events,
            queued: self.events,
            transitions: self.transitions,
            step_invocations: self.step_invocations,
            dynamodb: crate::cost::Usage {
                writes: self.writes,
                write_units: self.write_units,
                reads: self.reads,
                read_units: self.read_units,
            },
            mails: self.mails,
        }
    }

    fn monthly(&self) -> Monthly {
        let tenants = self.tenants.max(1) as f64;
        // The zone holds the tenants' records and its own SOA and NS.
        let records = self.tenants as f64 + 2.0;
        Monthly {
            load_balancers: self.pool as f64 * monthly::ALB_HOUR * monthly::HOURS / tenants,
            lcu: monthly::LCU_HOUR * monthly::GB_PER_TENANT,
            zone: (monthly::ZONE + (records - 10_000.0).max(0.0) * monthly::RECORD_OVER_10K) / tenants,
            storage: self.per_tenant(self.tenant_item_bytes as f64) / 1e9 * monthly::STORAGE_GB,
        }
    }
}

/// List prices of what a tenant costs each month, US East (N. Virginia).
mod monthly {
    pub const HOURS: f64 = 730.0;
    /// Application Load Balancer, per hour.
    pub const ALB_HOUR: f64 = 0.0225;
    /// Per LCU-hour; one LCU-hour processes 1 GB for IP targets.
    pub const LCU_HOUR: f64 = 0.008;
    /// The traffic assumed per tenant: 1 GB a month.
    pub const GB_PER_TENANT: f64 = 1.0;
    /// Route 53 hosted zone, per month; alias queries to an ALB are free.
    pub const ZONE: f64 = 0.50;
    /// Per record a month beyond a zone's first 10,000.
    pub const RECORD_OVER_10K: f64 = 0.0015;
    /// DynamoDB standard table storage, per GB-month.
    pub const STORAGE_GB: f64 = 0.25;
    /// Fargate (Linux/x86), per vCPU-hour and per GB-hour.
    pub const FARGATE_VCPU_HOUR: f64 = 0.04048;
    pub const FARGATE_GB_HOUR: f64 = 0.004445;
}

struct Monthly {
    load_balancers: f64,
    lcu: f64,
    zone: f64,
    storage: f64,
}

impl Monthly {
    fn total(&self) -> f64 {
        self.load_balancers + self.lcu + self.zone + self.storage
    }
}

/// The pool's ALB hours for `tenants`, a month.
fn pool_month(tenants: usize) -> f64 {
    pool_for(tenants) as f64 * monthly::ALB_HOUR * monthly::HOURS
}

/// The proxy fleet's month for `tenants`: one ALB, two proxies (1 vCPU,
/// 2 GB each) and `per_tenant` for each tenant's discovery entry.
fn proxies_month(tenants: usize, per_tenant: f64) -> f64 {
    let proxy = (monthly::FARGATE_VCPU_HOUR + 2.0 * monthly::FARGATE_GB_HOUR) * monthly::HOURS;
    monthly::ALB_HOUR * monthly::HOURS + 2.0 * proxy + per_tenant * tenants as f64
}

/// The fewest tenants from which the proxy fleet costs less than the pool.
fn proxies_win_from(per_tenant: f64) -> Option<usize> {
    (1..=100_000).find(|&n| proxies_month(n, per_tenant) < pool_month(n))
}

/// The template's default task: 0.25 vCPU and 0.5 GB, all month.
fn fargate_month() -> f64 {
    (0.25 * monthly::FARGATE_VCPU_HOUR + 0.5 * monthly::FARGATE_GB_HOUR) * monthly::HOURS
}

/// Provisions `tenants` through a local stack in this process and measures.
pub async fn run(tenants: usize, time_scale: f64, limit: Duration) -> Result<Row> {
    let pool = pool_for(tenants);
    let options = tenantctl::local::LocalOptions { load_balancers: pool, ..default_options(time_scale) };
    let mut counting_dns = None;
    let (stack, store) = local_stack(&options, SECRET, |adapters| {
        let dns = Arc::new(CountingDns {
            inner: adapters.steps.dns.clone(),
            accepted: Mutex::default(),
            throttled: AtomicU64::default(),
        });
        adapters.steps.dns = dns.clone();
        counting_dns = Some(dns);
    })?;
    let dns = counting_dns.ok_or_else(|| anyhow!("the DNS adapter was not wrapped"))?;
    stack.spawn_dispatcher();
    let secret = WebhookSecret::parse(SECRET).map_err(|e| anyhow!("{e}"))?;
    let template: Value = serde_json::from_str(TEMPLATE).context("events/01 is not JSON")?;
    let clock = SystemClock;

    let started = Instant::now();
    for i in 0..tenants {
        let body = checkout_event(&template, i, clock.now_unix())?;
        let mut headers = http::HeaderMap::new();
        let signature = secret.sign_header(clock.now_unix(), &body);
        headers.insert("stripe-signature", http::HeaderValue::from_str(&signature)?);
        let answer = stack.deliver(&headers, &body).await;
        ensure!(answer.status == 200, "delivery {i} answered {}: {}", answer.status, answer.body);
    }
    ensure!(stack.wait_settled(limit).await, "executions still running after {} s", limit.as_secs());
    let all_active = started.elapsed();

    let records = stack.store.list_tenants().await?;
    let active = records.iter().filter(|t| t.status.as_str() == "ACTIVE").count();
    let mut per_balancer = std::collections::BTreeMap::<String, usize>::new();
    for record in &records {
        if let Some(balancer) = &record.resources.load_balancer {
            *per_balancer.entry(balancer.dns_name.clone()).or_default() += 1;
        }
    }
    let tenant_item_bytes = records
        .iter()
        .filter_map(|r| tenant_item(r).ok())
        .map(|item| crate::cost::item_size(&item) as u64)
        .sum();
    let (mut transitions, mut step_invocations, mut failed_executions) = (0, 0, 0);
    for (ok, (t, s)) in stack
        .workflows
        .each_execution(|e| (e.status == tenantctl::workflow::RunStatus::Succeeded, history_counts(e)))
    {
        transitions += t;
        step_invocations += s;
        failed_executions += usize::from(!ok);
    }
    let mails = stack.inspect.emails().await.as_array().map_or(0, |m| m.len() as u64);
    let usage = store.usage();
    let accepted = dns.accepted.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let dns_peak_per_second =
        (time_scale > 0.0).then(|| peak_within(&accepted, Duration::from_secs_f64(time_scale)));
    let peak_memory = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| crate::coldstart::peak_rss(&status));
    let distinct: BTreeSet<&String> = per_balancer.keys().collect();
    Ok(Row {
        tenants,
        pool,
        time_scale,
        all_active_seconds: all_active.as_secs_f64(),
        active,
        failed_executions,
        peak_memory,
        balancers_used: distinct.len(),
        fullest_balancer: per_balancer.values().copied().max().unwrap_or(0),
        transitions,
        step_invocations,
        events: tenants as u64,
        mails,
        writes: usage.writes,
        write_units: usage.write_units,
        reads: usage.reads,
        read_units: usage.read_units,
        tenant_item_bytes,
        dns_changes: accepted.len(),
        dns_throttled: dns.throttled.load(Ordering::Relaxed),
        dns_peak_per_second,
    })
}

/// Dollars to the cent, or to three significant figures below ten cents.
fn dollars(value: f64) -> String {
    if value >= 0.1 || value <= 0.0 {
        return format!("${value:.2}");
    }
    let decimals = (2 - value.log10().floor() as i32).clamp(2, 12) as usize;
    format!("${value:.decimals$}")
}

/// How a per-tenant figure at the largest size compares with the smallest.
fn growth(first: f64, last: f64) -> String {
    if first <= 0.0 {
        return "n/a".into();
    }
    format!("{:.2}×", last / first)
}

/// The Markdown section for the rows of a run, smallest size first.
pub fn section(rows: &[Row], command: &str) -> String {
    let mut table = Table::new([
        "Tenants",
        "Pool (ALBs used)",
        "All ACTIVE after",
        "Per tenant",
        "Failed",
        "Peak memory",
        "DynamoDB per tenant: writes (WRU), reads (RRU), item bytes",
        "Route 53: changes, peak per second, throttled",
        "Provisioning $ per tenant",
        "$ per tenant-month (Fargate apart)",
    ]);
    for row in rows {
        let per_tenant = |total: f64| row.per_tenant(total);
        let provisioning = row.provisioning().dollars() / row.tenants.max(1) as f64;
        table.row([
            row.tenants.to_string(),
            format!("{} ({}, fullest {})", row.pool, row.balancers_used, row.fullest_balancer),
            seconds(row.all_active_seconds),
            seconds(per_tenant(row.all_active_seconds)),
            format!("{} not ACTIVE, {} executions failed", row.tenants - row.active, row.failed_executions),
            row.peak_memory.map_or("n/a".into(), bytes),
            format!(
                "{} ({}), {} ({}), {}",
                three_figures(per_tenant(row.writes as f64)),
                three_figures(per_tenant(row.write_units as f64)),
                three_figures(per_tenant(row.reads as f64)),
                three_figures(per_tenant(row.read_units)),
                three_figures(per_tenant(row.tenant_item_bytes as f64)),
            ),
            format!(
                "{}, {}, {}",
                row.dns_changes,
                row.dns_peak_per_second.map_or("n/a".into(), |p| p.to_string()),
                row.dns_throttled
            ),
            dollars(provisioning),
            dollars(row.monthly().total()),
        ]);
    }
    let mut cost = Table::new([
        "Tenants",
        "ALB hours",
        "LCUs (1 GB)",
        "Hosted zone and records",
        "Table storage",
        "Total",
    ]);
    for row in rows {
        let m = row.monthly();
        cost.row([
            row.tenants.to_string(),
            dollars(m.load_balancers),
            dollars(m.lcu),
            dollars(m.zone),
            dollars(m.storage),
            dollars(m.total()),
        ]);
    }
    let (first, last) = match (rows.first(), rows.last()) {
        (Some(first), Some(last)) => (first, last),
        _ => return "## 7. Scale\n\nNo sizes were run.\n".into(),
    };
    let time_growth =
        growth(first.per_tenant(first.all_active_seconds), last.per_tenant(last.all_active_seconds));
    let memory_growth = match (first.peak_memory, last.peak_memory) {
        (Some(a), Some(b)) => growth(first.per_tenant(a as f64), last.per_tenant(b as f64)),
        _ => "n/a".into(),
    };
    let cost_growth = growth(
        first.provisioning().dollars() / first.tenants.max(1) as f64 + first.monthly().total(),
        last.provisioning().dollars() / last.tenants.max(1) as f64 + last.monthly().total(),
    );
    let refused = rows.iter().map(|r| r.tenants - r.active).sum::<usize>();
    format!(
        "## 7. Scale\n\n\
         N signed `checkout.session.completed` events delivered to the local stack in one process (the \
         same webhook handler, dispatcher, provisioning state machine and steps as in AWS; local adapters \
         in memory), one process per size. The launcher is a pool of load balancers sized for the run \
         (room for every tenant and a tenth more, {per} tenants per ALB: AWS's 100 target groups per \
         ALB), each held to AWS's quotas; a new tenant is placed on the first load balancer with room in \
         an order derived from its id. The Route 53 zone accepts 5 changes per simulated second, as \
         Route 53 does per account. DynamoDB requests and units are counted as the AWS adapter makes \
         them; item bytes are the tenant items' billed size. Waits and simulated AWS delays run at \
         `--time-scale {ts}`; \"per second\" counts simulated seconds.\n\n{table}\n\
         **Growth from {a} to {b} tenants, per tenant:** time {time_growth}, peak memory {memory_growth}, \
         dollars {cost_growth} (1.00× is flat). **Tenants not placed or not ACTIVE: {refused}.**\n\n\
         Time per tenant is flat because the executions run at most {running} at once in the local \
         runtime (`MAX_RUNNING_EXECUTIONS`): the run is a queue served at a fixed rate, so the total \
         grows linearly. Placement takes one look at a load balancer per tenant whatever the pool's \
         size (its order starts at a load balancer derived from the tenant), so it adds nothing per \
         tenant as the pool grows; a pool filled in order would have the 10,000th tenant look at 99 \
         full ones first. Memory per tenant falls as fixed costs spread; what grows is each finished \
         execution kept compactly and each tenant's record. DynamoDB units per tenant are the same at \
         every size: each tenant's writes touch its own items only.\n\n\
         ### Dollars per tenant per month\n\n{cost}\n\
         Provisioning once (in the first table) is the run's state transitions, Lambda invocations, \
         DynamoDB units, SQS and API Gateway requests and the welcome mail, at section 4's prices \
         (${tr:.3} per 1,000 transitions). Each month: the pool's ALB hours (${alb}/h each, the whole \
         pool shared by its tenants), the LCUs of 1 GB processed per tenant (${lcu} per LCU-hour), the \
         hosted zone ($0.50) and each record beyond its first 10,000 ($0.0015), and the tenant items' \
         storage ($0.25 per GB). A renewal's `invoice.paid` adds section 4's row for it. The tenant's \
         own Fargate task (0.25 vCPU, 0.5 GB, Linux/x86) is **{fargate} a month**, apart: it dwarfs the \
         rest, and it is the same at every size. Costs flat from 100 to 10,000 but for the pool's ALB \
         hours, which fall per tenant as the pool fills (100 tenants on 2 ALBs pay for the spare one).\n\n\
         ### What a 10,000-tenant operator must ask AWS for\n\n\
         | Quota (default) | Needed for 10,000 tenants |\n| --- | --- |\n\
         | Application Load Balancers per Region (50) | 110 (the pool, a tenth spare) |\n\
         | Target groups per Region (3,000) | 10,000 and more |\n\
         | Services per ECS cluster (5,000) | 10,000, or a second cluster |\n\
         | Fargate On-Demand vCPUs (account's) | 2,500 (0.25 each) |\n\
         | Network interfaces per Region (5,000) | 10,000 (one per awsvpc task) |\n\
         | Records per hosted zone (10,000) | 10,002 and more |\n\
         | Rules per ALB (100) | none: the target groups (100, not raised) bind first |\n\n\
         and subnets with 10,000 free addresses (a /18 or several smaller). Route 53's 5 changes per \
         second per account is not raised: a burst of 10,000 signups in AWS needs 2,000 s of changes \
         at least. `PublishDns` waits throttling out for about an hour (40 jittered attempts, up to 5 \
         minutes apart), and past that defers the record instead of failing: the tenant goes ACTIVE, \
         and the reconciler finds its record unpublished and converges it (no refund for a rate). The \
         local runs above never had enough executions at once to meet the rate (the peak column).\n\n\
         ### On paper: one proxy fleet instead of an ALB per 100 tenants\n\n\
         One ALB (or NLB) with the wildcard certificate in front of a small fleet of host-routing \
         proxies (Envoy or nginx on Fargate, 2 × 1 vCPU, 2 GB for redundancy), each request routed by \
         its `Host` to the tenant's task found through service discovery (AWS Cloud Map, one instance \
         per tenant task). Monthly list prices: the ALB {alb_month}, the proxies 2 × {proxy}, Cloud Map \
         $0.10 per registered instance. At N tenants: pool = ⌈1.1 N / 100⌉ × {alb_month}; proxies = \
         {alb_month} + 2 × {proxy} + $0.10 N. The proxy fleet costs less from {cloud_map_from} tenants \
         (at 10,000: {proxies_10k} against {pool_10k} a month) and has no per-ALB wall, but it adds a \
         hop, a fleet to patch and scale, and a discovery registry that must follow every task restart. \
         With routes kept in DynamoDB instead of Cloud Map (written from ECS task-state events, read \
         by the proxies) it costs less from {table_from} tenants. Below that, or for an operator who \
         wants no servers of its own, the ALB pool is the simpler and cheaper choice.\n\n\
         Command: `{command}`\n",
        per = PER_BALANCER,
        ts = first.time_scale,
        table = table.to_markdown(),
        a = first.tenants,
        b = last.tenants,
        running = tenantctl::workflow::MAX_RUNNING_EXECUTIONS,
        cost = cost.to_markdown(),
        tr = price::TRANSITION * 1000.0,
        alb = monthly::ALB_HOUR,
        lcu = monthly::LCU_HOUR,
        fargate = dollars(fargate_month()),
        alb_month = dollars(monthly::ALB_HOUR * monthly::HOURS),
        proxy = dollars((monthly::FARGATE_VCPU_HOUR + 2.0 * monthly::FARGATE_GB_HOUR) * monthly::HOURS),
        cloud_map_from = proxies_win_from(0.10).map_or("never".into(), |n| n.to_string()),
        table_from = proxies_win_from(0.0).map_or("never".into(), |n| n.to_string()),
        proxies_10k = dollars(proxies_month(10_000, 0.10)),
        pool_10k = dollars(pool_month(10_000)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_has_room_for_every_tenant_and_a_tenth_more() {
        assert_eq!([pool_for(1), pool_for(100), pool_for(1000), pool_for(10_000)], [1, 2, 11, 110]);
    }

    #[test]
    fn small_sums_keep_three_figures() {
        assert_eq!(dollars(16.425), "$16.43");
        assert_eq!(dollars(0.008), "$0.00800");
        assert_eq!(dollars(0.000_000_426_3), "$0.000000426");
        assert_eq!(dollars(0.0), "$0.00");
    }

    #[test]
    fn the_peak_counts_the_most_changes_within_one_window() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let times = [at(0), at(5), at(9), at(10), at(30), at(31)];
        assert_eq!(peak_within(&times, Duration::from_millis(10)), 3, "0, 5 and 9; 10 starts the next");
        assert_eq!(peak_within(&times, Duration::from_millis(100)), 6);
        assert_eq!(peak_within(&[], Duration::from_millis(10)), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_run_places_every_tenant_on_the_pool_and_counts_what_it_used() {
        let row = run(30, 0.0, Duration::from_secs(120)).await.unwrap();
        assert_eq!((row.active, row.failed_executions, row.pool), (30, 0, 1));
        assert_eq!((row.balancers_used, row.fullest_balancer), (1, 30));
        assert_eq!(row.dns_changes, 30, "one alias record each");
        assert!(row.write_units >= 30 * 5 && row.transitions >= 30 * 13, "{row:?}");
        let text = section(&[row.clone(), row], "bench-scale");
        assert!(text.contains("**Tenants not placed or not ACTIVE: 0.**"), "{text}");
        assert!(text.contains("1.00×"), "the same row twice is flat: {text}");
    }
}
