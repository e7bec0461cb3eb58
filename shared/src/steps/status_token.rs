//! The tenant app's status token (see [`crate::checkout::status`]): the hash
//! recorded before any launch hands the token to the app, and its rotation.

use super::context::update;
use super::error::StepError;
use crate::checkout::status::StatusTokens;
use crate::clock::Clock;
use crate::domain::{StatusToken, StatusTokenRecord, TenantId, TenantRecord};
use crate::ports::TenantStore;

/// `record` with a status token `tokens` derives, recorded (as its hash)
/// before the caller launches the app with it. A tenant recorded before
/// status tokens, or whose token's key version was dropped, gets the next
/// generation; any other gets the token it has, so every launch computes
/// the same environment. Returns the record as written.
pub(crate) async fn with_status_token(
    store: &dyn TenantStore,
    clock: &dyn Clock,
    tokens: &StatusTokens,
    record: TenantRecord,
) -> Result<(TenantRecord, StatusToken), StepError> {
    if let Some(token) = tokens.current(&record.id, record.status_token.as_ref()) {
        return Ok((record, token));
    }
    let written = update(store, clock, &record.id, |r| {
        if tokens.current(&r.id, r.status_token.as_ref()).is_some() {
            return false;
        }
        r.status_token = Some(StatusTokenRecord::of(&tokens.next(&r.id, r.status_token.as_ref())));
        true
    })
    .await?;
    let token = tokens.current(&written.id, written.status_token.as_ref()).ok_or_else(|| {
        StepError::Internal(format!("tenant {}: its status token was not recorded", written.id))
    })?;
    tracing::info!(tenant_id = %written.id, generation = token.generation(), "status token issued");
    Ok((written, token))
}

/// Revokes `tenant`'s status token: the next generation's hash is recorded
/// (the old token is refused from this write on) and the desired
/// generation raised, so the next converge relaunches the app with the new
/// token. The caller starts that converge.
pub async fn rotate_status_token(
    store: &dyn TenantStore,
    clock: &dyn Clock,
    tokens: &StatusTokens,
    tenant: &TenantId,
) -> Result<TenantRecord, StepError> {
    let rotated = update(store, clock, tenant, |r| {
        r.status_token = Some(StatusTokenRecord::of(&tokens.next(&r.id, r.status_token.as_ref())));
        r.generation += 1;
        true
    })
    .await?;
    let generation = rotated.status_token.as_ref().map(|t| t.generation);
    tracing::info!(tenant_id = %tenant, token_generation = generation, "status token rotated");
    Ok(rotated)
}
