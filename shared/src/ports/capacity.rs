//! Room for more tenants behind the load balancer, so that a checkout is
//! refused *before* payment when a new tenant could not be routed
//! (docs/architecture.md decision 8). AWS's quotas: 100 target groups per
//! Application Load Balancer (not adjustable) and 100 rules per ALB
//! (adjustable); every tenant takes one of each. The room is read from the
//! load balancer itself, never counted on the side, so it cannot drift.

use async_trait::async_trait;

use super::LauncherError;
use crate::config::{ConfigError, Lookup, count_setting};

/// The target groups one ALB may have (AWS's quota, which it does not raise).
pub const ALB_TARGET_GROUPS_QUOTA: u32 = 100;
/// The rules one ALB may have by default (AWS raises it on request).
pub const DEFAULT_ALB_RULES_QUOTA: u32 = 100;
pub const ALB_MAX_TARGET_GROUPS: &str = "ALB_MAX_TARGET_GROUPS";
pub const ALB_MAX_RULES: &str = "ALB_MAX_RULES";

/// The quotas a load balancer is held to: AWS's by default, lower to test
/// the wall, a raised rules quota where AWS granted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlbQuotas {
    pub target_groups: u32,
    pub rules: u32,
}

impl Default for AlbQuotas {
    fn default() -> Self {
        AlbQuotas { target_groups: ALB_TARGET_GROUPS_QUOTA, rules: DEFAULT_ALB_RULES_QUOTA }
    }
}

impl AlbQuotas {
    /// From [`ALB_MAX_TARGET_GROUPS`] (1 to 100) and [`ALB_MAX_RULES`] (1 to
    /// 1,000, AWS's highest grant), AWS's defaults when unset.
    pub fn from_lookup(env: &dyn Lookup) -> Result<Self, ConfigError> {
        Ok(AlbQuotas {
            target_groups: count_setting(
                env,
                ALB_MAX_TARGET_GROUPS,
                ALB_TARGET_GROUPS_QUOTA,
                ALB_TARGET_GROUPS_QUOTA,
            )?,
            rules: count_setting(env, ALB_MAX_RULES, DEFAULT_ALB_RULES_QUOTA, 1000)?,
        })
    }

    /// Tenants one load balancer holds: each takes a target group and a rule.
    pub fn tenants(&self) -> u32 {
        self.target_groups.min(self.rules)
    }
}

/// How full the load balancer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// Tenants routed now (their host-header rules).
    pub used: u32,
    /// Tenants it may hold under its quotas.
    pub capacity: u32,
}

impl Room {
    pub fn free(&self) -> u32 {
        self.capacity.saturating_sub(self.used)
    }
}

#[async_trait]
pub trait RoutingCapacity: Send + Sync {
    /// The room behind the load balancer now.
    async fn room(&self) -> Result<Room, LauncherError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_default_to_aws_and_a_tenant_needs_a_target_group_and_a_rule() {
        let none = |_: &str| None::<String>;
        assert_eq!(AlbQuotas::from_lookup(&none).unwrap(), AlbQuotas { target_groups: 100, rules: 100 });
        let raised = |var: &str| (var == ALB_MAX_RULES).then(|| "500".to_owned());
        assert_eq!(AlbQuotas::from_lookup(&raised).unwrap().tenants(), 100, "target groups are not raised");
        let lowered = |var: &str| (var == ALB_MAX_TARGET_GROUPS).then(|| "3".to_owned());
        assert_eq!(AlbQuotas::from_lookup(&lowered).unwrap().tenants(), 3);
        let beyond = |var: &str| (var == ALB_MAX_TARGET_GROUPS).then(|| "101".to_owned());
        let error = AlbQuotas::from_lookup(&beyond).unwrap_err().to_string();
        assert!(error.contains("ALB_MAX_TARGET_GROUPS") && error.contains("1 to 100"), "{error}");
        assert_eq!(Room { used: 120, capacity: 100 }.free(), 0);
    }
}
