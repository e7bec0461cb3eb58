//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use tenancy::clock::FixedClock;
use tenancy::ingress::WebhookIngress;
use tenancy::ports::EventQueue;
use tenancy::stripe::{SignatureVerifier, StripeMode, WebhookSecret, WebhookSecrets};

/// The secret the committed fixtures are signed with.
pub const FIXTURE_SECRET: &str = "whsec_integration_fixture_secret";

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// A binary of the workspace, built beside this test binary (in
/// `target/debug/deps/`): `make test` builds every binary first.
pub fn workspace_binary(name: &str) -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let profile =
        test_binary.parent().and_then(Path::parent).expect("the test binary is in a profile's deps/");
    profile.join(name)
}

pub fn read_repo_file(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A test-mode ingress that accepts [`FIXTURE_SECRET`] at time `now`.
pub fn ingress_at(now: i64, queue: Arc<dyn EventQueue>) -> WebhookIngress {
    ingress_on(Arc::new(FixedClock(now)), queue)
}

/// The same, its tolerance judged by `clock`.
pub fn ingress_on(clock: Arc<dyn tenancy::clock::Clock>, queue: Arc<dyn EventQueue>) -> WebhookIngress {
    let secrets = WebhookSecrets::parse_list(FIXTURE_SECRET).expect("fixture secret is valid");
    let verifier = SignatureVerifier::new(secrets, Duration::from_secs(300));
    WebhookIngress::new(verifier, StripeMode::Test, queue, clock)
}

/// moto's server, started by `make test` (scripts/with-moto.sh), which
/// exports its address as MOTO_ENDPOINT.
pub fn moto_endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "MOTO_ENDPOINT is not set: these tests talk to moto's server. \
             Run `make test`, or `scripts/with-moto.sh cargo test`."
        ),
    }
}

/// SDK configuration pointing at moto's server.
pub async fn moto_config() -> SdkConfig {
    tenancy::adapters::aws::sdk_config(Some(&moto_endpoint())).await
}

