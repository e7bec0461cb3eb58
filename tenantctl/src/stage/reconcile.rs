//! `tenantctl --stage … reconcile`: [`tenancy::reconcile`] on a deployed
//! stage, its places found from the stack.

pub use tenancy::reconcile::{Finding, FindingKind, Inventory, reconcile, render};
use tenancy::reconcile::{Places, ReconcileError};

use super::{Stage, StageError};

#[derive(Debug, thiserror::Error)]
pub enum StageReconcileError {
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
}

/// What exists in the stage's cluster, load balancer and zone.
pub async fn inventory(stage: &Stage) -> Result<Inventory, StageReconcileError> {
    let places = Places {
        cluster: stage.output("TenantClusterName")?.to_owned(),
        hosted_zone_id: stage.parameter("HostedZoneId")?.to_owned(),
        tenant_domain: stage.parameter("TenantDomain")?.to_owned(),
    };
    Ok(tenancy::reconcile::inventory(&stage.sdk, &places).await?)
}
