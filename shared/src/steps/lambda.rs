//! Lambda glue for a step: JSON in, JSON out, and the error's name as
//! Lambda's `errorType`, which is what Retry/Catch match.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use tracing::Instrument;

use super::StepError;
use crate::telemetry::error_chain;

impl From<StepError> for Diagnostic {
    fn from(error: StepError) -> Diagnostic {
        Diagnostic { error_type: error.error_name().to_owned(), error_message: error_chain(&error) }
    }
}

/// Serves one step. `step` gets the task's input as JSON.
pub async fn serve<F>(step_name: super::StepName, step: F) -> Result<(), lambda_runtime::Error>
where
    F: AsyncFn(Value) -> Result<Value, StepError>,
{
    let step = &step;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        // Tasks pass `$$.Execution.Name` (the Stripe event id) as event_id
        // and the tenant id where known, so every log line carries them.
        let span = tracing::info_span!(
            "step",
            step = step_name.as_str(),
            event_id = event.payload.get("event_id").and_then(serde_json::Value::as_str).unwrap_or_default(),
            tenant_id =
                event.payload.get("tenant_id").and_then(serde_json::Value::as_str).unwrap_or_default(),
        );
        let work = async move {
            let result = step(event.payload).await;
            if let Err(error) = &result {
                tracing::warn!(error_type = error.error_name(), error = %error_chain(error), "step failed");
            }
            result.map_err(Diagnostic::from)
        };
        work.instrument(span)
    }))
    .await
}

/// What every step's `main` loads once at cold start.
pub struct StepShell {
    mode: crate::stripe::StripeMode,
    sdk: aws_config::SdkConfig,
    settings: crate::config::TenantSettings,
    catalog: crate::domain::Catalog,
    clock: crate::clock::SystemClock,
}

impl StepShell {
    /// JSON logs, the SDK configuration, the shared settings and the catalog.
    pub async fn load() -> Result<StepShell, lambda_runtime::Error> {
        crate::telemetry::init_json_logs();
        let settings = crate::config::TenantSettings::from_lookup(&crate::config::ProcessEnv)?;
        let mode = crate::config::stripe_mode(&crate::config::ProcessEnv)?;
        let catalog = crate::domain::Catalog::embedded()?;
        let sdk = crate::adapters::aws::sdk_config(None).await;
        Ok(StepShell { mode, sdk, settings, catalog, clock: crate::clock::SystemClock })
    }

    /// The stage's Stripe mode.
    pub fn mode(&self) -> crate::stripe::StripeMode {
        self.mode
    }

    /// The Stripe API client, its key from the secret store and of this
    /// stage's mode only.
    pub async fn stripe(&self) -> Result<crate::adapters::stripe::StripeApi, crate::config::ConfigError> {
        let store = crate::adapters::aws::secret_store(&self.sdk);
        crate::adapters::stripe::StripeApi::from_lookup(&crate::config::ProcessEnv, self.mode, &store).await
    }

    pub fn sdk(&self) -> &aws_config::SdkConfig {
        &self.sdk
    }

    pub fn context(&self) -> super::context::StepContext<'_> {
        super::context::StepContext { settings: &self.settings, catalog: &self.catalog, clock: &self.clock }
    }

    /// The AWS adapters a converge acts through (the converge and clean-up
    /// steps), read from the environment.
    pub async fn converge_adapters(&self) -> Result<ConvergeAdapters, crate::config::ConfigError> {
        use crate::adapters::aws;
        let env = &crate::config::ProcessEnv;
        let key = self.password_key().await?;
        Ok(ConvergeAdapters {
            store: aws::tenant_store(&self.sdk, env)?,
            launcher: aws::tenant_launcher(&self.sdk, env)?,
            dns: aws::dns_publisher(&self.sdk, env)?,
            mailer: aws::mailer(&self.sdk, env)?,
            portal: crate::checkout::billing_link::BillingLinks::from_lookup(
                env,
                key.clone(),
                std::sync::Arc::new(crate::clock::SystemClock),
            )?,
            status: crate::checkout::status::StatusTokens::from_lookup(env, key)?,
        })
    }

    /// The apps' status tokens: the tenant key from the secret store, the
    /// checkout API's URL from `BILLING_LINK_BASE`.
    pub async fn status_tokens(
        &self,
    ) -> Result<crate::checkout::status::StatusTokens, crate::config::ConfigError> {
        crate::checkout::status::StatusTokens::from_lookup(
            &crate::config::ProcessEnv,
            self.password_key().await?,
        )
    }

    /// The admin password key, from the secret store named in the environment.
    pub async fn password_key(
        &self,
    ) -> Result<crate::domain::password::PasswordKey, crate::config::ConfigError> {
        let store = crate::adapters::aws::secret_store(&self.sdk);
        crate::config::password_key(&crate::config::ProcessEnv, &store).await
    }
}

/// The AWS adapters behind [`super::converge::ConvergePorts`].
pub struct ConvergeAdapters {
    pub store: crate::adapters::aws::DynamoTenantStore,
    pub launcher: crate::adapters::aws::EcsTenantLauncher,
    pub dns: crate::adapters::aws::Route53Dns,
    pub mailer: crate::adapters::aws::SesMailer,
    /// The mails' card links (ours: a portal session would expire before the mail is read).
    pub portal: crate::checkout::billing_link::BillingLinks,
    pub status: crate::checkout::status::StatusTokens,
}

impl ConvergeAdapters {
    pub fn ports(&self) -> super::converge::ConvergePorts<'_> {
        super::converge::ConvergePorts {
            store: &self.store,
            launcher: &self.launcher,
            dns: &self.dns,
            mailer: &self.mailer,
            portal: &self.portal,
            status: &self.status,
        }
    }
}
