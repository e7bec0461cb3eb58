//! The tenant record: one item per tenant in the table.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ids::{CheckoutSessionId, TenantId};
use super::signup::CheckoutSignup;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TenantStatus {
    Provisioning,
    Active,
    PastDue,
    Suspended,
    Cancelled,
    Failed,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Provisioning => "PROVISIONING",
            TenantStatus::Active => "ACTIVE",
            TenantStatus::PastDue => "PAST_DUE",
            TenantStatus::Suspended => "SUSPENDED",
            TenantStatus::Cancelled => "CANCELLED",
            TenantStatus::Failed => "FAILED",
        }
    }
}

impl fmt::Display for TenantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What was made for a tenant outside the table, so that it can be found,
/// changed and removed again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantResources {
    pub service_arn: Option<String>,
    pub target_group_arn: Option<String>,
    pub listener_rule_arn: Option<String>,
    /// `{subdomain}.{domain}` once the record was requested.
    pub dns_name: Option<String>,
    pub dns_change_id: Option<String>,
}

/// Why a tenant is FAILED: the error name the workflow caught and its cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub error: String,
    pub cause: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub id: TenantId,
    /// Bumped by every write; writes are conditional on the version read.
    pub version: u64,
    pub status: TenantStatus,
    pub checkout_session: Option<CheckoutSessionId>,
    /// `None` only for a checkout whose metadata could not be used (FAILED).
    pub signup: Option<CheckoutSignup>,
    #[serde(default)]
    pub resources: TenantResources,
    /// PHC string (argon2id); the plaintext exists only in the welcome mail.
    pub admin_password_hash: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub activated_at: Option<i64>,
    pub provisioning_seconds: Option<i64>,
    pub failure: Option<Failure>,
    /// SES message id of the welcome mail, once sent.
    pub welcome_mail_id: Option<String>,
    /// `created` of the last Stripe event applied (DESIGN.md decision 4).
    pub last_event_created: i64,
    /// Stripe event ids applied to this tenant, oldest first.
    #[serde(default)]
    pub events: Vec<String>,
}

impl TenantRecord {
    /// A new tenant for a valid signup, PROVISIONING.
    pub fn provisioning(
        signup: CheckoutSignup,
        password_hash: String,
        event_id: &str,
        event_created: i64,
        now: i64,
    ) -> Self {
        TenantRecord {
            id: signup.tenant_id(),
            version: 1,
            status: TenantStatus::Provisioning,
            checkout_session: Some(signup.checkout_session.clone()),
            signup: Some(signup),
            resources: TenantResources::default(),
            admin_password_hash: Some(password_hash),
            created_at: now,
            updated_at: now,
            activated_at: None,
            provisioning_seconds: None,
            failure: None,
            welcome_mail_id: None,
            last_event_created: event_created,
            events: vec![event_id.to_owned()],
        }
    }

    /// The record of a checkout that could not become a tenant.
    pub fn rejected(
        id: TenantId,
        checkout_session: Option<CheckoutSessionId>,
        failure: Failure,
        event_id: &str,
        event_created: i64,
    ) -> Self {
        TenantRecord {
            id,
            version: 1,
            status: TenantStatus::Failed,
            checkout_session,
            signup: None,
            resources: TenantResources::default(),
            admin_password_hash: None,
            created_at: failure.at,
            updated_at: failure.at,
            activated_at: None,
            provisioning_seconds: None,
            failure: Some(failure),
            welcome_mail_id: None,
            last_event_created: event_created,
            events: vec![event_id.to_owned()],
        }
    }
}
