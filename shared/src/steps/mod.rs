//! The workflow's steps. Each Lambda runs one of them; the local runner runs
//! them all in-process, by the same names.

pub mod cleanup;
pub mod context;
pub mod converge;
pub mod error;
pub mod lambda;
pub mod lifecycle;
pub mod mails;
pub mod money_back;
pub mod provision;
pub mod status_token;

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use error::StepError;

use crate::checkout::status::StatusTokens;
use crate::clock::Clock;
use crate::config::TenantSettings;
use crate::domain::Catalog;
use crate::domain::password::PasswordKey;
use crate::ports::{
    BillingPortal, DnsPublisher, Mailer, MoneyBack, SubscriptionSource, TenantLauncher, TenantStore,
};
use context::StepContext;
use converge::ConvergePorts;

/// Every step, by the name its function and binary carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepName {
    RecordSignup,
    LaunchTenant,
    CheckTenantHealth,
    PublishDns,
    CheckDns,
    SendWelcomeMail,
    CompensateProvision,
    RejectSignup,
    GiveMoneyBack,
    ApplySubscription,
    ConvergeTenant,
    ReleaseSubdomain,
    ReportToOperator,
    CleanUpExecution,
}

impl StepName {
    pub const ALL: [StepName; 14] = [
        StepName::RecordSignup,
        StepName::LaunchTenant,
        StepName::CheckTenantHealth,
        StepName::PublishDns,
        StepName::CheckDns,
        StepName::SendWelcomeMail,
        StepName::CompensateProvision,
        StepName::RejectSignup,
        StepName::GiveMoneyBack,
        StepName::ApplySubscription,
        StepName::ConvergeTenant,
        StepName::ReleaseSubdomain,
        StepName::ReportToOperator,
        StepName::CleanUpExecution,
    ];

    /// The function's name (`record-signup`), also its binary's name.
    pub fn as_str(self) -> &'static str {
        match self {
            StepName::RecordSignup => "record-signup",
            StepName::LaunchTenant => "launch-tenant",
            StepName::CheckTenantHealth => "check-tenant-health",
            StepName::PublishDns => "publish-dns",
            StepName::CheckDns => "check-dns",
            StepName::SendWelcomeMail => "send-welcome-mail",
            StepName::CompensateProvision => "compensate-provision",
            StepName::RejectSignup => "reject-signup",
            StepName::GiveMoneyBack => "give-money-back",
            StepName::ApplySubscription => "apply-subscription",
            StepName::ConvergeTenant => "converge-tenant",
            StepName::ReleaseSubdomain => "release-subdomain",
            StepName::ReportToOperator => "report-to-operator",
            StepName::CleanUpExecution => "clean-up-execution",
        }
    }

    /// The `${…Arn}` substitution the state machine files use for it.
    pub fn substitution(self) -> &'static str {
        match self {
            StepName::RecordSignup => "RecordSignupFunctionArn",
            StepName::LaunchTenant => "LaunchTenantFunctionArn",
            StepName::CheckTenantHealth => "CheckTenantHealthFunctionArn",
            StepName::PublishDns => "PublishDnsFunctionArn",
            StepName::CheckDns => "CheckDnsFunctionArn",
            StepName::SendWelcomeMail => "SendWelcomeMailFunctionArn",
            StepName::CompensateProvision => "CompensateProvisionFunctionArn",
            StepName::RejectSignup => "RejectSignupFunctionArn",
            StepName::GiveMoneyBack => "GiveMoneyBackFunctionArn",
            StepName::ApplySubscription => "ApplySubscriptionFunctionArn",
            StepName::ConvergeTenant => "ConvergeTenantFunctionArn",
            StepName::ReleaseSubdomain => "ReleaseSubdomainFunctionArn",
            StepName::ReportToOperator => "ReportToOperatorFunctionArn",
            StepName::CleanUpExecution => "CleanUpExecutionFunctionArn",
        }
    }

    pub fn from_name(name: &str) -> Option<StepName> {
        StepName::ALL.into_iter().find(|step| step.as_str() == name)
    }
}

