//! The one error type every step reports. Its names are the `ErrorEquals`
//! strings in infra/statemachine/*.asl.json; they are mapped here only.

use crate::domain::password::HashError;
use crate::domain::{InvalidSignup, Subdomain, TenantId};
use crate::ports::{BoxError, DnsError, LauncherError, MailError, StoreError, StripeApiError};

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Throttling, timeouts, an unavailable service, a lost race: retry.
    #[error("{what} failed for now")]
    Transient {
        what: &'static str,
        #[source]
        source: BoxError,
    },
    /// The service asked us to slow down: retried patiently, for as long as
    /// the workflow's budget allows, never compensated for.
    #[error("{what} is throttling us")]
    Throttled {
        what: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("subdomain `{subdomain}` is taken")]
    SubdomainTaken { subdomain: Subdomain },
    /// Stripe reports the checkout's delayed payment failed: the signup ends.
    #[error("{0}")]
    PaymentFailed(String),
    #[error(transparent)]
    InvalidSignup(#[from] InvalidSignup),
    #[error("tenant {0} does not exist")]
    TenantNotFound(TenantId),
    /// An event for a subscription whose tenant is not (yet) recorded or
    /// still provisioning: retried within a bound, then reported.
    #[error("{0}")]
    TenantNotYetKnown(String),
    /// The tenant's service has not passed its health checks yet; the state
    /// machine looks again later (Retry with backoff: one transition a look).
    #[error("tenant service still starting: {0}")]
    TenantStarting(String),
    /// Another execution holds the tenant's lease: retried until it is
    /// given back or expires.
    #[error("{0}")]
    LeaseHeld(String),
    /// ECS gave up on the tenant's service: clean up.
    #[error("tenant service unhealthy: {0}")]
    TenantUnhealthy(String),
    /// The DNS change is not on every Route 53 server yet; looked at again later.
    #[error("DNS change not yet in sync: {0}")]
    DnsPending(String),
    /// A service refused for good (bad image, unverified sender, …).
    #[error("{what} was refused: {reason}")]
    Rejected { what: &'static str, reason: String },
    /// The state's input is not what the step takes: a definition bug.
    #[error("step input is not valid: {0}")]
    BadInput(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl StepError {
    /// The error name Step Functions sees (Lambda's `errorType`).
    pub fn error_name(&self) -> &'static str {
        match self {
            StepError::Transient { .. } => "Tenancy.Transient",
            StepError::Throttled { .. } => "Tenancy.Throttled",
            StepError::SubdomainTaken { .. } => "Tenancy.SubdomainTaken",
            StepError::PaymentFailed(_) => "Tenancy.PaymentFailed",
            StepError::InvalidSignup(_) => "Tenancy.InvalidSignup",
            StepError::TenantNotFound(_) => "Tenancy.TenantNotFound",
            StepError::TenantNotYetKnown(_) => "Tenancy.TenantNotYetKnown",
            StepError::TenantStarting(_) => "Tenancy.TenantStarting",
            StepError::LeaseHeld(_) => "Tenancy.LeaseHeld",
            StepError::TenantUnhealthy(_) => "Tenancy.TenantUnhealthy",
            StepError::DnsPending(_) => "Tenancy.DnsPending",
            StepError::Rejected { .. } => "Tenancy.Rejected",
            StepError::BadInput(_) => "Tenancy.BadInput",
            StepError::Internal(_) => "Tenancy.Internal",
        }
    }
}

impl StepError {
    /// A failure that may pass: throttling (waited out) or transient.
    pub fn unavailable(what: &'static str, source: BoxError) -> StepError {
        if crate::ports::is_throttled(source.as_ref()) {
            StepError::Throttled { what, source }
        } else {
            StepError::Transient { what, source }
        }
    }
}

impl From<StoreError> for StepError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::SubdomainTaken { subdomain, .. } | StoreError::SubdomainHeld { subdomain, .. } => {
                StepError::SubdomainTaken { subdomain }
            }
            conflict @ StoreError::VersionConflict { .. } => {
                StepError::Transient { what: "tenant table write", source: conflict.into() }
            }
            StoreError::Unavailable(source) => StepError::unavailable("tenant table", source),
            corrupt @ StoreError::Corrupt { .. } => StepError::Internal(corrupt.to_string()),
        }
    }
}

