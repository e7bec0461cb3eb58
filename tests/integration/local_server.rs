//! `tenantctl local serve` over real HTTP on loopback.

use std::sync::Arc;

use http::StatusCode;
use integration_tests::{
    FIXTURE_SECRET, local_adapters, local_stack, read_repo_file, repo_root, workspace_binary,
};
use tenancy::stripe::WebhookSecret;
use tenantctl::http_client::HttpClient;
use tenantctl::local::LocalStack;
use tenantctl::local::{bind, serve};
use tenantctl::send::{Delivery, send_bytes, send_file};
use tokio::sync::oneshot;

const NOW: i64 = 1_763_800_100;

struct Server {
    base: String,
    stack: Arc<LocalStack>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start() -> Server {
        let stack = local_stack(NOW, local_adapters());
        let (listener, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, stack.clone(), async {
            let _ = stopped.await;
        }));
        Server { base: format!("http://{addr}"), stack, stop: Some(stop), task }
    }

    fn webhook(&self) -> String {
        format!("{}/stripe/webhook", self.base)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_paid_checkout_posted_twice_becomes_one_active_tenant() {
    let server = Server::start().await;
    let client = HttpClient::default();
    let secret = WebhookSecret::parse(FIXTURE_SECRET).unwrap();
    let url = server.webhook();
    let delivery = Delivery { url: &url, secret: &secret, timestamp: Some(NOW) };
    let file = repo_root().join("events/01-checkout.session.completed.json");

    for _ in 0..2 {
        let sent = send_file(&client, &delivery, &file).await.unwrap();
        assert_eq!((sent.status, sent.answer.as_str()), (StatusCode::OK, r#"{"received":true}"#));
    }
    assert!(server.stack.workflows.wait_idle(std::time::Duration::from_secs(30)).await);

    let (status, body) = client.get(&format!("{}/local/state", server.base)).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let state: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let count = |key: &str| state[key].as_array().unwrap().len();
    assert_eq!(
        (count("executions"), count("tenants"), count("services"), count("dns_records"), count("emails")),
        (1, 1, 1, 1, 1)
    );
    assert_eq!(state["executions"][0]["name"], "evt_1QAcmeCheckoutDone");
    assert_eq!(state["executions"][0]["status"], "SUCCEEDED");
    assert_eq!(state["executions"][0]["states"][0], "RecordSignup");
    assert_eq!(state["tenants"][0]["status"], "ACTIVE");
    assert_eq!(state["dns_records"][0]["name"], "acme.apps.example.test");
    assert_eq!(state["emails"][0]["to"], "dana@acme.example");
    // The counts a poller waits on say the same.
    let (status, body) = client.get(&format!("{}/local/progress", server.base)).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let progress: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        progress,
        serde_json::json!({
            "tenants": {"ACTIVE": 1}, "executions": {"SUCCEEDED": 1},
            "queued": 0, "dead_letters": 0, "settled": true,
        })
    );

    let (status, history) =
        client.get(&format!("{}/local/executions/evt_1QAcmeCheckoutDone", server.base)).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let history: serde_json::Value = serde_json::from_slice(&history).unwrap();
    assert_eq!(history["history"][0]["kind"], "ExecutionStarted");
    let (status, _) = client.get(&format!("{}/local/executions/evt_nope", server.base)).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn each_class_of_bad_request_gets_its_answer_over_http() {
    let server = Server::start().await;
    let client = HttpClient::default();
    let url = server.webhook();
    let good = WebhookSecret::parse(FIXTURE_SECRET).unwrap();
    let wrong = WebhookSecret::parse("whsec_not_the_right_one").unwrap();
    let body = read_repo_file("events/03-invoice.paid.json").into_bytes();
    let send = async |secret: &WebhookSecret, timestamp: i64, body: Vec<u8>| {
        let delivery = Delivery { url: &url, secret, timestamp: Some(timestamp) };
        send_bytes(&client, &delivery, body).await.unwrap()
    };

    let (status, answer) = send(&wrong, NOW, body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer.contains("no v1 signature matches"), "{answer}");

    let (status, answer) = send(&good, NOW - 3600, body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer.contains("3600s old"), "{answer}");

    let (status, answer) = send(&good, NOW + 3600, body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer.contains("in the future"), "{answer}");

    let (status, answer) = send(&good, NOW, b"<xml/>".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer.contains("not a Stripe event"), "{answer}");

    let live =
        String::from_utf8(body.clone()).unwrap().replace(r#""livemode": false"#, r#""livemode": true"#);
    let (status, answer) = send(&good, NOW, live.into_bytes()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer.contains("livemode=true"), "{answer}");

    let (status, _) = send(&good, NOW, vec![b' '; 300 * 1024]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let unsigned = http::Request::post(&url).body(http_body_util::Full::new(body.into())).unwrap();
    let (status, answer) = client.call(unsigned).await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer, r#"{"error":"missing Stripe-Signature header"}"#.as_bytes());

    let ignored = read_repo_file("events/08-charge.succeeded.json").into_bytes();
    let (status, answer) = send(&good, NOW, ignored).await;
    assert_eq!((status, answer.as_str()), (StatusCode::OK, r#"{"ignored":true,"received":true}"#));

    assert!(server.stack.workflows.wait_idle(std::time::Duration::from_secs(10)).await);
    assert!(server.stack.workflows.executions().is_empty(), "nothing refused or ignored may start work");
    server.stop().await;
}

/// The checkout API over HTTP on the local server: form, hold, session, pay,
/// and Stripe's signed event provisions the tenant.
#[tokio::test]
async fn a_signup_goes_from_the_form_to_an_active_tenant() {
    use tenancy::clock::{Clock, FixedClock};

    let clock: Arc<dyn Clock> = Arc::new(FixedClock(NOW));
    // Through the real async-stripe adapter, over HTTP, to the server's own
    // Stripe stand-in.
    let served = integration_tests::ServedStack::start(clock, |base, _| {
        let key = tenancy::stripe::StripeSecretKey::parse("sk_test_integration_0000").unwrap();
        Arc::new(tenancy::adapters::stripe::StripeApi::new(key, Some(base), &format!("{base}/")).unwrap())
    })
    .await;
    let (base, stripe, stack) = (served.base.clone(), served.stripe.clone(), served.stack.clone());
    let client = HttpClient::default();
    let post = |url: String, body: &str| {
        http::Request::post(url)
            .header("content-type", "application/json")
            .header("origin", "https://www.example.com")
            .body(http_body_util::Full::new(body.to_owned().into()))
            .unwrap()
    };

    let (status, body) = client.get(&format!("{base}/subdomains/initrode")).await.unwrap();
    assert_eq!((status, body.as_ref()), (StatusCode::OK, br#"{"available":true,"reason":null}"#.as_slice()));

    let form = r#"{"plan":"basic","billing":"monthly","subdomain":"initrode","organization":"Initrode","email":"peter@initrode.example"}"#;
    let (status, body) = client.call(post(format!("{base}/checkout"), form)).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let created: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let session = created["id"].as_str().unwrap().to_owned();
    let recorded = &stripe.sessions()[0];
    assert_eq!(
        (recorded.id.as_str(), recorded.price_id.as_str()),
        (session.as_str(), "price_1QBasicMonthlyCAD")
    );
    assert_eq!(recorded.metadata["subdomain"], "initrode");
    assert!(recorded.idempotency_key.starts_with("checkout-"), "the adapter sent the key");

    let (status, body) = client.get(&format!("{base}/subdomains/initrode")).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("checking out"));

    let (status, body) =
        client.call(post(format!("{base}/local/stripe/checkout/{session}/pay"), "")).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let paid: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(paid["webhook_status"], 200, "{paid}");

    for _ in 0..200 {
        if stack.queue.is_empty()
            && stack.workflows.running() == 0
            && !stack.workflows.executions().is_empty()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(stack.workflows.wait_idle(std::time::Duration::from_secs(30)).await);
    let state = stack.state().await;
    let tenant = &state["tenants"][0];
    assert_eq!(
        (tenant["status"].as_str(), tenant["signup"]["subdomain"].as_str()),
        (Some("ACTIVE"), Some("initrode"))
    );
    assert_eq!(tenant["plan"]["key"], "basic");
    let (_, body) = client.get(&format!("{base}/subdomains/initrode")).await.unwrap();
    assert_eq!(body.as_ref(), br#"{"available":false,"reason":"taken"}"#.as_slice());
    served.stop().await;
}

/// `tenantctl local serve`'s own stack ([`tenantctl::server::build`]) on a
/// loopback port, its environment test mode with the fixture secret and
/// `vars`: its address, the stack, and what stops it.
async fn local_serve(
    vars: &[(&'static str, &str)],
    local: tenantctl::local::LocalOptions,
) -> (String, Arc<LocalStack>, oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>) {
    use tenantctl::server::{ServerOptions, build};
    let mut all = std::collections::BTreeMap::from([
        ("STRIPE_MODE", "test"),
        ("STRIPE_WEBHOOK_SECRET", FIXTURE_SECRET),
    ]);
    all.extend(vars.iter().copied());
    let env = integration_tests::lookup(&all);
    let options = ServerOptions { local, emulator: None, faults: None };
    let server = build("127.0.0.1:0".parse().unwrap(), options, &env).await.unwrap();
    let (base, stack) = (format!("http://{}", server.bound), server.stack.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(server.listener, stack.clone(), async {
        let _ = stopped.await;
    }));
    (base, stack, stop, task)
}

/// A JSON POST from the marketing site's origin.
fn post(url: String, body: String) -> http::Request<http_body_util::Full<axum::body::Bytes>> {
    http::Request::post(url)
        .header("content-type", "application/json")
        .header("origin", "http://localhost:3000")
        .body(http_body_util::Full::new(body.into()))
        .unwrap()
}

/// `tenantctl local serve`'s own stack ([`tenantctl::server::build`]) over
/// HTTP: a paid signup whose card then fails gets a mail whose billing link
/// opens the billing portal when it is followed, not when it was mailed.
#[tokio::test]
async fn local_serve_mails_a_billing_link_that_opens_the_portal_when_followed() {
    let vars = [("TENANT_PASSWORD_KEY", "v2:integration-test-password-key-000000000")];
    let (base, stack, stop, task) = local_serve(&vars, integration_tests::instant_options()).await;
    let client = HttpClient::default();
    let idle = async || assert!(stack.workflows.wait_idle(std::time::Duration::from_secs(30)).await);
    let buy = async |subdomain: &str, email: &str| {
        let form = serde_json::json!({"plan": "pro", "billing": "monthly", "subdomain": subdomain, "organization": "Initrode", "email": email});
        let (status, body) = client.call(post(format!("{base}/checkout"), form.to_string())).await.unwrap();
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let session: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let pay = format!("{base}/local/stripe/checkout/{}/pay", session["id"].as_str().unwrap());
        let (status, _) = client.call(post(pay, String::new())).await.unwrap();
        assert_eq!(status, StatusCode::OK);
    };
    buy("initrode", "peter@initrode.example").await;
    idle().await;
    let subscriptions = stack.stripe.subscriptions();
    let paying = &subscriptions[0];
    let fail = format!("{base}/local/stripe/subscriptions/{}/card-fails", paying.id);
    assert_eq!(client.call(post(fail, String::new())).await.unwrap().0, StatusCode::OK);
    idle().await;

    let state = stack.state().await;
    let mail = state["emails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["subject"].as_str().unwrap().starts_with("Payment failed"))
        .expect("a card mail");
    let text = mail["text"].as_str().unwrap();
    let link = text.split_whitespace().find(|w| w.contains("/billing/v2.")).expect("our billing link");
    assert!(link.starts_with(&format!("{base}/billing/v2.{}.", paying.customer)), "{link}");
    // Followed over HTTP: a redirect to a portal session made now.
    let (status, _) = client.get(link).await.unwrap();
    assert_eq!(status, StatusCode::SEE_OTHER);
    let path = link.strip_prefix(&base).unwrap();
    let signup = stack.signup.as_ref().unwrap();
    let answer = signup.api.handle(&http::Method::GET, path, &http::HeaderMap::new(), b"", None).await;
    let location = &answer.headers.iter().find(|(name, _)| *name == "location").unwrap().1;
    assert_eq!(location, &format!("{base}/billing-portal/{}", paying.customer));
    assert_eq!(client.get(location).await.unwrap().0, StatusCode::OK);
    let tampered = link.replace(&paying.customer, "cus_someoneelse");
    assert_eq!(client.get(&tampered).await.unwrap().0, StatusCode::NOT_FOUND);

    task.abort();
    let _ = stop.send(());
}

/// `tenantctl local serve` with a pool of two load balancers held to one
/// tenant each: the two tenants are placed one on each, their records point
/// at their own; the third signup is refused before payment on both routes,
/// and a tenant that leaves makes room again.
#[tokio::test]
async fn a_full_pool_refuses_signups_before_payment_until_a_tenant_leaves() {
    use tenancy::checkout::room::NO_ROOM;
    use tenancy::ports::AlbQuotas;
    use tenantctl::local::LocalOptions;

    let quotas = AlbQuotas { target_groups: 1, rules: 100 };
    let local = LocalOptions { quotas, load_balancers: 2, ..integration_tests::instant_options() };
    let (base, stack, stop, task) = local_serve(&[("CHECKOUT_ROOM_RESERVE", "0")], local).await;
    let client = HttpClient::default();
    let idle = async || assert!(stack.workflows.wait_idle(std::time::Duration::from_secs(30)).await);
    let checkout = async |subdomain: &str| {
        let form = serde_json::json!({"plan": "pro", "billing": "monthly", "subdomain": subdomain,
            "organization": "Initrode", "email": format!("owner@{subdomain}.example")});
        let (status, body) = client.call(post(format!("{base}/checkout"), form.to_string())).await.unwrap();
        (status, serde_json::from_slice::<serde_json::Value>(&body).unwrap())
    };
    for name in ["first", "second"] {
        let (status, session) = checkout(name).await;
        assert_eq!(status, StatusCode::OK, "{session}");
        let pay = format!("{base}/local/stripe/checkout/{}/pay", session["id"].as_str().unwrap());
        assert_eq!(client.call(post(pay, String::new())).await.unwrap().0, StatusCode::OK);
        idle().await;
    }
    let active = stack.store.list_tenants().await.unwrap();
    assert_eq!(active.iter().filter(|t| t.status.as_str() == "ACTIVE").count(), 2);
    let balancers: std::collections::BTreeSet<String> = active
        .iter()
        .map(|t| {
            let resources = &t.resources;
            assert_eq!(resources.dns_target, resources.load_balancer, "the record points at its own");
            resources.load_balancer.as_ref().expect("placed").dns_name.clone()
        })
        .collect();
    assert_eq!(balancers.len(), 2, "one tenant on each load balancer: {balancers:?}");

    let available = async |name: &str| {
        let (_, body) = client.get(&format!("{base}/subdomains/{name}")).await.unwrap();
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()
    };
    assert_eq!(available("third").await, serde_json::json!({"available": false, "reason": NO_ROOM}));
    let (status, refused) = checkout("third").await;
    assert_eq!((status, &refused["error"]), (StatusCode::SERVICE_UNAVAILABLE, &serde_json::json!(NO_ROOM)));
    assert_eq!(stack.stripe.sessions().len(), 2, "no Checkout Session for the refused signup");

    // The first tenant cancels: its rule and target group go, and its place with them.
    let leaving = stack.stripe.subscriptions()[0].id.clone();
    let cancel = format!("{base}/local/stripe/subscriptions/{leaving}/cancel");
    assert_eq!(client.call(post(cancel, String::new())).await.unwrap().0, StatusCode::OK);
    idle().await;
    assert_eq!(available("third").await["available"], true);
    let (status, session) = checkout("third").await;
    assert_eq!(status, StatusCode::OK, "{session}");

    task.abort();
    let _ = stop.send(());
}

#[test]
fn local_serve_refuses_bad_configuration_in_one_line_without_panicking() {
    for (var, value) in [("ALB_MAX_RULES", "many"), ("ROUTE53_CHANGES_PER_SECOND", "0")] {
        let output = std::process::Command::new(workspace_binary("tenantctl"))
            .args(["local", "serve", "--addr", "127.0.0.1:0"])
            .env(var, value)
            .output()
            .expect("tenantctl runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{var}={value} was accepted");
        assert!(stderr.contains(var), "{var}: {stderr}");
        assert!(!stderr.contains("panicked"), "{var}: {stderr}");
    }
}
