//! Narrow traits between the rooms and the outside world. Each has an AWS
//! adapter and a local adapter in [`crate::adapters`].

pub mod billing;
pub mod capacity;
pub mod dns;
pub mod inbound;
pub mod launcher;
pub mod mail;
pub mod queue;
pub mod secrets;
pub mod stripe;
pub mod subscriptions;
pub mod tenants;
pub mod workflow;

pub use billing::{BillingError, BillingPortal};
pub use capacity::{AlbQuotas, Room, RoutingCapacity, no_room, placement_order};
pub use dns::{AliasTarget, ChangeStatus, DnsError, DnsPublisher};
pub use inbound::{RawMailer, ReceivedMail};
pub use launcher::{LaunchSpec, LaunchedTenant, LauncherError, ServiceHealth, TenantLauncher};
pub use mail::{Mail, MailError, Mailer};
pub use queue::{EventQueue, QueueError, QueuedEvent};
pub use secrets::{SecretStore, SecretStoreError, SecretValue};
pub use stripe::{
    CheckoutSessionRequest, CreatedSession, Discount, MoneyBack, Refund, SoldPrice, StripeApiError,
    StripeGateway,
};
pub use subscriptions::{InvoiceSnapshot, SubscriptionSnapshot, SubscriptionSource};
pub use tenants::{
    HeldSession, HoldLimit, HoldOutcome, HoldRequest, Inserted, Lease, LeaseOutcome, MailDelivery,
    MailMarked, MailRecord, MailSlot, RateOutcome, StoreError, SubdomainHold, TenantStore, TrailEntry,
    TrailOutcome, UnmatchedEvent, UnmatchedReason,
};
pub use workflow::{StartOutcome, Workflow, WorkflowError, WorkflowStarter};

/// The cause of an adapter failure, kept for the error chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The service asked us to slow down (Route 53 takes 5 changes a second per
/// account, ECS and SES have their rates): the cause an adapter puts in its
/// `Unavailable` variant so the workflow waits it out patiently instead of
/// spending the budget it gives other transient errors.
#[derive(Debug, thiserror::Error)]
#[error("throttled")]
pub struct Throttled(#[source] pub BoxError);

/// Whether `error`, or anything in its cause chain, is [`Throttled`].
pub fn is_throttled(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<Throttled>() {
            return true;
        }
        current = error.source();
    }
    false
}
