//! The load balancer's room of the launcher ([`super::launcher`]): a
//! tenant's target group, the host rule that forwards to it on the shared
//! listener, and the ALB's view of the targets' health.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_elasticloadbalancingv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_elasticloadbalancingv2::types::Tag as ElbTag;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, HostHeaderConditionConfig, Matcher, ProtocolEnum, Rule, RuleCondition,
    TargetHealthDescription, TargetHealthStateEnum, TargetTypeEnum,
};

use super::error::unexpected;
use super::launcher::{LauncherConfig, TENANT_TAG, TenantNames, sdk_failure};
use crate::domain::TenantId;
use crate::ports::{AlbQuotas, LauncherError, Room, RoutingCapacity, ServiceHealth};

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
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let hash = tenant
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let start = u32::try_from(hash % u64::from(MAX_PRIORITY)).unwrap_or(0);
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

/// The launcher's load balancer calls, over its client and configuration.
pub(super) struct TenantRouting<'a> {
    pub(super) elb: &'a aws_sdk_elasticloadbalancingv2::Client,
    pub(super) config: &'a LauncherConfig,
}

impl TenantRouting<'_> {
    pub(super) fn on_listener(&self) -> ListenerRouting<'_> {
        ListenerRouting { elb: self.elb, listener_arn: &self.config.listener_arn }
    }

    pub(super) async fn ensure_target_group(
        &self,
        tenant: &TenantId,
        names: &TenantNames,
    ) -> Result<String, LauncherError> {
        if let Some(arn) = self.on_listener().find_target_group(&names.target_group).await? {
            return Ok(arn);
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
                .map(str::to_owned)
                .ok_or_else(|| {
                    LauncherError::Unavailable(unexpected("CreateTargetGroup answered without an ARN"))
                }),
            // Made by a concurrent launch since we looked.
            Err(SdkError::ServiceError(context))
                if context.err().is_duplicate_target_group_name_exception() =>
            {
                self.on_listener().find_target_group(&names.target_group).await?.ok_or_else(|| {
                    LauncherError::Unavailable(unexpected("target group exists and cannot be found"))
                })
            }
            Err(error) => Err(sdk_failure("ELB CreateTargetGroup", error)),
        }
    }

    pub(super) async fn ensure_listener_rule(
        &self,
        tenant: &TenantId,
        host: &str,
        target_group_arn: &str,
    ) -> Result<String, LauncherError> {
        for _ in 0..RULE_ATTEMPTS {
            let rules = self.on_listener().listener_rules().await?;
            if let Some(rule) = rules.iter().find(|r| rule_hosts(r).any(|h| same_host(h, host))) {
                if !forwards_to(rule, target_group_arn) {
                    return Err(LauncherError::Rejected(format!(
                        "host {host} is already routed to another target group"
                    )));
                }
                return rule
                    .rule_arn()
                    .map(str::to_owned)
                    .ok_or_else(|| LauncherError::Unavailable(unexpected("listener rule without an ARN")));
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
                .listener_arn(&self.config.listener_arn)
                .priority(priority as i32)
                .conditions(condition)
                .actions(forward)
                .tags(elb_tag(tenant))
                .send()
                .await;
            match created {
                Ok(output) => {
                    return output.rules().first().and_then(|r| r.rule_arn()).map(str::to_owned).ok_or_else(
                        || LauncherError::Unavailable(unexpected("CreateRule answered without an ARN")),
                    );
                }
                // Another launch took that priority: look again.
                Err(SdkError::ServiceError(context)) if context.err().is_priority_in_use_exception() => {
                    continue;
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

/// The load balancer calls that need only the listener: finding and
/// removing a tenant's rule and target group, so an operator tool can remove
/// them from the stack's outputs alone.
pub(super) struct ListenerRouting<'a> {
    pub(super) elb: &'a aws_sdk_elasticloadbalancingv2::Client,
    pub(super) listener_arn: &'a str,
}

impl ListenerRouting<'_> {
    pub(super) async fn find_target_group(&self, name: &str) -> Result<Option<String>, LauncherError> {
        match self.elb.describe_target_groups().names(name).send().await {
            Ok(output) => Ok(output
                .target_groups()
                .iter()
                .find(|tg| tg.target_group_name() == Some(name))
                .and_then(|tg| tg.target_group_arn())
                .map(str::to_owned)),
            Err(SdkError::ServiceError(context)) if context.err().is_target_group_not_found_exception() => {
                Ok(None)
            }
            Err(error) => Err(sdk_failure("ELB DescribeTargetGroups", error)),
        }
    }

    pub(super) async fn listener_rules(&self) -> Result<Vec<Rule>, LauncherError> {
        let mut rules = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .elb
                .describe_rules()
                .listener_arn(self.listener_arn)
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

    pub(super) async fn remove_routing(&self, names: &TenantNames) -> Result<(), LauncherError> {
        let Some(target_group_arn) = self.find_target_group(&names.target_group).await? else {
            return Ok(());
        };
        // A target group cannot be deleted while a rule forwards to it, so
        // every rule of this tenant is found through it.
        for rule in self.listener_rules().await? {
            if rule.is_default() == Some(true) || !forwards_to(&rule, &target_group_arn) {
                continue;
            }
            let Some(rule_arn) = rule.rule_arn() else { continue };
            match self.elb.delete_rule().rule_arn(rule_arn).send().await {
                Ok(_) => {}
                Err(SdkError::ServiceError(context)) if context.err().is_rule_not_found_exception() => {}
                Err(error) => return Err(sdk_failure("ELB DeleteRule", error)),
            }
        }
        match self.elb.delete_target_group().target_group_arn(&target_group_arn).send().await {
            Ok(_) => Ok(()),
            // Still attached while ECS drains the service: try again later.
            Err(SdkError::ServiceError(context)) if context.err().is_resource_in_use_exception() => {
                Err(LauncherError::Unavailable(unexpected(format!(
                    "target group {} is still in use",
                    names.target_group
                ))))
            }
            Err(SdkError::ServiceError(context)) if context.err().code() == Some("TargetGroupNotFound") => {
                Ok(())
            }
            Err(error) => Err(sdk_failure("ELB DeleteTargetGroup", error)),
        }
    }
}

/// The room on the shared ALB for the checkout API: the listener's rules
/// other than its default one are the tenants routed (each also has its
/// target group), held against the configured [`AlbQuotas`].
#[derive(Debug, Clone)]
pub struct ListenerCapacity {
    elb: aws_sdk_elasticloadbalancingv2::Client,
    listener_arn: String,
    quotas: AlbQuotas,
}

impl ListenerCapacity {
    pub fn new(elb: aws_sdk_elasticloadbalancingv2::Client, listener_arn: String, quotas: AlbQuotas) -> Self {
        ListenerCapacity { elb, listener_arn, quotas }
    }

    /// From `ALB_LISTENER_ARN` and the quotas' variables.
    pub fn from_lookup(
        elb: aws_sdk_elasticloadbalancingv2::Client,
        env: &dyn crate::config::Lookup,
    ) -> Result<Self, crate::config::ConfigError> {
        Ok(ListenerCapacity::new(elb, super::launcher::listener_arn(env)?, AlbQuotas::from_lookup(env)?))
    }
}

#[async_trait::async_trait]
impl RoutingCapacity for ListenerCapacity {
    async fn room(&self) -> Result<Room, LauncherError> {
        let routing = ListenerRouting { elb: &self.elb, listener_arn: &self.listener_arn };
        let rules = routing.listener_rules().await?;
        let used = rules.iter().filter(|rule| rule.is_default() != Some(true)).count();
        Ok(Room { used: u32::try_from(used).unwrap_or(u32::MAX), capacity: self.quotas.tenants() })
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
