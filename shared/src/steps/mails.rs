//! The mails the workflow sends. Plain text: it renders everywhere and
//! cannot smuggle markup from an organisation name.

use crate::domain::password::TemporaryPassword;
use crate::domain::{BillingPeriod, CheckoutSignup, EmailAddress, MoneyBackRecord, Plan, TenantId};
use crate::ports::Mail;

pub fn welcome(
    signup: &CheckoutSignup,
    url: &str,
    password: &TemporaryPassword,
    mail_address: Option<&EmailAddress>,
) -> Mail {
    let mail_line =
        mail_address.map(|address| format!("Mail to {address} is forwarded to you.\n\n")).unwrap_or_default();
    Mail {
        to: signup.admin_email.clone(),
        subject: format!("Your {} workspace is ready", signup.organization),
        text: format!(
            "Hello,\n\n\
             Your workspace for {org} is running at {url}\n\n\
             Sign in as:      {email}\n\
             Temporary password: {password}\n\n\
             You will be asked to choose a new password when you first sign in.\n\n\
             {mail_line}\
             Plan: {plan} (tier {tier}), billed {billing}.\n",
            org = signup.organization,
            email = signup.admin_email,
            password = password.expose(),
            plan = signup.plan.name,
            tier = signup.plan.tier,
            billing = signup.billing.billed(),
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
             Resources made for it were removed and it is marked FAILED. Its subscription is being \
             cancelled and refunded (a separate mail says when it is, or that it could not be). \
             Fix the cause before the customer signs up again.\n"
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
             The customer paid but no tenant was made. Their subscription is being cancelled and \
             refunded (a separate mail says when it is, or that it could not be); they may sign up \
             again with another subdomain.\n"
        ),
    }
}

pub fn welcome_mail_failed_operator(
    operator: &EmailAddress,
    tenant: &TenantId,
    subdomain: &crate::domain::Subdomain,
    reason: &str,
) -> Mail {
    Mail {
        to: operator.clone(),
        subject: format!("[tenancy] welcome mail NOT SENT for {subdomain} ({tenant})"),
        text: format!(
            "Tenant:    {tenant}\nSubdomain: {subdomain}\nReason:    {reason}\n\n\
             The tenant is running and paid for; only its welcome mail (sign-in address and temporary \
             password) did not go out. Fix the cause (SES sandbox, a verified sender, the address), then \
             resend it: tenantctl local resend-welcome {subdomain}.\n"
        ),
    }
}

/// The customer's mail once their money went back (or could not yet):
/// `what` says what went wrong, as the customer would put it.
pub fn money_back_customer(to: &EmailAddress, what: &str, money_back: &MoneyBackRecord) -> Mail {
    let outcome = match money_back.completed_at {
        Some(_) if money_back.refunds.is_empty() => {
            "Your subscription is cancelled, so you will not be charged.".to_owned()
        }
        Some(_) => format!(
            "Your subscription is cancelled, so you will not be charged again, and we refunded {}. \
             A refund takes 5 to 10 business days to reach your statement.",
            money_back.refunded_text()
        ),
        None => "Our team has been told and will cancel your subscription and refund you; \
                      you will hear from us shortly."
            .to_owned(),
    };
    let subject = if money_back.completed_at.is_some() && !money_back.refunds.is_empty() {
        "Your payment has been refunded"
    } else {
        "About your payment"
    };
    Mail {
        to: to.clone(),
        subject: subject.to_owned(),
        text: format!("Hello,\n\nWe are sorry: {what}. Nothing was left half-made.\n\n{outcome}\n"),
    }
}

/// The operator's alert about money back.
pub fn money_back_operator(
    operator: &EmailAddress,
    tenant: &TenantId,
    event_id: &str,
    why: super::money_back::MoneyBackReason,
    money_back: &MoneyBackRecord,
) -> Mail {
    let state = match (&money_back.completed_at, &money_back.failed) {
        (Some(_), _) => format!("Subscription cancelled, refunded {}.", money_back.refunded_text()),
        (None, Some(reason)) => format!(
            "NOT DONE: {reason}\nCancel the subscription and refund the customer in Stripe's dashboard, \
             then note it on the tenant."
        ),
        (None, None) => "Not done yet.".to_owned(),
    };
    Mail {
        to: operator.clone(),
        subject: format!("[tenancy] money back ({why:?}) for {tenant}"),
        text: format!("Tenant:    {tenant}\nExecution: {event_id}\nWhy:       {why:?}\n\n{state}\n"),
    }
}