/// The local stack with its signup form and Stripe stand-in, served on a
/// loopback port, as `tenantctl local serve` serves it (minus the
/// dispatcher, which a test spawns if it wants executions to run).
pub struct ServedStack {
    /// `http://127.0.0.1:PORT`: the stand-in's API base and the form's.
    pub base: String,
    pub stripe: Arc<tenancy::adapters::local::LocalStripe>,
    pub stack: Arc<tenantctl::local::LocalStack>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The checkout settings the served stacks use: the marketing site is
/// `https://www.example.com`.
pub fn checkout_settings() -> tenancy::checkout::CheckoutSettings {
    tenancy::checkout::CheckoutSettings {
        mode: StripeMode::Test,
        success_url: "https://www.example.com/welcome".into(),
        cancel_url: "https://www.example.com/pricing".into(),
        hold_seconds: 1800,
        hold_margin_seconds: tenancy::checkout::HOLD_MARGIN_SECONDS,
        max_holds_per_email: tenancy::checkout::DEFAULT_MAX_HOLDS,
        max_holds_per_ip: tenancy::checkout::DEFAULT_MAX_HOLDS,
        requests_per_minute: tenancy::checkout::DEFAULT_REQUESTS_PER_MINUTE,
        allowed_origins: vec!["https://www.example.com".into()],
    }
}

impl ServedStack {
    /// Served with `clock` (every part of the stack reads it); the checkout reaches Stripe through what
    /// `gateway` makes of the base URL and the stand-in (the stand-in itself,
    /// or a real client over HTTP to it).
    pub async fn start(
        clock: Arc<dyn tenancy::clock::Clock>,
        gateway: impl FnOnce(
            &str,
            &Arc<tenancy::adapters::local::LocalStripe>,
        ) -> Arc<dyn tenancy::ports::StripeGateway>,
    ) -> ServedStack {
        use tenancy::adapters::local::{LocalEventQueue, LocalStripe};
        use tenantctl::local::{LocalSignup, LocalStack, bind, serve};
        let (listener, addr) =
            bind("127.0.0.1:0".parse().expect("an address")).await.expect("a loopback port");
        let base = format!("http://{addr}");
        let stripe = Arc::new(LocalStripe::open(None, &base, clock.clone()).expect("the stand-in"));
        // The apps' status URL and billing links point at this server.
        let adapters = tenantctl::local::Adapters::local(
            step_config(),
            clock.clone(),
            &instant_options(),
            &base,
            stripe.clone(),
        )
        .expect("in-memory adapters open");
        let api = tenancy::checkout::CheckoutApi::new(
            adapters.steps.store.clone(),
            gateway(&base, &stripe),
            tenancy::domain::Catalog::embedded().expect("the catalog"),
            checkout_settings(),
            clock.clone(),
        )
        .with_room_check(adapters.capacity.clone(), tenancy::checkout::room::DEFAULT_ROOM_RESERVE)
        .with_status(step_config().password_key, Some(&base));
        let secret = WebhookSecret::parse(FIXTURE_SECRET).expect("the fixture secret");
        let signup = LocalSignup { api, webhook_secret: secret, clock: clock.clone() };
        let queue = Arc::new(LocalEventQueue::default());
        let ingress = ingress_on(clock.clone(), queue.clone());
        let stack =
            LocalStack::new(ingress, queue, adapters, &instant_options(), Some(signup)).expect("the stack");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, stack.clone(), async {
            let _ = stopped.await;
        }));
        ServedStack { base, stripe, stack, stop, task }
    }

    /// A checkout of `subdomain` through `POST /checkout`, paid: the
    /// session; the stand-in then holds its events and subscription.
    pub async fn paid_checkout(&self, subdomain: &str) -> serde_json::Value {
        let client = tenantctl::http_client::HttpClient::default();
        let post = |url: String, body: String| {
            http::Request::post(url)
                .header("content-type", "application/json")
                .header("origin", "https://www.example.com")
                .body(http_body_util::Full::new(body.into()))
                .expect("a request")
        };
        let form = serde_json::json!({"plan": "basic", "billing": "monthly", "subdomain": subdomain,
            "organization": "Go Live Co", "email": "owner@golive.example"});
        let (status, body) =
            client.call(post(format!("{}/checkout", self.base), form.to_string())).await.expect("an answer");
        assert_eq!(status, http::StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let session: serde_json::Value = serde_json::from_slice(&body).expect("a session");
        let id = session["id"].as_str().expect("its id");
        let pay = format!("{}/local/stripe/checkout/{id}/pay", self.base);
        assert_eq!(client.call(post(pay, String::new())).await.expect("an answer").0, http::StatusCode::OK);
        session
    }

    /// Stops serving once every execution has finished, and checks the
    /// server stopped cleanly.
    pub async fn stop(self) {
        assert!(self.stack.workflows.wait_idle(Duration::from_secs(30)).await);
        let _ = self.stop.send(());
        self.task.await.expect("the server task").expect("the server stops cleanly");
    }
}

/// A moto server of one test's own, for a setting that would change what
/// every other test sees on the shared one (`/moto-api/config`). Stopped
/// when dropped.
pub struct OwnMoto {
    child: std::process::Child,
    pub endpoint: String,
}

impl OwnMoto {
    pub fn start() -> OwnMoto {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        // A port of its own, not 0: moto calls itself (a Task's SQS
        // integration) at the port it was told.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port()
            .to_string();
        let mut child = Command::new(repo_root().join(".venv/bin/python"))
            .arg(repo_root().join("scripts/moto-server.py"))
            .args(["-H", "127.0.0.1", "-p", &port])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("moto_server starts (make test installs it into .venv)");
        let mut lines = BufReader::new(child.stderr.take().expect("its stderr")).lines();
        let endpoint = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                let at = line.find("http://127.0.0.1:")?;
                Some(line[at..].split_whitespace().next()?.to_owned())
            })
            .expect("moto_server says where it listens");
        // It logs every request: drained, so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        OwnMoto { child, endpoint }
    }

    pub async fn config(&self) -> SdkConfig {
        tenancy::adapters::aws::sdk_config(Some(&self.endpoint)).await
    }

    /// Sets moto's own configuration (`POST /moto-api/config`).
    pub async fn configure(&self, config: serde_json::Value) {
        let request = http::Request::post(format!("{}/moto-api/config", self.endpoint))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(config.to_string().into()))
            .expect("a request");
        let (status, _) =
            tenantctl::http_client::HttpClient::default().call(request).await.expect("moto answers");
        assert!(status.is_success(), "moto refused its configuration: {status}");
    }
}

