//! The end state of a reliability run, read from the emulator directly (no
//! proxy) and from the Stripe stand-in, counted against what each
//! subscription says.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{Context, Result, anyhow};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use tenancy::adapters::aws::launcher::TenantNames;
use tenancy::adapters::aws::sdk::aws_config::SdkConfig;
use tenancy::adapters::aws::sdk::{ecs, elbv2, route53};
use tenancy::adapters::aws::{self, sdk_config};
use tenancy::domain::desired::{RunState, desired_from};
use tenancy::domain::{Catalog, SubscriptionId, TenantRecord};
use tenancy::ports::{SubscriptionSource, TenantStore};
use tenantctl::emulator::{EmulatorNames, bootstrap};
use tenantctl::local::LocalStack;

/// Resources of one kind as the emulator holds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    /// Tenants that should have one and have exactly one.
    pub exact: usize,
    /// Tenants that should have one and have none.
    pub missing: usize,
    /// Tenants with more than one.
    pub doubled: usize,
    /// Ones that belong to no tenant that should have one.
    pub orphans: usize,
}

/// The end state, from the emulator and Stripe.
#[derive(Debug, Clone, Default)]
pub struct EndState {
    pub subscriptions: usize,
    /// Tenants whose Stripe subscription says running, suspended, cancelled.
    pub running: usize,
    pub suspended: usize,
    pub cancelled: usize,
    /// Tenant records that differ from Stripe (status, desired state,
    /// generation not reached, mails left in the outbox), with examples.
    pub records_off: usize,
    pub examples: Vec<String>,
    pub services: Counted,
    /// Services whose desired count is not 1 when running, 0 when suspended.
    pub wrong_desired_count: usize,
    pub target_groups: Counted,
    pub rules: Counted,
    pub dns_records: Counted,
    /// Mails SES accepted for this run's customers.
    pub mails_sent: usize,
    /// Mail reservations marked sent (one per mail the steps meant to send).
    pub mails_meant: usize,
}

impl EndState {
    pub fn orphans(&self) -> usize {
        self.services.orphans + self.target_groups.orphans + self.rules.orphans + self.dns_records.orphans
    }

    /// Every tenant and its infrastructure exactly as Stripe says.
    pub fn as_stripe_says(&self) -> bool {
        let exact = |c: &Counted| c.missing == 0 && c.doubled == 0 && c.orphans == 0;
        self.records_off == 0
            && self.wrong_desired_count == 0
            && exact(&self.services)
            && exact(&self.target_groups)
            && exact(&self.rules)
            && exact(&self.dns_records)
    }

    pub fn extra_mails(&self) -> usize {
        self.mails_sent.saturating_sub(self.mails_meant)
    }
}

/// What each tenant should have, by the names the emulator knows it by.
struct Expected {
    service: String,
    target_group: String,
    host: String,
    run: RunState,
}

