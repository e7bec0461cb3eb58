use std::sync::Arc;

use tenancy::adapters::aws;
use tenancy::adapters::stripe::StripeApi;
use tenancy::checkout::billing_link::{self, BillingLinks};
use tenancy::checkout::room::room_reserve;
use tenancy::checkout::{CheckoutApi, CheckoutSettings, lambda};
use tenancy::clock::SystemClock;
use tenancy::config::{Lookup, ProcessEnv, password_key, stripe_mode};
use tenancy::domain::Catalog;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tenancy::telemetry::init_json_logs();
    let mode = stripe_mode(&ProcessEnv)?;
    let settings = CheckoutSettings::from_lookup(&ProcessEnv, mode)?;
    let sdk = aws::sdk_config(None).await;
    let (store, secrets) = (aws::tenant_store(&sdk, &ProcessEnv)?, aws::secret_store(&sdk));
    let stripe = StripeApi::from_lookup(&ProcessEnv, mode, &secrets).await?;
    let key = password_key(&ProcessEnv, &secrets).await?;
    let links = BillingLinks::checker(key.clone(), Arc::new(SystemClock));
    let return_url = stripe.portal_return_url().to_owned();
    let catalog = Catalog::embedded()?;
    let room = Arc::new(aws::routing_capacity(&sdk, &ProcessEnv)?);
    // GET /status links to billing under BILLING_LINK_BASE when set (a
    // custom domain), else under the domain each request came to.
    let base = match ProcessEnv.get(billing_link::BILLING_LINK_BASE) {
        None => None,
        Some(_) => Some(billing_link::api_base(&ProcessEnv)?),
    };
    let api = CheckoutApi::new(Arc::new(store), Arc::new(stripe), catalog, settings, Arc::new(SystemClock))
        .with_billing_links(links, &return_url)
        .with_room_check(room, room_reserve(&ProcessEnv)?)
        .with_status(key, base.as_deref());
    lambda_http::run(lambda_http::service_fn(|request| lambda::handle(&api, request))).await
}
