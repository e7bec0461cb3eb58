//! The webhook room: Stripe's POST in, a verified event on the queue out
//! (docs/architecture.md decisions 1 and 2).

pub mod lambda;
pub mod webhook;

pub use webhook::{MAX_BODY_BYTES, WebhookAnswer, WebhookIngress};
