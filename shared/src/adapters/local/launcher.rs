use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::persisted::Persisted;
use crate::clock::Clock;
use crate::domain::TenantId;
use crate::ports::{
    AlbQuotas, LaunchSpec, LaunchedTenant, LauncherError, Room, RoutingCapacity, ServiceHealth,
    TenantLauncher,
};

/// One tenant's app on the simulated container platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalService {
    pub tenant_id: TenantId,
    pub service_arn: String,
    pub target_group_arn: String,
    pub listener_rule_arn: String,
    pub rule_priority: u32,
    pub host: String,
    pub desired_count: u32,
    pub environment: BTreeMap<String, String>,
    /// When the current task started (milliseconds since the epoch).
    pub started_at_ms: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Platform {
    services: BTreeMap<String, LocalService>,
}

/// ECS and the load balancer on a laptop: services are records that become
/// healthy `startup` after they start, as a Fargate task passes its checks,
/// and the load balancer holds them to AWS's quotas (a target group and a
/// rule each), so local runs meet the same wall.
pub struct LocalLauncher {
    platform: Persisted<Platform>,
    clock: Arc<dyn Clock>,
    startup: Duration,
    quotas: AlbQuotas,
}

fn service_name(tenant: &TenantId) -> String {
    format!("tenant-{}", tenant.as_str().replace('_', "-"))
}

fn unavailable(error: std::io::Error) -> LauncherError {
    LauncherError::Unavailable(error.into())
}

impl LocalLauncher {
    pub fn open(dir: Option<&Path>, clock: Arc<dyn Clock>, startup: Duration) -> std::io::Result<Self> {
        let platform = Persisted::open(dir, "services.json")?;
        Ok(LocalLauncher { platform, clock, startup, quotas: AlbQuotas::default() })
    }

    /// The same, its load balancer held to `quotas` instead of AWS's defaults.
    pub fn with_quotas(self, quotas: AlbQuotas) -> Self {
        LocalLauncher { quotas, ..self }
    }

    pub fn services(&self) -> Vec<LocalService> {
        self.platform.read(|p| p.services.values().cloned().collect())
    }
}

#[async_trait]
impl TenantLauncher for LocalLauncher {
    async fn launch(&self, spec: &LaunchSpec) -> Result<LaunchedTenant, LauncherError> {
        let name = service_name(&spec.tenant);
        let now = self.clock.now_millis();
        self.platform
            .update(|p| {
                // A host is routed to one target group only, as ALB rules are.
                if let Some(other) =
                    p.services.values().find(|s| s.host == spec.host && s.tenant_id != spec.tenant)
                {
                    return Err(LauncherError::Rejected(format!(
                        "host {} is already routed to {}",
                        spec.host, other.tenant_id
                    )));
                }
                let new = !p.services.contains_key(&name);
                if new && p.services.len() >= self.quotas.target_groups as usize {
                    return Err(LauncherError::Rejected(format!(
                        "TooManyTargetGroups: the load balancer has its {} target groups",
                        self.quotas.target_groups
                    )));
                }
                if new && p.services.len() >= self.quotas.rules as usize {
                    return Err(LauncherError::Rejected(format!(
                        "TooManyRules: the load balancer has its {} rules",
                        self.quotas.rules
                    )));
                }
                let priority = p.services.values().map(|s| s.rule_priority).max().unwrap_or(0) + 1;
                let service = p.services.entry(name.clone()).or_insert_with(|| LocalService {
                    tenant_id: spec.tenant.clone(),
                    service_arn: format!("arn:local:ecs:service/tenants/{name}"),
                    target_group_arn: format!("arn:local:elasticloadbalancing:targetgroup/{name}"),
                    listener_rule_arn: format!("arn:local:elasticloadbalancing:listener-rule/{name}"),
                    rule_priority: priority,
                    host: spec.host.clone(),
                    desired_count: spec.desired_count,
                    environment: spec.environment.clone(),
                    started_at_ms: now,
                });
                let scaled_up = service.desired_count == 0 && spec.desired_count > 0;
                if service.environment != spec.environment || scaled_up {
                    // A new task definition, or a first task: ECS starts one.
                    service.environment = spec.environment.clone();
                    service.started_at_ms = now;
                }
                service.desired_count = spec.desired_count;
                Ok(LaunchedTenant {
                    service_arn: service.service_arn.clone(),
                    target_group_arn: service.target_group_arn.clone(),
                    listener_rule_arn: service.listener_rule_arn.clone(),
                })
            })
            .map_err(unavailable)?
    }

