//! Stripe adapters.

use async_trait::async_trait;

use crate::config::{ConfigError, Lookup, required};
use crate::domain::CustomerId;
use crate::ports::{BillingError, BillingPortal};

pub const BILLING_PORTAL_URL: &str = "BILLING_PORTAL_URL";

/// Stripe's no-code customer portal login link
/// (`https://billing.stripe.com/p/login/…`): the customer signs in with
/// their e-mail and updates their card. Needs no API key; a per-customer
/// portal session made through the API comes with the Stripe client.
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
