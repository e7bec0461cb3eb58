//! `doctor`'s quota check: each tenant takes one listener rule and one
//! target group on a load balancer of the stage's pool, a target group of
//! the region, one ECS service and one DNS record. Each quota's limit is what AWS says for this account
//! where it says it (ELB's `DescribeAccountLimits`), AWS's published default
//! otherwise; its use is counted from what exists.

use tenancy::adapters::aws::sdk::{ecs, elbv2, route53};

use super::doctor::Check;
use super::{Stage, StageError};

const NAME: &str = "quotas";

/// One quota: its limit, what is used of it, and how it is raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    pub what: &'static str,
    pub limit: u64,
    pub used: u64,
    /// Where to raise it; `None` when AWS does not.
    pub raise: Option<&'static str>,
}

impl Quota {
    pub fn room(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }
}

/// AWS's published defaults, for the quotas no API reports.
const TARGET_GROUPS_PER_ALB: u64 = 100;
const SERVICES_PER_CLUSTER: u64 = 5_000;
const RECORDS_PER_ZONE: u64 = 10_000;
const RULES_PER_ALB: u64 = 100;
const TARGET_GROUPS_PER_REGION: u64 = 3_000;

const ELB_QUOTAS: &str = "Service Quotas console → Elastic Load Balancing (ELB)";

/// Room for `expected` more tenants under every quota, or ✘ naming the one
/// that runs out first and how it is raised.
pub async fn quotas(stage: &Stage, expected: u64) -> Check {
    let quotas = match measure(stage).await {
        Ok(quotas) => quotas,
        Err(Unmeasured::Stage(error)) => return Check::from_stage(NAME, error),
        Err(Unmeasured::Call(what)) => return Check::unknown(NAME, what),
    };
    judge(&quotas, expected)
}

/// The verdict on measured quotas.
pub fn judge(quotas: &[Quota], expected: u64) -> Check {
    let used =
        quotas.iter().map(|q| format!("{} {}/{}", q.what, q.used, q.limit)).collect::<Vec<_>>().join(", ");
    let Some(tightest) = quotas.iter().min_by_key(|q| q.room()) else {
        return Check::unknown(NAME, "nothing measured");
    };
    let room = tightest.room();
    if room >= expected {
        return Check::pass(NAME, format!("room for {room} more tenants (expected {expected}): {used}"));
    }
    let fix = match tightest.raise {
        Some(page) => format!("request more {} ({page})", tightest.what),
        None => "one load balancer holds at most 100 tenants (AWS does not raise its target groups): \
                 add one to the pool (MoreAlbListenerArns; README, Growing past one load balancer)"
            .to_owned(),
    };
    Check::fail(NAME, format!("room for {room} more tenants, {expected} expected: {used}"), fix)
}

/// The tenants one load balancer of the pool holds: its listener's rules
/// or its target groups, whichever are more.
async fn balancer_use(
    elb: &elbv2::Client,
    listener_arn: &str,
    load_balancer_arn: &str,
) -> Result<u64, Unmeasured> {
    let mut rules = 0;
    let mut pages = elb.describe_rules().listener_arn(listener_arn).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| call("the listener's rules")(&e))?;
        rules += page.rules().iter().filter(|r| r.is_default() != Some(true)).count() as u64;
    }
    // moto answers "not found" where AWS answers an empty list.
    let target_groups = match elb
        .describe_target_groups()
        .load_balancer_arn(load_balancer_arn)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
    {
        Ok(groups) => groups.len() as u64,
        Err(elbv2::error::SdkError::ServiceError(context))
            if context.err().is_target_group_not_found_exception() =>
        {
            0
        }
        Err(error) => return Err(call("the load balancer's target groups")(&error)),
    };
    Ok(rules.max(target_groups))
}

enum Unmeasured {
    Stage(StageError),
    Call(String),
}

impl From<StageError> for Unmeasured {
    fn from(error: StageError) -> Self {
        Unmeasured::Stage(error)
    }
}

