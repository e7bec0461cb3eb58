//! `tenantctl --stage … reconcile [--fix]`: [`tenancy::reconcile`] on a
//! deployed stage, its places found from the stack; `--fix` carries out each
//! finding's [`Repair`] and reports what it did, finding by finding.

use serde::Serialize;
use serde_json::json;
use tenancy::adapters::aws::launcher::TenantRemover;
use tenancy::adapters::aws::route53::delete_a_record;
use tenancy::adapters::aws::sdk::{ecs, elbv2, route53, sfn};
pub use tenancy::reconcile::{Finding, FindingKind, Inventory, Repair, reconcile, render};
use tenancy::reconcile::{Places, ReconcileError};
use tenancy::telemetry::error_chain;

use super::{Stage, StageError};

#[derive(Debug, thiserror::Error)]
pub enum StageReconcileError {
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
    #[error("Step Functions {operation} failed: {reason}")]
    StepFunctions { operation: &'static str, reason: String },
}

/// How long an execution may run before it is called stuck, unless it is
/// waiting in a Wait state (a cancelled tenant's grace period): every Task's
/// retries together end well within it.
pub const STUCK_AFTER_SECONDS: i64 = 2 * 3600;

/// Executions of the stage's state machines RUNNING for longer than
/// [`STUCK_AFTER_SECONDS`] and not in a Wait state, newest events read
/// first. Left to a person: stopping one hands what it made to the clean-up
/// function, which for a provisioning means compensation and a refund.
pub async fn stuck_executions(stage: &Stage, now: i64) -> Result<Vec<Finding>, StageReconcileError> {
    let client = sfn::Client::new(&stage.sdk);
    let failed = |operation: &'static str| {
        move |e: &dyn std::error::Error| StageReconcileError::StepFunctions {
            operation,
            reason: super::one_line(&error_chain(e)),
        }
    };
    let mut found = Vec::new();
    for output in ["ProvisionStateMachineArn", "LifecycleStateMachineArn"] {
        let machine = stage.output(output)?;
        let mut pages = client
            .list_executions()
            .state_machine_arn(machine)
            .status_filter(sfn::types::ExecutionStatus::Running)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for execution in page.map_err(|e| failed("ListExecutions")(&e))?.executions() {
                let running_for = now.saturating_sub(execution.start_date().secs());
                if running_for <= STUCK_AFTER_SECONDS {
                    continue;
                }
                let arn = execution.execution_arn();
                let newest = client
                    .get_execution_history()
                    .execution_arn(arn)
                    .reverse_order(true)
                    .max_results(3)
                    .send()
                    .await
                    .map_err(|e| failed("GetExecutionHistory")(&e))?;
                // The newest is the highest id (whatever order the answer is in).
                let last = newest.events().iter().max_by_key(|event| event.id()).map(|event| event.r#type());
                if last == Some(&sfn::types::HistoryEventType::WaitStateEntered) {
                    continue;
                }
                let last = last.map(|kind| kind.as_str().to_owned()).unwrap_or_else(|| "nothing".into());
                found.push(Finding {
                    kind: FindingKind::Stuck,
                    subject: execution.name().to_owned(),
                    detail: format!("running for {} h; its newest event: {last}", running_for / 3600),
                    fix: format!(
                        "look at {}; if it cannot go on, stop it (the clean-up function then removes or converges what it made)",
                        super::console_link(arn)
                    ),
                    repair: Repair::ByHand,
                });
            }
        }
    }
    Ok(found)
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
    let listener = stage.parameter("AlbListenerArn")?.to_owned();
    let (ecs, elb) = (ecs::Client::new(&stage.sdk), elbv2::Client::new(&stage.sdk));
    let remover = TenantRemover::new(&ecs, &elb, &places.cluster, &listener);
    let sfn = sfn::Client::new(&stage.sdk);
    let mut seen = Vec::<&Repair>::new();
    let mut repaired = Vec::new();
    for finding in findings {
        if seen.contains(&&finding.repair) && finding.repair != Repair::ByHand {
            continue;
        }
        seen.push(&finding.repair);
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
