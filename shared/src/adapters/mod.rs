//! Implementations of the [`crate::ports`]: AWS (the AWS SDK for Rust) and
//! local (in-process, for a laptop with no AWS account), and the fault
//! injection that wraps either.

pub mod aws;
pub mod faults;
pub mod local;
pub mod stripe;
