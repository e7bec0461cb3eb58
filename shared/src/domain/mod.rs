//! The business's own types: what a tenant is, what a signup carries, which
//! plans exist. Each is parsed once at the edge and cannot hold a bad value.

/// `as_str`, `Display`, and the serde round trip through `String` (parsing
/// with the type's own `parse`) for a newtype over a checked `String`.
macro_rules! string_newtype {
    ($name:ident, $error:ty) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = $error;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                $name::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

pub mod billing_event;
pub mod catalog;
pub mod coupon;
pub mod desired;
pub mod email;
pub mod hold;
pub mod ids;
pub mod organization;
pub mod password;
pub mod signup;
pub mod status_token;
pub mod subdomain;
pub mod tenant;
pub mod trial;

pub use billing_event::{BillingEvent, InvalidBillingEvent, SubscriptionStatus};
pub use catalog::{
    BillingPeriod, Catalog, IntervalUnit, LookupKey, PeriodPrice, Plan, PlanKey, StripeInterval,
};
pub use coupon::{
    AcceptedPromotion, CouponRefusal, CouponTerms, CouponUse, InvalidPromotionCode, PromotionCode,
    PromotionOffer,
};
pub use desired::{DesiredTenant, RunState, UnusableSubscription, desired_from};
pub use email::{EmailAddress, InvalidMessageId, ReceivedMessageId};
pub use hold::{HOLD_METADATA_KEY, HoldId, InvalidHoldId};
pub use ids::{CheckoutSessionId, CustomerId, InvalidId, PromotionCodeId, SubscriptionId, TenantId};
pub use organization::OrganizationName;
pub use signup::{CheckoutSignup, InvalidSignup};
pub use status_token::{StatusToken, StatusTokenError, StatusTokenRecord};
pub use subdomain::Subdomain;
pub use tenant::{
    Failure, LifecycleMail, MoneyBackRecord, PendingMail, TenantRecord, TenantResources, TenantStatus,
    UnsentMail,
};
pub use trial::{TrialKey, TrialOffer, TrialReservation, TrialUse, TrialWithoutCard};
