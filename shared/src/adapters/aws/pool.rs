//! The pool of load balancers the tenants are spread over
//! (docs/architecture.md decision 8): one ALB holds at most 100 target
//! groups, a quota AWS does not raise, so the stack gives an ordered list of
//! HTTPS listeners that share the wildcard certificate. A tenant is placed on
//! one with room and stays there; the pool's room is theirs added up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_elasticloadbalancingv2::Client;

use super::elb::{listener_room, listener_rules};
use super::error::unexpected;
use super::launcher::sdk_failure;
use crate::config::{ConfigError, Lookup, required};
use crate::ports::{AlbQuotas, AliasTarget, LauncherError, Room, RoutingCapacity};

/// The pool: comma-separated listener ARNs, in order. Empty entries are
/// ignored, so a template may join an optional list onto the first.
pub const ALB_LISTENER_ARNS: &str = "ALB_LISTENER_ARNS";

/// A listener of the pool and the load balancer it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolListener {
    pub listener_arn: String,
    pub load_balancer_arn: String,
}

impl PoolListener {
    /// `arn:{partition}:elasticloadbalancing:{region}:{account}:listener/app/{name}/{lb id}/{listener id}`;
    /// its load balancer is the same ARN as `loadbalancer/app/{name}/{lb id}`.
    pub fn parse(raw: &str) -> Option<PoolListener> {
        let raw = raw.trim();
        let (head, resource) = raw.rsplit_once(":listener/")?;
        let fields: Vec<&str> = head.split(':').collect();
        let head_ok = fields.len() == 5
            && fields[0] == "arn"
            && fields[1].starts_with("aws")
            && fields[2] == "elasticloadbalancing"
            && fields[3..].iter().all(|f| !f.is_empty());
        let parts: Vec<&str> = resource.split('/').collect();
        let resource_ok = parts.len() == 4
            && parts[0] == "app"
            && parts.iter().all(|p| !p.is_empty() && !p.contains(char::is_whitespace));
        (head_ok && resource_ok).then(|| PoolListener {
            listener_arn: raw.to_owned(),
            load_balancer_arn: format!("{head}:loadbalancer/app/{}/{}", parts[1], parts[2]),
        })
    }
}

/// The listeners tenants may be placed on: at least one, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerPool(Vec<PoolListener>);

impl ListenerPool {
    pub fn parse(raw: &str) -> Result<ListenerPool, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid { var: ALB_LISTENER_ARNS, reason };
        let mut listeners: Vec<PoolListener> = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let listener = PoolListener::parse(entry).ok_or_else(|| {
                invalid(format!(
                    "`{entry}` is not an Application Load Balancer listener's ARN \
                     (arn:aws:elasticloadbalancing:…:listener/app/…)"
                ))
            })?;
            if listeners.iter().any(|l| l.listener_arn == listener.listener_arn) {
                return Err(invalid(format!("`{entry}` is listed twice")));
            }
            listeners.push(listener);
        }
        if listeners.is_empty() {
            return Err(invalid("no listener given".into()));
        }
        Ok(ListenerPool(listeners))
    }

    /// From [`ALB_LISTENER_ARNS`].
    pub fn from_lookup(env: &dyn Lookup) -> Result<ListenerPool, ConfigError> {
        ListenerPool::parse(&required(env, ALB_LISTENER_ARNS)?)
    }

    pub fn listeners(&self) -> &[PoolListener] {
        &self.0
    }

    /// The pool's listener on one of `load_balancer_arns` (where a target
    /// group is attached), in pool order.
    pub fn on_any_of(&self, load_balancer_arns: &[String]) -> Option<&PoolListener> {
        self.0.iter().find(|l| load_balancer_arns.contains(&l.load_balancer_arn))
    }
}

/// The pool's load balancers' addresses, read once per process: an ALB's
/// DNS name and hosted zone never change while it exists.
#[derive(Debug, Clone, Default)]
pub struct BalancerAddresses(Arc<Mutex<HashMap<String, AliasTarget>>>);

