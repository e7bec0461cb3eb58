//! Reconciliation (docs/architecture.md decision 11): tenant records ↔ what
//! Stripe says ↔ what exists in ECS, the load balancer and Route 53.
//! `tenantctl --stage … reconcile` runs it on demand (`--fix` carries out
//! each finding's [`Repair`]) and the `reconcile-tenants` function daily,
//! alarming on findings (it only reports: repairs are an operator's call).
//!
//! Drift: a tenant whose desired state differs from what Stripe says now,
//! or not converged to its newest generation. Missing: a resource its record
//! names that does not exist. Orphans: a service, target group or DNS record
//! no live tenant claims.

use std::collections::{BTreeMap, BTreeSet};

use aws_config::SdkConfig;
use serde::Serialize;

use crate::adapters::aws::launcher::TenantNames;
use crate::adapters::aws::sdk::{ecs, elbv2, route53};
use crate::domain::{Catalog, TenantId, TenantRecord, TenantStatus, desired_from};
use crate::ports::{StoreError, SubscriptionSource, TenantStore};
use crate::steps::lifecycle::OUR_METADATA_KEY;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("the tenant table could not be read")]
    Store(#[from] StoreError),
    #[error("{what} could not be listed: {reason}")]
    Listing { what: &'static str, reason: String },
}

/// Where a stage's tenants run: what [`inventory`] lists.
#[derive(Debug, Clone)]
pub struct Places {
    pub cluster: String,
    pub hosted_zone_id: String,
    /// `apps.example.com`: records under it are the tenants'.
    pub tenant_domain: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The record and Stripe disagree, or the infrastructure lags the record.
    Drift,
    /// The record names a resource that does not exist.
    Missing,
    /// A resource no live tenant claims.
    Orphan,
    /// An execution running far longer than its work takes.
    Stuck,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Drift => "drift",
            FindingKind::Missing => "missing",
            FindingKind::Orphan => "orphan",
            FindingKind::Stuck => "stuck",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The tenant, or the resource for an orphan.
    pub subject: String,
    pub detail: String,
    /// What repairs it, for people.
    pub fix: String,
    /// What `tenantctl reconcile --fix` does about it.
    pub repair: Repair,
}

/// What `--fix` does about a finding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Repair {
    /// A lifecycle execution for the tenant: Stripe read again, the desired
    /// state recorded, the infrastructure converged to it.
    Converge { tenant: TenantId },
    /// The service, listener rules, target group and task definitions named
    /// for a tenant id no live tenant has.
    RemoveTenantResources { tenant: TenantId },
    /// A record under the tenant domain no live tenant names.
    RemoveDnsRecord { name: String },
    /// Left to a person (the `fix` says what to do): acting on it alone
    /// could cancel or charge someone on a wrong reading.
    ByHand,
}

impl Places {
    /// From `ECS_CLUSTER`, `HOSTED_ZONE_ID` and `TENANT_DOMAIN` (what the
    /// scheduled function is given).
    pub fn from_lookup(env: &dyn crate::config::Lookup) -> Result<Self, crate::config::ConfigError> {
        use crate::config::required;
        Ok(Places {
            cluster: required(env, crate::adapters::aws::launcher::ECS_CLUSTER)?,
            hosted_zone_id: required(env, crate::adapters::aws::route53::HOSTED_ZONE_ID)?,
            tenant_domain: required(env, crate::config::TENANT_DOMAIN)?,
        })
    }
}

/// The state machines whose executions are looked at for stuck ones: from
/// `PROVISION_STATE_MACHINE_ARN` and `LIFECYCLE_STATE_MACHINE_ARN`.
pub fn state_machines(env: &dyn crate::config::Lookup) -> Result<Vec<String>, crate::config::ConfigError> {
    use crate::adapters::aws::sfn::{LIFECYCLE_STATE_MACHINE_ARN, PROVISION_STATE_MACHINE_ARN};
    [PROVISION_STATE_MACHINE_ARN, LIFECYCLE_STATE_MACHINE_ARN]
        .into_iter()
        .map(|var| crate::config::required(env, var))
        .collect()
}

