//! Narrow traits between the rooms and the outside world. Each has an AWS
//! adapter and a local adapter in [`crate::adapters`].

pub mod queue;
pub mod secrets;

pub use queue::{EventQueue, QueueError, QueuedEvent};
pub use secrets::{SecretStore, SecretStoreError, SecretValue};

/// The cause of an adapter failure, kept for the error chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
