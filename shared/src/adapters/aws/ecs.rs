//! Tenants on ECS Fargate behind the shared ALB (docs/architecture.md decision 8).
//!
//! Every name derives from the tenant id, so a retried launch finds what the
//! first one made instead of making it twice:
//!
//! | what | name |
//! |---|---|
//! | task definition family, service | `tenant-{tenant_id}` (`tenant-tnt_0123…`) |
//! | target group | `t-{20 hex digits of the tenant id}` (22 characters, ALB allows 32) |
//! | listener rule | found by its host-header condition; tagged `tenancy:tenant` |
//!
//! Health is judged from ECS (service ACTIVE, a running task, the rollout not
//! FAILED; the deployment circuit breaker turns a task that never starts into
//! FAILED) and from the ALB (at least one healthy target in the tenant's
//! target group).

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecs::types::Tag as EcsTag;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, Compatibility, ContainerDefinition, DeploymentCircuitBreaker,
    DeploymentConfiguration, DeploymentRolloutState, KeyValuePair, LaunchType, LoadBalancer,
    LogConfiguration, LogDriver, NetworkConfiguration, NetworkMode, PortMapping, PropagateTags, Service,
    TaskDefinition, TaskDefinitionStatus, TransportProtocol,
};
use aws_sdk_elasticloadbalancingv2::types::Tag as ElbTag;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, HostHeaderConditionConfig, Matcher, ProtocolEnum, Rule, RuleCondition,
    TargetHealthDescription, TargetHealthStateEnum, TargetTypeEnum,
};

use super::error::{Fault, call_failed, classify, summary, unexpected};
use crate::config::{ConfigError, Lookup, required};
use crate::domain::TenantId;
use crate::ports::{LaunchSpec, LaunchedTenant, LauncherError, ServiceHealth, TenantLauncher};

pub const ECS_CLUSTER: &str = "ECS_CLUSTER";
pub const APP_IMAGE: &str = "APP_IMAGE";
pub const APP_PORT: &str = "APP_PORT";
pub const APP_CPU: &str = "APP_CPU";
pub const APP_MEMORY: &str = "APP_MEMORY";
pub const TASK_EXECUTION_ROLE_ARN: &str = "TASK_EXECUTION_ROLE_ARN";
pub const TASK_ROLE_ARN: &str = "TASK_ROLE_ARN";
pub const TENANT_SUBNETS: &str = "TENANT_SUBNETS";
pub const TENANT_SECURITY_GROUPS: &str = "TENANT_SECURITY_GROUPS";
pub const TENANT_ASSIGN_PUBLIC_IP: &str = "TENANT_ASSIGN_PUBLIC_IP";
pub const VPC_ID: &str = "VPC_ID";
pub const ALB_LISTENER_ARN: &str = "ALB_LISTENER_ARN";
pub const APP_HEALTH_PATH: &str = "APP_HEALTH_PATH";
pub const TENANT_LOG_GROUP: &str = "TENANT_LOG_GROUP";

/// The one container of a tenant's task.
pub const CONTAINER_NAME: &str = "app";
/// The tag that names the tenant on everything made for it.
pub const TENANT_TAG: &str = "tenancy:tenant";

/// CPU units Fargate offers.
const FARGATE_CPU: &[u32] = &[256, 512, 1024, 2048, 4096, 8192, 16384];
/// Listener rule priorities run from 1 to 50000.
const MAX_PRIORITY: u32 = 50_000;
/// Another launch may take the priority we picked; pick again this often.
const RULE_ATTEMPTS: usize = 5;

/// Where and how tenants run; read once at cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LauncherConfig {
    pub cluster: String,
    pub app_image: String,
    pub container_port: u16,
    /// Fargate CPU units (256, 512, 1024, …).
    pub cpu: u32,
    /// MiB.
    pub memory: u32,
    pub execution_role_arn: String,
    pub task_role_arn: Option<String>,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
    pub vpc_id: String,
    pub listener_arn: String,
    pub health_check_path: String,
    pub log_group: Option<String>,
}

fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { var, reason: reason.into() }
}

