//! The load balancer's room of the launcher ([`super::launcher`]): a
//! tenant's target group, the host rule that forwards to it on a listener of
//! the pool ([`super::pool`]), and the ALB's view of the targets' health.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_elasticloadbalancingv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_elasticloadbalancingv2::types::Tag as ElbTag;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, HostHeaderConditionConfig, Matcher, ProtocolEnum, Rule, RuleCondition,
    TargetHealthDescription, TargetHealthStateEnum, TargetTypeEnum,
};

use super::error::unexpected;
use super::launcher::{LauncherConfig, TENANT_TAG, TenantNames, sdk_failure};
use super::pool::{ALB_LISTENER_ARNS, PoolListener};
use crate::domain::TenantId;
use crate::ports::{AlbQuotas, LauncherError, Room, ServiceHealth, no_room, placement_order};

/// Listener rule priorities run from 1 to 50000.
const MAX_PRIORITY: u32 = 50_000;
/// Another launch may take the priority we picked; pick again this often.
const RULE_ATTEMPTS: usize = 5;

fn elb_tag(tenant: &TenantId) -> ElbTag {
    ElbTag::builder().key(TENANT_TAG).value(tenant.as_str()).build()
}

fn same_host(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('.').eq_ignore_ascii_case(b.trim().trim_end_matches('.'))
}

/// The host names a rule's host-header condition matches.
fn rule_hosts(rule: &Rule) -> impl Iterator<Item = &str> {
    rule.conditions().iter().filter(|c| c.field() == Some("host-header")).flat_map(|condition| {
        let config = condition.host_header_config().map(|c| c.values()).unwrap_or_default();
        config.iter().chain(condition.values()).map(String::as_str)
    })
}

/// Whether any of the rule's actions forwards to `target_group_arn`.
fn forwards_to(rule: &Rule, target_group_arn: &str) -> bool {
    rule.actions().iter().filter(|a| a.r#type() == Some(&ActionTypeEnum::Forward)).any(|action| {
        action.target_group_arn() == Some(target_group_arn)
            || action.forward_config().is_some_and(|forward| {
                forward.target_groups().iter().any(|tuple| tuple.target_group_arn() == Some(target_group_arn))
            })
    })
}

/// A priority for the tenant's rule that no rule of the listener uses: one
/// derived from the tenant id, or the next free one after it. Launches that
/// run together start from different places, so they rarely pick the same
/// (picking the lowest free one, every launch of a burst picked the same and
/// only one won each round). Host-header rules of different hosts never
/// overlap, so their order does not matter.
fn free_priority_for(tenant: &TenantId, rules: &[Rule]) -> Option<u32> {
    let used: BTreeSet<u32> = rules.iter().filter_map(|r| r.priority()?.parse().ok()).collect();
    let start = u32::try_from((tenant.spread() & 0xffff_ffff) % u64::from(MAX_PRIORITY)).unwrap_or(0);
    (0..MAX_PRIORITY).map(|step| (start + step) % MAX_PRIORITY + 1).find(|p| !used.contains(p))
}

/// Judges the ALB's view: healthy once any target passes its health check.
pub fn judge_targets(targets: &[TargetHealthDescription]) -> ServiceHealth {
    let state = |t: &TargetHealthDescription| t.target_health().and_then(|h| h.state()).cloned();
    if targets.iter().any(|t| state(t) == Some(TargetHealthStateEnum::Healthy)) {
        return ServiceHealth::Healthy;
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for target in targets {
        let name = state(target).map(|s| s.as_str().to_owned()).unwrap_or_else(|| "unknown".into());
        *counts.entry(name).or_default() += 1;
    }
    let detail = if counts.is_empty() {
        "no target registered yet".to_owned()
    } else {
        let states: Vec<String> = counts.iter().map(|(state, n)| format!("{n} {state}")).collect();
        format!("no healthy target yet ({})", states.join(", "))
    };
    ServiceHealth::Starting { detail }
}

/// A tenant's target group and the load balancers it is attached to (by a
/// rule forwarding to it): where the tenant is routed.
pub(super) struct FoundTargetGroup {
    pub(super) arn: String,
    pub(super) load_balancer_arns: Vec<String>,
}

/// What placing a tenant's rule on one listener came to.
enum OnListener {
    Routed(String),
    /// The listener's load balancer holds all the tenants its quotas allow.
    Full,
}

/// The launcher's load balancer calls, over its client and configuration.
pub(super) struct TenantRouting<'a> {
    pub(super) elb: &'a aws_sdk_elasticloadbalancingv2::Client,
    pub(super) config: &'a LauncherConfig,
}