impl Drop for OwnMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A name no other test (or earlier run against the same server) uses.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Settings, catalog and password key as a local run uses them.
pub fn step_config() -> tenantctl::local::StepConfig {
    use tenancy::config::{TenantDomain, TenantSettings};
    use tenancy::domain::password::PasswordKey;
    use tenancy::domain::{Catalog, EmailAddress};
    tenantctl::local::StepConfig {
        settings: TenantSettings {
            domain: TenantDomain::parse("apps.example.test").expect("valid domain"),
            operator_email: EmailAddress::parse("operator@example.test").expect("valid address"),
            subdomain_grace: std::time::Duration::from_secs(60),
            mail: None,
        },
        catalog: Catalog::embedded().expect("the shipped catalog is valid"),
        password_key: PasswordKey::parse("integration-test-password-key-000000000").expect("long enough"),
    }
}

/// Local adapters in memory, no delays, on a local Stripe stand-in of their own.
pub fn local_adapters() -> tenantctl::local::Adapters {
    let clock: Arc<dyn tenancy::clock::Clock> = Arc::new(tenancy::clock::SystemClock);
    let stripe = tenancy::adapters::local::LocalStripe::open(None, "http://127.0.0.1:8787", clock.clone())
        .expect("an in-memory local Stripe");
    local_adapters_on(Arc::new(stripe), clock)
}

/// Local adapters in memory, no delays, on `stripe` (a server test's, whose
/// checkout pages are on the test's own address), reading `clock`.
pub fn local_adapters_on(
    stripe: Arc<tenancy::adapters::local::LocalStripe>,
    clock: Arc<dyn tenancy::clock::Clock>,
) -> tenantctl::local::Adapters {
    tenantctl::local::Adapters::local(
        step_config(),
        clock,
        &instant_options(),
        "http://127.0.0.1:8787",
        stripe,
    )
    .expect("in-memory adapters open")
}

pub fn instant_options() -> tenantctl::local::LocalOptions {
    tenantctl::local::LocalOptions {
        state: None,
        time_scale: 0.0,
        definitions: None,
        executor: None,
        quotas: Default::default(),
        load_balancers: 1,
        dns_changes_per_second: tenancy::adapters::local::ROUTE53_CHANGES_PER_SECOND,
    }
}

/// The whole local stack (webhook at `now`, dispatcher, workflows) on `adapters`.
pub fn local_stack(now: i64, adapters: tenantctl::local::Adapters) -> Arc<tenantctl::local::LocalStack> {
    local_stack_with(now, adapters, &instant_options())
}

pub fn local_stack_with(
    now: i64,
    adapters: tenantctl::local::Adapters,
    options: &tenantctl::local::LocalOptions,
) -> Arc<tenantctl::local::LocalStack> {
    let queue = Arc::new(tenancy::adapters::local::LocalEventQueue::default());
    let ingress = ingress_at(now, queue.clone());
    tenantctl::local::LocalStack::new(ingress, queue, adapters, options, None).expect("the stack builds")
}

/// Headers Stripe would send for `body` at `now`, signed with [`FIXTURE_SECRET`].
pub fn stripe_headers(now: i64, body: &[u8]) -> http::HeaderMap {
    let secret = tenancy::stripe::WebhookSecret::parse(FIXTURE_SECRET).expect("fixture secret is valid");
    let mut headers = http::HeaderMap::new();
    let value = secret.sign_header(now, body);
    headers.insert("stripe-signature", http::HeaderValue::from_str(&value).expect("ASCII header"));
    headers
}

