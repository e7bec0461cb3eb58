//! Implementations of the [`crate::ports`]: AWS (the AWS SDK for Rust) and
//! local (in-process, for a laptop with no AWS account).

pub mod aws;
pub mod local;
pub mod stripe;