impl TenantRouting<'_> {
    pub(super) async fn ensure_target_group(
        &self,
        tenant: &TenantId,
        names: &TenantNames,
    ) -> Result<FoundTargetGroup, LauncherError> {
        if let Some(found) = find_target_group(self.elb, &names.target_group).await? {
            return Ok(found);
        }
        let created = self
            .elb
            .create_target_group()
            .name(&names.target_group)
            .protocol(ProtocolEnum::Http)
            .port(i32::from(self.config.container_port))
            .vpc_id(&self.config.vpc_id)
            .target_type(TargetTypeEnum::Ip)
            .health_check_enabled(true)
            .health_check_protocol(ProtocolEnum::Http)
            .health_check_path(&self.config.health_check_path)
            .matcher(Matcher::builder().http_code("200-399").build())
            .tags(elb_tag(tenant))
            .send()
            .await;
        match created {
            Ok(output) => output
                .target_groups()
                .first()
                .and_then(|tg| tg.target_group_arn())
                .map(|arn| FoundTargetGroup { arn: arn.to_owned(), load_balancer_arns: Vec::new() })
                .ok_or_else(|| {
                    LauncherError::Unavailable(unexpected("CreateTargetGroup answered without an ARN"))
                }),
            // Made by a concurrent launch since we looked.
            Err(SdkError::ServiceError(context))
                if context.err().is_duplicate_target_group_name_exception() =>
            {
                find_target_group(self.elb, &names.target_group).await?.ok_or_else(|| {
                    LauncherError::Unavailable(unexpected("target group exists and cannot be found"))
                })
            }
            Err(error) => Err(sdk_failure("ELB CreateTargetGroup", error)),
        }
    }

    /// Routes `host` to the tenant's target group on a listener of the pool
    /// and returns that listener and the rule. A tenant already behind a
    /// load balancer of the pool stays there; a new one (or one whose rule
    /// is gone and whose load balancer filled since) is placed on the first
    /// listener with room in the tenant's [`placement_order`].
    pub(super) async fn ensure_routed(
        &self,
        tenant: &TenantId,
        host: &str,
        group: &FoundTargetGroup,
    ) -> Result<(&PoolListener, String), LauncherError> {
        let pool = self.config.pool.listeners();
        let placed = self.config.pool.on_any_of(&group.load_balancer_arns);
        if let (None, Some(elsewhere)) = (placed, group.load_balancer_arns.first()) {
            return Err(LauncherError::Rejected(format!(
                "tenant {tenant} is routed by load balancer {elsewhere}, which is not in the pool \
                 ({ALB_LISTENER_ARNS}): put its listener back in the pool"
            )));
        }
        let order = placement_order(tenant, pool.len()).map(|index| &pool[index]);
        for listener in placed.into_iter().chain(order.filter(|l| Some(*l) != placed)) {
            if let OnListener::Routed(rule_arn) =
                self.ensure_listener_rule(tenant, host, &group.arn, listener).await?
            {
                return Ok((listener, rule_arn));
            }
        }
        Err(no_room(pool.len(), self.config.quotas))
    }

    async fn ensure_listener_rule(
        &self,
        tenant: &TenantId,
        host: &str,
        target_group_arn: &str,
        listener: &PoolListener,
    ) -> Result<OnListener, LauncherError> {
        for _ in 0..RULE_ATTEMPTS {
            let rules = listener_rules(self.elb, &listener.listener_arn).await?;
            if let Some(rule) = rules.iter().find(|r| rule_hosts(r).any(|h| same_host(h, host))) {
                if !forwards_to(rule, target_group_arn) {
                    return Err(LauncherError::Rejected(format!(
                        "host {host} is already routed to another target group"
                    )));
                }
                return rule
                    .rule_arn()
                    .map(|arn| OnListener::Routed(arn.to_owned()))
                    .ok_or_else(|| LauncherError::Unavailable(unexpected("listener rule without an ARN")));
            }
            if listener_room(&rules, self.config.quotas).free() == 0 {
                return Ok(OnListener::Full);
            }
            let priority = free_priority_for(tenant, &rules)
                .ok_or_else(|| LauncherError::Rejected("the listener has no free rule priority".into()))?;
            let condition = RuleCondition::builder()
                .field("host-header")
                .host_header_config(HostHeaderConditionConfig::builder().values(host).build())
                .build();
            let forward =
                Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(target_group_arn).build();
            let created = self
                .elb
                .create_rule()
                .listener_arn(&listener.listener_arn)
                .priority(priority as i32)
                .conditions(condition)
                .actions(forward)
                .tags(elb_tag(tenant))
                .send()
                .await;
            match created {
                Ok(output) => {
                    return output
                        .rules()
                        .first()
                        .and_then(|r| r.rule_arn())
                        .map(|arn| OnListener::Routed(arn.to_owned()))
                        .ok_or_else(|| {
                            LauncherError::Unavailable(unexpected("CreateRule answered without an ARN"))
                        });
                }
                // Another launch took that priority: look again.
                Err(SdkError::ServiceError(context)) if context.err().is_priority_in_use_exception() => {
                    continue;
                }
                // AWS's own count says full (a quota lower than configured,
                // or launches that ran together took the last places).
                Err(SdkError::ServiceError(context))
                    if context.err().is_too_many_rules_exception()
                        || context.err().is_too_many_target_groups_exception()
                        || context.err().is_too_many_unique_target_groups_per_load_balancer_exception() =>
                {
                    return Ok(OnListener::Full);
                }
                Err(error) => return Err(sdk_failure("ELB CreateRule", error)),
            }
        }
        Err(LauncherError::Unavailable(unexpected(format!(
            "listener rule priorities kept being taken ({RULE_ATTEMPTS} attempts)"
        ))))
    }

    /// The ALB's verdict on the tenant's targets.
    pub(super) async fn target_health(
        &self,
        target_group_arn: &str,
        names: &TenantNames,
    ) -> Result<ServiceHealth, LauncherError> {
        let targets = match self.elb.describe_target_health().target_group_arn(target_group_arn).send().await
        {
            Ok(output) => output.target_health_descriptions().to_vec(),
            Err(SdkError::ServiceError(context)) if context.err().is_target_group_not_found_exception() => {
                return Ok(ServiceHealth::Broken {
                    reason: format!("target group {} is gone", names.target_group),
                });
            }
            Err(error) => return Err(sdk_failure("ELB DescribeTargetHealth", error)),
        };
        Ok(judge_targets(&targets))
    }
}

