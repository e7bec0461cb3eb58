//! Room for more tenants behind the pool of load balancers, so that a
//! checkout is refused *before* payment when a new tenant could not be
//! routed (docs/architecture.md decision 8). AWS's quotas: 100 target groups
//! per Application Load Balancer (not adjustable) and 100 rules per ALB
//! (adjustable); every tenant takes one of each, on one load balancer of the
//! pool. The room is read from the load balancers themselves, never counted
//! on the side, so it cannot drift.

use async_trait::async_trait;

use super::LauncherError;
use crate::config::{ConfigError, Lookup, count_setting};
use crate::domain::TenantId;

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

/// How full a load balancer, or the pool, is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Room {
    /// Tenants routed now (their host-header rules), at most `capacity`.
    pub used: u32,
    /// Tenants it may hold under its quotas.
    pub capacity: u32,
}

impl Room {
    /// One load balancer's room: `used` rules held to `quotas` (rules that
    /// are not tenants' fill it too, but it is never fuller than full).
    pub fn of_balancer(used: usize, quotas: AlbQuotas) -> Room {
        let capacity = quotas.tenants();
        Room { used: u32::try_from(used).unwrap_or(u32::MAX).min(capacity), capacity }
    }

    pub fn free(&self) -> u32 {
        self.capacity.saturating_sub(self.used)
    }
}

/// The pool's room is its load balancers' rooms added up: a place free on
/// any of them takes a tenant.
impl std::iter::Sum for Room {
    fn sum<I: Iterator<Item = Room>>(rooms: I) -> Room {
        rooms.fold(Room::default(), |pool, room| Room {
            used: pool.used.saturating_add(room.used),
            capacity: pool.capacity.saturating_add(room.capacity),
        })
    }
}

/// The order a new tenant tries the pool's `balancers` load balancers in:
/// from one derived from the tenant, then each next one, wrapping. Tenants
/// spread over the whole pool, so launches that run together rarely race
/// for the last places of one load balancer, and finding a place takes a
/// few looks however large the pool is (filling the pool in order, the
/// 10,000th tenant would look at 99 full load balancers first).
pub fn placement_order(tenant: &TenantId, balancers: usize) -> impl Iterator<Item = usize> {
    // The high half: the low one picks the tenant's first rule priority.
    let start = usize::try_from((tenant.spread() >> 32) % balancers.max(1) as u64).unwrap_or(0);
    (0..balancers).map(move |step| (start + step) % balancers)
}

/// A launch refused because no load balancer of the pool has room: the
/// checkout's room check exists so that this never meets a paying customer.
pub fn no_room(balancers: usize, quotas: AlbQuotas) -> LauncherError {
    LauncherError::Rejected(format!(
        "NoRoom: all {balancers} load balancers of the pool hold the {} tenants each their quotas allow",
        quotas.tenants()
    ))
}

#[async_trait]
pub trait RoutingCapacity: Send + Sync {
    /// The room behind the pool of load balancers now.
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

    #[test]
    fn a_pools_room_is_its_balancers_added_and_an_overfull_one_gives_none() {
        let quotas = AlbQuotas { target_groups: 100, rules: 100 };
        let pool: Room =
            [Room::of_balancer(100, quotas), Room::of_balancer(130, quotas), Room::of_balancer(40, quotas)]
                .into_iter()
                .sum();
        assert_eq!(pool, Room { used: 240, capacity: 300 });
        assert_eq!(pool.free(), 60, "the overfull one lends no places to the others");
    }

    fn tenant(n: u32) -> TenantId {
        TenantId::parse(&format!("tnt_{n:020x}")).expect("a tenant id")
    }

    #[test]
    fn each_tenant_tries_every_balancer_once_from_its_own_start_and_tenants_spread() {
        for n in 0..50 {
            let order: Vec<usize> = placement_order(&tenant(n), 7).collect();
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..7).collect::<Vec<_>>(), "every balancer once");
            assert_eq!(order, placement_order(&tenant(n), 7).collect::<Vec<_>>(), "the same order each time");
        }
        let mut firsts = [0_u32; 10];
        for n in 0..10_000 {
            firsts[placement_order(&tenant(n), 10).next().unwrap()] += 1;
        }
        assert!(firsts.iter().all(|&f| (800..1200).contains(&f)), "first picks spread evenly: {firsts:?}");
        assert_eq!(placement_order(&tenant(1), 0).count(), 0, "an empty pool has no place");
    }
}
