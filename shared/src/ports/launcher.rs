//! Running a tenant's app: an ECS Fargate service behind a load balancer of
//! the pool.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{AliasTarget, BoxError};
use crate::domain::TenantId;

/// Everything needed to start one tenant's app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    pub tenant: TenantId,
    /// `{subdomain}.{domain}`: the listener rule's host header.
    pub host: String,
    /// The app's settings (TIER, PLAN, ADMIN_PASSWORD_HASH, …).
    pub environment: BTreeMap<String, String>,
    /// Tasks the service runs: 1, or 0 while suspended (the task definition,
    /// target group and rule are kept, so resuming only scales up).
    pub desired_count: u32,
}

/// What a launch made; names are derived from the tenant id, so a second
/// launch finds and returns the same things.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchedTenant {
    pub service_arn: String,
    pub target_group_arn: String,
    pub listener_rule_arn: String,
    /// The listener of the pool that routes the tenant: the one it was
    /// placed on first, kept for as long as the tenant exists.
    pub listener_arn: String,
    /// That listener's load balancer, which the tenant's DNS alias points at.
    pub load_balancer: AliasTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ServiceHealth {
    /// Tasks are starting or targets are not yet healthy.
    Starting {
        detail: String,
    },
    Healthy,
    /// ECS gave up on the service (e.g. the image cannot be pulled).
    Broken {
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum LauncherError {
    #[error("container platform unavailable")]
    Unavailable(#[source] BoxError),
    #[error("container platform refused: {0}")]
    Rejected(String),
}

#[async_trait]
pub trait TenantLauncher: Send + Sync {
    /// Makes the tenant's task definition, service (with `desired_count`),
    /// target group and listener rule match `spec`, creating what is missing.
    /// A new tenant is placed on a load balancer of the pool with room; one
    /// already placed stays where it is.
    async fn launch(&self, spec: &LaunchSpec) -> Result<LaunchedTenant, LauncherError>;

    async fn health(&self, tenant: &TenantId) -> Result<ServiceHealth, LauncherError>;

    /// Sets how many tasks the tenant's service runs (0 suspends it).
    async fn scale(&self, tenant: &TenantId, desired: u32) -> Result<(), LauncherError>;

    /// Removes the service, listener rule and target group of `tenant`,
    /// wherever in the pool they are.
    /// Removing what is already gone succeeds.
    async fn remove(&self, tenant: &TenantId) -> Result<(), LauncherError>;
}
