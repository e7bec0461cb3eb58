//! Stripe adapters: the API client ([`StripeApi`]), its rate limiting
//! ([`limit`]) and the reading of Stripe's subscription JSON ([`subscription`]).

pub mod admin;
pub mod api;
pub mod limit;
pub mod subscription;
pub mod transport;

pub use admin::{NewPrice, StripePrice, StripeProduct, WebhookEndpoint};
pub use api::{BILLING_PORTAL_RETURN_URL, STRIPE_API_BASE, StripeApi};
pub use limit::{RateLimit, RetryPolicy};
