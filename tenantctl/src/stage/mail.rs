//! `tenantctl --stage … mail resend KIND TENANT`: a mail that could not be
//! sent (its reason is on the tenant, and was mailed to the operator) sent
//! again once the cause is fixed, by the same step code the workflow runs,
//! through the stage's own table, SES identity and tenant key.
//! `mail forward MESSAGE RECIPIENT…`: a received message whose forwarding
//! failed (the alarm topic got SES's event) forwarded by the forwarder's
//! own code from the stage's bucket; what went out before is not sent again.

use std::sync::Arc;

use tenancy::adapters::aws::sdk::sesv2;
use tenancy::adapters::aws::{S3ReceivedMail, SesMailer};
use tenancy::clock::SystemClock;
use tenancy::config::{TENANT_PASSWORD_KEY_PARAM, TenantDomain, TenantSettings};
use tenancy::domain::{Catalog, EmailAddress, ReceivedMessageId};
use tenancy::inbound::address::{TENANT_MAIL_DOMAIN, TENANT_MAIL_PATTERN, TenantMailAddresses};
use tenancy::inbound::forward::{Delivery, Forwarder, InboundNotice, Scan};
use tenancy::ports::SecretStore;
use tenancy::steps::context::StepContext;
use tenancy::steps::provision::{WelcomeReport, resend_welcome_mail};

use super::tenants::{TenantsError, find, store};
use super::{Stage, StageError};

#[derive(Debug, thiserror::Error)]
pub enum MailCommandError {
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    Tenants(#[from] TenantsError),
    #[error("unknown mail `{0}`: the one that can be resent is `welcome`")]
    UnknownKind(String),
    #[error("the stack's {parameter} is not usable: {reason}")]
    Setting { parameter: &'static str, reason: String },
    #[error("not sent: {0}")]
    Step(String),
    #[error("not forwarded: {0}")]
    Forward(String),
}

/// The kinds of mail an operator resends.
pub const KINDS: [&str; 1] = ["welcome"];

pub async fn resend(
    stage: &Stage,
    secrets: &dyn SecretStore,
    kind: &str,
    tenant: &str,
) -> Result<WelcomeReport, MailCommandError> {
    if kind != "welcome" {
        return Err(MailCommandError::UnknownKind(kind.to_owned()));
    }
    let setting = |parameter: &'static str, reason: String| MailCommandError::Setting { parameter, reason };
    let domain =
        TenantDomain::parse(stage.parameter("TenantDomain")?).map_err(|e| setting("TenantDomain", e))?;
    let operator_email = EmailAddress::parse(stage.parameter("OperatorEmail")?)
        .map_err(|e| setting("OperatorEmail", e.to_string()))?;
    let mailer = stage_mailer(stage)?;
    let key_parameter = stage.parameter("TenantPasswordKeyParameter")?.to_owned();
    let env = move |var: &str| (var == TENANT_PASSWORD_KEY_PARAM).then(|| key_parameter.clone());
    let password_key = tenancy::config::password_key(&env, secrets)
        .await
        .map_err(|e| setting("TenantPasswordKeyParameter", tenancy::telemetry::error_chain(&e)))?;
    let catalog = Catalog::embedded().map_err(|e| setting("StripeMode", e.to_string()))?;
    // The grace period plays no part in a welcome mail; the address does.
    let mail = mail_addresses(stage)?;
    let settings =
        TenantSettings { domain, operator_email, subdomain_grace: std::time::Duration::ZERO, mail };
    let clock = Arc::new(SystemClock);
    let ctx = StepContext { settings: &settings, catalog: &catalog, clock: clock.as_ref() };
    let store = store(stage)?;
    let record = find(&store, tenant).await?;
    resend_welcome_mail(&store, &mailer, &password_key, &ctx, &record.id)
        .await
        .map_err(|e| MailCommandError::Step(tenancy::telemetry::error_chain(&e)))
}

/// The stage's mailer: from `MailSender`, with `SesConfigurationSet`.
fn stage_mailer(stage: &Stage) -> Result<SesMailer, MailCommandError> {
    let sender = EmailAddress::parse(stage.parameter("MailSender")?)
        .map_err(|e| MailCommandError::Setting { parameter: "MailSender", reason: e.to_string() })?;
    let configuration_set =
        stage.parameter("SesConfigurationSet").ok().filter(|s| !s.is_empty()).map(str::to_owned);
    Ok(SesMailer::new(sesv2::Client::new(&stage.sdk), sender, configuration_set))
}

/// The stage's tenant mail addresses, read as the functions read them from
/// the variables the template passes these parameters to; `None` when
/// `TenantMailDomain` is empty (or the stack predates it).
fn mail_addresses(stage: &Stage) -> Result<Option<TenantMailAddresses>, MailCommandError> {
    let env = |var: &str| {
        let parameter = match var {
            TENANT_MAIL_DOMAIN => "TenantMailDomain",
            TENANT_MAIL_PATTERN => "TenantMailPattern",
            _ => return None,
        };
        stage.parameter(parameter).ok().map(str::to_owned)
    };
    TenantMailAddresses::optional_from_lookup(&env)
        .map_err(|e| MailCommandError::Setting { parameter: "TenantMailDomain", reason: e.to_string() })
}

/// Forwards the stored message `message_id`, as SES's event for
/// `recipients` would have, through the stage's table, bucket and sender.
pub async fn forward(
    stage: &Stage,
    message_id: &str,
    recipients: &[String],
) -> Result<Vec<Delivery>, MailCommandError> {
    let setting = |parameter: &'static str, reason: String| MailCommandError::Setting { parameter, reason };
    let message_id = ReceivedMessageId::parse(message_id)
        .map_err(|e| MailCommandError::Forward(format!("`{message_id}`: {e}")))?;
    let addresses = mail_addresses(stage)?.ok_or_else(|| {
        setting("TenantMailDomain", "is empty: the stage's tenants have no mail addresses".into())
    })?;
    let mailer = stage_mailer(stage)?;
    let bucket = stage.output("InboundMailBucketName")?;
    let received = S3ReceivedMail::new(
        tenancy::adapters::aws::s3_client(&stage.sdk),
        bucket,
        tenancy::adapters::aws::s3::DEFAULT_PREFIX,
    )
    .map_err(|e| setting("InboundMailBucketName", e.to_string()))?;
    let store = store(stage)?;
    let forwarder = Forwarder {
        store: &store,
        received: &received,
        mailer: &mailer,
        clock: &SystemClock,
        addresses: &addresses,
        sender: mailer.sender(),
    };
    let notice = InboundNotice { message_id, recipients: recipients.to_vec(), scan: Scan::NotFlagged };
    forwarder
        .forward(&notice)
        .await
        .map_err(|e| MailCommandError::Forward(tenancy::telemetry::error_chain(&e)))
}
