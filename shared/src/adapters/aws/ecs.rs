//! ECS's room of the launcher ([`super::launcher`]): a tenant's task
//! definition and Fargate service, and ECS's view of the service's health.

use std::collections::BTreeMap;

use aws_sdk_ecs::error::SdkError;
use aws_sdk_ecs::types::Tag as EcsTag;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, Compatibility, ContainerDefinition, DeploymentCircuitBreaker,
    DeploymentConfiguration, DeploymentRolloutState, KeyValuePair, LaunchType, LoadBalancer,
    LogConfiguration, LogDriver, NetworkConfiguration, NetworkMode, PortMapping, PropagateTags, Service,
    TaskDefinition, TaskDefinitionStatus, TransportProtocol,
};

use super::error::unexpected;
use super::launcher::{LauncherConfig, TENANT_TAG, TenantNames, sdk_failure};
use crate::domain::TenantId;
use crate::ports::{LaunchSpec, LauncherError, ServiceHealth};

/// The one container of a tenant's task.
pub const CONTAINER_NAME: &str = "app";

fn ecs_tag(tenant: &TenantId) -> EcsTag {
    EcsTag::builder().key(TENANT_TAG).value(tenant.as_str()).build()
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

/// The launcher's ECS calls, over its client and configuration.
pub(super) struct TenantServices<'a> {
    pub(super) ecs: &'a aws_sdk_ecs::Client,
    pub(super) config: &'a LauncherConfig,
}

impl TenantServices<'_> {
    pub(super) fn in_cluster(&self) -> ClusterServices<'_> {
        ClusterServices { ecs: self.ecs, cluster: &self.config.cluster }
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
    pub(super) async fn ensure_task_definition(
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

    pub(super) async fn ensure_service(
        &self,
        tenant: &TenantId,
        names: &TenantNames,
        task_definition_arn: &str,
        target_group_arn: &str,
        desired_count: u32,
    ) -> Result<String, LauncherError> {
        let desired_count = i32::try_from(desired_count)
            .map_err(|_| LauncherError::Rejected("desired count too large".into()))?;
        if let Some(existing) = self.in_cluster().describe_service(&names.service).await? {
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
                if let Some(existing) = self.in_cluster().describe_service(&names.service).await?
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

    pub(super) async fn scale(
        &self,
        tenant: &TenantId,
        names: &TenantNames,
        desired: u32,
    ) -> Result<(), LauncherError> {
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
}

/// The ECS calls that need only the cluster: reading and removing a
/// tenant's service, so an operator tool can remove one from the stack's
/// outputs alone.
pub(super) struct ClusterServices<'a> {
    pub(super) ecs: &'a aws_sdk_ecs::Client,
    pub(super) cluster: &'a str,
}

impl ClusterServices<'_> {
    pub(super) async fn describe_service(&self, name: &str) -> Result<Option<Service>, LauncherError> {
        let output = self
            .ecs
            .describe_services()
            .cluster(self.cluster)
            .services(name)
            .send()
            .await
            .map_err(|e| sdk_failure("ECS DescribeServices", e))?;
        Ok(output.services().iter().find(|s| s.service_name() == Some(name)).cloned())
    }

    pub(super) async fn remove_service(&self, names: &TenantNames) -> Result<(), LauncherError> {
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
                .cluster(self.cluster)
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
        let deleted =
            self.ecs.delete_service().cluster(self.cluster).service(&names.service).force(true).send().await;
        match deleted {
            Ok(_) => Ok(()),
            Err(error) if gone(super::error::code(&error)) => Ok(()),
            Err(error) => Err(sdk_failure("ECS DeleteService", error)),
        }
    }

    pub(super) async fn deregister_task_definitions(&self, names: &TenantNames) -> Result<(), LauncherError> {
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