/// The scheduled reconciliation: every finding logged as a warning with
/// its `finding` kind (a metric filter counts them and alarms), the count
/// returned.
pub async fn scheduled(
    sdk: &SdkConfig,
    places: &Places,
    store: &dyn TenantStore,
    stripe: &dyn SubscriptionSource,
    catalog: &Catalog,
    watched: &[String],
    now: i64,
) -> Result<usize, ReconcileError> {
    let inventory = inventory(sdk, places).await?;
    let mut findings = reconcile(store, stripe, catalog, &inventory).await?;
    findings.extend(stuck_executions(sdk, watched, now).await?);
    for finding in &findings {
        let kind = finding.kind.as_str();
        tracing::warn!(finding = kind, subject = %finding.subject, fix = %finding.fix, "{}", finding.detail);
    }
    tracing::info!(findings = findings.len(), tenants_domain = %places.tenant_domain, "reconciled");
    Ok(findings.len())
}

/// How long an execution may run before it is called stuck, unless it is
/// waiting in a Wait state (a cancelled tenant's grace period): every Task's
/// retries together end well within it.
pub const STUCK_AFTER_SECONDS: i64 = 2 * 3600;

/// An execution's page in the Step Functions console (its region is in
/// its ARN: `arn:aws:states:REGION:…`).
pub fn console_link(execution_arn: &str) -> String {
    let region = execution_arn.split(':').nth(3).unwrap_or("us-east-1");
    format!(
        "https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"
    )
}

/// Executions of `state_machines` RUNNING for longer than
/// [`STUCK_AFTER_SECONDS`] and not in a Wait state. Left to a person:
/// stopping one hands what it made to the clean-up function, which for a
/// provisioning means compensation and a refund.
pub async fn stuck_executions(
    sdk: &SdkConfig,
    state_machines: &[String],
    now: i64,
) -> Result<Vec<Finding>, ReconcileError> {
    use crate::adapters::aws::sdk::sfn;
    let listing = |what: &'static str| {
        move |e: &dyn std::error::Error| ReconcileError::Listing {
            what,
            reason: crate::telemetry::error_chain(e),
        }
    };
    let client = sfn::Client::new(sdk);
    let mut found = Vec::new();
    for machine in state_machines {
        let mut pages = client
            .list_executions()
            .state_machine_arn(machine)
            .status_filter(sfn::types::ExecutionStatus::Running)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for execution in page.map_err(|e| listing("running executions")(&e))?.executions() {
                let running_for = now.saturating_sub(execution.start_date().secs());
                if running_for <= STUCK_AFTER_SECONDS {
                    continue;
                }
                let arn = execution.execution_arn();
                let newest = client
                    .get_execution_history()
                    .execution_arn(arn)
                    .reverse_order(true)
                    .max_results(3)
                    .send()
                    .await
                    .map_err(|e| listing("execution histories")(&e))?;
                // The newest is the highest id (whatever order the answer is in).
                let last = newest.events().iter().max_by_key(|event| event.id()).map(|event| event.r#type());
                if last == Some(&sfn::types::HistoryEventType::WaitStateEntered) {
                    continue;
                }
                let last = last.map(|kind| kind.as_str().to_owned()).unwrap_or_else(|| "nothing".into());
                found.push(Finding {
                    kind: FindingKind::Stuck,
                    subject: execution.name().to_owned(),
                    detail: format!("running for {} h; its newest event: {last}", running_for / 3600),
                    fix: format!(
                        "look at {}; if it cannot go on, stop it (the clean-up function then removes or converges what it made)",
                        console_link(arn)
                    ),
                    repair: Repair::ByHand,
                });
            }
        }
    }
    Ok(found)
}

/// Everything that exists, by the tenant its name says it is for.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Service name → ARN (ACTIVE services only).
    pub services: BTreeMap<String, String>,
    /// Target group name → ARN.
    pub target_groups: BTreeMap<String, String>,
    /// DNS names (no trailing dot) of the records in the zone under the tenant domain.
    pub dns_names: BTreeSet<String>,
}

