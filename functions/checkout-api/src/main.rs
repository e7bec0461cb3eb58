use std::sync::Arc;

use tenancy::adapters::aws;
use tenancy::adapters::stripe::StripeApi;
use tenancy::checkout::{CheckoutApi, CheckoutSettings, lambda};
use tenancy::clock::SystemClock;
use tenancy::config::{ProcessEnv, stripe_mode};
use tenancy::domain::Catalog;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tenancy::telemetry::init_json_logs();
    let mode = stripe_mode(&ProcessEnv)?;
    let settings = CheckoutSettings::from_lookup(&ProcessEnv, mode)?;
    let sdk = aws::sdk_config(None).await;
    let store = aws::tenant_store(&sdk, &ProcessEnv)?;
    let stripe = StripeApi::from_lookup(&ProcessEnv, mode, &aws::secret_store(&sdk)).await?;
    let api = CheckoutApi::new(
        Arc::new(store),
        Arc::new(stripe),
        Catalog::for_stage(mode)?,
        settings,
        Arc::new(SystemClock),
    )?;
    lambda_http::run(lambda_http::service_fn(|request| lambda::handle(&api, request))).await
}
