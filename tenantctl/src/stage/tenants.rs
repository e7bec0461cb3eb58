//! `tenantctl --stage … tenants list|show`: the tenant records of a deployed
//! stage, read from its table (found from the stack's outputs), with what
//! really exists of each tenant's resources, its event trail and links to
//! its executions in the Step Functions console.

use serde::Serialize;
use tenancy::adapters::aws::DynamoTenantStore;
use tenancy::adapters::aws::sdk::{dynamodb, ecs, elbv2, route53};
use tenancy::domain::{TenantId, TenantRecord, TenantStatus};
use tenancy::ports::{MailRecord, StoreError, TenantStore, TrailEntry};

use super::{Stage, StageError};

#[derive(Debug, thiserror::Error)]
pub enum TenantsError {
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error("the tenant table could not be read: {0}")]
    Store(String),
    #[error(
        "unknown status `{0}`: one of AWAITING_PAYMENT, PROVISIONING, ACTIVE, PAST_DUE, SUSPENDED, CANCELLED, FAILED"
    )]
    UnknownStatus(String),
    #[error("no tenant has the subdomain or id `{0}`")]
    NotFound(String),
}

impl From<StoreError> for TenantsError {
    fn from(error: StoreError) -> Self {
        TenantsError::Store(tenancy::telemetry::error_chain(&error))
    }
}

/// The stage's tenant table.
pub fn store(stage: &Stage) -> Result<DynamoTenantStore, TenantsError> {
    let table = stage.output("TenantTableName")?;
    Ok(DynamoTenantStore::new(dynamodb::Client::new(&stage.sdk), table))
}

pub fn parse_status(raw: &str) -> Result<TenantStatus, TenantsError> {
    serde_json::from_value(serde_json::Value::String(raw.trim().to_ascii_uppercase()))
        .map_err(|_| TenantsError::UnknownStatus(raw.to_owned()))
}

/// Every tenant, or those in `status`, by subdomain.
pub async fn list(
    store: &dyn TenantStore,
    status: Option<TenantStatus>,
) -> Result<Vec<TenantRecord>, TenantsError> {
    let mut tenants: Vec<TenantRecord> =
        store.list_tenants().await?.into_iter().filter(|t| status.is_none_or(|s| t.status == s)).collect();
    tenants.sort_by(|a, b| (subdomain(a), &a.id).cmp(&(subdomain(b), &b.id)));
    Ok(tenants)
}

fn subdomain(record: &TenantRecord) -> String {
    record.signup.as_ref().map(|s| s.subdomain.to_string()).unwrap_or_default()
}

/// A table for people.
pub fn render_list(tenants: &[TenantRecord]) -> String {
    let mut out = format!(
        "{:<24} {:<24} {:<16} {:<10} {:<9} {}\n",
        "SUBDOMAIN", "TENANT", "STATUS", "PLAN", "REACHED", "UPDATED"
    );
    for t in tenants {
        let plan = t.plan.as_ref().map(|p| p.key.to_string()).unwrap_or_else(|| "-".into());
        let sub = subdomain(t);
        out.push_str(&format!(
            "{:<24} {:<24} {:<16} {:<10} {:<9} {}\n",
            if sub.is_empty() { "-".to_owned() } else { sub },
            t.id,
            t.status,
            plan,
            format!("{}/{}", t.reached_generation, t.generation),
            t.updated_at
        ));
    }
    out
}

/// One resource recorded on the tenant, and whether it really exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resource {
    pub kind: &'static str,
    pub id: String,
    /// `None` when it could not be checked.
    pub exists: Option<bool>,
}

/// An execution that acted on the tenant, with its console page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecutionLink {
    pub event_id: String,
    pub event_type: String,
    pub arn: String,
    pub console: String,
}

/// Everything `tenants show` prints.
#[derive(Debug, Clone, Serialize)]
pub struct TenantView {
    pub record: TenantRecord,
    pub resources: Vec<Resource>,
    pub trail: Vec<TrailEntry>,
    pub mails: Vec<MailRecord>,
    pub executions: Vec<ExecutionLink>,
}

/// The tenant with `subdomain` or id `key`.
pub async fn find(store: &dyn TenantStore, key: &str) -> Result<TenantRecord, TenantsError> {
    if let Ok(id) = TenantId::parse(key)
        && let Some(record) = store.get_tenant(&id).await?
    {
        return Ok(record);
    }
    store
        .list_tenants()
        .await?
        .into_iter()
        .find(|t| t.signup.as_ref().is_some_and(|s| s.subdomain.as_str() == key))
        .ok_or_else(|| TenantsError::NotFound(key.to_owned()))
}

pub async fn show(stage: &Stage, store: &dyn TenantStore, key: &str) -> Result<TenantView, TenantsError> {
    let record = find(store, key).await?;
    let trail = store.trail(&record.id).await?;
    let mails = store.mails(&record.id).await?;
    let resources = resources(stage, &record).await;
    let executions = trail.iter().filter_map(|entry| execution_link(stage, entry)).collect();
    Ok(TenantView { record, resources, trail, mails, executions })
}

