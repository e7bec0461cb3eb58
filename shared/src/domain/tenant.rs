//! The tenant record: one item per tenant in the table.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::catalog::{BillingPeriod, Plan};
use super::desired::DesiredTenant;
use super::ids::{CheckoutSessionId, SubscriptionId, TenantId};
use super::signup::CheckoutSignup;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TenantStatus {
    /// Checked out with a delayed payment method: the name is held, nothing
    /// is made until Stripe says the money arrived.
    AwaitingPayment,
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
            TenantStatus::AwaitingPayment => "AWAITING_PAYMENT",
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
    /// The listener of the pool the tenant's rule is on.
    pub listener_arn: Option<String>,
    /// That listener's load balancer, where the DNS alias must point.
    pub load_balancer: Option<crate::ports::AliasTarget>,
    /// `{subdomain}.{domain}` once the record was requested.
    pub dns_name: Option<String>,
    /// The load balancer the requested record points at.
    pub dns_target: Option<crate::ports::AliasTarget>,
    pub dns_change_id: Option<String>,
}

impl TenantResources {
    /// Records what a launch made and where it placed the tenant.
    pub fn launched(&mut self, launched: &crate::ports::LaunchedTenant) {
        self.service_arn = Some(launched.service_arn.clone());
        self.target_group_arn = Some(launched.target_group_arn.clone());
        self.listener_rule_arn = Some(launched.listener_rule_arn.clone());
        self.listener_arn = Some(launched.listener_arn.clone());
        self.load_balancer = Some(launched.load_balancer.clone());
    }

    /// Whether the record `host` must be (re)published: never asked for, or
    /// asked for another name or another load balancer than the one
    /// routing the tenant now.
    pub fn dns_stale(&self, host: &str) -> bool {
        self.dns_name.as_deref() != Some(host) || self.dns_target != self.load_balancer
    }
}

/// Why a tenant is FAILED: the error name the workflow caught and its cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub error: String,
    pub cause: String,
    pub at: i64,
}

/// Money given back to a customer charged for a tenant they do not have
/// (docs/architecture.md decision 7): the subscription cancelled and its
/// payments refunded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoneyBackRecord {
    /// When the subscription was found cancelled (by us, or before).
    pub subscription_cancelled_at: Option<i64>,
    pub refunds: Vec<crate::ports::Refund>,
    /// When both were done.
    pub completed_at: Option<i64>,
    /// Why Stripe would not do it: the operator's to finish by hand.
    pub failed: Option<String>,
}

impl MoneyBackRecord {
    /// What was refunded, in minor units per currency (`50.00 CAD`), for mails.
    pub fn refunded_text(&self) -> String {
        let mut by_currency: std::collections::BTreeMap<&str, i64> = Default::default();
        for refund in &self.refunds {
            *by_currency.entry(refund.currency.as_str()).or_default() += refund.amount;
        }
        let parts: Vec<String> = by_currency
            .iter()
            .map(|(currency, amount)| {
                format!("{}.{:02} {}", amount / 100, amount % 100, currency.to_ascii_uppercase())
            })
            .collect();
        if parts.is_empty() { "nothing (no payment was taken)".to_owned() } else { parts.join(" + ") }
    }
}

/// A mail a converge decided on and has not yet sent (the record's outbox,
/// drained by the converge that wrote it or the next one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingMail {
    /// Sent at most once per key (`suspended:g7`).
    pub key: String,
    pub kind: LifecycleMail,
}

/// The mails that follow a transition of the observed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleMail {
    PlanChanged,
    PastDue,
    Suspended,
    Resumed,
    Goodbye,
    /// The free trial ends in three days.
    TrialEnding,
}

