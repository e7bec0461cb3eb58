//! The local Stripe stand-in over HTTP, read by the real `StripeApi`
//! (async-stripe): what comes back is exactly what the stand-in holds, through
//! every lifecycle change; and the adapter's throttling retries against a stub.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use integration_tests::{ServedStack, StripeStub, StubResponse};
use tenancy::adapters::local::PayOptions;
use tenancy::adapters::stripe::{RateLimit, RetryPolicy, StripeApi};
use tenancy::clock::{Clock, FixedClock};
use tenancy::domain::{EmailAddress, SubscriptionId, SubscriptionStatus};
use tenancy::ports::{CheckoutSessionRequest, MoneyBack, StripeApiError, StripeGateway, SubscriptionSource};
use tenancy::stripe::{StripeMode, StripeSecretKey};
use tenantctl::http_client::HttpClient;

const NOW: i64 = 1_763_800_100;
const KEY: &str = "sk_test_local_stripe_reads_0001";

/// The stack served on a loopback port; its checkout reaches the stand-in
/// over HTTP, through the real adapter.
async fn start() -> ServedStack {
    let clock: Arc<dyn Clock> = Arc::new(FixedClock(NOW));
    ServedStack::start(clock, |base, _| Arc::new(reader(base))).await
}

/// Initrode's Basic monthly checkout, made once per `idempotency_key`.
fn initrode_checkout(idempotency_key: String) -> CheckoutSessionRequest {
    CheckoutSessionRequest {
        price_id: "price_1QBasicMonthlyCAD".into(),
        customer_email: EmailAddress::parse("peter@initrode.example").unwrap(),
        success_url: "https://www.example.com/welcome".into(),
        cancel_url: "https://www.example.com/pricing".into(),
        metadata: [("subdomain", "initrode"), ("plan", "basic"), ("billing", "monthly")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
        discount: tenancy::ports::Discount::None,
        trial_days: None,
        trial_without_card: None,
        expires_at: None,
        idempotency_key,
    }
}

/// A paid checkout: the new subscription's id.
async fn paid_subscription(server: &ServedStack, options: PayOptions) -> SubscriptionId {
    let request = initrode_checkout(format!("checkout-{}", server.stripe.sessions().len()));
    let session = server.stripe.create_checkout_session(&request).await.unwrap();
    let events = server.stripe.pay_with(&session.id, options).unwrap();
    let completed = events.last().unwrap();
    SubscriptionId::parse(completed["data"]["object"]["subscription"].as_str().unwrap()).unwrap()
}

async fn act(
    server: &ServedStack,
    id: &SubscriptionId,
    action: &str,
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    let request = http::Request::post(format!("{}/local/stripe/subscriptions/{id}/{action}", server.base))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(body.to_string().into()))
        .unwrap();
    let (status, answer) = HttpClient::default().call(request).await.unwrap();
    (status, serde_json::from_slice(&answer).unwrap())
}

fn reader(base: &str) -> StripeApi {
    let key = StripeSecretKey::for_mode(KEY, StripeMode::Test).unwrap();
    StripeApi::new(key, Some(base), &format!("{base}/")).unwrap()
}

/// The real adapter over HTTP and the stand-in's own state agree.
async fn assert_reads_back(
    server: &ServedStack,
    id: &SubscriptionId,
) -> tenancy::ports::SubscriptionSnapshot {
    let over_http = reader(&server.base).subscription(id).await.unwrap().expect("the subscription exists");
    let held = server.stripe.subscription(id).await.unwrap().expect("the stand-in holds it");
    assert_eq!(over_http, held);
    over_http
}