/// Runs `step` on a JSON input and returns its JSON output: the contract of
/// a Lambda task. An input the step cannot read is `Tenancy.BadInput`.
pub async fn call_json<I, O, F>(input: Value, step: F) -> Result<Value, StepError>
where
    I: DeserializeOwned,
    O: Serialize,
    F: AsyncFnOnce(I) -> Result<O, StepError>,
{
    let input: I = serde_json::from_value(input).map_err(|e| StepError::BadInput(e.to_string()))?;
    let output = step(input).await?;
    serde_json::to_value(output).map_err(|e| StepError::Internal(e.to_string()))
}

/// Everything the steps use, for running them in one process (local runs).
pub struct WorkflowSteps {
    pub store: Arc<dyn TenantStore>,
    pub launcher: Arc<dyn TenantLauncher>,
    pub dns: Arc<dyn DnsPublisher>,
    pub mailer: Arc<dyn Mailer>,
    pub billing: Arc<dyn BillingPortal>,
    pub stripe: Arc<dyn SubscriptionSource>,
    /// Stripe's writes for money back (cancel, refund).
    pub money_back: Arc<dyn MoneyBack>,
    pub clock: Arc<dyn Clock>,
    pub settings: TenantSettings,
    pub catalog: Catalog,
    pub password_key: PasswordKey,
    /// The apps' status tokens and the URL they are presented at.
    pub status: StatusTokens,
}

impl WorkflowSteps {
    pub fn context(&self) -> StepContext<'_> {
        StepContext { settings: &self.settings, catalog: &self.catalog, clock: self.clock.as_ref() }
    }

    fn converge_ports(&self) -> ConvergePorts<'_> {
        ConvergePorts {
            store: self.store.as_ref(),
            launcher: self.launcher.as_ref(),
            dns: self.dns.as_ref(),
            mailer: self.mailer.as_ref(),
            portal: self.billing.as_ref(),
            status: &self.status,
        }
    }

    /// Runs one step, as its Lambda would.
    pub async fn invoke(&self, step: StepName, input: Value) -> Result<Value, StepError> {
        let ctx = self.context();
        let (store, launcher, dns, mailer) =
            (self.store.as_ref(), self.launcher.as_ref(), self.dns.as_ref(), self.mailer.as_ref());
        let key = &self.password_key;
        match step {
            StepName::RecordSignup => {
                call_json(input, async |i| provision::record_signup(store, key, &ctx, i).await).await
            }
            StepName::LaunchTenant => {
                let status = &self.status;
                call_json(input, async |i| provision::launch_tenant(store, launcher, status, &ctx, i).await)
                    .await
            }
            StepName::CheckTenantHealth => {
                call_json(input, async |i| provision::check_tenant_health(launcher, i).await).await
            }
            StepName::PublishDns => {
                call_json(input, async |i| provision::publish_dns(store, dns, &ctx, i).await).await
            }
            StepName::CheckDns => call_json(input, async |i| provision::check_dns(dns, i).await).await,
            StepName::SendWelcomeMail => {
                call_json(input, async |i| provision::send_welcome_mail(store, mailer, key, &ctx, i).await)
                    .await
            }
            StepName::CompensateProvision => {
                call_json(input, async |i| provision::compensate(store, launcher, dns, mailer, &ctx, i).await)
                    .await
            }
            StepName::RejectSignup => {
                call_json(input, async |i| provision::reject_signup(store, mailer, &ctx, i).await).await
            }
            StepName::GiveMoneyBack => {
                let stripe = self.money_back.as_ref();
                call_json(input, async |i| money_back::give_money_back(store, stripe, mailer, &ctx, i).await)
                    .await
            }
            StepName::ApplySubscription => {
                let stripe = self.stripe.as_ref();
                call_json(input, async |i| lifecycle::apply_subscription(store, stripe, &ctx, i).await).await
            }
            StepName::ConvergeTenant => {
                let ports = self.converge_ports();
                call_json(input, async |i| converge::converge_tenant(&ports, &ctx, i).await).await
            }
            StepName::ReleaseSubdomain => {
                call_json(input, async |i| lifecycle::release_subdomain(store, &ctx, i).await).await
            }
            StepName::ReportToOperator => {
                call_json(input, async |i| lifecycle::report_to_operator(store, mailer, &ctx, i).await).await
            }
            StepName::CleanUpExecution => {
                let ports = self.converge_ports();
                call_json(input, async |i| cleanup::clean_up_stopped_execution(&ports, &ctx, i).await).await
            }
        }
    }
}
