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
pub mod ingress;
pub mod ports;
pub mod reconcile;
pub mod steps;
pub mod stripe;
pub mod telemetry;
