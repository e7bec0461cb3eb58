use async_trait::async_trait;

use crate::domain::CustomerId;
use crate::ports::{BillingError, BillingPortal};

/// Stripe's billing portal on a laptop: a recognisable link per customer on
/// the local server (there is no Stripe to send the customer to).
pub struct LocalBillingPortal {
    base_url: String,
}

impl LocalBillingPortal {
    pub fn new(base_url: &str) -> Self {
        LocalBillingPortal { base_url: base_url.trim_end_matches('/').to_owned() }
    }
}

#[async_trait]
impl BillingPortal for LocalBillingPortal {
    async fn portal_url(&self, customer: &CustomerId) -> Result<String, BillingError> {
        Ok(format!("{}/billing-portal/{customer}", self.base_url))
    }
}
