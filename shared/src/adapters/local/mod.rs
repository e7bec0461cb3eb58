//! Local adapters: honest in-process implementations of the ports, keeping
//! their state in a directory when one is given.

mod dns;
mod launcher;
mod mail;
pub mod persisted;
mod queue;
mod received;
mod secrets;
mod stripe;
mod tenants;

pub use dns::{LocalDns, LocalDnsRecord, ROUTE53_CHANGES_PER_SECOND, dns_change_rate};
pub use launcher::{LocalLauncher, LocalService};
pub use mail::{LocalOutbox, SentMail};
pub use queue::LocalEventQueue;
pub use received::LocalReceivedMail;
pub use secrets::InMemorySecretStore;
pub use stripe::{
    Direction, EVENT_API_VERSION, LocalCheckoutSession, LocalCustomer, LocalInvoice, LocalPrice,
    LocalProduct, LocalStripe, LocalStripeError, LocalSubscription, LocalWebhookEndpoint, PauseCollection,
    PayError, PayOptions, StoredPrice, SubscriptionAction, TrialOutcome,
};
pub use tenants::{LocalTenantStore, SubdomainClaim};