fn token(env: &dyn Lookup, var: &'static str) -> Result<String, ConfigError> {
    let value = required(env, var)?.trim().to_owned();
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(invalid(var, "must be one word without spaces"));
    }
    Ok(value)
}

fn arn(env: &dyn Lookup, var: &'static str, service: &str) -> Result<String, ConfigError> {
    let value = token(env, var)?;
    check_arn(var, &value, service)?;
    Ok(value)
}

fn check_arn(var: &'static str, value: &str, service: &str) -> Result<(), ConfigError> {
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    if parts.len() == 6 && parts[0] == "arn" && parts[2] == service && !parts[5].is_empty() {
        Ok(())
    } else {
        Err(invalid(var, format!("expected an ARN of the form arn:aws:{service}:…")))
    }
}

fn number<T: std::str::FromStr>(env: &dyn Lookup, var: &'static str, default: T) -> Result<T, ConfigError> {
    match env.get(var) {
        None => Ok(default),
        Some(raw) => {
            raw.trim().parse().map_err(|_| invalid(var, format!("`{}` is not a number", raw.trim())))
        }
    }
}

fn id_list(env: &dyn Lookup, var: &'static str, prefix: &str) -> Result<Vec<String>, ConfigError> {
    let raw = required(env, var)?;
    let ids: Vec<String> =
        raw.split(',').map(str::trim).filter(|id| !id.is_empty()).map(str::to_owned).collect();
    let valid = !ids.is_empty()
        && ids.iter().all(|id| {
            id.strip_prefix(prefix)
                .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
        });
    if valid {
        Ok(ids)
    } else {
        Err(invalid(var, format!("expected comma-separated ids such as {prefix}0abc123")))
    }
}

impl LauncherConfig {
    pub fn from_lookup(env: &dyn Lookup) -> Result<Self, ConfigError> {
        let cluster = token(env, ECS_CLUSTER)?;
        let app_image = token(env, APP_IMAGE)?;
        let container_port: u16 = number(env, APP_PORT, 8080)?;
        if container_port == 0 {
            return Err(invalid(APP_PORT, "must be a port from 1 to 65535"));
        }
        let cpu: u32 = number(env, APP_CPU, 256)?;
        if !FARGATE_CPU.contains(&cpu) {
            return Err(invalid(APP_CPU, format!("Fargate offers {FARGATE_CPU:?} CPU units, not {cpu}")));
        }
        let memory: u32 = number(env, APP_MEMORY, 512)?;
        if !(512..=122_880).contains(&memory) {
            return Err(invalid(APP_MEMORY, "must be MiB from 512 to 122880"));
        }
        let execution_role_arn = arn(env, TASK_EXECUTION_ROLE_ARN, "iam")?;
        let task_role_arn = match env.get(TASK_ROLE_ARN) {
            None => None,
            Some(_) => Some(arn(env, TASK_ROLE_ARN, "iam")?),
        };
        let subnets = id_list(env, TENANT_SUBNETS, "subnet-")?;
        let security_groups = id_list(env, TENANT_SECURITY_GROUPS, "sg-")?;
        let assign_public_ip = match env.get(TENANT_ASSIGN_PUBLIC_IP).as_deref().map(str::trim) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(invalid(TENANT_ASSIGN_PUBLIC_IP, "must be true or false")),
        };
        let vpc_id = token(env, VPC_ID)?;
        if !vpc_id.starts_with("vpc-") {
            return Err(invalid(VPC_ID, "expected a VPC id such as vpc-0abc123"));
        }
        let listener_arn = arn(env, ALB_LISTENER_ARN, "elasticloadbalancing")?;
        if !listener_arn.contains(":listener/") {
            return Err(invalid(ALB_LISTENER_ARN, "expected the ARN of a listener, not of another resource"));
        }
        let health_check_path =
            env.get(APP_HEALTH_PATH).map(|p| p.trim().to_owned()).unwrap_or("/health".into());
        if !health_check_path.starts_with('/')
            || health_check_path.len() > 1024
            || health_check_path.contains(char::is_whitespace)
        {
            return Err(invalid(APP_HEALTH_PATH, "expected a path such as /health"));
        }
        let log_group = match env.get(TENANT_LOG_GROUP) {
            None => None,
            Some(_) => Some(token(env, TENANT_LOG_GROUP)?),
        };
        Ok(LauncherConfig {
            cluster,
            app_image,
            container_port,
            cpu,
            memory,
            execution_role_arn,
            task_role_arn,
            subnets,
            security_groups,
            assign_public_ip,
            vpc_id,
            listener_arn,
            health_check_path,
            log_group,
        })
    }
}

