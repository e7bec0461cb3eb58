//! An execution that stopped outside its Catch paths (TIMED_OUT or ABORTED)
//! ran no compensation and no final converge: whatever it left half-made is
//! removed or finished here (docs/architecture.md decision 7). In AWS an
//! EventBridge rule on Step Functions' status changes invokes this; the local
//! runner calls it the same way when an execution times out.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::context::{StepContext, load};
use super::converge::{ConvergeInput, ConvergePorts, LEASE_SECONDS, converge_tenant};
use super::error::StepError;
use super::provision::{self, CaughtError, FailureInput, StripeEvent, TenantRef};
use crate::domain::{BillingEvent, CheckoutSignup, TenantId, TenantStatus};
use crate::ports::{LeaseOutcome, Workflow};

/// EventBridge's "Step Functions Execution Status Change" event, as far as
/// this needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct StatusChange {
    pub detail: StatusChangeDetail,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChangeDetail {
    /// The execution's name: the Stripe event id.
    pub name: String,
    /// `TIMED_OUT` or `ABORTED` (the rule sends no other).
    pub status: String,
    /// Ends in `-provision` or `-lifecycle` (the stack names them so).
    pub state_machine_arn: String,
    /// The execution's input as JSON text.
    #[serde(default)]
    pub input: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupReport {
    pub tenant_id: Option<TenantId>,
    pub done: String,
}

impl CleanupReport {
    fn nothing(tenant_id: Option<TenantId>, why: impl Into<String>) -> CleanupReport {
        CleanupReport { tenant_id, done: why.into() }
    }
}

fn workflow_of(state_machine_arn: &str) -> Option<Workflow> {
    [Workflow::Provision, Workflow::Lifecycle]
        .into_iter()
        .find(|w| state_machine_arn.ends_with(&format!("-{}", w.as_str())) || state_machine_arn == w.as_str())
}

/// Removes what a stopped provisioning made (the tenant still PROVISIONING),
/// or converges the tenant a stopped execution left half-changed.
pub async fn clean_up_stopped_execution(
    ports: &ConvergePorts<'_>,
    ctx: &StepContext<'_>,
    change: StatusChange,
) -> Result<CleanupReport, StepError> {
    let detail = change.detail;
    let workflow = workflow_of(&detail.state_machine_arn).ok_or_else(|| {
        StepError::BadInput(format!("state machine {} is not one of this stack's", detail.state_machine_arn))
    })?;
    let input: Value = match detail.input.as_deref() {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| StepError::BadInput(format!("execution input is not JSON: {e}")))?,
        None => return Err(StepError::BadInput("the status change carries no execution input".into())),
    };
    let owner = format!("cleanup:{}", detail.name);
    let error = match detail.status.as_str() {
        "TIMED_OUT" => "States.Timeout",
        "ABORTED" => "Execution.Aborted",
        other => {
            return Ok(CleanupReport::nothing(None, format!("status {other}: its own paths cleaned up")));
        }
    };
    match workflow {
        Workflow::Provision => {
            let event: StripeEvent = serde_json::from_value(input["event"].clone())
                .map_err(|e| StepError::BadInput(format!("provisioning input: {e}")))?;
            let Ok(signup) = CheckoutSignup::from_session(&event.data.object, ctx.catalog) else {
                return Ok(CleanupReport::nothing(None, "the checkout never made a tenant"));
            };
            let tenant_id = signup.tenant_id();
            let Some(record) = ports.store.get_tenant(&tenant_id).await? else {
                return Ok(CleanupReport::nothing(Some(tenant_id), "stopped before the tenant was recorded"));
            };
            if record.status != TenantStatus::Provisioning {
                return converge(ports, ctx, tenant_id, owner).await;
            }
            let tenant = TenantRef {
                awaiting_payment: false,
                tenant_id: tenant_id.clone(),
                host: ctx.settings.domain.host(&signup.subdomain),
                subdomain: signup.subdomain,
            };
            let cause = format!("execution {} ended {} before it finished", detail.name, detail.status);
            let failure = FailureInput {
                event,
                tenant: Some(tenant),
                error: CaughtError { error: error.to_owned(), cause },
            };
            // Under the tenant's lease, so a converge of the stopped execution
            // still running cannot rebuild what this removes.
            let now = ctx.clock.now_unix();
            if let LeaseOutcome::HeldBy(lease) =
                ports.store.acquire_lease(&tenant_id, &owner, now, LEASE_SECONDS).await?
            {
                return Err(StepError::LeaseHeld(format!("tenant {tenant_id} is held by {}", lease.owner)));
            }
            let compensated =
                provision::compensate(ports.store, ports.launcher, ports.dns, ports.mailer, ctx, failure)
                    .await;
            if let Err(error) = ports.store.release_lease(&tenant_id, &owner).await {
                tracing::warn!(tenant_id = %tenant_id, error = %error, "lease not released; it expires");
            }
            compensated?;
            Ok(CleanupReport::nothing(
                Some(tenant_id),
                "compensated: what provisioning made is removed, FAILED",
            ))
        }
        Workflow::Lifecycle => {
            let Ok(event) = BillingEvent::parse(&input["event"]) else {
                return Ok(CleanupReport::nothing(None, "not a lifecycle event"));
            };
            match ports.store.find_by_subscription(&event.subscription).await? {
                None => Ok(CleanupReport::nothing(None, "no tenant has its subscription")),
                Some(record) => converge(ports, ctx, record.id, owner).await,
            }
        }
    }
}

/// A desired state recorded but not reached (the stop came between the two
/// steps, or inside the converge) is reached now.
async fn converge(
    ports: &ConvergePorts<'_>,
    ctx: &StepContext<'_>,
    tenant_id: TenantId,
    owner: String,
) -> Result<CleanupReport, StepError> {
    let input = ConvergeInput { tenant_id: tenant_id.clone(), owner, finish_provisioning: false };
    let converged = converge_tenant(ports, ctx, input).await?;
    let record = load(ports.store, &tenant_id).await?;
    Ok(CleanupReport::nothing(
        Some(tenant_id),
        format!(
            "converged: {} at generation {} ({})",
            record.status, record.reached_generation, converged.note
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workflow_is_read_from_the_state_machine_arn() {
        let arn = "arn:aws:states:us-east-1:123456789012:stateMachine:tenancy-test-provision";
        assert_eq!(workflow_of(arn), Some(Workflow::Provision));
        assert_eq!(
            workflow_of("arn:aws:states:eu-west-1:1:stateMachine:x-lifecycle"),
            Some(Workflow::Lifecycle)
        );
        assert_eq!(workflow_of("arn:aws:states:eu-west-1:1:stateMachine:someone-elses"), None);
    }
}
