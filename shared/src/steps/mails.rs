//! The mails the workflow sends. Plain text: it renders everywhere and
//! cannot smuggle markup from an organisation name.

use crate::domain::password::TemporaryPassword;
use crate::domain::{CheckoutSignup, EmailAddress, TenantId};
use crate::ports::Mail;

pub fn welcome(signup: &CheckoutSignup, url: &str, password: &TemporaryPassword) -> Mail {
    Mail {
        to: signup.admin_email.clone(),
        subject: format!("Your {} workspace is ready", signup.organization),
        text: format!(
            "Hello,\n\n\
             Your workspace for {org} is running at {url}\n\n\
             Sign in as:      {email}\n\
             Temporary password: {password}\n\n\
             You will be asked to choose a new password when you first sign in.\n\n\
             Plan: {plan} (tier {tier}), billed {billing}.\n",
            org = signup.organization,
            email = signup.admin_email,
            password = password.expose(),
            plan = signup.plan.name,
            tier = signup.plan.tier,
            billing = match signup.billing {
                crate::domain::BillingPeriod::Monthly => "monthly",
                crate::domain::BillingPeriod::Annual => "annually",
            },
        ),
    }
}

pub fn provisioning_failed_customer(signup: &CheckoutSignup) -> Mail {
    Mail {
        to: signup.admin_email.clone(),
        subject: format!("We could not set up {} yet", signup.organization),
        text: format!(
            "Hello,\n\nYour payment went through, but setting up your workspace at {sub} did not \
             finish. Nothing is half-made: we removed what was started, and our team has been told. \
             We will contact you shortly; you do not need to pay again.\n",
            sub = signup.subdomain,
        ),
    }
}

pub fn provisioning_failed_operator(
    operator: &EmailAddress,
    tenant: &TenantId,
    event_id: &str,
    error: &str,
    cause: &str,
) -> Mail {
    Mail {
        to: operator.clone(),
        subject: format!("[tenancy] provisioning FAILED for {tenant}"),
        text: format!(
            "Tenant:    {tenant}\nExecution: {event_id}\nError:     {error}\nCause:     {cause}\n\n\
             Resources made for it were removed and it is marked FAILED. The customer was told. \
             Fix the cause, then re-run provisioning or refund.\n"
        ),
    }
}

pub fn signup_rejected_customer(to: &EmailAddress, reason: &str) -> Mail {
    Mail {
        to: to.clone(),
        subject: "About your new workspace".to_owned(),
        text: format!(
            "Hello,\n\nThank you for your payment. We could not create your workspace: {reason}. \
             Our team has been told and will contact you to sort it out or refund you.\n"
        ),
    }
}

pub fn signup_rejected_operator(
    operator: &EmailAddress,
    tenant: &TenantId,
    event_id: &str,
    error: &str,
    cause: &str,
) -> Mail {
    Mail {
        to: operator.clone(),
        subject: format!("[tenancy] signup REJECTED ({error}) for {tenant}"),
        text: format!(
            "Tenant:    {tenant}\nExecution: {event_id}\nError:     {error}\nCause:     {cause}\n\n\
             The customer paid but no tenant was made. Assign them another subdomain or refund \
             them in Stripe.\n"
        ),
    }
}
