//! What the checkout rooms' tests share: a fixed clock, local store and
//! Stripe, the stage's settings and a form.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::{ApiAnswer, CheckoutApi, CheckoutSettings};
use crate::adapters::local::{LocalStripe, LocalTenantStore};
use crate::clock::{Clock, FixedClock};
use crate::domain::Catalog;
use crate::ports::StripeGateway;
use crate::stripe::StripeMode;

pub(super) const NOW: i64 = 1_763_800_000;
pub(super) const ORIGIN: &str = "https://www.example.com";

pub(super) fn settings() -> CheckoutSettings {
    CheckoutSettings {
        mode: StripeMode::Test,
        success_url: "https://www.example.com/welcome?session={CHECKOUT_SESSION_ID}".into(),
        cancel_url: "https://www.example.com/pricing".into(),
        hold_seconds: 3600,
        hold_margin_seconds: super::HOLD_MARGIN_SECONDS,
        max_holds_per_email: super::DEFAULT_MAX_HOLDS,
        max_holds_per_ip: super::DEFAULT_MAX_HOLDS,
        requests_per_minute: super::DEFAULT_REQUESTS_PER_MINUTE,
        allowed_origins: vec![ORIGIN.into()],
    }
}

pub(super) struct Fixture {
    pub(super) api: CheckoutApi,
    pub(super) store: Arc<LocalTenantStore>,
    pub(super) stripe: Arc<LocalStripe>,
}

pub(super) fn fixture_with(stripe_gateway: Option<Arc<dyn StripeGateway>>) -> Fixture {
    fixture_at(NOW, stripe_gateway, settings())
}

pub(super) fn fixture_with_settings(
    stripe_gateway: Option<Arc<dyn StripeGateway>>,
    settings: CheckoutSettings,
) -> Fixture {
    fixture_at(NOW, stripe_gateway, settings)
}

/// A fixture whose clock says `now`, sharing `store` and `stripe` with
/// another (the same stage, later).
pub(super) fn fixture_later(earlier: &Fixture, now: i64) -> Fixture {
    let clock: Arc<dyn Clock> = Arc::new(FixedClock(now));
    let api = CheckoutApi::new(
        earlier.store.clone(),
        earlier.stripe.clone(),
        Catalog::embedded().unwrap(),
        settings(),
        clock,
    );
    Fixture { api, store: earlier.store.clone(), stripe: earlier.stripe.clone() }
}

fn fixture_at(
    now: i64,
    stripe_gateway: Option<Arc<dyn StripeGateway>>,
    settings: CheckoutSettings,
) -> Fixture {
    let clock: Arc<dyn Clock> = Arc::new(FixedClock(now));
    let store = Arc::new(LocalTenantStore::open(None, clock.clone()).unwrap());
    let stripe = Arc::new(LocalStripe::open(None, "http://127.0.0.1:8787", clock.clone()).unwrap());
    let gateway = stripe_gateway.unwrap_or_else(|| stripe.clone());
    let api = CheckoutApi::new(store.clone(), gateway, Catalog::embedded().unwrap(), settings, clock);
    Fixture { api, store, stripe }
}

pub(super) fn form(subdomain: &str, email: &str) -> Vec<u8> {
    json!({"plan": "pro", "billing": "annual", "subdomain": subdomain, "organization": "Acme Robotics", "email": email})
        .to_string()
        .into_bytes()
}

pub(super) fn body(answer: &ApiAnswer) -> Value {
    serde_json::from_str(&answer.body).unwrap()
}

pub(super) fn from_origin() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("origin", HeaderValue::from_static(ORIGIN));
    headers
}

/// A client address for `handle` and `checkout`.
pub(super) fn from(ip: &str) -> Option<std::net::IpAddr> {
    Some(ip.parse().unwrap())
}

/// Records a tenant on `name` in `store`, as a paid checkout would.
pub(super) async fn claim(store: &LocalTenantStore, name: &str) {
    use crate::domain::{Failure, Subdomain, TenantId, TenantRecord};
    use crate::ports::TenantStore;
    let failure = Failure { error: "none".into(), cause: "a stand-in record".into(), at: NOW };
    let record =
        TenantRecord::rejected(TenantId::parse("tnt_00000000000000000001").unwrap(), None, None, failure);
    store.record_signup(&Subdomain::parse(name).unwrap(), &record, None, NOW).await.unwrap();
}
