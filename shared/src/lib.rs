//! The library every function and `tenantctl` is built from.
//!
//! Modules follow the flow of an event: [`stripe`] holds what we know about
//! Stripe's wire formats (signatures, the event envelope), [`ingress`] is the
//! webhook room, [`ports`] are the narrow traits the rooms talk through, and
//! [`adapters`] implement those traits for AWS and for a laptop.

pub mod adapters;
pub mod checkout;
pub mod clock;
pub mod config;
pub mod dispatch;
pub mod domain;
pub mod inbound;
pub mod ingress;
pub mod ports;
pub mod reconcile;
pub mod steps;
pub mod stripe;
pub mod telemetry;

/// The machine's cores but one (at least one): how much CPU-heavy work may
/// run at once beside what must stay responsive (argon2 hashing, the local
/// server's executions, beside its webhook).
pub fn spare_cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from).saturating_sub(1).max(1)
}
