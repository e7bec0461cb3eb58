//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use tenancy::clock::FixedClock;
use tenancy::ingress::WebhookIngress;
use tenancy::ports::EventQueue;
use tenancy::stripe::{SignatureVerifier, StripeMode, WebhookSecrets};

/// The secret the committed fixtures are signed with.
pub const FIXTURE_SECRET: &str = "whsec_integration_fixture_secret";

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

pub fn read_repo_file(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A test-mode ingress that accepts [`FIXTURE_SECRET`] at time `now`.
pub fn ingress_at(now: i64, queue: Arc<dyn EventQueue>) -> WebhookIngress {
    let secrets = WebhookSecrets::parse_list(FIXTURE_SECRET).expect("fixture secret is valid");
    let verifier = SignatureVerifier::new(secrets, Duration::from_secs(300));
    WebhookIngress::new(verifier, StripeMode::Test, queue, Arc::new(FixedClock(now)))
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

/// An error and its causes on one line.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

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
    TenantRecord::provisioning(
        signup,
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        "evt_1Checkout",
        1_763_800_000,
        1_763_800_005,
    )
}