/// Reads what exists in the stage's cluster, load balancer and zone.
pub async fn inventory(sdk: &SdkConfig, places: &Places) -> Result<Inventory, ReconcileError> {
    let listing = |what: &'static str| {
        move |e: &dyn std::error::Error| ReconcileError::Listing {
            what,
            reason: crate::telemetry::error_chain(e),
        }
    };
    let mut found = Inventory::default();
    let cluster = places.cluster.as_str();
    let ecs = ecs::Client::new(sdk);
    let mut pages = ecs.list_services().cluster(cluster).into_paginator().send();
    let mut arns = Vec::new();
    while let Some(page) = pages.next().await {
        arns.extend(page.map_err(|e| listing("ECS services")(&e))?.service_arns().iter().cloned());
    }
    for chunk in arns.chunks(10) {
        let described = ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| listing("ECS services")(&e))?;
        for service in described.services() {
            if service.status() == Some("ACTIVE")
                && let (Some(name), Some(arn)) = (service.service_name(), service.service_arn())
            {
                found.services.insert(name.to_owned(), arn.to_owned());
            }
        }
    }
    let elb = elbv2::Client::new(sdk);
    let mut pages = elb.describe_target_groups().into_paginator().send();
    while let Some(page) = pages.next().await {
        for group in page.map_err(|e| listing("target groups")(&e))?.target_groups() {
            if let (Some(name), Some(arn)) = (group.target_group_name(), group.target_group_arn()) {
                found.target_groups.insert(name.to_owned(), arn.to_owned());
            }
        }
    }
    let zone = places.hosted_zone_id.as_str();
    let domain = places.tenant_domain.trim_end_matches('.').to_ascii_lowercase();
    let records = crate::adapters::aws::route53::all_records(&route53::Client::new(sdk), zone)
        .await
        .map_err(|e| listing("DNS records")(&e))?;
    for record in records {
        let name = record.name().trim_end_matches('.').to_ascii_lowercase();
        if record.r#type().as_str() == "A" && name.ends_with(&format!(".{domain}")) {
            found.dns_names.insert(name);
        }
    }
    Ok(found)
}

/// Compares the records, Stripe and the inventory; findings sorted by kind.
pub async fn reconcile(
    store: &dyn TenantStore,
    stripe: &dyn SubscriptionSource,
    catalog: &Catalog,
    inventory: &Inventory,
) -> Result<Vec<Finding>, ReconcileError> {
    let tenants = store.list_tenants().await?;
    let mut findings = Vec::new();
    let mut claimed_services = BTreeSet::new();
    let mut claimed_groups = BTreeSet::new();
    let mut claimed_names = BTreeSet::new();
    for tenant in &tenants {
        let names = TenantNames::of(&tenant.id);
        let live = !matches!(tenant.status, TenantStatus::Failed);
        if live {
            claimed_services.insert(names.service.clone());
            claimed_groups.insert(names.target_group.clone());
            if let Some(name) = &tenant.resources.dns_name {
                claimed_names.insert(name.trim_end_matches('.').to_ascii_lowercase());
            }
        }
        findings.extend(missing_resources(tenant, inventory, &names));
        findings.extend(stripe_drift(tenant, stripe, catalog).await);
    }
    findings.extend(unclaimed_subscriptions(&tenants, stripe).await);
    for (name, arn) in &inventory.services {
        if let Some(hex) = name.strip_prefix("tenant-tnt_")
            && !claimed_services.contains(name)
        {
            findings.push(orphan(arn, "an ECS service no live tenant has", removal(hex)));
        }
    }
    for (name, arn) in &inventory.target_groups {
        if let Some(hex) = name.strip_prefix("t-")
            && !claimed_groups.contains(name)
        {
            findings.push(orphan(arn, "a target group no live tenant has", removal(hex)));
        }
    }
    for name in &inventory.dns_names {
        if !claimed_names.contains(name) {
            let repair = Repair::RemoveDnsRecord { name: name.clone() };
            findings.push(orphan(name, "a DNS record no live tenant has", repair));
        }
    }
    findings.sort();
    Ok(findings)
}

