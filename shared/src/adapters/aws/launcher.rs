//! The tenant launcher: ECS Fargate behind a pool of ALBs
//! (docs/architecture.md decision 8), composed of its rooms, [`super::ecs`]
//! (task definitions, the service), [`super::elb`] (target group, listener
//! rule) and [`super::pool`] (the listeners and their room). This file holds
//! what they share: the configuration, the names, the error mapping.
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

use async_trait::async_trait;
use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};

use super::ecs::{ClusterServices, TenantServices, judge_service};
use super::elb::{TenantRouting, remove_routing};
use super::error::{Fault, call_failed, classify, summary};
use super::pool::{BalancerAddresses, ListenerPool};
use crate::config::{ConfigError, Lookup, required};
use crate::domain::TenantId;
use crate::ports::{AlbQuotas, LaunchSpec, LaunchedTenant, LauncherError, ServiceHealth, TenantLauncher};

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
pub const APP_HEALTH_PATH: &str = "APP_HEALTH_PATH";
pub const TENANT_LOG_GROUP: &str = "TENANT_LOG_GROUP";

/// The tag that names the tenant on everything made for it.
pub const TENANT_TAG: &str = "tenancy:tenant";

/// CPU units Fargate offers.
const FARGATE_CPU: &[u32] = &[256, 512, 1024, 2048, 4096, 8192, 16384];

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
    /// The listeners tenants are placed on.
    pub pool: ListenerPool,
    /// What each of the pool's load balancers may hold.
    pub quotas: AlbQuotas,
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
        let pool = ListenerPool::from_lookup(env)?;
        let quotas = AlbQuotas::from_lookup(env)?;
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
            pool,
            quotas,
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

/// Removes a tenant's service, listener rules, target group and task
/// definitions. It needs only the cluster (the rules are found through the
/// target group, on whichever load balancers hold them), so `tenantctl
/// reconcile --fix` removes an orphan with what the stack's parameters say;
/// the launcher removes through it too.
pub struct TenantRemover<'a> {
    services: ClusterServices<'a>,
    elb: &'a aws_sdk_elasticloadbalancingv2::Client,
}

impl<'a> TenantRemover<'a> {
    pub fn new(
        ecs: &'a aws_sdk_ecs::Client,
        elb: &'a aws_sdk_elasticloadbalancingv2::Client,
        cluster: &'a str,
    ) -> Self {
        TenantRemover { services: ClusterServices { ecs, cluster }, elb }
    }

    /// Idempotent: what is already gone is skipped.
    pub async fn remove(&self, tenant: &TenantId) -> Result<(), LauncherError> {
        let names = TenantNames::of(tenant);
        self.services.remove_service(&names).await?;
        remove_routing(self.elb, &names).await?;
        self.services.deregister_task_definitions(&names).await
    }
}

/// The tenant launcher on ECS Fargate and Elastic Load Balancing v2.
#[derive(Debug, Clone)]
pub struct EcsTenantLauncher {
    ecs: aws_sdk_ecs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    config: LauncherConfig,
    addresses: BalancerAddresses,
}

/// Maps an SDK error: a request AWS refused is `Rejected`, the rest `Unavailable`.
pub(super) fn sdk_failure<E>(
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

impl EcsTenantLauncher {
    pub fn new(
        ecs: aws_sdk_ecs::Client,
        elb: aws_sdk_elasticloadbalancingv2::Client,
        config: LauncherConfig,
    ) -> Self {
        EcsTenantLauncher { ecs, elb, config, addresses: BalancerAddresses::default() }
    }

    pub fn config(&self) -> &LauncherConfig {
        &self.config
    }

    fn services(&self) -> TenantServices<'_> {
        TenantServices { ecs: &self.ecs, config: &self.config }
    }

    fn routing(&self) -> TenantRouting<'_> {
        TenantRouting { elb: &self.elb, config: &self.config }
    }
}

#[async_trait]
impl TenantLauncher for EcsTenantLauncher {
    async fn launch(&self, spec: &LaunchSpec) -> Result<LaunchedTenant, LauncherError> {
        let names = TenantNames::of(&spec.tenant);
        let task_definition_arn = self.services().ensure_task_definition(spec, &names).await?;
        let routing = self.routing();
        let group = routing.ensure_target_group(&spec.tenant, &names).await?;
        let (listener, listener_rule_arn) = routing.ensure_routed(&spec.tenant, &spec.host, &group).await?;
        let load_balancer = self.addresses.of(&self.elb, &listener.load_balancer_arn).await?;
        let service_arn = self
            .services()
            .ensure_service(&spec.tenant, &names, &task_definition_arn, &group.arn, spec.desired_count)
            .await?;
        Ok(LaunchedTenant {
            service_arn,
            target_group_arn: group.arn,
            listener_rule_arn,
            listener_arn: listener.listener_arn.clone(),
            load_balancer,
        })
    }

    async fn health(&self, tenant: &TenantId) -> Result<ServiceHealth, LauncherError> {
        let names = TenantNames::of(tenant);
        let Some(service) = self.services().in_cluster().describe_service(&names.service).await? else {
            return Ok(ServiceHealth::Broken { reason: format!("service {} does not exist", names.service) });
        };
        let target_group_arn = match judge_service(&service) {
            Ok(arn) => arn,
            Err(verdict) => return Ok(verdict),
        };
        self.routing().target_health(&target_group_arn, &names).await
    }

    async fn scale(&self, tenant: &TenantId, desired: u32) -> Result<(), LauncherError> {
        self.services().scale(tenant, &TenantNames::of(tenant), desired).await
    }

    async fn remove(&self, tenant: &TenantId) -> Result<(), LauncherError> {
        TenantRemover::new(&self.ecs, &self.elb, &self.config.cluster).remove(tenant).await
    }
}

#[cfg(test)]
mod tests {

    use aws_sdk_ecs::types::{Deployment, DeploymentRolloutState, LoadBalancer, Service};
    use aws_sdk_elasticloadbalancingv2::types::{
        TargetHealth, TargetHealthDescription, TargetHealthStateEnum,
    };

    use super::*;

    use crate::adapters::aws::elb::judge_targets;
    use crate::config::env_of as env;

    const MINIMAL: &[(&str, &str)] = &[
        (ECS_CLUSTER, "tenants"),
        (APP_IMAGE, "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1.4.2"),
        (TASK_EXECUTION_ROLE_ARN, "arn:aws:iam::123456789012:role/tenant-exec"),
        (TENANT_SUBNETS, "subnet-0aa, subnet-0bb"),
        (TENANT_SECURITY_GROUPS, "sg-0cc"),
        (VPC_ID, "vpc-0dd"),
        (
            super::super::pool::ALB_LISTENER_ARNS,
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
            (
                super::super::pool::ALB_LISTENER_ARNS,
                "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x/y",
            ),
            (crate::ports::capacity::ALB_MAX_RULES, "0"),
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
}
