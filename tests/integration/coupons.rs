//! Multi-year terms and coupons through the local stack over HTTP: the
//! signup form, the checkout's async-stripe adapter against the Stripe
//! stand-in (coupons and promotion codes made over its API, as an operator
//! would in the Dashboard), payment, provisioning and convergence.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use http::StatusCode;
use integration_tests::ServedStack;
use serde_json::{Value, json};
use tenancy::clock::Clock;
use tenancy::domain::{Subdomain, SubscriptionStatus};
use tenantctl::http_client::HttpClient;

pub(crate) const NOW: i64 = 1_763_800_100;
const KEY: &str = "sk_test_integration_0000";

/// A clock a test moves forward.
pub(crate) struct MovingClock(pub(crate) AtomicI64);

impl Clock for MovingClock {
    fn now_unix(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The stack, its checkout reaching the stand-in through the real adapter.
pub(crate) async fn start(clock: Arc<MovingClock>) -> ServedStack {
    ServedStack::start(clock, |base, _| {
        let key = tenancy::stripe::StripeSecretKey::parse(KEY).unwrap();
        Arc::new(tenancy::adapters::stripe::StripeApi::new(key, Some(base), &format!("{base}/")).unwrap())
    })
    .await
}

/// A write to the stand-in's Stripe API, as the Dashboard would make it.
async fn stripe_post(base: &str, path: &str, form: &[(&str, &str)]) -> Value {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let request = http::Request::post(format!("{base}/v1/{path}"))
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(http_body_util::Full::new(body.into()))
        .unwrap();
    let (status, answer) = HttpClient::default().call(request).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer));
    serde_json::from_slice(&answer).unwrap()
}

pub(crate) async fn post(base: &str, path: &str, body: &str) -> (StatusCode, Value) {
    let request = http::Request::post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .header("origin", "https://www.example.com")
        .body(http_body_util::Full::new(body.to_owned().into()))
        .unwrap();
    let (status, answer) = HttpClient::default().call(request).await.unwrap();
    (status, serde_json::from_slice(&answer).unwrap_or(Value::Null))
}

fn form(plan: &str, billing: &str, subdomain: &str, coupon: Option<&str>) -> String {
    json!({"plan": plan, "billing": billing, "subdomain": subdomain, "organization": "Initrode",
        "email": format!("peter@{subdomain}.example"), "coupon": coupon})
    .to_string()
}

