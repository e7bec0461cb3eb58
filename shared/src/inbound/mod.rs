//! Mail to a tenant's own address (`{subdomain}_app@{mail domain}`),
//! forwarded to its customer: the address pattern, and the message made fit
//! to send on.

pub mod address;
pub mod forward;
pub mod rewrite;