/// The AWS names of one tenant's resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantNames {
    /// Task definition family.
    pub family: String,
    pub service: String,
    pub target_group: String,
}

impl TenantNames {
    pub fn of(tenant: &TenantId) -> Self {
        let id = tenant.as_str();
        let hex = id.strip_prefix("tnt_").unwrap_or(id);
        TenantNames {
            family: format!("tenant-{id}"),
            service: format!("tenant-{id}"),
            // Target group names allow only letters, digits and hyphens, 32 at most.
            target_group: format!("t-{hex}"),
        }
    }
}

/// The tenant launcher on ECS Fargate and Elastic Load Balancing v2.
#[derive(Debug, Clone)]
pub struct EcsTenantLauncher {
    ecs: aws_sdk_ecs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    config: LauncherConfig,
}

/// Maps an SDK error: a request AWS refused is `Rejected`, the rest `Unavailable`.
fn sdk_failure<E>(
    operation: &'static str,
    error: SdkError<E, aws_sdk_ecs::config::http::HttpResponse>,
) -> LauncherError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match classify(&error) {
        Fault::Refused => LauncherError::Rejected(format!("{operation}: {}", summary(&error))),
        Fault::Throttled | Fault::Transient => LauncherError::Unavailable(call_failed(operation, error)),
    }
}

fn ecs_tag(tenant: &TenantId) -> EcsTag {
    EcsTag::builder().key(TENANT_TAG).value(tenant.as_str()).build()
}

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

/// The lowest priority no rule of the listener uses.
fn lowest_free_priority(rules: &[Rule]) -> Option<u32> {
    let used: BTreeSet<u32> = rules.iter().filter_map(|r| r.priority()?.parse().ok()).collect();
    (1..=MAX_PRIORITY).find(|p| !used.contains(p))
}

fn environment_of(spec: &LaunchSpec) -> Vec<KeyValuePair> {
    spec.environment
        .iter()
        .map(|(name, value)| KeyValuePair::builder().name(name).value(value).build())
        .collect()
}

