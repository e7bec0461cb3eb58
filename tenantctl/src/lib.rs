//! `tenantctl`: the project on a laptop. `local serve` runs the webhook (and,
//! as the workflow lands, the rest of the stack) with local adapters; `send`
//! signs sample events like Stripe does and posts them.

pub mod emulated;
pub mod emulator;
pub mod fault_proxy;
pub mod http_client;
pub mod local;
pub mod memory;
pub mod report;
pub mod send;
pub mod server;
pub mod stage;
pub mod stripe_standin;
pub mod workflow;