/// A launcher that fails its first `failures` launches (transiently or for
/// good), or never becomes healthy, and otherwise does what `inner` does.
pub struct FaultyLauncher {
    pub inner: Arc<dyn tenancy::ports::TenantLauncher>,
    pub failures: std::sync::atomic::AtomicU32,
    pub permanent: bool,
    pub never_healthy: bool,
    pub launches: std::sync::atomic::AtomicU32,
}

impl FaultyLauncher {
    pub fn new(inner: Arc<dyn tenancy::ports::TenantLauncher>) -> Self {
        FaultyLauncher {
            inner,
            failures: Default::default(),
            permanent: false,
            never_healthy: false,
            launches: Default::default(),
        }
    }
}

#[async_trait::async_trait]
impl tenancy::ports::TenantLauncher for FaultyLauncher {
    async fn launch(
        &self,
        spec: &tenancy::ports::LaunchSpec,
    ) -> Result<tenancy::ports::LaunchedTenant, tenancy::ports::LauncherError> {
        use std::sync::atomic::Ordering;
        self.launches.fetch_add(1, Ordering::SeqCst);
        let failing =
            self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if failing {
            return Err(if self.permanent {
                tenancy::ports::LauncherError::Rejected("CannotPullContainerError: image not found".into())
            } else {
                tenancy::ports::LauncherError::Unavailable("ThrottlingException: Rate exceeded".into())
            });
        }
        self.inner.launch(spec).await
    }

    async fn health(
        &self,
        tenant: &tenancy::domain::TenantId,
    ) -> Result<tenancy::ports::ServiceHealth, tenancy::ports::LauncherError> {
        if self.never_healthy {
            return Ok(tenancy::ports::ServiceHealth::Starting {
                detail: "target unhealthy: 502 on /health".into(),
            });
        }
        self.inner.health(tenant).await
    }

    async fn scale(
        &self,
        tenant: &tenancy::domain::TenantId,
        desired: u32,
    ) -> Result<(), tenancy::ports::LauncherError> {
        self.inner.scale(tenant, desired).await
    }

    async fn remove(&self, tenant: &tenancy::domain::TenantId) -> Result<(), tenancy::ports::LauncherError> {
        self.inner.remove(tenant).await
    }
}

/// Environment variables as the adapters' `from_lookup` read them.
pub fn lookup<K: AsRef<str> + Ord, V: AsRef<str>>(
    vars: &std::collections::BTreeMap<K, V>,
) -> impl Fn(&str) -> Option<String> + '_ {
    move |var: &str| vars.iter().find(|(k, _)| k.as_ref() == var).map(|(_, v)| v.as_ref().to_owned())
}

/// The table, cluster, ALB and listener, hosted zone and verified sender that
/// `tenantctl::emulator::bootstrap` makes on moto's server: made once per
/// test binary and shared (every test uses its own tenants and names in them).
pub async fn emulator() -> &'static tenantctl::emulator::EmulatorResources {
    use tenantctl::emulator::{EmulatorNames, bootstrap};
    static RESOURCES: tokio::sync::OnceCell<tenantctl::emulator::EmulatorResources> =
        tokio::sync::OnceCell::const_new();
    RESOURCES
        .get_or_init(|| async {
            // Short: the load balancer's name is limited to 32 characters.
            let prefix = format!("t{}", std::process::id());
            let names = EmulatorNames::with_prefix(&prefix).expect("a valid prefix");
            bootstrap(&moto_config().await, &names)
                .await
                .unwrap_or_else(|e| panic!("bootstrap: {}", error_chain(&e)))
        })
        .await
}

pub use tenancy::telemetry::error_chain;