/// Reads the end state from the emulator directly (no proxy) and Stripe.
pub(super) async fn end_state(stack: &LocalStack, moto: &str, balancers: usize) -> Result<EndState> {
    let sdk = sdk_config(Some(moto)).await;
    let names = EmulatorNames::with_prefix("tenancy-local")?.with_balancers(balancers);
    let resources = bootstrap(&sdk, &names).await?;
    let environment = resources.environment("unused");
    let env = |var: &str| environment.get(var).cloned();
    let store = aws::tenant_store(&sdk, &env)?;
    let catalog = Catalog::embedded()?;
    let tenants: HashMap<String, TenantRecord> = store
        .list_tenants()
        .await?
        .into_iter()
        .filter_map(|t| Some((t.signup.as_ref()?.subscription.as_str().to_owned(), t)))
        .collect();

    let mut end = EndState::default();
    let mut expected = Vec::new();
    for subscription in stack.stripe.subscriptions() {
        end.subscriptions += 1;
        let id = SubscriptionId::parse(&subscription.id)?;
        let snapshot = stack
            .stripe
            .subscription(&id)
            .await?
            .ok_or_else(|| anyhow!("the stand-in lost {}", subscription.id))?;
        let desired = desired_from(&snapshot, &catalog)?;
        match desired.run {
            RunState::Running => end.running += 1,
            RunState::Suspended => end.suspended += 1,
            RunState::Cancelled => end.cancelled += 1,
        }
        let Some(tenant) = tenants.get(&subscription.id) else {
            end.records_off += 1;
            end.examples.push(format!("{}: no tenant", subscription.id));
            continue;
        };
        let mut off = Vec::new();
        if tenant.desired.as_ref() != Some(&desired) {
            off.push("desired state".to_owned());
        }
        if tenant.status != desired.observed_status() {
            off.push(format!("status {} (Stripe says {})", tenant.status, desired.observed_status()));
        }
        if tenant.reached_generation != tenant.generation {
            off.push(format!("generation {} reached {}", tenant.generation, tenant.reached_generation));
        }
        if !tenant.outbox.is_empty() {
            off.push(format!("{} mails unsent", tenant.outbox.len()));
        }
        if !off.is_empty() {
            end.records_off += 1;
            if end.examples.len() < 5 {
                end.examples.push(format!("{} ({}): {}", tenant.id, subscription.id, off.join(", ")));
            }
        }
        let names = TenantNames::of(&tenant.id);
        let subdomain = tenant.signup.as_ref().map(|s| s.subdomain.as_str().to_owned()).unwrap_or_default();
        expected.push(Expected {
            service: names.service,
            target_group: names.target_group,
            host: format!("{subdomain}.{}", resources.domain),
            run: desired.run,
        });
    }

    let emulator = Holdings::read(
        &sdk,
        &resources.cluster_arn,
        &resources.pool_listener_arns,
        &resources.hosted_zone_id,
    )
    .await?;
    let present = |e: &&Expected| e.run != RunState::Cancelled;
    end.services = count(&expected, |e| &e.service, &emulator.services.keys().cloned().collect::<Vec<_>>());
    end.wrong_desired_count = expected
        .iter()
        .filter(present)
        .filter(|e| {
            let want = i32::from(e.run == RunState::Running);
            emulator.services.get(&e.service).is_some_and(|&count| count != want)
        })
        .count();
    end.target_groups = count(&expected, |e| &e.target_group, &emulator.target_groups);
    end.rules = count(&expected, |e| &e.host, &emulator.rule_hosts);
    end.dns_records = count(&expected, |e| &e.host, &emulator.dns_names);
    end.mails_sent = emulator_mails(moto).await?;
    end.mails_meant = mails_marked_sent(&sdk, &resources.table).await?;
    Ok(end)
}

/// Counts `found` names against the tenants that should have one.
fn count(expected: &[Expected], name: impl Fn(&Expected) -> &String, found: &[String]) -> Counted {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for f in found {
        *seen.entry(f.as_str()).or_default() += 1;
    }
    let mut counted = Counted::default();
    let mut owned = HashSet::new();
    for e in expected.iter().filter(|e| e.run != RunState::Cancelled) {
        owned.insert(name(e).as_str());
        match seen.get(name(e).as_str()).copied().unwrap_or(0) {
            0 => counted.missing += 1,
            1 => counted.exact += 1,
            _ => counted.doubled += 1,
        }
    }
    counted.orphans = found.iter().filter(|f| !owned.contains(f.as_str())).count();
    counted
}

/// What the emulator holds, read with the SDK straight from moto.
struct Holdings {
    /// Active services by name, with their desired count.
    services: BTreeMap<String, i32>,
    target_groups: Vec<String>,
    /// The host of each listener rule (the default rule has none).
    rule_hosts: Vec<String>,
    /// Alias records' names.
    dns_names: Vec<String>,
}