#[tokio::test]
async fn stripe_api_reads_back_what_the_stand_in_holds_through_a_lifecycle() {
    let server = start().await;
    let id = paid_subscription(&server, PayOptions::default()).await;
    let snapshot = assert_reads_back(&server, &id).await;
    assert_eq!(snapshot.status, SubscriptionStatus::Active);
    assert_eq!(snapshot.metadata["subdomain"], "initrode");
    assert_eq!(snapshot.price_lookup_key.as_deref(), Some("basic_monthly"));
    assert_eq!(snapshot.latest_invoice.as_ref().and_then(|i| i.status.as_deref()), Some("paid"));

    let (status, answer) = act(&server, &id, "upgrade", serde_json::json!({"plan": "pro"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(assert_reads_back(&server, &id).await.price_id.as_deref(), Some("price_1QProMonthlyCAD"));

    let (status, answer) = act(&server, &id, "card-fails", serde_json::json!({"duplicate": 1})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let delivered: Vec<&str> =
        answer["deliveries"].as_array().unwrap().iter().map(|d| d["type"].as_str().unwrap()).collect();
    assert_eq!(
        delivered,
        [
            "invoice.payment_failed",
            "invoice.payment_failed",
            "customer.subscription.updated",
            "customer.subscription.updated"
        ],
        "each event once more"
    );
    assert!(answer["deliveries"].as_array().unwrap().iter().all(|d| d["webhook_status"] == 200), "{answer}");
    let snapshot = assert_reads_back(&server, &id).await;
    assert_eq!(snapshot.status, SubscriptionStatus::PastDue);
    assert_eq!(snapshot.latest_invoice.as_ref().and_then(|i| i.status.as_deref()), Some("open"));

    for action in ["unpaid", "card-recovers", "cancel"] {
        let (status, answer) =
            act(&server, &id, action, serde_json::json!({"reorder": true, "seed": 7})).await;
        assert_eq!(status, StatusCode::OK, "{action}: {answer}");
        assert_eq!(answer["seed"], 7);
        assert_reads_back(&server, &id).await;
    }
    let snapshot = assert_reads_back(&server, &id).await;
    assert_eq!((snapshot.status, snapshot.ended_at), (SubscriptionStatus::Canceled, Some(NOW)));

    let (status, answer) = act(&server, &id, "resume", serde_json::json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(answer["error"].as_str().unwrap().contains("not paused"), "{answer}");
    let (status, _) = act(&server, &id, "explode", serde_json::json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    server.stop().await;
}

#[tokio::test]
async fn a_trial_reads_back_and_a_missing_subscription_is_none() {
    let server = start().await;
    let id = paid_subscription(&server, PayOptions { trial_days: Some(14) }).await;
    let snapshot = assert_reads_back(&server, &id).await;
    assert_eq!(
        (snapshot.status, snapshot.trial_end),
        (SubscriptionStatus::Trialing, Some(NOW + 14 * 86_400))
    );
    let (status, _) = act(&server, &id, "trial-ends", serde_json::json!({"then": "pause"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(assert_reads_back(&server, &id).await.status, SubscriptionStatus::Paused);

    let missing = SubscriptionId::parse("sub_nobody").unwrap();
    assert_eq!(reader(&server.base).subscription(&missing).await.unwrap(), None);

    // Stripe's wire format: unexpanded ids, an expanded invoice, Stripe's 404.
    let client = HttpClient::default();
    let get = |path: String| {
        http::Request::get(format!("{}{path}", server.base))
            .header("authorization", format!("Bearer {KEY}"))
            .body(http_body_util::Full::default())
            .unwrap()
    };
    let (status, body) = client.call(get(format!("/v1/subscriptions/{id}"))).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let plain: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let invoice_id = plain["latest_invoice"].as_str().expect("an id when not expanded").to_owned();
    assert_eq!(plain["items"]["data"][0]["price"]["recurring"]["interval"], "month");
    let (_, body) = client
        .call(get(format!("/v1/subscriptions/{id}?expand[]=latest_invoice&expand[]=items.data.price")))
        .await
        .unwrap();
    let expanded: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(expanded["latest_invoice"]["id"], invoice_id.as_str());
    let (status, body) = client.call(get(format!("/v1/invoices/{invoice_id}"))).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap(), expanded["latest_invoice"]);
    let customer = plain["customer"].as_str().unwrap();
    let (status, body) = client.call(get(format!("/v1/customers/{customer}"))).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["email"],
        "peter@initrode.example"
    );
    let (status, body) = client.call(get("/v1/invoices/in_nope".into())).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["code"], "resource_missing");
    let (status, _) = client
        .call(
            http::Request::get(format!("{}/v1/subscriptions/{id}", server.base))
                .body(http_body_util::Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no key, no answer");

    let (_, body) = client.get(&format!("{}/local/stripe/subscriptions", server.base)).await.unwrap();
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (list[0]["id"].as_str(), list[0]["subdomain"].as_str()),
        (Some(id.as_str()), Some("initrode"))
    );
    server.stop().await;
}

#[tokio::test]
async fn stripe_api_cancels_and_refunds_through_the_stand_in_once_however_often_asked() {
    let server = start().await;
    let id = paid_subscription(&server, PayOptions::default()).await;
    let (status, _) = act(&server, &id, "upgrade", serde_json::json!({"plan": "pro"})).await;
    assert_eq!(status, StatusCode::OK);
    let api = reader(&server.base);
    // Run twice, and a third time as a concurrent pair: one effect.
    for _ in 0..2 {
        api.cancel_subscription(&id).await.unwrap();
        let refunds = api.refund_subscription(&id, None, "tnt_test").await.unwrap();
        assert_eq!(refunds.len(), 2, "the signup's payment and the upgrade's");
    }
    let (a, b) = tokio::join!(api.refund_subscription(&id, None, "tnt_test"), api.cancel_subscription(&id));
    assert_eq!(a.unwrap().len(), 2);
    b.unwrap();
    // Read back from the stand-in's own state.
    assert_eq!(assert_reads_back(&server, &id).await.status, SubscriptionStatus::Canceled);
    let held = server.stripe.refunds();
    let paid: Vec<i64> = server
        .stripe
        .invoices()
        .iter()
        .filter(|i| i.subscription == id.as_str() && i.amount_paid > 0)
        .map(|i| i.amount_paid)
        .collect();
    let mut refunded: Vec<i64> = held.iter().map(|r| r.amount).collect();
    refunded.sort();
    let mut expected = paid.clone();
    expected.sort();
    assert_eq!(refunded, expected, "each payment refunded once, in full");
    assert!(held.iter().all(
        |r| r.metadata["tenant_id"] == "tnt_test" && r.reason.as_deref() == Some("requested_by_customer")
    ));
    // Only what was paid since a moment: nothing new to refund after the fact.
    let later = api.refund_subscription(&id, Some(NOW + 1), "tnt_test").await.unwrap();
    assert!(later.is_empty());
    // Stripe's refusals come back as Stripe words them.
    let missing = SubscriptionId::parse("sub_nobody").unwrap();
    let refused = api.cancel_subscription(&missing).await.unwrap_err();
    assert!(matches!(refused, StripeApiError::Rejected { status: 404, .. }), "{refused:?}");
    server.stop().await;
}

fn subscription_json() -> String {
    serde_json::json!({
        "id": "sub_1Throttled", "object": "subscription", "customer": "cus_1T", "status": "active",
        "items": {"object": "list", "data": [{"id": "si_1", "current_period_end": 1_800_000_000,
                  "price": {"id": "price_1", "lookup_key": "pro_monthly"}}]},
        "latest_invoice": null, "metadata": {}, "cancel_at_period_end": false,
    })
    .to_string()
}

fn quick_retries(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_elapsed: Duration::from_secs(5),
    }
}

fn stub_reader(stub: &StripeStub, retry: RetryPolicy) -> StripeApi {
    let key = StripeSecretKey::for_mode(KEY, StripeMode::Test).unwrap();
    StripeApi::new(key, Some(stub.base_url()), "https://example.com/account").unwrap().with_retry(retry)
}

#[tokio::test]
async fn throttled_reads_are_retried_and_other_errors_are_not() {
    let id = SubscriptionId::parse("sub_1Throttled").unwrap();
    let stub = StripeStub::start(vec![
        StubResponse::fixture(429, "error_429_rate_limit.json"),
        StubResponse::fixture(429, "error_429_rate_limit.json"),
        StubResponse::raw(200, "application/json", &subscription_json()),
    ])
    .await;
    let snapshot = stub_reader(&stub, quick_retries(4)).subscription(&id).await.unwrap().unwrap();
    assert_eq!(snapshot.current_period_end, Some(1_800_000_000));
    let requests = stub.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.method == "GET" && r.path == "/v1/subscriptions/sub_1Throttled"));

    let stub = StripeStub::start(vec![StubResponse::fixture(429, "error_429_rate_limit.json"); 5]).await;
    let err = stub_reader(&stub, quick_retries(3)).subscription(&id).await.unwrap_err();
    assert!(matches!(err, StripeApiError::Unavailable(_)), "{err:?}");
    assert_eq!(stub.requests().len(), 3, "bounded in attempts");

    let stub = StripeStub::start(vec![StubResponse::fixture(500, "error_500_api.json")]).await;
    let err = stub_reader(&stub, quick_retries(3)).subscription(&id).await.unwrap_err();
    assert!(matches!(err, StripeApiError::Unavailable(_)));
    assert_eq!(stub.requests().len(), 1, "a 500 is left to the caller");

    let stub = StripeStub::start(vec![StubResponse::fixture(401, "error_401_authentication.json")]).await;
    let err = stub_reader(&stub, quick_retries(3)).subscription(&id).await.unwrap_err();
    assert!(matches!(err, StripeApiError::Unauthorized { status: 401 }));
    assert!(!format!("{err:?}").contains("stripe_reads"), "the key never shows");
}

#[tokio::test]
async fn a_burst_of_reads_is_held_to_the_rate_limit() {
    let responses = vec![StubResponse::raw(200, "application/json", &subscription_json()); 12];
    let stub = StripeStub::start(responses).await;
    let api = Arc::new(
        stub_reader(&stub, RetryPolicy::never()).with_rate_limit(RateLimit { per_second: 50.0, burst: 2 }),
    );
    let id = SubscriptionId::parse("sub_1Throttled").unwrap();
    let started = std::time::Instant::now();
    let reads: Vec<_> = (0..12)
        .map(|_| {
            let (api, id) = (api.clone(), id.clone());
            tokio::spawn(async move { api.subscription(&id).await })
        })
        .collect();
    for read in reads {
        read.await.unwrap().unwrap();
    }
    // Two at once, then one per 20 ms: ten waits of 20 ms at the least.
    assert!(started.elapsed() >= Duration::from_millis(195), "{:?}", started.elapsed());
}

/// A trial without a card, made by the real client over Stripe's wire
/// format: the stand-in records it, and the trial's end with nothing on
/// file pauses the subscription, as the plan asked.
#[tokio::test]
async fn a_card_less_trial_made_over_http_ends_paused_with_nothing_on_file() {
    let server = start().await;
    let request = CheckoutSessionRequest {
        trial_days: Some(14),
        trial_without_card: Some(tenancy::domain::TrialWithoutCard::Pause),
        ..initrode_checkout("card-less-trial".into())
    };
    let session = reader(&server.base).create_checkout_session(&request).await.unwrap();
    let held = server.stripe.sessions().into_iter().find(|s| s.id == session.id).unwrap();
    assert_eq!(held.trial_without_card, Some(tenancy::domain::TrialWithoutCard::Pause));
    let events = server.stripe.pay_with(&session.id, PayOptions::default()).unwrap();
    let created = events.iter().find(|e| e["type"] == "customer.subscription.created").unwrap();
    let id = SubscriptionId::parse(created["data"]["object"]["id"].as_str().unwrap()).unwrap();
    assert_eq!(assert_reads_back(&server, &id).await.status, SubscriptionStatus::Trialing);

    let (status, answer) = act(&server, &id, "trial-ends", serde_json::json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(assert_reads_back(&server, &id).await.status, SubscriptionStatus::Paused);
}