impl BalancerAddresses {
    pub async fn of(&self, elb: &Client, load_balancer_arn: &str) -> Result<AliasTarget, LauncherError> {
        let known = self.0.lock().unwrap_or_else(PoisonError::into_inner).get(load_balancer_arn).cloned();
        if let Some(address) = known {
            return Ok(address);
        }
        let output = elb
            .describe_load_balancers()
            .load_balancer_arns(load_balancer_arn)
            .send()
            .await
            .map_err(|e| sdk_failure("ELB DescribeLoadBalancers", e))?;
        let balancer = output.load_balancers().first().ok_or_else(|| {
            LauncherError::Rejected(format!("load balancer {load_balancer_arn} of the pool does not exist"))
        })?;
        let address = match (balancer.dns_name(), balancer.canonical_hosted_zone_id()) {
            (Some(dns_name), Some(zone)) => {
                AliasTarget { dns_name: dns_name.to_owned(), hosted_zone_id: zone.to_owned() }
            }
            _ => {
                return Err(LauncherError::Unavailable(unexpected(format!(
                    "load balancer {load_balancer_arn} has no DNS name or hosted zone"
                ))));
            }
        };
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(load_balancer_arn.to_owned(), address.clone());
        Ok(address)
    }
}

/// The room on the pool for the checkout API: each listener's room
/// ([`listener_room`]) against the configured [`AlbQuotas`], added up.
#[derive(Debug, Clone)]
pub struct PoolCapacity {
    elb: Client,
    pool: ListenerPool,
    quotas: AlbQuotas,
}

impl PoolCapacity {
    pub fn new(elb: Client, pool: ListenerPool, quotas: AlbQuotas) -> Self {
        PoolCapacity { elb, pool, quotas }
    }

    /// From [`ALB_LISTENER_ARNS`] and the quotas' variables.
    pub fn from_lookup(elb: Client, env: &dyn Lookup) -> Result<Self, ConfigError> {
        Ok(PoolCapacity::new(elb, ListenerPool::from_lookup(env)?, AlbQuotas::from_lookup(env)?))
    }

    /// Each listener's room, in pool order.
    pub async fn rooms(&self) -> Result<Vec<(PoolListener, Room)>, LauncherError> {
        let mut rooms = Vec::with_capacity(self.pool.listeners().len());
        for listener in self.pool.listeners() {
            let rules = listener_rules(&self.elb, &listener.listener_arn).await?;
            rooms.push((listener.clone(), listener_room(&rules, self.quotas)));
        }
        Ok(rooms)
    }
}

#[async_trait::async_trait]
impl RoutingCapacity for PoolCapacity {
    async fn room(&self) -> Result<Room, LauncherError> {
        Ok(self.rooms().await?.into_iter().map(|(_, room)| room).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/tenants-1/50dc6c495c0c9188/f2f7dc8efc522ab2";
    const SECOND: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/tenants-2/0123456789abcdef/fedcba9876543210";

    #[test]
    fn a_listener_names_its_load_balancer() {
        let listener = PoolListener::parse(FIRST).unwrap();
        assert_eq!(
            listener.load_balancer_arn,
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/tenants-1/50dc6c495c0c9188"
        );
        let gov = "arn:aws-us-gov:elasticloadbalancing:us-gov-west-1:123456789012:listener/app/t/1/2";
        assert!(PoolListener::parse(gov).is_some(), "other partitions");
        for bad in [
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/t-1/73e2d6bc24d8a067",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/net/nlb/1/2",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/tenants/1",
            "arn:aws:ecs:us-east-1:123456789012:listener/app/tenants/1/2",
            "listener/app/tenants/1/2",
        ] {
            assert_eq!(PoolListener::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_pool_keeps_its_order_skips_empty_entries_and_refuses_bad_ones() {
        let pool = ListenerPool::parse(&format!(" {FIRST} ,{SECOND},")).unwrap();
        let arns: Vec<&str> = pool.listeners().iter().map(|l| l.listener_arn.as_str()).collect();
        assert_eq!(arns, [FIRST, SECOND]);
        let second_lb = pool.listeners()[1].load_balancer_arn.clone();
        assert_eq!(pool.on_any_of(&["arn:other".into(), second_lb]).unwrap().listener_arn, SECOND);
        assert_eq!(pool.on_any_of(&[]), None);

        let error = |raw: &str| ListenerPool::parse(raw).unwrap_err().to_string();
        assert!(error(",").contains("no listener given"));
        assert!(error(&format!("{FIRST},{FIRST}")).contains("listed twice"));
        let bad = error(&format!("{FIRST},arn:aws:s3:::bucket"));
        assert!(
            bad.starts_with("configuration: ALB_LISTENER_ARNS is invalid")
                && bad.contains("arn:aws:s3:::bucket")
        );
        assert!(!bad.contains('\n'));
    }
}
