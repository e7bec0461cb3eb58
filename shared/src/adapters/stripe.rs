//! Stripe adapters: the API client ([`StripeApi`]), its rate limiting
//! ([`limit`]), the reading of Stripe's subscription JSON ([`subscription`])
//! and of promotion codes ([`promotion`]).

pub mod admin;
pub mod api;
pub mod limit;
pub mod promotion;
pub mod subscription;
pub mod transport;

pub use admin::{NewPrice, StripePrice, StripeProduct, WebhookEndpoint};
pub use api::{BILLING_PORTAL_RETURN_URL, STRIPE_API_BASE, StripeApi};
pub use limit::{RateLimit, RetryPolicy};
