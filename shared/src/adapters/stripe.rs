//! Stripe adapters: the API client ([`StripeApi`]).

pub mod api;

pub use api::{BILLING_PORTAL_RETURN_URL, STRIPE_API_BASE, StripeApi};