pub(super) async fn find_target_group(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    name: &str,
) -> Result<Option<FoundTargetGroup>, LauncherError> {
    match elb.describe_target_groups().names(name).send().await {
        Ok(output) => {
            Ok(output.target_groups().iter().find(|tg| tg.target_group_name() == Some(name)).and_then(|tg| {
                Some(FoundTargetGroup {
                    arn: tg.target_group_arn()?.to_owned(),
                    load_balancer_arns: tg.load_balancer_arns().to_vec(),
                })
            }))
        }
        Err(SdkError::ServiceError(context)) if context.err().is_target_group_not_found_exception() => {
            Ok(None)
        }
        Err(error) => Err(sdk_failure("ELB DescribeTargetGroups", error)),
    }
}

/// A listener's room: its rules other than the default one are the tenants
/// routed (each also has its target group), held to `quotas`.
pub(super) fn listener_room(rules: &[Rule], quotas: AlbQuotas) -> Room {
    Room::of_balancer(rules.iter().filter(|rule| rule.is_default() != Some(true)).count(), quotas)
}

/// Every rule of the listener, its default one included.
pub(super) async fn listener_rules(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    listener_arn: &str,
) -> Result<Vec<Rule>, LauncherError> {
    let mut rules = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = elb
            .describe_rules()
            .listener_arn(listener_arn)
            .page_size(400)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| sdk_failure("ELB DescribeRules", e))?;
        rules.extend(page.rules().iter().cloned());
        match page.next_marker() {
            Some(next) if !next.is_empty() => marker = Some(next.to_owned()),
            _ => return Ok(rules),
        }
    }
}

