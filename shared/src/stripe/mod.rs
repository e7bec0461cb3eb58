//! Stripe's wire formats, parsed into types that cannot hold bad values.

pub mod event;
pub mod key;
pub mod mode;
pub mod signature;
pub mod skim;

pub use event::{EventEnvelope, EventType, StripeEventId};
pub use key::{InvalidStripeKey, StripeSecretKey};
pub use mode::StripeMode;
pub use signature::{SignatureError, SignatureVerifier, WebhookSecret, WebhookSecrets};
