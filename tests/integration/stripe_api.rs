//! The Stripe API adapter (`StripeApi`, through async-stripe) against a local
//! stand-in for api.stripe.com that records each request and answers with
//! Stripe's responses from `tests/fixtures/stripe/`.

use std::collections::BTreeMap;
use std::time::Duration;

use integration_tests::{StripeStub, StubResponse, lookup};
use tenancy::adapters::local::InMemorySecretStore;
use tenancy::adapters::stripe::{BILLING_PORTAL_RETURN_URL, STRIPE_API_BASE, StripeApi};
use tenancy::config::{ConfigError, STRIPE_SECRET_KEY, STRIPE_SECRET_KEY_PARAM};
use tenancy::domain::{CustomerId, EmailAddress};
use tenancy::ports::{
    BillingError, BillingPortal, CheckoutSessionRequest, Discount, StripeApiError, StripeGateway,
};
use tenancy::stripe::{StripeMode, StripeSecretKey};

const TEST_KEY: &str = "sk_test_51QAcmeIntegrationKey0000000001";
const LIVE_KEY: &str = "sk_live_51QAcmeIntegrationKey0000000001";
/// What of the key must never show in an error.
const KEY_BODY: &str = "AcmeIntegrationKey";
const RETURN_URL: &str = "https://example.com/account";
/// The API version async-stripe 1.0.0-rc.10 is generated for and sends.
const STRIPE_VERSION: &str = "2026-09-30.endive";

fn api(stub: &StripeStub) -> StripeApi {
    let key = StripeSecretKey::for_mode(TEST_KEY, StripeMode::Test).expect("a test key");
    StripeApi::new(key, Some(stub.base_url()), RETURN_URL).expect("valid configuration")
}