/// What moto holds of one model (`/moto-api/data.json`), e.g. ("ses", "Message")
/// for every mail sent: moto's own view, not the API's.
pub async fn moto_models(service: &str, model: &str) -> Vec<serde_json::Value> {
    let client = tenantctl::http_client::HttpClient::default();
    let url = format!("{}/moto-api/data.json", moto_endpoint());
    let (status, body) = client.get(&url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
    assert!(status.is_success(), "{url}: {status}");
    let data: serde_json::Value = serde_json::from_slice(&body).expect("moto's model data is JSON");
    data[service][model].as_array().cloned().unwrap_or_default()
}

/// Every raw message moto's SES sent whose content holds `text` (a subject
/// unique to the test: moto's store is shared by all tests).
pub async fn raw_messages_holding(text: &str) -> Vec<serde_json::Value> {
    moto_models("ses", "RawMessage")
        .await
        .into_iter()
        .filter(|m| m["raw_data"].as_str().is_some_and(|raw| raw.contains(text)))
        .collect()
}

/// Puts one record (`value`, of `record_type`) into hosted zone `zone` on moto.
pub async fn put_record(
    sdk: &SdkConfig,
    zone: &str,
    name: &str,
    record_type: aws_sdk_route53::types::RrType,
    value: &str,
) {
    use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet};
    let record = ResourceRecordSet::builder()
        .name(name)
        .r#type(record_type)
        .ttl(60)
        .resource_records(ResourceRecord::builder().value(value).build().expect("a record value"))
        .build()
        .expect("a record set");
    let change =
        Change::builder().action(ChangeAction::Upsert).resource_record_set(record).build().expect("a change");
    aws_sdk_route53::Client::new(sdk)
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(ChangeBatch::builder().changes(change).build().expect("a batch"))
        .send()
        .await
        .expect("moto takes the record");
}

/// A checkout session id (and so a tenant) no other test uses.
pub fn unique_checkout(prefix: &str) -> tenancy::domain::CheckoutSessionId {
    let raw = format!("cs_test_{}", unique_name(prefix).replace('-', "_"));
    tenancy::domain::CheckoutSessionId::parse(&raw).expect("a valid checkout session id")
}

/// A PROVISIONING record for the sample checkout (events/01-…), with its own
/// checkout session (so its own tenant id) and `subdomain`.
pub fn provisioning_record(
    checkout: &tenancy::domain::CheckoutSessionId,
    subdomain: &str,
) -> tenancy::domain::TenantRecord {
    use tenancy::domain::{Catalog, CheckoutSignup, Subdomain, TenantRecord};
    let event: serde_json::Value =
        serde_json::from_str(&read_repo_file("events/01-checkout.session.completed.json"))
            .expect("sample event");
    let catalog = Catalog::embedded().expect("catalog");
    let mut signup = CheckoutSignup::from_session(&event["data"]["object"], &catalog).expect("sample signup");
    signup.checkout_session = checkout.clone();
    signup.subdomain = Subdomain::parse(subdomain).expect("a valid subdomain");
    TenantRecord::provisioning(signup, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(), 1_763_800_005)
}

/// One request [`StripeStub`] received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The query string, if there was one.
    pub query: Option<String>,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body decoded as `application/x-www-form-urlencoded`, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.body.as_bytes()).into_owned().collect()
    }

    /// The one value of form field `name` (`metadata[plan]`, …); panics if
    /// the field is sent more than once.
    pub fn form_value(&self, name: &str) -> Option<String> {
        let values: Vec<String> =
            self.form().into_iter().filter(|(k, _)| k == name).map(|(_, v)| v).collect();
        assert!(values.len() <= 1, "{name} sent {} times in {}", values.len(), self.body);
        values.into_iter().next()
    }
}

/// What [`StripeStub`] answers to one request.
#[derive(Debug, Clone)]
pub struct StubResponse {
    pub status: u16,
    pub body: String,
    pub content_type: &'static str,
    /// Wait this long before answering (to test timeouts).
    pub delay: Option<Duration>,
}

impl StubResponse {
    /// A recorded Stripe response, `tests/fixtures/stripe/{name}`.
    pub fn fixture(status: u16, name: &str) -> Self {
        StubResponse {
            status,
            body: read_repo_file(&format!("tests/fixtures/stripe/{name}")),
            content_type: "application/json",
            delay: None,
        }
    }