impl LifecycleMail {
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleMail::PlanChanged => "plan_changed",
            LifecycleMail::PastDue => "past_due",
            LifecycleMail::Suspended => "suspended",
            LifecycleMail::Resumed => "resumed",
            LifecycleMail::Goodbye => "goodbye",
            LifecycleMail::TrialEnding => "trial_ending",
        }
    }
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
    /// The plan the subscription is on now (the signup's until it changes).
    pub plan: Option<Plan>,
    pub billing: Option<BillingPeriod>,
    #[serde(default)]
    pub cancelled_at: Option<i64>,
    /// When the subdomain was released after cancellation's grace period.
    #[serde(default)]
    pub subdomain_released_at: Option<i64>,
    #[serde(default)]
    pub resources: TenantResources,
    /// PHC string (argon2id); the plaintext exists only in the welcome mail.
    pub admin_password_hash: Option<String>,
    /// The password key version it was derived under (`None`: from before
    /// versions, the first), so the welcome mail derives the same password
    /// after the key was rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_password_key_version: Option<String>,
    /// The app's status token, as its hash (`GET /status`); `None` for a
    /// tenant recorded before status tokens, until it is next converged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_token: Option<super::status_token::StatusTokenRecord>,
    pub created_at: i64,
    pub updated_at: i64,
    pub activated_at: Option<i64>,
    pub provisioning_seconds: Option<i64>,
    pub failure: Option<Failure>,
    /// What Stripe says the tenant should be, at [`Self::generation`]
    /// (docs/architecture.md decision 4); `None` for a checkout that never became a
    /// tenant. The plan, status and resources above are what the
    /// infrastructure was last made to match.
    pub desired: Option<DesiredTenant>,
    /// Rises by one each time the desired state changes (or the status
    /// token is rotated: the app must be relaunched with the new one).
    pub generation: u64,
    /// The generation the infrastructure last matched.
    #[serde(default)]
    pub reached_generation: u64,
    /// Transition mails decided and not yet sent.
    #[serde(default)]
    pub outbox: Vec<PendingMail>,
    /// The subscription of a checkout that never became a tenant
    /// (rejected), so its later events find this record and its money can
    /// be given back; a tenant's own is in `signup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_subscription: Option<SubscriptionId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub money_back: Option<MoneyBackRecord>,
    /// The trial end (Unix seconds) whose reminder was put in the outbox,
    /// so it is decided once however many converges run in its window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_reminded_for: Option<i64>,
    /// Mails that could not be sent, by key (`welcome`), until one is.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub unsent_mails: std::collections::BTreeMap<String, UnsentMail>,
}

/// Why a mail could not be sent, for the operator (who can resend it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsentMail {
    /// The mail service's refusal (`MessageRejected: …`).
    pub reason: String,
    pub at: i64,
}

impl TenantRecord {
    /// The same record, ready to be written as the next version.
    pub fn next_version(&self, now: i64) -> TenantRecord {
        let mut next = self.clone();
        next.version += 1;
        next.updated_at = now;
        next
    }

    /// The Stripe subscription this record is about, tenant or not.
    pub fn subscription(&self) -> Option<&SubscriptionId> {
        self.signup.as_ref().map(|s| &s.subscription).or(self.rejected_subscription.as_ref())
    }

    /// A new tenant for a valid signup, PROVISIONING.
    pub fn provisioning(signup: CheckoutSignup, password_hash: String, now: i64) -> Self {
        let desired = DesiredTenant::from_checkout(signup.plan.clone(), signup.billing);
        let status =
            if signup.awaiting_payment { TenantStatus::AwaitingPayment } else { TenantStatus::Provisioning };
        let mut record = Self::first(signup.tenant_id(), status, Some(desired), now);
        record.checkout_session = Some(signup.checkout_session.clone());
        record.plan = Some(signup.plan.clone());
        record.billing = Some(signup.billing);
        record.admin_password_hash = Some(password_hash);
        record.signup = Some(signup);
        record
    }

    /// The record of a checkout that could not become a tenant.
    pub fn rejected(
        id: TenantId,
        checkout_session: Option<CheckoutSessionId>,
        subscription: Option<SubscriptionId>,
        failure: Failure,
    ) -> Self {
        let mut record = Self::first(id, TenantStatus::Failed, None, failure.at);
        record.checkout_session = checkout_session;
        record.rejected_subscription = subscription;
        record.failure = Some(failure);
        record
    }

    /// Version 1 of a record made by a checkout event.
    fn first(id: TenantId, status: TenantStatus, desired: Option<DesiredTenant>, now: i64) -> Self {
        TenantRecord {
            id,
            version: 1,
            status,
            checkout_session: None,
            signup: None,
            plan: None,
            billing: None,
            cancelled_at: None,
            subdomain_released_at: None,
            resources: TenantResources::default(),
            admin_password_hash: None,
            admin_password_key_version: None,
            status_token: None,
            created_at: now,
            updated_at: now,
            activated_at: None,
            provisioning_seconds: None,
            failure: None,
            desired,
            generation: 1,
            reached_generation: 0,
            outbox: Vec::new(),
            rejected_subscription: None,
            money_back: None,
            trial_reminded_for: None,
            unsent_mails: Default::default(),
        }
    }
}
