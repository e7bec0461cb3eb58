//! `tenantctl --stage … reconcile [--fix]`: [`tenancy::reconcile`] on a
//! deployed stage, its places found from the stack; `--fix` carries out each
//! finding's [`Repair`] and reports what it did, finding by finding.

use serde::Serialize;
use serde_json::json;
use tenancy::adapters::aws::launcher::TenantRemover;
use tenancy::adapters::aws::route53::delete_a_record;
use tenancy::adapters::aws::sdk::{ecs, elbv2, route53, sfn};
pub use tenancy::reconcile::{
    Finding, FindingKind, Inventory, Repair, STUCK_AFTER_SECONDS, reconcile, render,
};
use tenancy::reconcile::{Places, ReconcileError};
use tenancy::telemetry::error_chain;

use super::{Stage, StageError};

#[derive(Debug, thiserror::Error)]
pub enum StageReconcileError {
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
}

/// [`tenancy::reconcile::stuck_executions`] on the stage's two state machines.
pub async fn stuck_executions(stage: &Stage, now: i64) -> Result<Vec<Finding>, StageReconcileError> {
    let machines: Vec<String> = ["ProvisionStateMachineArn", "LifecycleStateMachineArn"]
        .into_iter()
        .map(|output| stage.output(output).map(str::to_owned))
        .collect::<Result<_, _>>()?;
    Ok(tenancy::reconcile::stuck_executions(&stage.sdk, &machines, now).await?)
}

fn places(stage: &Stage) -> Result<Places, StageError> {
    Ok(Places {
        cluster: stage.output("TenantClusterName")?.to_owned(),
        hosted_zone_id: stage.parameter("HostedZoneId")?.to_owned(),
        tenant_domain: stage.parameter("TenantDomain")?.to_owned(),
    })
}

/// What exists in the stage's cluster, load balancer and zone.
pub async fn inventory(stage: &Stage) -> Result<Inventory, StageReconcileError> {
    Ok(tenancy::reconcile::inventory(&stage.sdk, &places(stage)?).await?)
}

/// One repair carried out, or why it was not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repaired {
    pub subject: String,
    #[serde(flatten)]
    pub repair: Repair,
    /// What was done; `None` when it failed or is left to a person.
    pub done: Option<String>,
    /// Why it was not done.
    pub not_done: Option<String>,
}

impl Repaired {
    fn new(finding: &Finding, outcome: Result<String, String>) -> Self {
        let (done, not_done) = match outcome {
            Ok(done) => (Some(done), None),
            Err(why) => (None, Some(why)),
        };
        Repaired { subject: finding.subject.clone(), repair: finding.repair.clone(), done, not_done }
    }
}

/// Carries out each finding's repair, in order: one converge per tenant
/// however many findings it has, each removal once. Each is safe to run
/// again (a converge re-reads Stripe; a removal skips what is gone), so a
/// run that stops half-way is finished by the next.
pub async fn fix(stage: &Stage, findings: &[Finding], now: i64) -> Result<Vec<Repaired>, StageError> {
    let places = places(stage)?;
    let lifecycle = stage.output("LifecycleStateMachineArn")?.to_owned();
    let (ecs, elb) = (ecs::Client::new(&stage.sdk), elbv2::Client::new(&stage.sdk));
    let remover = TenantRemover::new(&ecs, &elb, &places.cluster);
    let sfn = sfn::Client::new(&stage.sdk);
    let mut seen = std::collections::BTreeSet::<&Repair>::new();
    let mut repaired = Vec::new();
    for finding in findings {
        // Each repair once (a person's are each listed).
        if finding.repair != Repair::ByHand && !seen.insert(&finding.repair) {
            continue;
        }
        let outcome = match &finding.repair {
            Repair::Converge { tenant } => {
                let name = format!("reconcile-{tenant}-{now}");
                sfn.start_execution()
                    .state_machine_arn(&lifecycle)
                    .name(&name)
                    .input(json!({ "tenant_id": tenant }).to_string())
                    .send()
                    .await
                    .map(|started| format!("converging: execution {name} ({})", started.execution_arn()))
                    .map_err(|e| format!("Step Functions did not start {name}: {}", error_chain(&e)))
            }
            Repair::RemoveTenantResources { tenant } => remover
                .remove(tenant)
                .await
                .map(|()| {
                    format!("removed the service, rules, target group and task definitions of {tenant}")
                })
                .map_err(|e| error_chain(&e)),
            Repair::RemoveDnsRecord { name } => {
                delete_a_record(route53::Client::new(&stage.sdk), &places.hosted_zone_id, name)
                    .await
                    .map(|()| format!("removed the DNS record {name}"))
                    .map_err(|e| error_chain(&e))
            }
            Repair::ByHand => Err(format!("left to you: {}", finding.fix)),
        };
        repaired.push(Repaired::new(finding, outcome));
    }
    Ok(repaired)
}

/// The repairs, for people.
pub fn render_repairs(repaired: &[Repaired]) -> String {
    let mut out = String::new();
    for repair in repaired {
        match (&repair.done, &repair.not_done) {
            (Some(done), _) => out.push_str(&format!("✔ {} — {done}\n", repair.subject)),
            (None, Some(why)) => out.push_str(&format!("✘ {} — {why}\n", repair.subject)),
            (None, None) => {}
        }
    }
    out
}