async fn resources(stage: &Stage, record: &TenantRecord) -> Vec<Resource> {
    let r = &record.resources;
    let mut found = Vec::new();
    if let Some(arn) = &r.service_arn {
        found.push(Resource {
            kind: "ECS service",
            id: arn.clone(),
            exists: service_exists(stage, arn).await,
        });
    }
    if let Some(arn) = &r.target_group_arn {
        let elb = elbv2::Client::new(&stage.sdk);
        let exists = match elb.describe_target_groups().target_group_arns(arn).send().await {
            Ok(answer) => Some(!answer.target_groups().is_empty()),
            Err(error) => {
                error.as_service_error().filter(|e| e.is_target_group_not_found_exception()).map(|_| false)
            }
        };
        found.push(Resource { kind: "target group", id: arn.clone(), exists });
    }
    if let Some(arn) = &r.listener_rule_arn {
        let elb = elbv2::Client::new(&stage.sdk);
        let exists = match elb.describe_rules().rule_arns(arn).send().await {
            Ok(answer) => Some(!answer.rules().is_empty()),
            Err(error) => error.as_service_error().filter(|e| e.is_rule_not_found_exception()).map(|_| false),
        };
        found.push(Resource { kind: "listener rule", id: arn.clone(), exists });
    }
    if let Some(name) = &r.dns_name {
        found.push(Resource {
            kind: "DNS record",
            id: name.clone(),
            exists: record_exists(stage, name).await,
        });
    }
    found
}

async fn service_exists(stage: &Stage, arn: &str) -> Option<bool> {
    let cluster = stage.output("TenantClusterName").ok()?;
    let answer =
        ecs::Client::new(&stage.sdk).describe_services().cluster(cluster).services(arn).send().await.ok()?;
    // A deleted service is still described for a while, as INACTIVE.
    Some(answer.services().iter().any(|s| s.status() == Some("ACTIVE")))
}

async fn record_exists(stage: &Stage, name: &str) -> Option<bool> {
    let zone = stage.parameter("HostedZoneId").ok()?;
    let wanted = format!("{}.", name.trim_end_matches('.'));
    let answer = route53::Client::new(&stage.sdk)
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .start_record_name(&wanted)
        .max_items(1)
        .send()
        .await
        .ok()?;
    Some(answer.resource_record_sets().iter().any(|r| r.name().eq_ignore_ascii_case(&wanted)))
}

/// The execution a trail entry's event ran as (its name is the event id),
/// on the machine its type goes to.
fn execution_link(stage: &Stage, entry: &TrailEntry) -> Option<ExecutionLink> {
    let key = if entry.event_type.starts_with("checkout.session.") {
        "ProvisionStateMachineArn"
    } else {
        "LifecycleStateMachineArn"
    };
    let machine = stage.output(key).ok()?;
    // arn:aws:states:REGION:ACCOUNT:stateMachine:NAME → …:execution:NAME:EVENT
    let arn = format!("{}:{}", machine.replacen(":stateMachine:", ":execution:", 1), entry.event_id);
    Some(ExecutionLink {
        event_id: entry.event_id.clone(),
        event_type: entry.event_type.clone(),
        console: tenancy::reconcile::console_link(&arn),
        arn,
    })
}

/// `tenants show` for people.
pub fn render_show(view: &TenantView) -> String {
    let r = &view.record;
    let mut out = format!(
        "{} ({})\n  status      {}\n  plan        {}\n  generation  reached {} of {}\n",
        subdomain(r),
        r.id,
        r.status,
        r.plan
            .as_ref()
            .map(|p| format!("{} ({})", p.key, r.billing.map(|b| b.to_string()).unwrap_or_default()))
            .unwrap_or_else(|| "-".into()),
        r.reached_generation,
        r.generation,
    );
    if let Some(failure) = &r.failure {
        out.push_str(&format!("  failure     {}: {}\n", failure.error, failure.cause));
    }
    if let Some(money) = &r.money_back {
        let state = match (&money.completed_at, &money.failed) {
            (Some(_), _) => format!("refunded {}", money.refunded_text()),
            (None, Some(why)) => format!("NOT DONE: {why}"),
            (None, None) => "pending".into(),
        };
        out.push_str(&format!("  money back  {state}\n"));
    }
    for (key, unsent) in &r.unsent_mails {
        out.push_str(&format!("  unsent mail {key}: {}\n", unsent.reason));
    }
    out.push_str("  resources\n");
    if view.resources.is_empty() {
        out.push_str("    (none recorded)\n");
    }
    for res in &view.resources {
        let mark = match res.exists {
            Some(true) => "✔",
            Some(false) => "✘ missing",
            None => "⚠ not checked",
        };
        out.push_str(&format!("    {mark} {:<14} {}\n", res.kind, res.id));
    }
    out.push_str("  trail\n");
    for entry in &view.trail {
        out.push_str(&format!(
            "    {} {:<38} {:<10?} g{} {}\n",
            entry.recorded_at, entry.event_type, entry.outcome, entry.generation, entry.note
        ));
    }
    out.push_str("  executions\n");
    for link in &view.executions {
        out.push_str(&format!("    {} {}\n", link.event_id, link.console));
    }
    out
}
