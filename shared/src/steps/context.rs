//! What every step shares: its settings, reading and conditionally writing a
//! tenant, and sending a mail once.

use super::error::StepError;
use crate::clock::Clock;
use crate::config::TenantSettings;
use crate::domain::{Catalog, CheckoutSignup, TenantId, TenantRecord};
use crate::ports::{Mail, MailError, MailMarked, MailSlot, Mailer, StoreError, TenantStore};

/// How often a lost write race is retried inside a step before the step
/// reports Tenancy.Transient and the state machine retries it.
const WRITE_ATTEMPTS: u32 = 5;

/// A mail reservation older than this was left by a step that died between
/// reserving and sending: a later run sends it.
pub const MAIL_STALE_SECONDS: i64 = 300;

/// The settings every step reads.
pub struct StepContext<'a> {
    pub settings: &'a TenantSettings,
    pub catalog: &'a Catalog,
    pub clock: &'a dyn Clock,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MailReport {
    pub message_id: String,
    /// True when an earlier run had already sent it.
    pub already_sent: bool,
}

pub(crate) async fn load(store: &dyn TenantStore, id: &TenantId) -> Result<TenantRecord, StepError> {
    store.get_tenant(id).await?.ok_or_else(|| StepError::TenantNotFound(id.clone()))
}

pub(crate) fn signup_of(record: &TenantRecord) -> Result<&CheckoutSignup, StepError> {
    record
        .signup
        .as_ref()
        .ok_or_else(|| StepError::Internal(format!("tenant {} has no signup details", record.id)))
}

/// Read, change, write conditionally on the version read; a lost race reads
/// again. `change` returns false when there is nothing to write.
pub(crate) async fn update(
    store: &dyn TenantStore,
    clock: &dyn Clock,
    id: &TenantId,
    mut change: impl FnMut(&mut TenantRecord) -> bool,
) -> Result<TenantRecord, StepError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = load(store, id).await?;
        let mut next = current.next_version(clock.now_unix());
        if !change(&mut next) {
            return Ok(current);
        }
        match store.replace_tenant(&next).await {
            Ok(()) => return Ok(next),
            Err(StoreError::VersionConflict { .. }) if attempt < WRITE_ATTEMPTS => continue,
            Err(error) => return Err(error.into()),
        }
    }
}

/// Sends mail `key` about `tenant` at most once: reserved for `owner` (the
/// execution) before it is sent, marked sent after. SES takes no
/// idempotency key, so a send that succeeded but reported failure, retried,
/// is the one way a mail goes out twice.
pub(crate) async fn send_once(
    store: &dyn TenantStore,
    mailer: &dyn Mailer,
    clock: &dyn Clock,
    tenant: &TenantId,
    key: &str,
    owner: &str,
    mail: &Mail,
) -> Result<MailReport, StepError> {
    send_reserved(store, mailer, clock, tenant, key, owner, mail).await.map_err(|failure| match failure {
        SendFailure::Store(error) => error,
        SendFailure::Mail(error) => error.into(),
        SendFailure::Busy(reason) => StepError::Transient { what: "sending a mail", source: reason.into() },
    })
}

/// [`send_once`] for a mail that must not fail its step (compensation's,
/// money back's, an operator alert): a mail that could not be sent is
/// answered as why, for the step to record; only the table's errors are
/// the step's.
pub(crate) async fn send_best_effort(
    store: &dyn TenantStore,
    mailer: &dyn Mailer,
    clock: &dyn Clock,
    tenant: &TenantId,
    key: &str,
    owner: &str,
    mail: &Mail,
) -> Result<Result<MailReport, String>, StepError> {
    match send_reserved(store, mailer, clock, tenant, key, owner, mail).await {
        Ok(report) => Ok(Ok(report)),
        Err(SendFailure::Store(error)) => Err(error),
        Err(SendFailure::Mail(error)) => {
            let reason = crate::telemetry::error_chain(&error);
            tracing::warn!(tenant_id = %tenant, key, reason, "mail not sent");
            Ok(Err(reason))
        }
        Err(SendFailure::Busy(reason)) => Ok(Err(reason)),
    }
}

enum SendFailure {
    Store(StepError),
    Mail(MailError),
    /// Another execution holds the mail's reservation.
    Busy(String),
}

async fn send_reserved(
    store: &dyn TenantStore,
    mailer: &dyn Mailer,
    clock: &dyn Clock,
    tenant: &TenantId,
    key: &str,
    owner: &str,
    mail: &Mail,
) -> Result<MailReport, SendFailure> {
    let slot = store
        .reserve_mail(tenant, key, owner, clock.now_unix(), MAIL_STALE_SECONDS)
        .await
        .map_err(|e| SendFailure::Store(e.into()))?;
    match slot {
        MailSlot::Sent { message_id } => Ok(MailReport { message_id, already_sent: true }),
        MailSlot::HeldBy { owner: other, since } => Err(SendFailure::Busy(format!(
            "mail {key} of tenant {tenant} is being sent by {other} since {since}"
        ))),
        MailSlot::Reserved => {
            let message_id = mailer.send(mail).await.map_err(SendFailure::Mail)?;
            let marked = store
                .mail_sent(tenant, key, owner, &message_id, clock.now_unix())
                .await
                .map_err(|e| SendFailure::Store(e.into()))?;
            if let MailMarked::SentBefore { message_id: first } = marked {
                // A reservation taken over from an owner that was not dead
                // after all: reported, the first record kept.
                tracing::warn!(tenant_id = %tenant, key, first, second = %message_id, "mail sent twice");
            }
            Ok(MailReport { message_id, already_sent: false })
        }
    }
}