pub fn plan_changed(signup: &CheckoutSignup, plan: &Plan, url: &str) -> Mail {
    let limits: Vec<String> = plan.limits.iter().map(|(name, limit)| format!("{limit} {name}")).collect();
    Mail {
        to: signup.admin_email.clone(),
        subject: format!("{} is now on the {} plan", signup.organization, plan.name),
        text: format!(
            "Hello,\n\nYour workspace at {url} now runs the {name} plan (tier {tier}: {limits}). \
             The change is live; nothing else to do.\n",
            name = plan.name,
            tier = plan.tier,
            limits = limits.join(", "),
        ),
    }
}

pub fn past_due(signup: &CheckoutSignup, portal_url: &str) -> Mail {
    Mail {
        to: signup.admin_email.clone(),
        subject: format!("Payment failed for {}", signup.organization),
        text: format!(
            "Hello,\n\nWe could not charge your card for {org}. Your workspace keeps running \
             while Stripe retries; please update your payment method here:\n\n  {portal_url}\n",
            org = signup.organization,
        ),
    }
}

pub fn suspended(signup: &CheckoutSignup, portal_url: &str) -> Mail {
    Mail {
        to: signup.admin_email.clone(),
        subject: format!("{} is suspended", signup.organization),
        text: format!(
            "Hello,\n\nYour workspace at {sub} is suspended because the subscription is unpaid or \
             paused. Your data is kept. Update your payment method to bring it back:\n\n  {portal_url}\n",
            sub = signup.subdomain,
        ),
    }
}

pub fn resumed(signup: &CheckoutSignup, url: &str) -> Mail {
    Mail {
        to: signup.admin_email.clone(),
        subject: format!("{} is back", signup.organization),
        text: format!("Hello,\n\nThank you. Your workspace is running again at {url}\n"),
    }
}

/// Three days before a trial ends (Stripe's `trial_will_end`).
pub fn trial_ending(
    signup: &CheckoutSignup,
    (plan, billing): (&Plan, BillingPeriod),
    ends: Option<i64>,
    portal_url: &str,
) -> Mail {
    let when =
        ends.map_or_else(|| "in three days".to_owned(), |end| format!("on {}", crate::clock::utc_date(end)));
    Mail {
        to: signup.admin_email.clone(),
        subject: format!("Your {} trial ends {when}", signup.organization),
        text: format!(
            "Hello,\n\nThe free trial of {plan} for {org} ends {when} (UTC). From then on the \
             subscription is billed {billing} to the card you gave at checkout. Without a working \
             card the workspace at {sub} stops; your data is kept.\n\n\
             To check or change your card, or to cancel before you are charged:\n\n  {portal_url}\n",
            plan = plan.name,
            org = signup.organization,
            billing = billing.billed(),
            sub = signup.subdomain,
        ),
    }
}

pub fn goodbye(signup: &CheckoutSignup, grace: std::time::Duration) -> Mail {
    Mail {
        to: signup.admin_email.clone(),
        subject: format!("Your {} subscription has ended", signup.organization),
        text: format!(
            "Hello,\n\nYour subscription has ended and your workspace at {sub} is stopped. \
             Your data is kept. The address {sub} stays reserved for you for {grace}.\n",
            sub = signup.subdomain,
            grace = spoken_length(grace),
        ),
    }
}

/// A length of time as a person says it: "30 days", "1 hour", "5 minutes".
fn spoken_length(length: std::time::Duration) -> String {
    let secs = length.as_secs();
    let (count, unit) = match secs {
        s if s >= 86_400 => (s / 86_400, "day"),
        s if s >= 3_600 => (s / 3_600, "hour"),
        s => ((s / 60).max(1), "minute"),
    };
    format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
}

pub fn lifecycle_problem(
    operator: &EmailAddress,
    event_id: &str,
    subscription: &str,
    error: &str,
    cause: &str,
) -> Mail {
    Mail {
        to: operator.clone(),
        subject: format!("[tenancy] event {event_id} not applied ({error})"),
        text: format!(
            "Event:        {event_id}\nSubscription: {subscription}\nError:        {error}\nCause:        {cause}\n\n\
             The event was not applied to any tenant. If the subscription is not one of ours, \
             nothing needs doing; otherwise fix the cause and replay the event from Stripe.\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::spoken_length;
    use std::time::Duration;

    #[test]
    fn lengths_read_as_people_say_them() {
        assert_eq!(spoken_length(Duration::from_secs(30 * 86_400)), "30 days");
        assert_eq!(spoken_length(Duration::from_secs(86_400)), "1 day");
        assert_eq!(spoken_length(Duration::from_secs(7_200)), "2 hours");
        assert_eq!(spoken_length(Duration::from_secs(60)), "1 minute");
        assert_eq!(spoken_length(Duration::from_secs(5)), "1 minute");
    }
}