/// Judges ECS's view of the service: the target group to ask the ALB about,
/// or the verdict already.
pub fn judge_service(service: &Service) -> Result<String, ServiceHealth> {
    let name = service.service_name().unwrap_or("service");
    match service.status() {
        Some("ACTIVE") => {}
        Some(other) => return Err(ServiceHealth::Broken { reason: format!("{name} is {other}") }),
        None => return Err(ServiceHealth::Broken { reason: format!("{name} has no status") }),
    }
    let primary = service.deployments().iter().find(|d| d.status() == Some("PRIMARY"));
    if let Some(deployment) = primary
        && deployment.rollout_state() == Some(&DeploymentRolloutState::Failed)
    {
        let reason = deployment.rollout_state_reason().unwrap_or("the deployment failed");
        return Err(ServiceHealth::Broken { reason: super::error::one_line(reason) });
    }
    if service.running_count() < 1 {
        let rollout = primary.and_then(|d| d.rollout_state()).map(|s| s.as_str()).unwrap_or("unknown");
        return Err(ServiceHealth::Starting {
            detail: format!(
                "{} of {} tasks running, {} pending, rollout {rollout}",
                service.running_count(),
                service.desired_count(),
                service.pending_count()
            ),
        });
    }
    service
        .load_balancers()
        .iter()
        .find_map(|lb| lb.target_group_arn())
        .map(str::to_owned)
        .ok_or_else(|| ServiceHealth::Broken { reason: format!("{name} is not attached to a target group") })
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

impl EcsTenantLauncher {
    pub fn new(
        ecs: aws_sdk_ecs::Client,
        elb: aws_sdk_elasticloadbalancingv2::Client,
        config: LauncherConfig,
    ) -> Self {
        EcsTenantLauncher { ecs, elb, config }
    }

    pub fn config(&self) -> &LauncherConfig {
        &self.config
    }

    fn container(
        &self,
        spec: &LaunchSpec,
        names: &TenantNames,
    ) -> Result<ContainerDefinition, LauncherError> {
        let port = PortMapping::builder()
            .container_port(i32::from(self.config.container_port))
            .protocol(TransportProtocol::Tcp)
            .build();
        let mut container = ContainerDefinition::builder()
            .name(CONTAINER_NAME)
            .image(&self.config.app_image)
            .essential(true)
            .port_mappings(port)
            .set_environment(Some(environment_of(spec)));
        if let Some(group) = &self.config.log_group {
            let region = self.ecs.config().region().map(|r| r.to_string()).ok_or_else(|| {
                LauncherError::Rejected("no AWS region configured for the awslogs driver".into())
            })?;
            let logs = LogConfiguration::builder()
                .log_driver(LogDriver::Awslogs)
                .options("awslogs-group", group)
                .options("awslogs-region", region)
                .options("awslogs-stream-prefix", &names.family)
                .build()
                .map_err(|e| LauncherError::Rejected(format!("building the log configuration: {e}")))?;
            container = container.log_configuration(logs);
        }
        Ok(container.build())
    }

    /// Whether `existing` is what we would register now.
    fn is_current(&self, existing: &TaskDefinition, wanted: &ContainerDefinition) -> bool {
        let Some(container) =
            existing.container_definitions().iter().find(|c| c.name() == Some(CONTAINER_NAME))
        else {
            return false;
        };
        let env = |c: &ContainerDefinition| -> BTreeMap<String, String> {
            c.environment()
                .iter()
                .map(|kv| {
                    (kv.name().unwrap_or_default().to_owned(), kv.value().unwrap_or_default().to_owned())
                })
                .collect()
        };
        let ports = |c: &ContainerDefinition| -> Vec<Option<i32>> {
            c.port_mappings().iter().map(|p| p.container_port()).collect()
        };
        let log_options = |c: &ContainerDefinition| c.log_configuration().and_then(|l| l.options()).cloned();
        existing.status() == Some(&TaskDefinitionStatus::Active)
            && existing.container_definitions().len() == 1
            && container.image() == wanted.image()
            && env(container) == env(wanted)
            && ports(container) == ports(wanted)
            && log_options(container) == log_options(wanted)
            && existing.cpu() == Some(self.config.cpu.to_string().as_str())
            && existing.memory() == Some(self.config.memory.to_string().as_str())
            && existing.execution_role_arn() == Some(self.config.execution_role_arn.as_str())
            && existing.task_role_arn() == self.config.task_role_arn.as_deref()
    }

    /// The latest revision if it already is what we want, else a new one.
    async fn ensure_task_definition(
        &self,
        spec: &LaunchSpec,
        names: &TenantNames,
    ) -> Result<String, LauncherError> {
        let wanted = self.container(spec, names)?;
        match self.ecs.describe_task_definition().task_definition(&names.family).send().await {
            Ok(output) => {
                if let Some(existing) = output.task_definition()
                    && self.is_current(existing, &wanted)
                    && let Some(arn) = existing.task_definition_arn()
                {
                    return Ok(arn.to_owned());
                }
            }
            // No ACTIVE revision of the family yet: ECS says ClientException.
            Err(SdkError::ServiceError(context)) if context.err().is_client_exception() => {}
            Err(error) => return Err(sdk_failure("ECS DescribeTaskDefinition", error)),
        }
        let registered = self
            .ecs
            .register_task_definition()
            .family(&names.family)
            .requires_compatibilities(Compatibility::Fargate)
            .network_mode(NetworkMode::Awsvpc)
            .cpu(self.config.cpu.to_string())
            .memory(self.config.memory.to_string())
            .execution_role_arn(&self.config.execution_role_arn)
            .set_task_role_arn(self.config.task_role_arn.clone())
            .container_definitions(wanted)
            .tags(ecs_tag(&spec.tenant))
            .send()
            .await
            .map_err(|e| sdk_failure("ECS RegisterTaskDefinition", e))?;
        registered.task_definition().and_then(|td| td.task_definition_arn()).map(str::to_owned).ok_or_else(
            || LauncherError::Unavailable(unexpected("RegisterTaskDefinition answered without an ARN")),
        )
    }

    async fn find_target_group(&self, name: &str) -> Result<Option<String>, LauncherError> {
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

    async fn ensure_target_group(
        &self,
        tenant: &TenantId,
        names: &TenantNames,
    ) -> Result<String, LauncherError> {
        if let Some(arn) = self.find_target_group(&names.target_group).await? {
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
                self.find_target_group(&names.target_group).await?.ok_or_else(|| {
                    LauncherError::Unavailable(unexpected("target group exists and cannot be found"))
                })
            }
            Err(error) => Err(sdk_failure("ELB CreateTargetGroup", error)),
        }
    }

    async fn listener_rules(&self) -> Result<Vec<Rule>, LauncherError> {
        let mut rules = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .elb
                .describe_rules()
                .listener_arn(&self.config.listener_arn)
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

    async fn ensure_listener_rule(
        &self,
        tenant: &TenantId,
        host: &str,
        target_group_arn: &str,
    ) -> Result<String, LauncherError> {
        for _ in 0..RULE_ATTEMPTS {
            let rules = self.listener_rules().await?;
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
            let priority = lowest_free_priority(&rules)
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

    async fn describe_service(&self, name: &str) -> Result<Option<Service>, LauncherError> {
        let output = self
            .ecs
            .describe_services()
            .cluster(&self.config.cluster)
            .services(name)
            .send()
            .await
            .map_err(|e| sdk_failure("ECS DescribeServices", e))?;
        Ok(output.services().iter().find(|s| s.service_name() == Some(name)).cloned())
    }

    async fn ensure_service(
        &self,
        tenant: &TenantId,
        names: &TenantNames,
        task_definition_arn: &str,
        target_group_arn: &str,
        desired_count: u32,
    ) -> Result<String, LauncherError> {
        let desired_count = i32::try_from(desired_count)
            .map_err(|_| LauncherError::Rejected("desired count too large".into()))?;
        if let Some(existing) = self.describe_service(&names.service).await? {
            match existing.status() {
                Some("ACTIVE") => {
                    return self.converge_service(&existing, task_definition_arn, desired_count).await;
                }
                Some("DRAINING") => {
                    return Err(LauncherError::Unavailable(unexpected(format!(
                        "service {} is still draining from an earlier removal",
                        names.service
                    ))));
                }
                _ => {} // INACTIVE: deleted; a new one may take the name.
            }
        }
        let vpc = AwsVpcConfiguration::builder()
            .set_subnets(Some(self.config.subnets.clone()))
            .set_security_groups(Some(self.config.security_groups.clone()))
            .assign_public_ip(if self.config.assign_public_ip {
                AssignPublicIp::Enabled
            } else {
                AssignPublicIp::Disabled
            })
            .build()
            .map_err(|e| LauncherError::Rejected(format!("building the network configuration: {e}")))?;
        let load_balancer = LoadBalancer::builder()
            .target_group_arn(target_group_arn)
            .container_name(CONTAINER_NAME)
            .container_port(i32::from(self.config.container_port))
            .build();
        // Without the circuit breaker a task that never starts leaves the
        // rollout IN_PROGRESS forever; with it, ECS reports FAILED (Broken).
        let breaker = DeploymentCircuitBreaker::builder().enable(true).rollback(false).build();
        let created = self
            .ecs
            .create_service()
            .cluster(&self.config.cluster)
            .service_name(&names.service)
            .task_definition(task_definition_arn)
            .desired_count(desired_count)
            .launch_type(LaunchType::Fargate)
            .network_configuration(NetworkConfiguration::builder().awsvpc_configuration(vpc).build())
            .load_balancers(load_balancer)
            .health_check_grace_period_seconds(60)
            .deployment_configuration(
                DeploymentConfiguration::builder().deployment_circuit_breaker(breaker).build(),
            )
            .tags(ecs_tag(tenant))
            .propagate_tags(PropagateTags::Service)
            .send()
            .await;
        match created {
            Ok(output) => {
                output.service().and_then(|s| s.service_arn()).map(str::to_owned).ok_or_else(|| {
                    LauncherError::Unavailable(unexpected("CreateService answered without an ARN"))
                })
            }
            Err(error) => {
                // A concurrent launch may have created it since we looked.
                if let Some(existing) = self.describe_service(&names.service).await?
                    && existing.status() == Some("ACTIVE")
                {
                    return self.converge_service(&existing, task_definition_arn, desired_count).await;
                }
                Err(sdk_failure("ECS CreateService", error))
            }
        }
    }

    /// An existing service runs the wanted revision with `desired_count` tasks.
    async fn converge_service(
        &self,
        service: &Service,
        task_definition_arn: &str,
        desired_count: i32,
    ) -> Result<String, LauncherError> {
        let arn = service
            .service_arn()
            .map(str::to_owned)
            .ok_or_else(|| LauncherError::Unavailable(unexpected("service without an ARN")))?;
        if service.task_definition() != Some(task_definition_arn) || service.desired_count() != desired_count
        {
            self.ecs
                .update_service()
                .cluster(&self.config.cluster)
                .service(&arn)
                .task_definition(task_definition_arn)
                .desired_count(desired_count)
                .send()
                .await
                .map_err(|e| sdk_failure("ECS UpdateService", e))?;
        }
        Ok(arn)
    }

    async fn remove_service(&self, names: &TenantNames) -> Result<(), LauncherError> {
        let Some(service) = self.describe_service(&names.service).await? else {
            return Ok(());
        };
        if service.status() != Some("ACTIVE") {
            return Ok(()); // DRAINING or INACTIVE: already being deleted, or gone.
        }
        let gone = |code: Option<&str>| {
            matches!(code, Some("ServiceNotFoundException" | "ServiceNotActiveException"))
        };
        if service.desired_count() > 0 {
            let scaled = self
                .ecs
                .update_service()
                .cluster(&self.config.cluster)
                .service(&names.service)
                .desired_count(0)
                .send()
                .await;
            if let Err(error) = scaled
                && !gone(super::error::code(&error))
            {
                return Err(sdk_failure("ECS UpdateService", error));
            }
        }
        let deleted = self
            .ecs
            .delete_service()
            .cluster(&self.config.cluster)
            .service(&names.service)
            .force(true)
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(error) if gone(super::error::code(&error)) => Ok(()),
            Err(error) => Err(sdk_failure("ECS DeleteService", error)),
        }
    }

    async fn remove_routing(&self, names: &TenantNames) -> Result<(), LauncherError> {
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

    async fn deregister_task_definitions(&self, names: &TenantNames) -> Result<(), LauncherError> {
        let mut next: Option<String> = None;
        let mut revisions = Vec::new();
        loop {
            let page = self
                .ecs
                .list_task_definitions()
                .family_prefix(&names.family)
                .status(TaskDefinitionStatus::Active)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| sdk_failure("ECS ListTaskDefinitions", e))?;
            // familyPrefix matches whole family names; checked anyway.
            revisions.extend(
                page.task_definition_arns()
                    .iter()
                    .filter(|arn| {
                        arn.rsplit_once('/')
                            .is_some_and(|(_, rev)| rev.starts_with(&format!("{}:", names.family)))
                    })
                    .cloned(),
            );
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_owned()),
                _ => break,
            }
        }
        for arn in revisions {
            self.ecs
                .deregister_task_definition()
                .task_definition(&arn)
                .send()
                .await
                .map_err(|e| sdk_failure("ECS DeregisterTaskDefinition", e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl TenantLauncher for EcsTenantLauncher {
    async fn launch(&self, spec: &LaunchSpec) -> Result<LaunchedTenant, LauncherError> {
        let names = TenantNames::of(&spec.tenant);
        let task_definition_arn = self.ensure_task_definition(spec, &names).await?;
        let target_group_arn = self.ensure_target_group(&spec.tenant, &names).await?;
        let listener_rule_arn =
            self.ensure_listener_rule(&spec.tenant, &spec.host, &target_group_arn).await?;
        let service_arn = self
            .ensure_service(&spec.tenant, &names, &task_definition_arn, &target_group_arn, spec.desired_count)
            .await?;
        Ok(LaunchedTenant { service_arn, target_group_arn, listener_rule_arn })
    }

    async fn health(&self, tenant: &TenantId) -> Result<ServiceHealth, LauncherError> {
        let names = TenantNames::of(tenant);
        let Some(service) = self.describe_service(&names.service).await? else {
            return Ok(ServiceHealth::Broken { reason: format!("service {} does not exist", names.service) });
        };
        let target_group_arn = match judge_service(&service) {
            Ok(arn) => arn,
            Err(verdict) => return Ok(verdict),
        };
        let targets = match self.elb.describe_target_health().target_group_arn(&target_group_arn).send().await
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

    async fn scale(&self, tenant: &TenantId, desired: u32) -> Result<(), LauncherError> {
        let names = TenantNames::of(tenant);
        let desired =
            i32::try_from(desired).map_err(|_| LauncherError::Rejected("desired count too large".into()))?;
        let result = self
            .ecs
            .update_service()
            .cluster(&self.config.cluster)
            .service(&names.service)
            .desired_count(desired)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error)
                if matches!(
                    super::error::code(&error),
                    Some("ServiceNotFoundException" | "ServiceNotActiveException")
                ) =>
            {
                Err(LauncherError::Rejected(format!(
                    "tenant {tenant} has no active service {}",
                    names.service
                )))
            }
            Err(error) => Err(sdk_failure("ECS UpdateService", error)),
        }
    }

    async fn remove(&self, tenant: &TenantId) -> Result<(), LauncherError> {
        let names = TenantNames::of(tenant);
        self.remove_service(&names).await?;
        self.remove_routing(&names).await?;
        self.deregister_task_definitions(&names).await
    }
}

#[cfg(test)]
mod tests {

    use aws_sdk_ecs::types::Deployment;
    use aws_sdk_elasticloadbalancingv2::types::TargetHealth;

    use super::*;

    use crate::config::env_of as env;

    const MINIMAL: &[(&str, &str)] = &[
        (ECS_CLUSTER, "tenants"),
        (APP_IMAGE, "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1.4.2"),
        (TASK_EXECUTION_ROLE_ARN, "arn:aws:iam::123456789012:role/tenant-exec"),
        (TENANT_SUBNETS, "subnet-0aa, subnet-0bb"),
        (TENANT_SECURITY_GROUPS, "sg-0cc"),
        (VPC_ID, "vpc-0dd"),
        (
            ALB_LISTENER_ARN,
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shared/50dc6c495c0c9188/f2f7dc8efc522ab2",
        ),
    ];

    #[test]
    fn config_defaults_and_lists() {
        let config = LauncherConfig::from_lookup(&env(MINIMAL)).unwrap();
        assert_eq!((config.container_port, config.cpu, config.memory), (8080, 256, 512));
        assert_eq!(config.subnets, ["subnet-0aa", "subnet-0bb"]);
        assert_eq!(config.health_check_path, "/health");
        assert!(!config.assign_public_ip);
        assert_eq!((config.task_role_arn, config.log_group), (None, None));
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        let with = |var: &'static str, value: &'static str| {
            let mut pairs: Vec<(&str, &str)> = MINIMAL.iter().copied().filter(|(k, _)| *k != var).collect();
            if !value.is_empty() {
                pairs.push((var, value));
            }
            LauncherConfig::from_lookup(&env(&pairs)).unwrap_err().to_string()
        };
        assert_eq!(with(ECS_CLUSTER, ""), "configuration: ECS_CLUSTER is not set");
        assert_eq!(with(TENANT_SUBNETS, ""), "configuration: TENANT_SUBNETS is not set");
        for (var, bad) in [
            (APP_PORT, "http"),
            (APP_PORT, "0"),
            (APP_CPU, "300"),
            (APP_MEMORY, "64"),
            (TASK_EXECUTION_ROLE_ARN, "tenant-exec"),
            (TASK_ROLE_ARN, "arn:aws:s3:::bucket"),
            (TENANT_SUBNETS, "sn-1"),
            (TENANT_SECURITY_GROUPS, "sg-1,,default"),
            (TENANT_ASSIGN_PUBLIC_IP, "yes"),
            (VPC_ID, "0dd"),
            (ALB_LISTENER_ARN, "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x/y"),
            (APP_HEALTH_PATH, "health"),
        ] {
            let message = with(var, bad);
            assert!(
                message.starts_with(&format!("configuration: {var} is invalid")),
                "{var}={bad}: {message}"
            );
            assert!(!message.contains('\n'));
        }
    }

    #[test]
    fn names_derive_from_the_tenant_and_fit_aws_limits() {
        let tenant = TenantId::parse("tnt_0123456789abcdef0123").unwrap();
        let names = TenantNames::of(&tenant);
        assert_eq!(names.family, "tenant-tnt_0123456789abcdef0123");
        assert_eq!(names.service, names.family);
        assert_eq!(names.target_group, "t-0123456789abcdef0123");
        assert!(names.target_group.len() <= 32);
    }

    fn service(status: &str, running: i32, rollout: DeploymentRolloutState) -> Service {
        Service::builder()
            .service_name("tenant-x")
            .status(status)
            .desired_count(1)
            .running_count(running)
            .deployments(
                Deployment::builder()
                    .status("PRIMARY")
                    .rollout_state(rollout)
                    .rollout_state_reason("ECS deployment circuit breaker: tasks failed to start.")
                    .build(),
            )
            .load_balancers(LoadBalancer::builder().target_group_arn("arn:tg").build())
            .build()
    }

    fn target(state: TargetHealthStateEnum) -> TargetHealthDescription {
        TargetHealthDescription::builder().target_health(TargetHealth::builder().state(state).build()).build()
    }

    #[test]
    fn health_follows_ecs_then_the_load_balancer() {
        let starting = judge_service(&service("ACTIVE", 0, DeploymentRolloutState::InProgress)).unwrap_err();
        assert!(
            matches!(starting, ServiceHealth::Starting { ref detail } if detail.contains("0 of 1")),
            "{starting:?}"
        );
        let broken = judge_service(&service("ACTIVE", 0, DeploymentRolloutState::Failed)).unwrap_err();
        assert!(matches!(broken, ServiceHealth::Broken { ref reason } if reason.contains("circuit breaker")));
        let draining = judge_service(&service("DRAINING", 1, DeploymentRolloutState::Completed)).unwrap_err();
        assert!(matches!(draining, ServiceHealth::Broken { .. }));
        assert_eq!(
            judge_service(&service("ACTIVE", 1, DeploymentRolloutState::InProgress)).unwrap(),
            "arn:tg"
        );

        assert!(
            matches!(judge_targets(&[]), ServiceHealth::Starting { ref detail } if detail == "no target registered yet")
        );
        let mixed = judge_targets(&[
            target(TargetHealthStateEnum::Initial),
            target(TargetHealthStateEnum::Unhealthy),
        ]);
        assert!(
            matches!(mixed, ServiceHealth::Starting { ref detail } if detail.contains("1 initial")),
            "{mixed:?}"
        );
        let healthy =
            judge_targets(&[target(TargetHealthStateEnum::Draining), target(TargetHealthStateEnum::Healthy)]);
        assert_eq!(healthy, ServiceHealth::Healthy);
    }

    #[test]
    fn free_priorities_fill_gaps() {
        let rule = |p: &str| Rule::builder().priority(p).build();
        assert_eq!(lowest_free_priority(&[rule("default")]), Some(1));
        assert_eq!(lowest_free_priority(&[rule("1"), rule("2"), rule("4"), rule("default")]), Some(3));
    }
}