/// `WELCOME10`: 10 % off the first invoice of a Pro plan, five redemptions.
async fn welcome_coupon(base: &str) -> String {
    stripe_post(
        base,
        "coupons",
        &[
            ("id", "welcome"),
            ("percent_off", "10"),
            ("duration", "once"),
            ("applies_to[products][0]", "tenancy_pro"),
        ],
    )
    .await;
    let promo = stripe_post(
        base,
        "promotion_codes",
        &[
            ("promotion[type]", "coupon"),
            ("promotion[coupon]", "welcome"),
            ("code", "WELCOME10"),
            ("max_redemptions", "5"),
        ],
    )
    .await;
    promo["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_two_year_checkout_with_a_coupon_becomes_an_active_tenant_on_the_two_year_term() {
    let clock = Arc::new(MovingClock(AtomicI64::new(NOW)));
    let served = start(clock).await;
    let (base, stripe, stack) = (served.base.clone(), served.stripe.clone(), served.stack.clone());
    let promo = welcome_coupon(&base).await;

    // Typed in lower case on our form: Stripe matches codes whatever the case.
    let (status, created) =
        post(&base, "/checkout", &form("pro", "biennial", "initrode", Some("welcome10"))).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let session = &stripe.sessions()[0];
    assert_eq!(session.id, created["id"].as_str().unwrap());
    assert_eq!(session.price_id, "price_1QProBiennialCAD");
    assert_eq!(session.metadata["billing"], "biennial");
    assert_eq!(session.metadata["coupon"], "WELCOME10");
    assert_eq!(session.promotion_code.as_deref(), Some(promo.as_str()), "discounts[0][promotion_code] sent");
    assert!(!session.allow_promotion_codes, "Stripe takes a code or the field, never both");

    let (status, paid) = post(&base, &format!("/local/stripe/checkout/{}/pay", session.id), "").await;
    assert_eq!((status, &paid["webhook_status"]), (StatusCode::OK, &json!(200)), "{paid}");
    assert!(stack.workflows.wait_idle(Duration::from_secs(30)).await);

    let subscription = &stripe.subscriptions()[0];
    assert_eq!(subscription.status, SubscriptionStatus::Active);
    assert_eq!((subscription.price.interval.as_str(), subscription.price.interval_count), ("year", 2));
    let invoice = stripe.invoices().into_iter().find(|i| i.subscription == subscription.id).unwrap();
    assert_eq!((invoice.amount_due, invoice.amount_discount), (48_600, 5_400), "10 % off 540.00 CAD");
    let redeemed = stripe.promotion_codes().into_iter().find(|p| p.id == promo).unwrap();
    assert_eq!(redeemed.times_redeemed, 1);

    let id =
        stack.store.subdomain_holder(&Subdomain::parse("initrode").unwrap()).await.unwrap().expect("claimed");
    let tenant = stack.store.get_tenant(&id).await.unwrap().expect("a tenant");
    assert_eq!(tenant.status.as_str(), "ACTIVE");
    assert_eq!(tenant.billing.map(|b| b.as_str()), Some("biennial"));
    let desired = tenant.desired.expect("the desired state read back from Stripe");
    assert_eq!((desired.plan.key.as_str(), desired.billing.as_str()), ("pro", "biennial"));
    let state = stack.state().await;
    let env = &state["services"][0]["environment"];
    assert_eq!(env["BILLING_FREQUENCY"], "biennial", "{}", state["services"]);
    served.stop().await;
}

#[tokio::test]
async fn unknown_expired_and_wrong_plan_coupons_get_a_400_and_leave_no_session_and_no_hold() {
    let clock = Arc::new(MovingClock(AtomicI64::new(NOW)));
    let served = start(clock.clone()).await;
    let (base, stripe) = (served.base.clone(), served.stripe.clone());
    welcome_coupon(&base).await;
    stripe_post(&base, "coupons", &[("id", "spring"), ("amount_off", "500"), ("currency", "cad")]).await;
    let soon = (NOW + 60).to_string();
    stripe_post(
        &base,
        "promotion_codes",
        &[("coupon", "spring"), ("code", "SPRING5"), ("expires_at", &soon)],
    )
    .await;
    let retired = stripe_post(&base, "promotion_codes", &[("coupon", "spring"), ("code", "OLDSPRING")]).await;
    let path = format!("promotion_codes/{}", retired["id"].as_str().unwrap());
    stripe_post(&base, &path, &[("active", "false")]).await;
    clock.0.store(NOW + 120, Ordering::SeqCst);

    let refusals = [
        (form("pro", "biennial", "acme", Some("NOSUCHCODE")), "coupon `NOSUCHCODE` does not exist"),
        (form("basic", "monthly", "acme", Some("SPRING5")), "coupon `SPRING5` has expired"),
        (form("basic", "monthly", "acme", Some("oldspring")), "coupon `OLDSPRING` is no longer active"),
        (
            form("ultimate", "triennial", "acme", Some("WELCOME10")),
            "coupon `WELCOME10` is not for the Ultimate plan",
        ),
        (
            form("pro", "annual", "acme", Some("WELCOME-10")),
            "coupon must be 1 to 100 letters and digits, such as WELCOME10",
        ),
    ];
    for (body, message) in refusals {
        let (status, answer) = post(&base, "/checkout", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer, json!({"errors": {"coupon": message}}));
    }
    assert!(stripe.sessions().is_empty(), "no Checkout Session");
    let acme = Subdomain::parse("acme").unwrap();
    assert!(served.stack.store.subdomain_hold(&acme, NOW + 120).await.unwrap().is_none(), "no hold");
    let (_, available) = {
        let (status, body) = HttpClient::default().get(&format!("{base}/subdomains/acme")).await.unwrap();
        (status, serde_json::from_slice::<Value>(&body).unwrap())
    };
    assert_eq!(available["available"], true);

    // The same buyer without a coupon: promotion codes may be typed on Stripe's page.
    let (status, created) = post(&base, "/checkout", &form("ultimate", "triennial", "acme", None)).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let session = &stripe.sessions()[0];
    assert_eq!(session.price_id, "price_1QUltimateTriennialCAD");
    assert!(session.allow_promotion_codes && session.promotion_code.is_none());
    served.stop().await;
}

/// The stand-in refuses what Stripe refuses: both discount fields at once,
/// and a code that cannot be redeemed, whoever sends it.
#[tokio::test]
async fn the_stand_in_refuses_a_session_stripe_would_refuse() {
    let clock = Arc::new(MovingClock(AtomicI64::new(NOW)));
    let served = start(clock).await;
    let base = served.base.clone();
    let promo = welcome_coupon(&base).await;
    let session = |extra: &[(&str, &str)]| {
        let mut fields = vec![
            ("mode", "subscription"),
            ("line_items[0][price]", "price_1QBasicMonthlyCAD"),
            ("line_items[0][quantity]", "1"),
            ("customer_email", "dana@acme.example"),
            ("success_url", "https://www.example.com/ok"),
            ("cancel_url", "https://www.example.com/no"),
        ];
        fields.extend_from_slice(extra);
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        http::Request::post(format!("{base}/v1/checkout/sessions"))
            .header("authorization", format!("Bearer {KEY}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(body.into()))
            .unwrap()
    };
    let client = HttpClient::default();
    let (status, body) = client
        .call(session(&[("allow_promotion_codes", "true"), ("discounts[0][promotion_code]", &promo)]))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("only specify one of these parameters"));
    // WELCOME10 is for Pro; this is Basic.
    let (status, body) = client.call(session(&[("discounts[0][promotion_code]", &promo)])).await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("cannot be applied to any of the items"));
    assert!(served.stripe.sessions().is_empty());
    served.stop().await;
}
