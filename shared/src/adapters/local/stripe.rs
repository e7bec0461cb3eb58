use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::persisted::Persisted;
use crate::clock::Clock;
use crate::domain::CustomerId;
use crate::ports::{CheckoutSessionRequest, CreatedSession, StripeApiError, StripeGateway};

/// A Checkout Session as the local Stripe keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalCheckoutSession {
    pub id: String,
    pub url: String,
    pub idempotency_key: String,
    pub price_id: String,
    pub customer_email: String,
    pub metadata: BTreeMap<String, String>,
    pub success_url: String,
    pub cancel_url: String,
    pub expires_at: Option<i64>,
    pub created: i64,
    /// `open`, then `complete` once paid.
    pub status: String,
    pub customer: Option<String>,
    pub subscription: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    sessions: Vec<LocalCheckoutSession>,
}

/// Stripe on a laptop: Checkout Sessions that can be "paid", producing the
/// `checkout.session.completed` event Stripe would send. Idempotency keys
/// behave like Stripe's: the same key returns the same session, and the same
/// key with different parameters is refused.
pub struct LocalStripe {
    account: Persisted<Account>,
    base_url: String,
    clock: Arc<dyn Clock>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayError {
    #[error("no checkout session {0}")]
    NoSuchSession(String),
    #[error("checkout session {0} has expired")]
    Expired(String),
    #[error("local Stripe state could not be saved: {0}")]
    Io(String),
}

impl LocalStripe {
    pub fn open(dir: Option<&Path>, base_url: &str, clock: Arc<dyn Clock>) -> std::io::Result<Self> {
        Ok(LocalStripe {
            account: Persisted::open(dir, "stripe.json")?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            clock,
        })
    }

    pub fn sessions(&self) -> Vec<LocalCheckoutSession> {
        self.account.read(|a| a.sessions.clone())
    }

    /// The customer pays: the session completes (once) and the event Stripe
    /// would deliver for it is returned, ready to be signed and posted.
    pub fn pay(&self, session_id: &str) -> Result<Value, PayError> {
        let now = self.clock.now_unix();
        let session = self
            .account
            .update(|a| {
                let count = a.sessions.len();
                let session = a
                    .sessions
                    .iter_mut()
                    .find(|s| s.id == session_id)
                    .ok_or_else(|| PayError::NoSuchSession(session_id.to_owned()))?;
                if session.status == "open" {
                    if session.expires_at.is_some_and(|at| at < now) {
                        return Err(PayError::Expired(session_id.to_owned()));
                    }
                    session.status = "complete".into();
                    session.customer = Some(format!("cus_local{count:06}"));
                    session.subscription = Some(format!("sub_local{count:06}"));
                }
                Ok(session.clone())
            })
            .map_err(|e| PayError::Io(e.to_string()))??;
        Ok(completed_event(&session, now))
    }
}

fn completed_event(session: &LocalCheckoutSession, now: i64) -> Value {
    let suffix = session.id.trim_start_matches("cs_test_");
    json!({
        "id": format!("evt_local_{suffix}"),
        "object": "event",
        "api_version": "2024-06-20",
        "created": now,
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": "checkout.session.completed",
        "data": {"object": {
            "id": session.id,
            "object": "checkout.session",
            "mode": "subscription",
            "status": "complete",
            "payment_status": "paid",
            "customer": session.customer,
            "subscription": session.subscription,
            "customer_email": session.customer_email,
            "customer_details": {"email": session.customer_email},
            "metadata": session.metadata,
            "amount_total": 0,
            "currency": "cad",
            "success_url": session.success_url,
            "cancel_url": session.cancel_url,
            "created": session.created,
            "expires_at": session.expires_at,
            "livemode": false,
            "url": null,
        }},
    })
}

#[async_trait]
impl StripeGateway for LocalStripe {
    async fn create_checkout_session(
        &self,
        request: &CheckoutSessionRequest,
    ) -> Result<CreatedSession, StripeApiError> {
        let now = self.clock.now_unix();
        let base = self.base_url.clone();
        self.account
            .update(|a| {
                if let Some(existing) =
                    a.sessions.iter().find(|s| s.idempotency_key == request.idempotency_key)
                {
                    let same = existing.price_id == request.price_id
                        && existing.customer_email == request.customer_email.as_str()
                        && existing.metadata == request.metadata;
                    return if same {
                        Ok(CreatedSession { id: existing.id.clone(), url: existing.url.clone() })
                    } else {
                        Err(StripeApiError::Rejected {
                            status: 400,
                            code: Some("idempotency_error".into()),
                            message: "Keys for idempotent requests can only be used with the same parameters"
                                .into(),
                        })
                    };
                }
                let id = format!("cs_test_local{:06}", a.sessions.len() + 1);
                let url = format!("{base}/local/stripe/checkout/{id}");
                a.sessions.push(LocalCheckoutSession {
                    id: id.clone(),
                    url: url.clone(),
                    idempotency_key: request.idempotency_key.clone(),
                    price_id: request.price_id.clone(),
                    customer_email: request.customer_email.to_string(),
                    metadata: request.metadata.clone(),
                    success_url: request.success_url.clone(),
                    cancel_url: request.cancel_url.clone(),
                    expires_at: request.expires_at,
                    created: now,
                    status: "open".into(),
                    customer: None,
                    subscription: None,
                });
                Ok(CreatedSession { id, url })
            })
            .map_err(|e| StripeApiError::Unavailable(e.into()))?
    }

    async fn create_portal_session(
        &self,
        customer: &CustomerId,
        _return_url: &str,
    ) -> Result<String, StripeApiError> {
        Ok(format!("{}/billing-portal/{customer}", self.base_url))
    }
}