fn call(what: &'static str) -> impl Fn(&dyn std::error::Error) -> Unmeasured {
    move |error| Unmeasured::Call(format!("{what} could not be read: {}", super::one_line(error)))
}

async fn measure(stage: &Stage) -> Result<Vec<Quota>, Unmeasured> {
    let pool = stage.listener_pool()?;
    let cluster = stage.output("TenantClusterName")?;
    let zone = stage.parameter("HostedZoneId")?;
    let elb = elbv2::Client::new(&stage.sdk);

    let limits = elb.describe_account_limits().send().await.map_err(|e| call("ELB account limits")(&e))?;
    let limit = |name: &str, default: u64| {
        limits
            .limits()
            .iter()
            .find(|l| l.name() == Some(name))
            .and_then(|l| l.max()?.parse::<u64>().ok())
            .unwrap_or(default)
    };
    // A tenant takes a rule and a target group on one load balancer of the
    // pool: each holds as many as the tighter of the two allows.
    let per_balancer = limit("rules-per-application-load-balancer", RULES_PER_ALB).min(TARGET_GROUPS_PER_ALB);
    let mut places = Quota { what: "places on the pool's load balancers", limit: 0, used: 0, raise: None };
    for member in pool.listeners() {
        let tenants = balancer_use(&elb, &member.listener_arn, &member.load_balancer_arn).await?;
        places.limit += per_balancer;
        places.used += tenants.min(per_balancer);
    }
    let in_region = elb
        .describe_target_groups()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| call("target groups")(&e))?
        .len() as u64;
    let services = ecs::Client::new(&stage.sdk)
        .list_services()
        .cluster(cluster)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| call("the cluster's services")(&e))?
        .len() as u64;
    let records = tenancy::adapters::aws::route53::all_records(&route53::Client::new(&stage.sdk), zone)
        .await
        .map_err(|e| call("the hosted zone's records")(&e))?
        .len() as u64;

    Ok(vec![
        places,
        Quota {
            what: "target groups",
            limit: limit("target-groups", TARGET_GROUPS_PER_REGION),
            used: in_region,
            raise: Some(ELB_QUOTAS),
        },
        Quota {
            what: "services per cluster",
            limit: SERVICES_PER_CLUSTER,
            used: services,
            raise: Some("Service Quotas console → Amazon Elastic Container Service (Amazon ECS)"),
        },
        Quota {
            what: "records per hosted zone",
            limit: RECORDS_PER_ZONE,
            used: records,
            raise: Some("Service Quotas console → Amazon Route 53"),
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::doctor::Verdict;

    fn quota(what: &'static str, limit: u64, used: u64, raise: Option<&'static str>) -> Quota {
        Quota { what, limit, used, raise }
    }

    #[test]
    fn the_quota_that_runs_out_first_decides_and_says_how_it_is_raised() {
        let quotas = [
            quota("target groups", 3_000, 40, Some(ELB_QUOTAS)),
            quota("places on the pool's load balancers", 200, 195, None),
            quota("services per cluster", 5_000, 40, Some("ECS")),
        ];
        let roomy = judge(&quotas, 5);
        assert_eq!(roomy.verdict, Verdict::Pass, "{roomy:?}");
        assert!(roomy.detail.starts_with("room for 5 more tenants (expected 5)"), "{}", roomy.detail);
        let full = judge(&quotas, 6);
        assert_eq!(full.verdict, Verdict::Fail);
        assert!(full.fix.as_deref().unwrap_or_default().contains("add one to the pool"), "{full:?}");
        let adjustable = judge(&[quota("services per cluster", 5_000, 4_999, Some("ECS"))], 2);
        assert_eq!(adjustable.fix.as_deref(), Some("request more services per cluster (ECS)"));
        // More in use than the limit (a limit lowered under it) is no room.
        assert_eq!(quota("x", 10, 12, None).room(), 0);
    }
}