/// Our subscriptions (they carry the checkout's `subdomain`) that Stripe
/// holds live and no tenant record names: a customer charged for nothing,
/// the one thing this system must never leave. Left to a person: whether to
/// provision it (replay its checkout) or refund it is theirs to decide.
async fn unclaimed_subscriptions(tenants: &[TenantRecord], stripe: &dyn SubscriptionSource) -> Vec<Finding> {
    let claimed: BTreeSet<&str> =
        tenants.iter().filter_map(TenantRecord::subscription).map(|id| id.as_str()).collect();
    let live = match stripe.live_subscriptions_with(OUR_METADATA_KEY).await {
        Ok(live) => live,
        Err(error) => {
            return vec![Finding {
                kind: FindingKind::Drift,
                subject: "Stripe subscriptions".to_owned(),
                detail: format!("could not be listed: {}", crate::telemetry::error_chain(&error)),
                fix: "run reconcile again".to_owned(),
                repair: Repair::ByHand,
            }];
        }
    };
    live.into_iter()
        .filter(|subscription| !claimed.contains(subscription.id.as_str()))
        .map(|subscription| Finding {
            kind: FindingKind::Orphan,
            subject: subscription.id.to_string(),
            detail: format!(
                "a {} subscription for `{}` no tenant has: a customer charged for nothing \
                 (unless it was bought minutes ago and its provisioning is starting)",
                subscription.status.as_str(),
                subscription.metadata.get(OUR_METADATA_KEY).map(String::as_str).unwrap_or_default()
            ),
            fix: "replay its checkout.session.completed (tenantctl events replay EVT_ID), \
                  or cancel and refund it in the Stripe Dashboard"
                .to_owned(),
            repair: Repair::ByHand,
        })
        .collect()
}

/// A tenant's resources are named for its id (`TenantNames`), so the id is
/// read back from the name; a name that only looks like ours is left alone.
fn removal(hex: &str) -> Repair {
    match TenantId::parse(&format!("tnt_{hex}")) {
        Ok(tenant) => Repair::RemoveTenantResources { tenant },
        Err(_) => Repair::ByHand,
    }
}

fn orphan(subject: &str, detail: &str, repair: Repair) -> Finding {
    // A tenant's record is written before anything is made for it, so a
    // resource no record claims is not one a provisioning is making.
    Finding {
        kind: FindingKind::Orphan,
        subject: subject.to_owned(),
        detail: detail.to_owned(),
        fix: "remove it (tenantctl reconcile --fix)".to_owned(),
        repair,
    }
}

fn missing_resources(tenant: &TenantRecord, inventory: &Inventory, names: &TenantNames) -> Vec<Finding> {
    let missing = |what: &str| Finding {
        kind: FindingKind::Missing,
        subject: tenant.id.to_string(),
        detail: format!("its record names {what}, which does not exist"),
        fix: "converge it again (tenantctl reconcile --fix)".to_owned(),
        repair: Repair::Converge { tenant: tenant.id.clone() },
    };
    let mut found = Vec::new();
    if tenant.resources.service_arn.is_some() && !inventory.services.contains_key(&names.service) {
        found.push(missing(&format!("service {}", names.service)));
    }
    if tenant.resources.target_group_arn.is_some()
        && !inventory.target_groups.contains_key(&names.target_group)
    {
        found.push(missing(&format!("target group {}", names.target_group)));
    }
    if let Some(name) = &tenant.resources.dns_name
        && !inventory.dns_names.contains(&name.trim_end_matches('.').to_ascii_lowercase())
    {
        found.push(missing(&format!("DNS record {name}")));
    }
    // Routed, but its record was never asked for (Route 53 throttled it past
    // every retry): converging asks again.
    let routed =
        matches!(tenant.status, TenantStatus::Active | TenantStatus::PastDue | TenantStatus::Suspended);
    if routed && tenant.resources.load_balancer.is_some() && tenant.resources.dns_name.is_none() {
        found.push(Finding {
            detail: "it is routed, but its DNS record was never published (Route 53 throttled it)".into(),
            ..missing("")
        });
    }
    found
}