impl Holdings {
    async fn read(sdk: &SdkConfig, cluster: &str, listeners: &[String], zone: &str) -> Result<Holdings> {
        let ecs = ecs::Client::new(sdk);
        let elb = elbv2::Client::new(sdk);
        let dns = route53::Client::new(sdk);
        let mut services = BTreeMap::new();
        let arns = ecs.list_services().cluster(cluster).send().await?.service_arns.unwrap_or_default();
        for chunk in arns.chunks(10) {
            let described =
                ecs.describe_services().cluster(cluster).set_services(Some(chunk.to_vec())).send().await?;
            for service in described.services.unwrap_or_default() {
                if service.status.as_deref() == Some("ACTIVE") {
                    services.insert(service.service_name.unwrap_or_default(), service.desired_count);
                }
            }
        }
        let mut target_groups = Vec::new();
        let mut marker = None;
        loop {
            let page = elb.describe_target_groups().set_marker(marker).send().await?;
            target_groups
                .extend(page.target_groups().iter().filter_map(|g| g.target_group_name().map(str::to_owned)));
            marker = page.next_marker().map(str::to_owned);
            if marker.is_none() {
                break;
            }
        }
        let mut rule_hosts = Vec::new();
        for listener in listeners {
            let mut marker = None;
            loop {
                let page = elb.describe_rules().listener_arn(listener).set_marker(marker).send().await?;
                for rule in page.rules() {
                    let hosts: Vec<&String> = rule
                        .conditions()
                        .iter()
                        .flat_map(|c| {
                            c.host_header_config()
                                .map(|h| h.values())
                                .unwrap_or_default()
                                .iter()
                                .chain(c.values())
                        })
                        .collect();
                    if let Some(host) = hosts.first() {
                        rule_hosts.push((*host).clone());
                    }
                }
                marker = page.next_marker().map(str::to_owned);
                if marker.is_none() {
                    break;
                }
            }
        }
        let mut dns_names = Vec::new();
        let mut start: Option<(String, route53::types::RrType)> = None;
        loop {
            let mut request = dns.list_resource_record_sets().hosted_zone_id(zone);
            if let Some((name, kind)) = start.take() {
                request = request.start_record_name(name).start_record_type(kind);
            }
            let page = request.send().await?;
            dns_names.extend(
                page.resource_record_sets()
                    .iter()
                    .filter(|set| set.alias_target().is_some())
                    .map(|set| set.name().trim_end_matches('.').to_owned()),
            );
            if !page.is_truncated() {
                break;
            }
            match (page.next_record_name(), page.next_record_type()) {
                (Some(name), Some(kind)) => start = Some((name.to_owned(), kind.clone())),
                _ => break,
            }
        }
        Ok(Holdings { services, target_groups, rule_hosts, dns_names })
    }
}

/// Mails SES (moto) accepted for this run's customers (`owner{i}@rel{i}.example`).
async fn emulator_mails(moto: &str) -> Result<usize> {
    let url = format!("{}/moto-api/data.json", moto.trim_end_matches('/'));
    let (_, body) = tenantctl::http_client::HttpClient::default().get(&url).await?;
    let data: Value = serde_json::from_slice(&body).context("moto's data.json")?;
    let messages = data["ses"]["Message"].as_array().cloned().unwrap_or_default();
    Ok(messages
        .iter()
        .filter(|m| {
            m["destinations"]["ToAddresses"]
                .as_array()
                .is_some_and(|to| to.iter().any(|a| a.as_str().is_some_and(|a| a.ends_with(".example"))))
        })
        .count())
}

/// Mail reservations (`MAIL#` items) marked sent, by a Scan straight on moto.
async fn mails_marked_sent(sdk: &SdkConfig, table: &str) -> Result<usize> {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let mut sent = 0;
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table)
            .filter_expression("kind = :mail AND attribute_exists(sent)")
            .expression_attribute_values(":mail", AttributeValue::S("mail".into()))
            .set_exclusive_start_key(start)
            .select(aws_sdk_dynamodb::types::Select::Count)
            .send()
            .await?;
        sent += usize::try_from(page.count()).unwrap_or_default();
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(name: &str, run: RunState) -> Expected {
        Expected { service: name.into(), target_group: name.into(), host: name.into(), run }
    }

    #[test]
    fn resources_are_counted_against_what_stripe_says_each_tenant_should_have() {
        let tenants = [
            expected("a", RunState::Running),
            expected("b", RunState::Suspended),
            expected("c", RunState::Running),
            expected("gone", RunState::Cancelled),
        ];
        let found: Vec<String> = ["a", "b", "b", "gone", "stray"].map(String::from).to_vec();
        let counted = count(&tenants, |e| &e.service, &found);
        // a exact; b twice; c missing; a cancelled tenant's and a stranger's are orphans.
        assert_eq!(counted, Counted { exact: 1, missing: 1, doubled: 1, orphans: 2 });
    }
}
