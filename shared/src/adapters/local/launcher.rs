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
    AlbQuotas, AliasTarget, LaunchSpec, LaunchedTenant, LauncherError, Room, RoutingCapacity, ServiceHealth,
    TenantLauncher, no_room, placement_order,
};

/// One tenant's app on the simulated container platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalService {
    pub tenant_id: TenantId,
    pub service_arn: String,
    pub target_group_arn: String,
    pub listener_rule_arn: String,
    pub rule_priority: u32,
    /// The load balancer of the pool that routes it (0 to pool size - 1).
    #[serde(default)]
    pub balancer: usize,
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

/// ECS and a pool of load balancers on a laptop: services are records that
/// become healthy `startup` after they start, as a Fargate task passes its
/// checks, and each load balancer holds them to AWS's quotas (a target group
/// and a rule each), so local runs meet the same wall. A new tenant is
/// placed as the AWS launcher places it: the first load balancer with room
/// in the tenant's [`placement_order`].
pub struct LocalLauncher {
    platform: Persisted<Platform>,
    clock: Arc<dyn Clock>,
    startup: Duration,
    quotas: AlbQuotas,
    balancers: usize,
}

/// The `index`th load balancer of the local pool, as a Route 53 alias names it.
pub fn local_balancer(index: usize) -> AliasTarget {
    AliasTarget { dns_name: format!("tenants-{index}.alb.local"), hosted_zone_id: "ZLOCALALB".into() }
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
        Ok(LocalLauncher { platform, clock, startup, quotas: AlbQuotas::default(), balancers: 1 })
    }

    /// The same, with a pool of `balancers` load balancers (at least one),
    /// each held to `quotas` instead of AWS's defaults.
    pub fn with_pool(self, balancers: usize, quotas: AlbQuotas) -> Self {
        LocalLauncher { quotas, balancers: balancers.max(1), ..self }
    }

    /// Tenants on each load balancer of the pool.
    fn tenants_per_balancer(&self, platform: &Platform) -> Vec<usize> {
        let mut counts = vec![0; self.balancers];
        for service in platform.services.values() {
            if let Some(count) = counts.get_mut(service.balancer) {
                *count += 1;
            }
        }
        counts
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
                let balancer = match p.services.get(&name) {
                    Some(placed) => placed.balancer,
                    None => {
                        let counts = self.tenants_per_balancer(p);
                        let room = |b: &usize| Room::of_balancer(counts[*b], self.quotas).free() > 0;
                        placement_order(&spec.tenant, self.balancers)
                            .find(room)
                            .ok_or_else(|| no_room(self.balancers, self.quotas))?
                    }
                };
                let priority = p.services.values().map(|s| s.rule_priority).max().unwrap_or(0) + 1;
                let service = p.services.entry(name.clone()).or_insert_with(|| LocalService {
                    tenant_id: spec.tenant.clone(),
                    service_arn: format!("arn:local:ecs:service/tenants/{name}"),
                    target_group_arn: format!("arn:local:elasticloadbalancing:targetgroup/{name}"),
                    listener_rule_arn: format!(
                        "arn:local:elasticloadbalancing:listener-rule/app/tenants-{balancer}/{name}"
                    ),
                    rule_priority: priority,
                    balancer,
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
                    listener_arn: format!(
                        "arn:local:elasticloadbalancing:listener/app/tenants-{balancer}/https"
                    ),
                    load_balancer: local_balancer(balancer),
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
        let counts = self.platform.read(|p| self.tenants_per_balancer(p));
        Ok(counts.into_iter().map(|used| Room::of_balancer(used, self.quotas)).sum())
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
    async fn the_pool_holds_as_many_tenants_as_its_balancers_quotas_and_refuses_the_next() {
        let clock: Arc<dyn Clock> = Arc::new(FixedClock(1_763_800_000));
        let launcher = LocalLauncher::open(None, clock, Duration::ZERO).unwrap();
        assert_eq!(
            launcher.room().await.unwrap(),
            Room { used: 0, capacity: 100 },
            "one load balancer with AWS's quotas by default"
        );
        let launcher = launcher.with_pool(2, AlbQuotas { target_groups: 100, rules: 3 });
        let mut placed = BTreeMap::new();
        for n in 0..6 {
            let launched = launcher.launch(&spec(n)).await.unwrap();
            *placed.entry(launched.load_balancer.dns_name).or_insert(0) += 1;
        }
        assert_eq!(
            placed.values().copied().collect::<Vec<_>>(),
            [3, 3],
            "both load balancers filled: {placed:?}"
        );
        assert_eq!(launcher.room().await.unwrap(), Room { used: 6, capacity: 6 });
        let refused = launcher.launch(&spec(6)).await.unwrap_err().to_string();
        assert!(refused.contains("NoRoom") && refused.contains("all 2 load balancers"), "{refused}");
        // A tenant already routed stays where it is, and is not counted again;
        // one removed frees its place, which the next tenant takes.
        let before = launcher.launch(&spec(1)).await.unwrap();
        let again = launcher.launch(&LaunchSpec { desired_count: 0, ..spec(1) }).await.unwrap();
        assert_eq!(again.load_balancer, before.load_balancer);
        launcher.remove(&spec(0).tenant).await.unwrap();
        launcher.launch(&spec(6)).await.unwrap();
        assert_eq!(launcher.room().await.unwrap().free(), 0);
    }
}