fn checkout_request() -> CheckoutSessionRequest {
    let metadata: BTreeMap<String, String> = [
        ("subdomain", "acme"),
        ("plan", "pro"),
        ("billing", "monthly"),
        ("organization", "Acme Robotics & Co."),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    CheckoutSessionRequest {
        price_id: "price_1QProMonthlyCad".into(),
        customer_email: EmailAddress::parse("dana@acme.example").expect("valid address"),
        success_url: "https://example.com/welcome?session_id={CHECKOUT_SESSION_ID}".into(),
        cancel_url: "https://example.com/pricing".into(),
        metadata,
        discount: Discount::CustomerMayEnterCode,
        trial_days: None,
        trial_without_card: None,
        expires_at: Some(1_763_801_740),
        idempotency_key: "checkout-acme-7f3a9c".into(),
    }
}

fn fixture_json(name: &str) -> serde_json::Value {
    let text = integration_tests::read_repo_file(&format!("tests/fixtures/stripe/{name}"));
    serde_json::from_str(&text).expect("fixture is JSON")
}

#[tokio::test]
async fn checkout_session_is_form_encoded_as_stripe_expects_and_idempotent() {
    let stub = StripeStub::start(vec![StubResponse::fixture(200, "checkout_session.json")]).await;
    let request = checkout_request();

    let created = api(&stub).create_checkout_session(&request).await.expect("session created");

    let fixture = fixture_json("checkout_session.json");
    assert_eq!(created.id, fixture["id"].as_str().expect("id"));
    assert_eq!(created.url, fixture["url"].as_str().expect("url"));

    let sent = stub.single_request();
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/v1/checkout/sessions");
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {TEST_KEY}").as_str()));
    assert_eq!(sent.header("idempotency-key"), Some("checkout-acme-7f3a9c"));
    assert_eq!(sent.header("stripe-version"), Some(STRIPE_VERSION));
    assert_eq!(sent.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert!(sent.header("user-agent").is_some_and(|ua| ua.contains("tenancy/")), "{:?}", sent.headers);

    let field = |name: &str| sent.form_value(name);
    assert_eq!(field("mode").as_deref(), Some("subscription"));
    assert_eq!(field("line_items[0][price]").as_deref(), Some("price_1QProMonthlyCad"));
    assert_eq!(field("line_items[0][quantity]").as_deref(), Some("1"));
    assert_eq!(field("line_items[1][price]"), None);
    assert_eq!(field("customer_email").as_deref(), Some("dana@acme.example"));
    assert_eq!(
        field("success_url").as_deref(),
        Some("https://example.com/welcome?session_id={CHECKOUT_SESSION_ID}")
    );
    assert_eq!(field("cancel_url").as_deref(), Some("https://example.com/pricing"));
    assert_eq!(field("allow_promotion_codes").as_deref(), Some("true"));
    assert_eq!(field("expires_at").as_deref(), Some("1763801740"));
    for (key, value) in &request.metadata {
        assert_eq!(field(&format!("metadata[{key}]")).as_ref(), Some(value), "metadata[{key}]");
        assert_eq!(
            field(&format!("subscription_data[metadata][{key}]")).as_ref(),
            Some(value),
            "subscription_data[metadata][{key}]"
        );
    }
    // Nothing else: the session is exactly what the request asked for.
    let mut names: Vec<String> = sent.form().into_iter().map(|(k, _)| k).collect();
    names.sort();
    let mut expected: Vec<String> = [
        "allow_promotion_codes",
        "cancel_url",
        "customer_email",
        "expires_at",
        "line_items[0][price]",
        "line_items[0][quantity]",
        "mode",
        "success_url",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(request.metadata.keys().map(|k| format!("metadata[{k}]")))
    .chain(request.metadata.keys().map(|k| format!("subscription_data[metadata][{k}]")))
    .collect();
    expected.sort();
    assert_eq!(names, expected, "body: {}", sent.body);
}

#[tokio::test]
async fn checkout_session_without_expiry_sends_none() {
    let stub = StripeStub::start(vec![StubResponse::fixture(200, "checkout_session.json")]).await;
    let request = CheckoutSessionRequest { expires_at: None, discount: Discount::None, ..checkout_request() };
    api(&stub).create_checkout_session(&request).await.expect("session created");
    let sent = stub.single_request();
    assert_eq!(sent.form_value("expires_at"), None);
    assert_eq!(sent.form_value("allow_promotion_codes").as_deref(), Some("false"));
}

/// A promotion code given up front is sent as `discounts`, and then the
/// field to type one is not (Stripe refuses both).
#[tokio::test]
async fn checkout_session_with_a_promotion_code_sends_discounts_only() {
    let stub = StripeStub::start(vec![StubResponse::fixture(200, "checkout_session.json")]).await;
    let promo = tenancy::domain::PromotionCodeId::parse("promo_1Welcome10").unwrap();
    let request = CheckoutSessionRequest { discount: Discount::PromotionCode(promo), ..checkout_request() };
    api(&stub).create_checkout_session(&request).await.expect("session created");
    let sent = stub.single_request();
    assert_eq!(sent.form_value("discounts[0][promotion_code]").as_deref(), Some("promo_1Welcome10"));
    assert_eq!(sent.form_value("discounts[0][coupon]"), None);
    assert_eq!(sent.form_value("allow_promotion_codes"), None);
}

#[tokio::test]
async fn checkout_session_with_a_trial_sends_its_days_on_the_subscription() {
    let stub = StripeStub::start(vec![StubResponse::fixture(200, "checkout_session.json")]).await;
    let request = CheckoutSessionRequest { trial_days: Some(14), ..checkout_request() };
    api(&stub).create_checkout_session(&request).await.expect("session created");
    let sent = stub.single_request();
    assert_eq!(sent.form_value("subscription_data[trial_period_days]").as_deref(), Some("14"));
    // A card is collected: Checkout's default.
    assert_eq!(sent.form_value("payment_method_collection"), None);
}

#[tokio::test]
async fn a_trial_without_a_card_asks_for_none_and_says_what_ends_it() {
    let stub = StripeStub::start(vec![StubResponse::fixture(200, "checkout_session.json")]).await;
    let request = CheckoutSessionRequest {
        trial_days: Some(14),
        trial_without_card: Some(tenancy::domain::TrialWithoutCard::Pause),
        ..checkout_request()
    };
    api(&stub).create_checkout_session(&request).await.expect("session created");
    let sent = stub.single_request();
    assert_eq!(sent.form_value("payment_method_collection").as_deref(), Some("if_required"));
    assert_eq!(
        sent.form_value("subscription_data[trial_settings][end_behavior][missing_payment_method]").as_deref(),
        Some("pause")
    );
}

/// `GET /v1/promotion_codes`: the active one by code, with its coupon and
/// `applies_to` expanded; asked again without `active` only when there is
/// none, to tell an inactive code from an unknown one.
#[tokio::test]
async fn a_promotion_code_is_looked_up_by_code_and_an_inactive_one_is_told_apart() {
    let promo = r#"{"object":"list","has_more":false,"url":"/v1/promotion_codes","data":[{"id":"promo_1Old",
        "object":"promotion_code","active":false,"code":"SPRING","expires_at":null,"max_redemptions":null,
        "times_redeemed":2,"promotion":{"type":"coupon","coupon":{"id":"spring","object":"coupon","valid":true,
        "applies_to":{"products":["tenancy_pro"]}}}}]}"#;
    let empty = r#"{"object":"list","has_more":false,"url":"/v1/promotion_codes","data":[]}"#;
    let stub = StripeStub::start(vec![
        StubResponse::raw(200, "application/json", empty),
        StubResponse::raw(200, "application/json", promo),
    ])
    .await;
    let code = tenancy::domain::PromotionCode::parse("spring").unwrap();
    let found = api(&stub).promotion_code(&code).await.expect("an answer").expect("the inactive code");
    assert_eq!((found.id.as_str(), found.active, found.times_redeemed), ("promo_1Old", false, 2));
    assert_eq!(found.coupon.applies_to_products, Some(vec!["tenancy_pro".to_owned()]));
    let sent = stub.requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].path, "/v1/promotion_codes");
    let query = |i: usize| -> Vec<(String, String)> {
        form_urlencoded::parse(sent[i].query.as_deref().unwrap_or_default().as_bytes()).into_owned().collect()
    };
    let has = |i: usize, k: &str, v: &str| query(i).iter().any(|(key, value)| key == k && value == v);
    assert!(has(0, "code", "spring") && has(0, "active", "true"), "{:?}", query(0));
    assert!(has(0, "expand[]", "data.promotion.coupon.applies_to"), "{:?}", query(0));
    assert!(has(1, "code", "spring") && !query(1).iter().any(|(k, _)| k == "active"), "{:?}", query(1));

    let stub = StripeStub::start(vec![StubResponse::raw(200, "application/json", empty); 2]).await;
    assert_eq!(api(&stub).promotion_code(&code).await.expect("an answer"), None, "no such code");
}