    /// A body that is not Stripe's (a proxy's error page, say).
    pub fn raw(status: u16, content_type: &'static str, body: &str) -> Self {
        StubResponse { status, body: body.to_owned(), content_type, delay: None }
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

/// A stand-in for api.stripe.com on 127.0.0.1: records every request and
/// answers each with the next queued [`StubResponse`] (a 500 when none is
/// left). Stops when dropped.
pub struct StripeStub {
    base_url: String,
    requests: Arc<std::sync::Mutex<Vec<RecordedRequest>>>,
    server: tokio::task::JoinHandle<()>,
}

impl StripeStub {
    pub async fn start(responses: Vec<StubResponse>) -> Self {
        use axum::body::{Body, to_bytes};
        use axum::extract::{Request, State};
        use axum::response::Response;

        type Shared = (
            Arc<std::sync::Mutex<Vec<RecordedRequest>>>,
            Arc<std::sync::Mutex<std::collections::VecDeque<StubResponse>>>,
        );

        async fn answer(State((requests, responses)): State<Shared>, request: Request) -> Response {
            let (parts, body) = request.into_parts();
            let body = to_bytes(body, 1 << 20).await.unwrap_or_default();
            requests.lock().expect("not poisoned").push(RecordedRequest {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().map(str::to_owned),
                headers: parts.headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let next = responses.lock().expect("not poisoned").pop_front().unwrap_or_else(|| {
                StubResponse::raw(
                    500,
                    "application/json",
                    r#"{"error":{"type":"api_error","message":"StripeStub: no response queued"}}"#,
                )
            });
            if let Some(delay) = next.delay {
                tokio::time::sleep(delay).await;
            }
            Response::builder()
                .status(next.status)
                .header("content-type", next.content_type)
                .header("request-id", "req_StripeStub")
                .body(Body::from(next.body))
                .expect("a valid response")
        }

        let requests: Arc<std::sync::Mutex<Vec<RecordedRequest>>> = Arc::default();
        let queue = Arc::new(std::sync::Mutex::new(responses.into_iter().collect()));
        let app = axum::Router::new().fallback(answer).with_state((requests.clone(), queue));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("bound address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StripeStub { base_url: format!("http://{addr}"), requests, server }
    }

    /// `http://127.0.0.1:{port}`, for `STRIPE_API_BASE`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().expect("not poisoned").clone()
    }

    /// The only request received; panics if there were more or none.
    pub fn single_request(&self) -> RecordedRequest {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "expected one request, got {requests:#?}");
        requests.into_iter().next().expect("one request")
    }
}

impl Drop for StripeStub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A fault-injecting proxy in front of moto's server, and SDK configuration
/// that goes through it. The SDK gives up on an attempt after `attempt`
/// (stalls are held past it) and retries within a call quickly, so a test
/// sees both the SDK's own retries and the failures that get past them.
pub async fn faulty_moto(
    plan: tenancy::adapters::faults::FaultPlan,
    attempt: Duration,
) -> (tenantctl::fault_proxy::FaultProxy, SdkConfig) {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    let plan = Arc::new(plan.with_timeout_delay(attempt + attempt / 2));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let proxy = tenantctl::fault_proxy::FaultProxy::start(addr, &moto_endpoint(), plan)
        .await
        .unwrap_or_else(|e| panic!("fault proxy: {}", error_chain(&e)));
    let credentials = aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "faults");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(proxy.url())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .timeout_config(
            TimeoutConfig::builder().connect_timeout(attempt).operation_attempt_timeout(attempt).build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(5))
                .with_max_backoff(Duration::from_millis(20)),
        )
        .load()
        .await;
    (proxy, config)
}

/// Calls `call` until it succeeds, as a state machine retries a step;
/// panics on an error `transient` does not accept, or after 100 failures.
pub async fn until_ok<T, E: std::error::Error>(
    what: &str,
    transient: impl Fn(&E) -> bool,
    mut call: impl AsyncFnMut() -> Result<T, E>,
) -> (T, u32) {
    const ATTEMPTS: u32 = 100;
    for attempt in 1..=ATTEMPTS {
        match call().await {
            Ok(value) => return (value, attempt),
            Err(error) if transient(&error) => continue,
            Err(error) => panic!("{what} failed for good at attempt {attempt}: {}", error_chain(&error)),
        }
    }
    panic!("{what} did not succeed in {ATTEMPTS} attempts");
}