/// Every listener of the load balancer.
async fn balancer_listeners(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    load_balancer_arn: &str,
) -> Result<Vec<String>, LauncherError> {
    let mut listeners = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = match elb
            .describe_listeners()
            .load_balancer_arn(load_balancer_arn)
            .page_size(400)
            .set_marker(marker.take())
            .send()
            .await
        {
            Ok(page) => page,
            // Deleted since the target group was attached: nothing to remove there.
            Err(SdkError::ServiceError(context)) if context.err().is_load_balancer_not_found_exception() => {
                return Ok(listeners);
            }
            Err(error) => return Err(sdk_failure("ELB DescribeListeners", error)),
        };
        listeners.extend(page.listeners().iter().filter_map(|l| l.listener_arn()).map(str::to_owned));
        match page.next_marker() {
            Some(next) if !next.is_empty() => marker = Some(next.to_owned()),
            _ => return Ok(listeners),
        }
    }
}

/// Removes the tenant's rules and target group, on whichever load balancers
/// route it: they are found through the target group, so removing needs no
/// pool, and a tenant on a load balancer taken out of the pool is removed too.
pub(super) async fn remove_routing(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    names: &TenantNames,
) -> Result<(), LauncherError> {
    let Some(group) = find_target_group(elb, &names.target_group).await? else {
        return Ok(());
    };
    // A target group cannot be deleted while a rule forwards to it.
    for load_balancer_arn in &group.load_balancer_arns {
        for listener_arn in balancer_listeners(elb, load_balancer_arn).await? {
            for rule in listener_rules(elb, &listener_arn).await? {
                if rule.is_default() == Some(true) || !forwards_to(&rule, &group.arn) {
                    continue;
                }
                let Some(rule_arn) = rule.rule_arn() else { continue };
                match elb.delete_rule().rule_arn(rule_arn).send().await {
                    Ok(_) => {}
                    Err(SdkError::ServiceError(context)) if context.err().is_rule_not_found_exception() => {}
                    Err(error) => return Err(sdk_failure("ELB DeleteRule", error)),
                }
            }
        }
    }
    match elb.delete_target_group().target_group_arn(&group.arn).send().await {
        Ok(_) => Ok(()),
        // Still attached while ECS drains the service: try again later.
        Err(SdkError::ServiceError(context)) if context.err().is_resource_in_use_exception() => {
            Err(LauncherError::Unavailable(unexpected(format!(
                "target group {} is still in use",
                names.target_group
            ))))
        }
        Err(SdkError::ServiceError(context)) if context.err().code() == Some("TargetGroupNotFound") => Ok(()),
        Err(error) => Err(sdk_failure("ELB DeleteTargetGroup", error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(n: u32) -> TenantId {
        TenantId::parse(&format!("tnt_{n:020x}")).expect("a tenant id")
    }

    #[test]
    fn each_tenant_has_its_own_starting_priority_and_probes_past_taken_ones() {
        let rule = |p: u32| Rule::builder().priority(p.to_string()).build();
        let first = free_priority_for(&tenant(1), &[]).expect("a free priority");
        assert!((1..=MAX_PRIORITY).contains(&first));
        assert_eq!(free_priority_for(&tenant(1), &[]), Some(first), "the same tenant, the same start");
        // Taken: the next one, wrapping from 50000 to 1.
        let next = if first == MAX_PRIORITY { 1 } else { first + 1 };
        assert_eq!(
            free_priority_for(&tenant(1), &[rule(first), Rule::builder().priority("default").build()]),
            Some(next)
        );
        // A burst of 1,000 launches on an empty listener: almost all start apart.
        let starts: BTreeSet<u32> = (0..1000).filter_map(|n| free_priority_for(&tenant(n), &[])).collect();
        assert!(starts.len() > 980, "{} distinct of 1000", starts.len());
    }

    #[test]
    fn a_full_listener_has_no_priority_to_give() {
        let all: Vec<Rule> =
            (1..=MAX_PRIORITY).map(|p| Rule::builder().priority(p.to_string()).build()).collect();
        assert_eq!(free_priority_for(&tenant(7), &all), None);
    }
}
