//! Free trials through the local stack over HTTP: the signup form, the
//! checkout's async-stripe adapter against the Stripe stand-in, payment,
//! provisioning, Stripe's notice before the end, and the end itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};
use tenancy::domain::{Subdomain, SubscriptionStatus, TenantRecord};

use super::coupons::{MovingClock, NOW, post, start};

const DAY: i64 = 86_400;

fn basic(subdomain: &str, email: &str) -> String {
    json!({"plan": "basic", "billing": "monthly", "subdomain": subdomain, "organization": "Initrode", "email": email})
        .to_string()
}

async fn tenant_on(stack: &tenantctl::local::LocalStack, name: &str) -> TenantRecord {
    let id = stack.store.subdomain_holder(&Subdomain::parse(name).unwrap()).await.unwrap().expect("claimed");
    stack.store.get_tenant(&id).await.unwrap().expect("a tenant")
}

#[tokio::test]
async fn a_trial_runs_the_tenant_reminds_once_and_pauses_it_when_it_ends_without_a_card() {
    let clock = Arc::new(MovingClock(AtomicI64::new(NOW)));
    let served = start(clock.clone()).await;
    let (base, stripe, stack) = (served.base.clone(), served.stripe.clone(), served.stack.clone());

    let (status, created) = post(&base, "/checkout", &basic("initrode", "peter@initrode.example")).await;
    assert_eq!((status, &created["trial_days"]), (StatusCode::OK, &json!(14)), "{created}");
    let session = stripe.sessions()[0].clone();
    assert_eq!(session.trial_days, Some(14), "subscription_data[trial_period_days] sent");
    let (status, paid) = post(&base, &format!("/local/stripe/checkout/{}/pay", session.id), "").await;
    assert_eq!((status, &paid["webhook_status"]), (StatusCode::OK, &json!(200)), "{paid}");
    assert!(stack.workflows.wait_idle(Duration::from_secs(30)).await);

    let subscription = stripe.subscriptions()[0].clone();
    assert_eq!(
        (subscription.status, subscription.trial_end),
        (SubscriptionStatus::Trialing, Some(NOW + 14 * DAY))
    );
    let invoice = stripe.invoices().into_iter().find(|i| i.subscription == subscription.id).unwrap();
    assert_eq!(invoice.amount_due, 0, "nothing charged during the trial");
    let tenant = tenant_on(&stack, "initrode").await;
    assert_eq!(tenant.status.as_str(), "ACTIVE", "a trialing tenant runs");
    assert_eq!(tenant.desired.as_ref().and_then(|d| d.trial_end), Some(NOW + 14 * DAY));
    assert_eq!(tenant.signup.as_ref().and_then(|s| s.trial_days), Some(14));

    // The same mailbox again, on another name: charged from today, and told so.
    let (status, second) = post(&base, "/checkout", &basic("initrode-two", "Peter+2@initrode.example")).await;
    assert_eq!((status, &second["trial_days"]), (StatusCode::OK, &json!(0)), "{second}");
    assert!(second["trial_refused"].as_str().unwrap().contains("has had its free trial"), "{second}");
    assert_eq!(stripe.sessions()[1].trial_days, None);

    // Three days before the end Stripe says so, twice: one reminder.
    clock.0.store(NOW + 11 * DAY, Ordering::SeqCst);
    let act = |action: &str, body: Value| {
        let (base, id) = (base.clone(), subscription.id.clone());
        let action = action.to_owned();
        async move { post(&base, &format!("/local/stripe/subscriptions/{id}/{action}"), &body.to_string()).await }
    };
    let (status, answer) = act("trial-will-end", json!({"duplicate": 1})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(stack.workflows.wait_idle(Duration::from_secs(30)).await);
    let mails = stack.state().await["emails"].clone();
    let reminders: Vec<&Value> =
        mails.as_array().unwrap().iter().filter(|m| m.to_string().contains("trial ends")).collect();
    assert_eq!(reminders.len(), 1, "{mails}");
    assert!(reminders[0].to_string().contains("/billing/"), "with the billing link: {}", reminders[0]);

    // It ends with no card (missing_payment_method: pause): the app stops, the data is kept.
    clock.0.store(NOW + 14 * DAY, Ordering::SeqCst);
    let (status, answer) = act("trial-ends", json!({"then": "pause"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(stack.workflows.wait_idle(Duration::from_secs(30)).await);
    let tenant = tenant_on(&stack, "initrode").await;
    assert_eq!(tenant.status.as_str(), "SUSPENDED");
    let state = stack.state().await;
    assert_eq!(state["services"][0]["desired_count"], 0, "{}", state["services"]);
    served.stop().await;
}