#[tokio::test]
async fn a_retried_checkout_sends_the_same_idempotency_key() {
    let stub = StripeStub::start(vec![
        StubResponse::fixture(500, "error_500_api.json"),
        StubResponse::fixture(200, "checkout_session.json"),
    ])
    .await;
    let api = api(&stub);
    let request = checkout_request();
    assert!(matches!(api.create_checkout_session(&request).await, Err(StripeApiError::Unavailable(_))));
    api.create_checkout_session(&request).await.expect("the retry succeeds");
    let keys: Vec<_> =
        stub.requests().iter().map(|r| r.header("idempotency-key").map(str::to_owned)).collect();
    assert_eq!(keys, vec![Some("checkout-acme-7f3a9c".to_owned()); 2], "one attempt per call, same key");
}

#[tokio::test]
async fn portal_session_for_a_customer_returns_its_url() {
    let stub = StripeStub::start(vec![
        StubResponse::fixture(200, "billing_portal_session.json"),
        StubResponse::fixture(200, "billing_portal_session.json"),
    ])
    .await;
    let api = api(&stub);
    let customer = CustomerId::parse("cus_QAcmeR0b0t1cs").expect("valid id");
    let expected = fixture_json("billing_portal_session.json")["url"].as_str().expect("url").to_owned();

    let url = api.create_portal_session(&customer, "https://example.com/elsewhere").await.expect("portal");
    assert_eq!(url, expected);
    // Through the BillingPortal port: back to the configured return URL.
    assert_eq!(api.portal_url(&customer).await.expect("portal"), expected);

    let requests = stub.requests();
    assert_eq!(requests.len(), 2);
    for (sent, return_url) in requests.iter().zip(["https://example.com/elsewhere", RETURN_URL]) {
        assert_eq!(sent.method, "POST");
        assert_eq!(sent.path, "/v1/billing_portal/sessions");
        assert_eq!(sent.header("authorization"), Some(format!("Bearer {TEST_KEY}").as_str()));
        assert_eq!(sent.header("stripe-version"), Some(STRIPE_VERSION));
        assert_eq!(sent.header("idempotency-key"), None);
        let mut form = sent.form();
        form.sort();
        assert_eq!(
            form,
            vec![("customer".into(), "cus_QAcmeR0b0t1cs".into()), ("return_url".into(), return_url.into())]
        );
    }
}

