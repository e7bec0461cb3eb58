//! `doctor`'s quota check: each tenant takes one listener rule, one target
//! group (on the stage's load balancer and in the region), one ECS service
//! and one DNS record. Each quota's limit is what AWS says for this account
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
        None => format!(
            "{} is not adjustable: one load balancer holds at most {} tenants; give the stage another one",
            tightest.what, tightest.limit
        ),
    };
    Check::fail(NAME, format!("room for {room} more tenants, {expected} expected: {used}"), fix)
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
    let listener_arn = stage.parameter("AlbListenerArn")?;
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
    let listeners = elb
        .describe_listeners()
        .listener_arns(listener_arn)
        .send()
        .await
        .map_err(|e| call("the listener")(&e))?;
    let load_balancer = listeners
        .listeners()
        .first()
        .and_then(|l| l.load_balancer_arn())
        .ok_or_else(|| Unmeasured::Call(format!("listener {listener_arn} does not exist")))?
        .to_owned();

    let mut rules = 0;
    let mut pages = elb.describe_rules().listener_arn(listener_arn).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| call("the listener's rules")(&e))?;
        rules += page.rules().iter().filter(|r| r.is_default() != Some(true)).count() as u64;
    }
    // moto answers "not found" where AWS answers an empty list.
    let on_balancer = match elb
        .describe_target_groups()
        .load_balancer_arn(&load_balancer)
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
        Quota {
            what: "rules per load balancer",
            limit: limit("rules-per-application-load-balancer", RULES_PER_ALB),
            used: rules,
            raise: Some(ELB_QUOTAS),
        },
        Quota {
            what: "target groups per load balancer",
            limit: TARGET_GROUPS_PER_ALB,
            used: on_balancer,
            raise: None,
        },
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
            quota("rules per load balancer", 100, 40, Some(ELB_QUOTAS)),
            quota("target groups per load balancer", 100, 95, None),
            quota("services per cluster", 5_000, 40, Some("ECS")),
        ];
        let roomy = judge(&quotas, 5);
        assert_eq!(roomy.verdict, Verdict::Pass, "{roomy:?}");
        assert!(roomy.detail.starts_with("room for 5 more tenants (expected 5)"), "{}", roomy.detail);
        let full = judge(&quotas, 6);
        assert_eq!(full.verdict, Verdict::Fail);
        assert!(full.fix.as_deref().unwrap_or_default().contains("not adjustable"), "{full:?}");
        let adjustable = judge(&[quota("services per cluster", 5_000, 4_999, Some("ECS"))], 2);
        assert_eq!(adjustable.fix.as_deref(), Some("request more services per cluster (ECS)"));
        // More in use than the limit (a limit lowered under it) is no room.
        assert_eq!(quota("x", 10, 12, None).room(), 0);
    }
}
