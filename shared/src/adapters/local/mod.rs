//! Local adapters: honest in-process implementations of the ports.

mod queue;
mod secrets;

pub use queue::LocalEventQueue;
pub use secrets::InMemorySecretStore;