impl From<LauncherError> for StepError {
    fn from(error: LauncherError) -> Self {
        match error {
            LauncherError::Unavailable(source) => StepError::unavailable("container platform", source),
            LauncherError::Rejected(reason) => StepError::Rejected { what: "container platform", reason },
        }
    }
}

impl From<DnsError> for StepError {
    fn from(error: DnsError) -> Self {
        match error {
            DnsError::Unavailable(source) => StepError::unavailable("DNS", source),
            DnsError::Rejected(reason) => StepError::Rejected { what: "DNS", reason },
        }
    }
}

impl From<MailError> for StepError {
    fn from(error: MailError) -> Self {
        match error {
            MailError::Unavailable(source) => StepError::unavailable("mail", source),
            MailError::Rejected(reason) => StepError::Rejected { what: "mail", reason },
        }
    }
}

impl From<crate::ports::BillingError> for StepError {
    fn from(error: crate::ports::BillingError) -> Self {
        match error {
            crate::ports::BillingError::Unavailable(source) => {
                StepError::unavailable("billing portal", source)
            }
            crate::ports::BillingError::Rejected(reason) => {
                StepError::Rejected { what: "billing portal", reason }
            }
        }
    }
}

impl From<StripeApiError> for StepError {
    fn from(error: StripeApiError) -> Self {
        match error {
            StripeApiError::Unavailable(source) => StepError::unavailable("Stripe", source),
            refused @ (StripeApiError::Rejected { .. } | StripeApiError::Unauthorized { .. }) => {
                StepError::Rejected { what: "Stripe", reason: refused.to_string() }
            }
        }
    }
}

impl From<HashError> for StepError {
    fn from(error: HashError) -> Self {
        StepError::Internal(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_ones_the_state_machines_match() {
        let definition = include_str!("../../../infra/statemachine/provision.asl.json");
        for error in [
            StepError::Transient { what: "x", source: "y".into() },
            StepError::Throttled { what: "x", source: "y".into() },
            StepError::SubdomainTaken { subdomain: Subdomain::parse("acme").unwrap() },
            StepError::PaymentFailed("failed".into()),
            StepError::InvalidSignup(InvalidSignup {
                checkout_session: None,
                customer_email: None,
                subscription: None,
                problems: vec![],
            }),
            StepError::TenantStarting("503".into()),
            StepError::DnsPending("PENDING".into()),
        ] {
            assert!(definition.contains(&format!("\"{}\"", error.error_name())), "{}", error.error_name());
        }
    }

    #[test]
    fn lifecycle_names_are_the_ones_its_state_machine_matches() {
        let definition = include_str!("../../../infra/statemachine/lifecycle.asl.json");
        for error in [
            StepError::Transient { what: "x", source: "y".into() },
            StepError::Throttled { what: "x", source: "y".into() },
            StepError::TenantNotYetKnown("sub".into()),
            StepError::LeaseHeld("held".into()),
        ] {
            assert!(definition.contains(&format!("\"{}\"", error.error_name())), "{}", error.error_name());
        }
    }

    #[test]
    fn store_errors_map_to_retry_or_their_own_path() {
        let taken = StoreError::SubdomainTaken {
            subdomain: Subdomain::parse("acme").unwrap(),
            holder: TenantId::parse("tnt_00000000000000000001").unwrap(),
        };
        assert_eq!(StepError::from(taken).error_name(), "Tenancy.SubdomainTaken");
        let down = StoreError::Unavailable("timeout".into());
        assert_eq!(StepError::from(down).error_name(), "Tenancy.Transient");
        let slow = StoreError::Unavailable(Box::new(crate::ports::Throttled("ThrottlingException".into())));
        assert_eq!(StepError::from(slow).error_name(), "Tenancy.Throttled");
    }
}
