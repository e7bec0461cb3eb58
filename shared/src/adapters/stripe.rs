//! Stripe adapters: the API client ([`StripeApi`]) and the static portal link.

pub mod api;

pub use api::{BILLING_PORTAL_RETURN_URL, STRIPE_API_BASE, StripeApi};

use async_trait::async_trait;

use crate::config::{ConfigError, Lookup, required};
use crate::domain::CustomerId;
use crate::ports::{BillingError, BillingPortal};

pub const BILLING_PORTAL_URL: &str = "BILLING_PORTAL_URL";

/// Stripe's no-code customer portal login link
/// (`https://billing.stripe.com/p/login/…`): the customer signs in with
/// their e-mail and updates their card. Needs no API key; [`StripeApi`]
/// makes a portal session per customer instead.
pub struct PortalLoginLink {
    url: String,
}

impl PortalLoginLink {
    pub fn from_lookup(env: &dyn Lookup) -> Result<Self, ConfigError> {
        let url = required(env, BILLING_PORTAL_URL)?.trim().to_owned();
        if url.starts_with("https://") && !url.contains(char::is_whitespace) {
            Ok(PortalLoginLink { url })
        } else {
            Err(ConfigError::Invalid { var: BILLING_PORTAL_URL, reason: "expected an https:// link".into() })
        }
    }
}

#[async_trait]
impl BillingPortal for PortalLoginLink {
    async fn portal_url(&self, _customer: &CustomerId) -> Result<String, BillingError> {
        Ok(self.url.clone())
    }
}
