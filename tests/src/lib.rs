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

/// Settings, catalog and password key as a local run uses them.
pub fn step_config() -> tenantctl::local::StepConfig {
    use tenancy::config::{TenantDomain, TenantSettings};
    use tenancy::domain::password::PasswordKey;
    use tenancy::domain::{Catalog, EmailAddress};
    tenantctl::local::StepConfig {
        settings: TenantSettings {
            domain: TenantDomain::parse("apps.example.test").expect("valid domain"),
            operator_email: EmailAddress::parse("operator@example.test").expect("valid address"),
        },
        catalog: Catalog::embedded().expect("the shipped catalog is valid"),
        password_key: PasswordKey::parse("integration-test-password-key-000000000").expect("long enough"),
    }
}

/// Local adapters in memory, no delays.
pub fn local_adapters() -> tenantctl::local::Adapters {
    let options = instant_options();
    tenantctl::local::Adapters::local(step_config(), Arc::new(tenancy::clock::SystemClock), &options)
        .expect("in-memory adapters open")
}

pub fn instant_options() -> tenantctl::local::LocalOptions {
    tenantctl::local::LocalOptions { state: None, time_scale: 0.0, definitions: None }
}

/// The whole local stack (webhook at `now`, dispatcher, workflows) on `adapters`.
pub fn local_stack(now: i64, adapters: tenantctl::local::Adapters) -> Arc<tenantctl::local::LocalStack> {
    let queue = Arc::new(tenancy::adapters::local::LocalEventQueue::default());
    let ingress = ingress_at(now, queue.clone());
    tenantctl::local::LocalStack::new(ingress, queue, adapters, &instant_options()).expect("the stack builds")
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

    async fn remove(&self, tenant: &tenancy::domain::TenantId) -> Result<(), tenancy::ports::LauncherError> {
        self.inner.remove(tenant).await
    }
}
