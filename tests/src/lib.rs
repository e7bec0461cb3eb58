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