async fn stripe_drift(
    tenant: &TenantRecord,
    stripe: &dyn SubscriptionSource,
    catalog: &Catalog,
) -> Vec<Finding> {
    let drift = |detail: String, fix: &str, repair: Repair| Finding {
        kind: FindingKind::Drift,
        subject: tenant.id.to_string(),
        detail,
        fix: fix.to_owned(),
        repair,
    };
    let converge = || Repair::Converge { tenant: tenant.id.clone() };
    let mut found = Vec::new();
    if tenant.status != TenantStatus::Failed && tenant.reached_generation < tenant.generation {
        found.push(drift(
            format!("reached generation {} of {}", tenant.reached_generation, tenant.generation),
            "look for its failed or stuck execution (tenants show), or converge it (reconcile --fix)",
            converge(),
        ));
    }
    let (Some(signup), false) = (tenant.signup.as_ref(), tenant.status == TenantStatus::Failed) else {
        return found;
    };
    match stripe.subscription(&signup.subscription).await {
        Ok(None) => found.push(drift(
            format!("Stripe has no subscription {}", signup.subscription),
            "check the stage's Stripe key and mode; a tenant without a subscription should be cancelled",
            Repair::ByHand,
        )),
        Ok(Some(subscription)) => match desired_from(&subscription, catalog) {
            Ok(desired) if tenant.desired.as_ref() != Some(&desired) => found.push(drift(
                format!(
                    "Stripe says {} on {}, the record {}",
                    desired.observed_status(),
                    desired.plan.key,
                    tenant
                        .desired
                        .as_ref()
                        .map(|d| format!("{} on {}", d.observed_status(), d.plan.key))
                        .unwrap_or_else(|| "nothing".into())
                ),
                "converge it to what Stripe says (tenantctl reconcile --fix)",
                converge(),
            )),
            Ok(_) => {}
            Err(unusable) => {
                found.push(drift(unusable.to_string(), "fix the subscription in Stripe", Repair::ByHand))
            }
        },
        Err(error) => found.push(Finding {
            kind: FindingKind::Drift,
            subject: tenant.id.to_string(),
            detail: format!("Stripe could not be read: {}", crate::telemetry::error_chain(&error)),
            fix: "run reconcile again".to_owned(),
            repair: Repair::ByHand,
        }),
    }
    found
}

/// Findings for people.
pub fn render(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "✔ records, Stripe and infrastructure agree\n".to_owned();
    }
    let mut out = String::new();
    for finding in findings {
        let kind = finding.kind.as_str();
        out.push_str(&format!(
            "✘ {kind:<8} {} — {}\n  {:<8} fix: {}\n",
            finding.subject, finding.detail, "", finding.fix
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CheckoutSignup;
    use crate::ports::AliasTarget;

    fn routed_tenant(status: TenantStatus) -> TenantRecord {
        let event: serde_json::Value =
            serde_json::from_str(include_str!("../../events/01-checkout.session.completed.json")).unwrap();
        let catalog = Catalog::embedded().unwrap();
        let signup = CheckoutSignup::from_session(&event["data"]["object"], &catalog).unwrap();
        let mut tenant = TenantRecord::provisioning(signup, "$argon2id$hash".into(), 1_763_800_005);
        tenant.status = status;
        tenant.resources.load_balancer =
            Some(AliasTarget { dns_name: "tenants-0.alb.local".into(), hosted_zone_id: "ZLOCAL".into() });
        tenant
    }

    #[test]
    fn a_routed_tenant_whose_record_was_never_published_is_converged() {
        let inventory = Inventory::default();
        for status in [TenantStatus::Active, TenantStatus::PastDue, TenantStatus::Suspended] {
            let tenant = routed_tenant(status);
            let found = missing_resources(&tenant, &inventory, &TenantNames::of(&tenant.id));
            assert_eq!(found.len(), 1, "{status}: {found:?}");
            assert_eq!(found[0].repair, Repair::Converge { tenant: tenant.id.clone() });
            assert!(found[0].detail.contains("never published"), "{}", found[0].detail);
        }
        // Still being provisioned, or gone: nothing is missing yet.
        for status in [TenantStatus::Provisioning, TenantStatus::Cancelled, TenantStatus::Failed] {
            let tenant = routed_tenant(status);
            assert!(
                missing_resources(&tenant, &inventory, &TenantNames::of(&tenant.id)).is_empty(),
                "{status}"
            );
        }
        // Published and there: nothing either.
        let mut published = routed_tenant(TenantStatus::Active);
        published.resources.dns_name = Some("acme.apps.example.com".into());
        let there = Inventory {
            dns_names: BTreeSet::from(["acme.apps.example.com".to_owned()]),
            ..Inventory::default()
        };
        assert!(missing_resources(&published, &there, &TenantNames::of(&published.id)).is_empty());
    }
}
