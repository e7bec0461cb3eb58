//! The business's own types: what a tenant is, what a signup carries, which
//! plans exist. Each is parsed once at the edge and cannot hold a bad value.

pub mod catalog;
pub mod email;
pub mod ids;
pub mod organization;
pub mod password;
pub mod signup;
pub mod subdomain;
pub mod tenant;

pub use catalog::{BillingPeriod, Catalog, Plan, PlanKey};
pub use email::EmailAddress;
pub use ids::{CheckoutSessionId, CustomerId, SubscriptionId, TenantId};
pub use organization::OrganizationName;
pub use signup::{CheckoutSignup, InvalidSignup};
pub use subdomain::Subdomain;
pub use tenant::{Failure, TenantRecord, TenantResources, TenantStatus};
