//! `tenantctl --stage … tenants rotate-status-token TENANT`: revokes a
//! tenant app's status token. The next token's hash is recorded in the
//! stage's table (the old token gets 401 from then on) and a lifecycle
//! execution, `rotate-status-token-TENANT-TIME`, converges the tenant so its
//! app is relaunched with the new token.

use serde::Serialize;
use tenancy::adapters::aws::sdk::sfn;
use tenancy::checkout::status::StatusTokens;
use tenancy::clock::SystemClock;
use tenancy::config::TENANT_PASSWORD_KEY_PARAM;
use tenancy::domain::TenantId;
use tenancy::ports::SecretStore;
use tenancy::steps::status_token::rotate_status_token;
use tenancy::telemetry::error_chain;

use super::tenants::{TenantsError, find, store};
use super::{Stage, StageError};

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    Tenants(#[from] TenantsError),
    #[error("the stack's TenantPasswordKeyParameter is not usable: {0}")]
    Key(String),
    #[error("tenant {tenant} has no app to give a token to (it never became a tenant)")]
    NotATenant { tenant: TenantId },
    #[error("the status token of {tenant} was not rotated: {reason}")]
    Rotate { tenant: TenantId, reason: String },
    #[error(
        "the status token of {tenant} was rotated (the old one is refused), but Step Functions did not start {execution}: {reason}; `tenantctl reconcile --fix` relaunches its app"
    )]
    Converge { tenant: TenantId, execution: String, reason: String },
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rotated {
    pub tenant_id: TenantId,
    pub subdomain: Option<String>,
    /// The new token's generation.
    pub token_generation: u32,
    /// The lifecycle execution that relaunches the app with it.
    pub execution: String,
}

/// The lifecycle execution's name for a rotation at `now`.
pub fn execution_name(tenant: &TenantId, now: i64) -> String {
    format!("rotate-status-token-{tenant}-{now}")
}

pub async fn rotate(
    stage: &Stage,
    secrets: &dyn SecretStore,
    tenant: &str,
    now: i64,
) -> Result<Rotated, RotateError> {
    let key_parameter = stage.parameter("TenantPasswordKeyParameter")?.to_owned();
    let env = move |var: &str| (var == TENANT_PASSWORD_KEY_PARAM).then(|| key_parameter.clone());
    let key =
        tenancy::config::password_key(&env, secrets).await.map_err(|e| RotateError::Key(error_chain(&e)))?;
    let tokens = StatusTokens::new(stage.output("CheckoutApiUrl")?, key);
    let lifecycle = stage.output("LifecycleStateMachineArn")?.to_owned();
    let store = store(stage)?;
    let record = find(&store, tenant).await?;
    if record.signup.is_none() {
        return Err(RotateError::NotATenant { tenant: record.id });
    }
    let rotated = rotate_status_token(&store, &SystemClock, &tokens, &record.id)
        .await
        .map_err(|e| RotateError::Rotate { tenant: record.id.clone(), reason: error_chain(&e) })?;
    let execution = execution_name(&record.id, now);
    sfn::Client::new(&stage.sdk)
        .start_execution()
        .state_machine_arn(&lifecycle)
        .name(&execution)
        .input(serde_json::json!({ "tenant_id": record.id }).to_string())
        .send()
        .await
        .map_err(|e| RotateError::Converge {
            tenant: record.id.clone(),
            execution: execution.clone(),
            reason: error_chain(&e),
        })?;
    Ok(Rotated {
        tenant_id: record.id,
        subdomain: record.signup.map(|s| s.subdomain.to_string()),
        token_generation: rotated.status_token.map_or(0, |t| t.generation),
        execution,
    })
}