    async fn health(&self, tenant: &TenantId) -> Result<ServiceHealth, LauncherError> {
        let now = self.clock.now_millis();
        let startup = i64::try_from(self.startup.as_millis()).unwrap_or(i64::MAX);
        Ok(self.platform.read(|p| match p.services.get(&service_name(tenant)) {
            None => ServiceHealth::Broken { reason: "service does not exist".into() },
            Some(s) if s.desired_count == 0 => ServiceHealth::Starting { detail: "scaled to zero".into() },
            Some(s) if now - s.started_at_ms >= startup => ServiceHealth::Healthy,
            Some(_) => ServiceHealth::Starting { detail: "task PROVISIONING, target not yet healthy".into() },
        }))
    }

    async fn scale(&self, tenant: &TenantId, desired: u32) -> Result<(), LauncherError> {
        let now = self.clock.now_millis();
        self.platform
            .update(|p| match p.services.get_mut(&service_name(tenant)) {
                None => Err(LauncherError::Rejected(format!("tenant {tenant} has no service"))),
                Some(service) => {
                    if service.desired_count == 0 && desired > 0 {
                        service.started_at_ms = now; // a new task starts
                    }
                    service.desired_count = desired;
                    Ok(())
                }
            })
            .map_err(unavailable)?
    }

    async fn remove(&self, tenant: &TenantId) -> Result<(), LauncherError> {
        self.platform
            .update(|p| {
                p.services.remove(&service_name(tenant));
            })
            .map_err(unavailable)
    }
}

#[async_trait]
impl RoutingCapacity for LocalLauncher {
    async fn room(&self) -> Result<Room, LauncherError> {
        let used = self.platform.read(|p| p.services.len());
        Ok(Room { used: u32::try_from(used).unwrap_or(u32::MAX), capacity: self.quotas.tenants() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;

    fn spec(n: u32) -> LaunchSpec {
        LaunchSpec {
            tenant: TenantId::parse(&format!("tnt_{n:020x}")).unwrap(),
            host: format!("t{n}.apps.example.com"),
            environment: BTreeMap::new(),
            desired_count: 1,
        }
    }

    #[tokio::test]
    async fn the_load_balancer_holds_as_many_tenants_as_its_quotas_and_refuses_the_next() {
        let clock: Arc<dyn Clock> = Arc::new(FixedClock(1_763_800_000));
        let launcher = LocalLauncher::open(None, clock, Duration::ZERO).unwrap();
        assert_eq!(
            launcher.room().await.unwrap(),
            Room { used: 0, capacity: 100 },
            "AWS's quotas by default"
        );
        let launcher = launcher.with_quotas(AlbQuotas { target_groups: 100, rules: 3 });
        for n in 0..3 {
            launcher.launch(&spec(n)).await.unwrap();
        }
        assert_eq!(launcher.room().await.unwrap(), Room { used: 3, capacity: 3 });
        let refused = launcher.launch(&spec(3)).await.unwrap_err().to_string();
        assert!(refused.contains("TooManyRules"), "{refused}");
        // A tenant already routed is changed, not counted again; one removed frees its place.
        launcher.launch(&LaunchSpec { desired_count: 0, ..spec(1) }).await.unwrap();
        launcher.remove(&spec(0).tenant).await.unwrap();
        launcher.launch(&spec(3)).await.unwrap();
        assert_eq!(launcher.room().await.unwrap().free(), 0);
    }
}