#[tokio::test]
async fn a_stripe_refusal_carries_its_code_and_message() {
    let stub = StripeStub::start(vec![StubResponse::fixture(400, "error_400_resource_missing.json")]).await;
    let err = api(&stub).create_checkout_session(&checkout_request()).await.unwrap_err();
    match &err {
        StripeApiError::Rejected { status, code, message } => {
            assert_eq!(*status, 400);
            assert_eq!(code.as_deref(), Some("resource_missing"));
            assert_eq!(message, "No such price: 'price_x'");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "Stripe refused the request (400, resource_missing): No such price: 'price_x'"
    );
}

#[tokio::test]
async fn a_refused_key_is_unauthorized_without_stripes_message() {
    for status in [401, 403] {
        let stub =
            StripeStub::start(vec![StubResponse::fixture(status, "error_401_authentication.json")]).await;
        let err = api(&stub).create_checkout_session(&checkout_request()).await.unwrap_err();
        assert!(matches!(err, StripeApiError::Unauthorized { status: s } if s == status), "{err:?}");
        assert_no_key(&err);
    }
}

#[tokio::test]
async fn rate_limits_server_errors_and_conflicts_are_unavailable() {
    for (status, fixture) in [
        (429, "error_429_rate_limit.json"),
        (500, "error_500_api.json"),
        (503, "error_500_api.json"),
        (409, "error_500_api.json"),
    ] {
        let stub = StripeStub::start(vec![StubResponse::fixture(status, fixture)]).await;
        let err = api(&stub).create_checkout_session(&checkout_request()).await.unwrap_err();
        assert!(matches!(err, StripeApiError::Unavailable(_)), "{status}: {err:?}");
        let chain = integration_tests::error_chain(&err);
        assert!(chain.contains(&format!("HTTP {status}")), "{chain}");
        assert!(!chain.contains('\n'), "{chain}");
        assert_eq!(stub.requests().len(), 1, "{status}: one attempt, the caller retries");
    }
}

#[tokio::test]
async fn an_error_page_that_is_not_stripes_is_unavailable() {
    let stub =
        StripeStub::start(vec![StubResponse::raw(502, "text/html", "<html>502 Bad Gateway</html>")]).await;
    let err = api(&stub).create_checkout_session(&checkout_request()).await.unwrap_err();
    assert!(matches!(err, StripeApiError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_slow_stripe_times_out_as_unavailable() {
    let stub = StripeStub::start(vec![
        StubResponse::fixture(200, "checkout_session.json").delayed(Duration::from_secs(5)),
    ])
    .await;
    let api = api(&stub).with_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = api.create_checkout_session(&checkout_request()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "bounded by the timeout: {:?}", started.elapsed());
    assert!(matches!(err, StripeApiError::Unavailable(_)), "{err:?}");
    assert!(integration_tests::error_chain(&err).contains("within 300 ms"), "{err:?}");
}

#[tokio::test]
async fn nothing_listening_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let key = StripeSecretKey::parse(TEST_KEY).expect("key");
    let api = StripeApi::new(key, Some(&format!("http://{addr}")), RETURN_URL).expect("config");
    let err = api.create_checkout_session(&checkout_request()).await.unwrap_err();
    assert!(matches!(err, StripeApiError::Unavailable(_)), "{err:?}");
    assert_no_key(&err);
}

#[tokio::test]
async fn portal_errors_map_onto_the_billing_port() {
    let stub = StripeStub::start(vec![
        StubResponse::fixture(400, "error_400_resource_missing.json"),
        StubResponse::fixture(401, "error_401_authentication.json"),
        StubResponse::fixture(429, "error_429_rate_limit.json"),
    ])
    .await;
    let api = api(&stub);
    let customer = CustomerId::parse("cus_QAcmeR0b0t1cs").expect("valid id");
    let rejected = api.portal_url(&customer).await.unwrap_err();
    assert!(matches!(&rejected, BillingError::Rejected(m) if m.contains("resource_missing")), "{rejected:?}");
    let unauthorized = api.portal_url(&customer).await.unwrap_err();
    assert!(matches!(&unauthorized, BillingError::Rejected(m) if m.contains("401")), "{unauthorized:?}");
    let unavailable = api.portal_url(&customer).await.unwrap_err();
    assert!(matches!(unavailable, BillingError::Unavailable(_)), "{unavailable:?}");
}

#[tokio::test]
async fn an_idempotency_key_stripe_would_refuse_is_not_sent() {
    let stub = StripeStub::start(vec![]).await;
    let request = CheckoutSessionRequest { idempotency_key: String::new(), ..checkout_request() };
    let err = api(&stub).create_checkout_session(&request).await.unwrap_err();
    assert!(matches!(err, StripeApiError::Rejected { status: 400, .. }), "{err:?}");
    assert!(stub.requests().is_empty());
}

fn assert_no_key(err: &dyn std::error::Error) {
    let chain = integration_tests::error_chain(err);
    assert!(!chain.contains(KEY_BODY), "{chain}");
    let debug = format!("{err:?}");
    assert!(!debug.contains(KEY_BODY), "{debug}");
}

// ---- configuration: from_lookup and the test/live guard ----

async fn from_lookup(
    pairs: &[(&str, &str)],
    mode: StripeMode,
    store: &InMemorySecretStore,
) -> Result<StripeApi, ConfigError> {
    let vars: BTreeMap<&str, &str> = pairs.iter().copied().collect();
    StripeApi::from_lookup(&lookup(&vars), mode, store).await
}

#[tokio::test]
async fn from_lookup_talks_to_the_configured_base_with_the_stored_key() {
    let stub = StripeStub::start(vec![StubResponse::fixture(200, "billing_portal_session.json")]).await;
    let store = InMemorySecretStore::default();
    store.put("/tenancy/test/stripe-secret-key", TEST_KEY);
    let api = from_lookup(
        &[
            (STRIPE_SECRET_KEY_PARAM, "/tenancy/test/stripe-secret-key"),
            (STRIPE_API_BASE, stub.base_url()),
            (BILLING_PORTAL_RETURN_URL, "http://localhost:3000/account"),
        ],
        StripeMode::Test,
        &store,
    )
    .await
    .expect("valid configuration");
    assert_eq!(api.mode(), StripeMode::Test);
    let customer = CustomerId::parse("cus_QAcmeR0b0t1cs").expect("valid id");
    api.portal_url(&customer).await.expect("portal");
    let sent = stub.single_request();
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {TEST_KEY}").as_str()));
    assert_eq!(sent.form_value("return_url").as_deref(), Some("http://localhost:3000/account"));
}

#[tokio::test]
async fn a_live_stage_refuses_a_test_key_and_a_test_stage_a_live_key() {
    let store = InMemorySecretStore::default();
    store.put("/tenancy/live/stripe-secret-key", TEST_KEY);
    store.put("/tenancy/test/stripe-secret-key", LIVE_KEY);
    let cases = [
        (
            StripeMode::Live,
            (STRIPE_SECRET_KEY, TEST_KEY),
            "STRIPE_SECRET_KEY",
            "mode is live but the key is a test key",
        ),
        (
            StripeMode::Test,
            (STRIPE_SECRET_KEY, LIVE_KEY),
            "STRIPE_SECRET_KEY",
            "mode is test but the key is a live key",
        ),
        (
            StripeMode::Live,
            (STRIPE_SECRET_KEY_PARAM, "/tenancy/live/stripe-secret-key"),
            "STRIPE_SECRET_KEY_PARAM",
            "mode is live but the key is a test key",
        ),
        (
            StripeMode::Test,
            (STRIPE_SECRET_KEY_PARAM, "/tenancy/test/stripe-secret-key"),
            "STRIPE_SECRET_KEY_PARAM",
            "mode is test but the key is a live key",
        ),
    ];
    for (mode, key_var, var, says) in cases {
        let err =
            from_lookup(&[key_var, (BILLING_PORTAL_RETURN_URL, RETURN_URL)], mode, &store).await.unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with(&format!("configuration: {var} is invalid")), "{message}");
        assert!(message.contains(says), "{message}");
        assert!(!message.contains('\n'), "{message}");
        assert!(!message.contains(KEY_BODY) && !format!("{err:?}").contains(KEY_BODY), "{message}");
    }
    // The matching modes start.
    for (mode, key) in [(StripeMode::Test, TEST_KEY), (StripeMode::Live, LIVE_KEY)] {
        let api =
            from_lookup(&[(STRIPE_SECRET_KEY, key), (BILLING_PORTAL_RETURN_URL, RETURN_URL)], mode, &store)
                .await
                .expect("matching mode");
        assert_eq!(api.mode(), mode);
        assert_eq!(api.api_base(), "https://api.stripe.com");
        assert!(!format!("{api:?}").contains(KEY_BODY));
    }
}

#[tokio::test]
async fn bad_configuration_names_the_variable_and_never_the_key() {
    let store = InMemorySecretStore::default();
    store.put("/tenancy/test/not-a-key", "pk_test_51QAcmeIntegrationKey0000000001");
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[(BILLING_PORTAL_RETURN_URL, RETURN_URL)], "STRIPE_SECRET_KEY_PARAM is not set"),
        (&[(STRIPE_SECRET_KEY, TEST_KEY)], "BILLING_PORTAL_RETURN_URL is not set"),
        (
            &[
                (STRIPE_SECRET_KEY, TEST_KEY),
                (STRIPE_SECRET_KEY_PARAM, "/p"),
                (BILLING_PORTAL_RETURN_URL, RETURN_URL),
            ],
            "set only one of STRIPE_SECRET_KEY and STRIPE_SECRET_KEY_PARAM",
        ),
        (
            &[(STRIPE_SECRET_KEY_PARAM, "/tenancy/test/not-a-key"), (BILLING_PORTAL_RETURN_URL, RETURN_URL)],
            "STRIPE_SECRET_KEY_PARAM is invalid",
        ),
        (
            &[
                (STRIPE_SECRET_KEY, TEST_KEY),
                (STRIPE_API_BASE, "http://api.example.com"),
                (BILLING_PORTAL_RETURN_URL, RETURN_URL),
            ],
            "STRIPE_API_BASE is invalid",
        ),
        (
            &[(STRIPE_SECRET_KEY, TEST_KEY), (BILLING_PORTAL_RETURN_URL, "http://example.com/account")],
            "BILLING_PORTAL_RETURN_URL is invalid",
        ),
    ];
    for (pairs, says) in cases {
        let err = from_lookup(pairs, StripeMode::Test, &store).await.unwrap_err();
        let message = err.to_string();
        assert!(message.contains(says), "{message}");
        assert!(!message.contains(KEY_BODY), "{message}");
    }
}
