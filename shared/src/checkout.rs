//! The signup API before the webhook: is a subdomain free, and start a
//! Stripe Checkout Session for a plan (`GET /subdomains/{name}`,
//! `POST /checkout`), with CORS for the marketing site.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::config::{ConfigError, Lookup, required};
use crate::domain::{BillingPeriod, Catalog, EmailAddress, OrganizationName, Plan, Subdomain};
use crate::ports::{CheckoutSessionRequest, StoreError, StripeApiError, StripeGateway, TenantStore};
use crate::stripe::StripeMode;

pub const CHECKOUT_SUCCESS_URL: &str = "CHECKOUT_SUCCESS_URL";
pub const CHECKOUT_CANCEL_URL: &str = "CHECKOUT_CANCEL_URL";
pub const CHECKOUT_HOLD_MINUTES: &str = "CHECKOUT_HOLD_MINUTES";
pub const ALLOWED_ORIGINS: &str = "ALLOWED_ORIGINS";

/// A JSON body larger than this is not a signup form.
const MAX_BODY: usize = 16 * 1024;

/// How the API is set up for a stage.
#[derive(Debug, Clone)]
pub struct CheckoutSettings {
    pub mode: StripeMode,
    pub success_url: String,
    pub cancel_url: String,
    /// How long a subdomain is held for a checkout; also the session's
    /// lifetime, so nobody can pay after their hold ran out.
    pub hold_seconds: i64,
    /// Origins allowed to call the API from a browser.
    pub allowed_origins: Vec<String>,
}

fn url_setting(env: &dyn Lookup, var: &'static str) -> Result<String, ConfigError> {
    let url = required(env, var)?.trim().to_owned();
    let ok = (url.starts_with("https://")
        || url.starts_with("http://localhost")
        || url.starts_with("http://127.0.0.1"))
        && !url.contains(char::is_whitespace);
    if ok { Ok(url) } else { Err(ConfigError::Invalid { var, reason: "expected an https:// URL".into() }) }
}

impl CheckoutSettings {
    pub fn from_lookup(env: &dyn Lookup, mode: StripeMode) -> Result<Self, ConfigError> {
        let hold_minutes = match env.get(CHECKOUT_HOLD_MINUTES) {
            None => 60,
            // Stripe lets a session live 30 minutes to 24 hours.
            Some(raw) => match raw.trim().parse::<i64>() {
                Ok(minutes @ 30..=1440) => minutes,
                _ => {
                    return Err(ConfigError::Invalid {
                        var: CHECKOUT_HOLD_MINUTES,
                        reason: format!("expected minutes from 30 to 1440, got `{}`", raw.trim()),
                    });
                }
            },
        };
        let allowed_origins: Vec<String> = required(env, ALLOWED_ORIGINS)?
            .split(',')
            .map(|origin| origin.trim().trim_end_matches('/').to_owned())
            .filter(|origin| !origin.is_empty())
            .collect();
        if allowed_origins.is_empty()
            || allowed_origins.iter().any(|o| {
                !(o.starts_with("https://")
                    || o.starts_with("http://localhost")
                    || o.starts_with("http://127.0.0.1"))
            })
        {
            return Err(ConfigError::Invalid {
                var: ALLOWED_ORIGINS,
                reason: "expected comma-separated origins such as https://www.example.com".into(),
            });
        }
        Ok(CheckoutSettings {
            mode,
            success_url: url_setting(env, CHECKOUT_SUCCESS_URL)?,
            cancel_url: url_setting(env, CHECKOUT_CANCEL_URL)?,
            hold_seconds: hold_minutes * 60,
            allowed_origins,
        })
    }
}

/// An HTTP answer with its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiAnswer {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl ApiAnswer {
    fn json(status: StatusCode, body: Value) -> ApiAnswer {
        ApiAnswer {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
        }
    }

    fn error(status: StatusCode, message: &str) -> ApiAnswer {
        ApiAnswer::json(status, json!({ "error": message }))
    }

    fn fields(status: StatusCode, errors: BTreeMap<&'static str, String>) -> ApiAnswer {
        ApiAnswer::json(status, json!({ "errors": errors }))
    }
}

/// A signup form, every field checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    pub plan: Plan,
    pub billing: BillingPeriod,
    pub subdomain: Subdomain,
    pub organization: OrganizationName,
    pub email: EmailAddress,
}

impl CheckoutRequest {
    /// Parses the JSON form; every bad field gets its own message.
    pub fn parse(body: &[u8], catalog: &Catalog) -> Result<Self, ApiAnswer> {
        if body.len() > MAX_BODY {
            return Err(ApiAnswer::error(StatusCode::PAYLOAD_TOO_LARGE, "body too large for a signup form"));
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiAnswer::error(StatusCode::BAD_REQUEST, &format!("body is not JSON: {e}")))?;
        if !value.is_object() {
            return Err(ApiAnswer::error(StatusCode::BAD_REQUEST, "body must be a JSON object"));
        }
        let mut errors = BTreeMap::new();
        let mut field = |name: &'static str| -> Option<String> {
            match value.get(name).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty()) {
                Some(text) => Some(text.to_owned()),
                None => {
                    errors.insert(name, "is required".to_owned());
                    None
                }
            }
        };
        let (plan, billing, subdomain, organization, email) =
            (field("plan"), field("billing"), field("subdomain"), field("organization"), field("email"));
        let plan = plan.and_then(|p| {
            let known = || catalog.plan_keys().collect::<Vec<_>>().join(", ");
            check(&mut errors, "plan", catalog.plan(&p).map_err(|_| format!("must be one of: {}", known())))
        });
        let billing = billing.and_then(|b| check(&mut errors, "billing", BillingPeriod::parse(&b)));
        let subdomain = subdomain.and_then(|s| check(&mut errors, "subdomain", Subdomain::parse(&s)));
        let organization =
            organization.and_then(|o| check(&mut errors, "organization", OrganizationName::parse(&o)));
        let email = email.and_then(|e| check(&mut errors, "email", EmailAddress::parse(&e)));
        match (plan, billing, subdomain, organization, email) {
            (Some(plan), Some(billing), Some(subdomain), Some(organization), Some(email))
                if errors.is_empty() =>
            {
                Ok(CheckoutRequest { plan, billing, subdomain, organization, email })
            }
            _ => Err(ApiAnswer::fields(StatusCode::BAD_REQUEST, errors)),
        }
    }

    /// The same form resubmitted within ten minutes gets the same key, so a
    /// retried request makes one session (Stripe keeps keys for 24 hours).
    fn derived_idempotency_key(&self, now: i64) -> String {
        let mut hash = Sha256::new();
        for part in [
            self.plan.key.as_str(),
            self.billing.as_str(),
            self.subdomain.as_str(),
            self.organization.as_str(),
            self.email.as_str(),
            &(now / 600).to_string(),
        ] {
            hash.update(part.as_bytes());
            hash.update([0u8]);
        }
        format!("checkout-{}", &hex::encode(hash.finalize())[..32])
    }
}

/// The API's handlers, over the tenant table and Stripe.
pub struct CheckoutApi {
    store: Arc<dyn TenantStore>,
    stripe: Arc<dyn StripeGateway>,
    catalog: Catalog,
    settings: CheckoutSettings,
    clock: Arc<dyn Clock>,
}

impl CheckoutApi {
    /// Refuses a catalog without prices for the stage's mode.
    pub fn new(
        store: Arc<dyn TenantStore>,
        stripe: Arc<dyn StripeGateway>,
        catalog: Catalog,
        settings: CheckoutSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, crate::domain::catalog::CatalogError> {
        catalog.require_mode(settings.mode)?;
        Ok(CheckoutApi { store, stripe, catalog, settings, clock })
    }

    /// Routes one request; `path` without the stage prefix.
    pub async fn handle(&self, method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> ApiAnswer {
        let origin = headers.get("origin").and_then(|o| o.to_str().ok());
        let allowed =
            origin.filter(|o| self.settings.allowed_origins.iter().any(|a| a == o.trim_end_matches('/')));
        let path = path.trim_end_matches('/');
        let subdomain = path.strip_prefix("/subdomains/");
        let known = subdomain.is_some() || path == "/checkout";
        let mut answer = match (method, subdomain) {
            _ if !known => ApiAnswer::error(StatusCode::NOT_FOUND, "no such route"),
            (&Method::OPTIONS, _) if allowed.is_none() => {
                ApiAnswer::error(StatusCode::FORBIDDEN, "origin not allowed")
            }
            (&Method::OPTIONS, _) => ApiAnswer {
                status: StatusCode::NO_CONTENT,
                headers: vec![
                    ("access-control-allow-methods", "GET, POST, OPTIONS".into()),
                    ("access-control-allow-headers", "content-type, idempotency-key".into()),
                    ("access-control-max-age", "600".into()),
                ],
                body: String::new(),
            },
            (&Method::GET, Some(name)) => self.availability(name).await,
            (&Method::POST, None) => self.checkout(headers, body).await,
            _ => ApiAnswer::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this route"),
        };
        if let Some(origin) = allowed {
            answer.headers.push(("access-control-allow-origin", origin.to_owned()));
        }
        answer.headers.push(("vary", "Origin".into()));
        answer
    }

    /// `GET /subdomains/{name}`: `{"available": bool, "reason": …}`.
    pub async fn availability(&self, raw: &str) -> ApiAnswer {
        let unavailable =
            |reason: String| ApiAnswer::json(StatusCode::OK, json!({"available": false, "reason": reason}));
        let subdomain = match Subdomain::parse(raw) {
            Ok(subdomain) => subdomain,
            Err(invalid) => return unavailable(invalid.to_string()),
        };
        let now = self.clock.now_unix();
        match self.store.subdomain_holder(&subdomain).await {
            Ok(Some(_)) => return unavailable("taken".into()),
            Ok(None) => {}
            Err(error) => return store_trouble(&error),
        }
        match self.store.subdomain_hold(&subdomain, now).await {
            Ok(Some(hold)) => unavailable(format!(
                "someone is checking out with it; try again in {} minutes",
                minutes_until(hold.until, now)
            )),
            Ok(None) => ApiAnswer::json(StatusCode::OK, json!({"available": true, "reason": null})),
            Err(error) => store_trouble(&error),
        }
    }

    /// `POST /checkout`: holds the subdomain and starts a Checkout Session.
    pub async fn checkout(&self, headers: &HeaderMap, body: &[u8]) -> ApiAnswer {
        let request = match CheckoutRequest::parse(body, &self.catalog) {
            Ok(request) => request,
            Err(answer) => return answer,
        };
        let now = self.clock.now_unix();
        let idempotency_key = match headers.get("idempotency-key").map(HeaderValue::to_str) {
            None => request.derived_idempotency_key(now),
            Some(Ok(key)) if (8..=200).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) => {
                format!("checkout-{key}")
            }
            Some(_) => {
                return ApiAnswer::error(
                    StatusCode::BAD_REQUEST,
                    "Idempotency-Key must be 8 to 200 visible ASCII characters",
                );
            }
        };
        let Some(price_id) = self
            .catalog
            .price(&request.plan.key, request.billing)
            .and_then(|price| price.price_id(self.settings.mode))
            .map(str::to_owned)
        else {
            // require_mode at start-up makes this unreachable; answer anyway.
            return ApiAnswer::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no price for this plan in this mode",
            );
        };
        let until = now + self.settings.hold_seconds;
        match self.store.hold_subdomain(&request.subdomain, &idempotency_key, until, now).await {
            Ok(()) => {}
            Err(StoreError::SubdomainTaken { .. }) => {
                return ApiAnswer::fields(
                    StatusCode::CONFLICT,
                    BTreeMap::from([("subdomain", "is taken".to_owned())]),
                );
            }
            Err(StoreError::SubdomainHeld { until, .. }) => {
                let message = format!(
                    "someone is checking out with it; try again in {} minutes",
                    minutes_until(until, now)
                );
                return ApiAnswer::fields(StatusCode::CONFLICT, BTreeMap::from([("subdomain", message)]));
            }
            Err(error) => return store_trouble(&error),
        }
        let metadata = BTreeMap::from([
            ("subdomain".to_owned(), request.subdomain.to_string()),
            ("plan".to_owned(), request.plan.key.to_string()),
            ("billing".to_owned(), request.billing.to_string()),
            ("organization".to_owned(), request.organization.to_string()),
        ]);
        let session = CheckoutSessionRequest {
            price_id,
            customer_email: request.email.clone(),
            success_url: self.settings.success_url.clone(),
            cancel_url: self.settings.cancel_url.clone(),
            metadata,
            allow_promotion_codes: true,
            expires_at: Some(until),
            idempotency_key,
        };
        match self.stripe.create_checkout_session(&session).await {
            Ok(created) => ApiAnswer::json(StatusCode::OK, json!({"url": created.url, "id": created.id})),
            Err(StripeApiError::Rejected { code, message, .. })
                if message.contains("email") || code.as_deref() == Some("email_invalid") =>
            {
                ApiAnswer::fields(StatusCode::BAD_REQUEST, BTreeMap::from([("email", message)]))
            }
            Err(error @ StripeApiError::Unavailable(_)) => {
                tracing::warn!(error = %crate::telemetry::error_chain(&error), "Stripe unavailable");
                ApiAnswer::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the payment provider is unavailable; try again shortly",
                )
            }
            Err(error) => {
                tracing::error!(error = %crate::telemetry::error_chain(&error), "Stripe refused the checkout");
                ApiAnswer::error(
                    StatusCode::BAD_GATEWAY,
                    "the payment provider refused the checkout; we have been told",
                )
            }
        }
    }
}

/// Keeps the value, or files the problem under the field's name.
fn check<T, E: std::fmt::Display>(
    errors: &mut BTreeMap<&'static str, String>,
    name: &'static str,
    result: Result<T, E>,
) -> Option<T> {
    result.map_err(|e| errors.insert(name, e.to_string())).ok()
}

fn minutes_until(until: i64, now: i64) -> i64 {
    ((until - now).max(0) + 59) / 60
}

fn store_trouble(error: &StoreError) -> ApiAnswer {
    tracing::error!(error = %crate::telemetry::error_chain(error), "tenant table");
    ApiAnswer::error(StatusCode::SERVICE_UNAVAILABLE, "try again shortly")
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::adapters::local::{LocalStripe, LocalTenantStore};
    use crate::clock::FixedClock;
    use crate::domain::{CustomerId, TenantId};
    use crate::ports::CreatedSession;

    const NOW: i64 = 1_763_800_000;
    const ORIGIN: &str = "https://www.example.com";

    fn settings() -> CheckoutSettings {
        CheckoutSettings {
            mode: StripeMode::Test,
            success_url: "https://www.example.com/welcome?session={CHECKOUT_SESSION_ID}".into(),
            cancel_url: "https://www.example.com/pricing".into(),
            hold_seconds: 3600,
            allowed_origins: vec![ORIGIN.into()],
        }
    }

    struct Fixture {
        api: CheckoutApi,
        store: Arc<LocalTenantStore>,
        stripe: Arc<LocalStripe>,
    }

    fn fixture_with(stripe_gateway: Option<Arc<dyn StripeGateway>>) -> Fixture {
        let clock: Arc<dyn Clock> = Arc::new(FixedClock(NOW));
        let store = Arc::new(LocalTenantStore::open(None, clock.clone()).unwrap());
        let stripe = Arc::new(LocalStripe::open(None, "http://127.0.0.1:8787", clock.clone()).unwrap());
        let gateway = stripe_gateway.unwrap_or_else(|| stripe.clone());
        let api = CheckoutApi::new(store.clone(), gateway, Catalog::embedded().unwrap(), settings(), clock)
            .unwrap();
        Fixture { api, store, stripe }
    }

    fn form(subdomain: &str, email: &str) -> Vec<u8> {
        json!({"plan": "pro", "billing": "annual", "subdomain": subdomain, "organization": "Acme Robotics", "email": email})
            .to_string()
            .into_bytes()
    }

    fn body(answer: &ApiAnswer) -> Value {
        serde_json::from_str(&answer.body).unwrap()
    }

    fn from_origin() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("origin", HeaderValue::from_static(ORIGIN));
        headers
    }

    #[tokio::test]
    async fn a_checkout_holds_the_name_and_creates_one_session_with_the_catalog_price() {
        let f = fixture_with(None);
        let answer = f
            .api
            .handle(&Method::POST, "/checkout", &from_origin(), &form("acme", "dana@acme.example"))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let created = body(&answer);
        assert!(created["url"].as_str().unwrap().contains("/local/stripe/checkout/cs_test_"));
        let sessions = f.stripe.sessions();
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].price_id, "price_1QProAnnualCAD");
        assert_eq!(sessions[0].customer_email, "dana@acme.example");
        assert_eq!(sessions[0].metadata["subdomain"], "acme");
        assert_eq!(sessions[0].metadata["plan"], "pro");
        assert_eq!(sessions[0].metadata["billing"], "annual");
        assert_eq!(sessions[0].metadata["organization"], "Acme Robotics");
        assert_eq!(sessions[0].expires_at, Some(NOW + 3600), "the session lives as long as the hold");
        let hold = f.store.subdomain_hold(&Subdomain::parse("acme").unwrap(), NOW).await.unwrap().unwrap();
        assert_eq!(hold.until, NOW + 3600);
        assert!(answer.headers.contains(&("access-control-allow-origin", ORIGIN.to_owned())));

        // The same form again (a retried request): the same session.
        let again = f
            .api
            .handle(&Method::POST, "/checkout", &from_origin(), &form("acme", "dana@acme.example"))
            .await;
        assert_eq!(body(&again)["id"], created["id"]);
        assert_eq!(f.stripe.sessions().len(), 1);
    }

    #[tokio::test]
    async fn two_checkouts_for_one_name_at_once_one_wins() {
        let f = fixture_with(None);
        let (none, dana, gavin) =
            (HeaderMap::new(), form("acme", "dana@acme.example"), form("acme", "gavin@hooli.example"));
        let (a, b) = tokio::join!(f.api.checkout(&none, &dana), f.api.checkout(&none, &gavin));
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
        let loser = if a.status == StatusCode::CONFLICT { &a } else { &b };
        assert!(body(loser)["errors"]["subdomain"].as_str().unwrap().contains("try again in 60 minutes"));
        assert_eq!(f.stripe.sessions().len(), 1);
    }

    #[tokio::test]
    async fn every_bad_field_gets_its_own_message() {
        let f = fixture_with(None);
        let bad = json!({"plan": "platinum", "billing": "weekly", "subdomain": "www", "organization": "", "email": "dana"});
        let answer = f.api.checkout(&HeaderMap::new(), bad.to_string().as_bytes()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        let errors = &body(&answer)["errors"];
        assert_eq!(errors["plan"], "must be one of: basic, pro, ultimate");
        assert_eq!(errors["billing"], "billing must be `monthly` or `annual`");
        assert_eq!(errors["subdomain"], "subdomain `www` is reserved");
        assert_eq!(errors["organization"], "is required");
        assert_eq!(errors["email"], "not a usable e-mail address");
        let not_json = f.api.checkout(&HeaderMap::new(), b"plan=pro").await;
        assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
        assert!(body(&not_json)["error"].as_str().unwrap().starts_with("body is not JSON"));
        assert!(f.stripe.sessions().is_empty());
    }

    #[tokio::test]
    async fn availability_tells_free_held_taken_and_invalid_apart() {
        let f = fixture_with(None);
        let check = async |name: &str| {
            body(&f.api.handle(&Method::GET, &format!("/subdomains/{name}"), &HeaderMap::new(), b"").await)
        };
        assert_eq!(check("acme").await, json!({"available": true, "reason": null}));
        assert_eq!(
            check("admin").await,
            json!({"available": false, "reason": "subdomain `admin` is reserved"})
        );
        f.api.checkout(&HeaderMap::new(), &form("acme", "dana@acme.example")).await;
        assert_eq!(check("acme").await["reason"], "someone is checking out with it; try again in 60 minutes");
        let tenant = TenantId::parse("tnt_00000000000000000001").unwrap();
        f.store.claim_subdomain(&Subdomain::parse("globex").unwrap(), &tenant).await.unwrap();
        assert_eq!(check("globex").await, json!({"available": false, "reason": "taken"}));
        let taken = f.api.checkout(&HeaderMap::new(), &form("globex", "hank@globex.example")).await;
        assert_eq!(
            (taken.status, body(&taken)["errors"]["subdomain"].as_str()),
            (StatusCode::CONFLICT, Some("is taken"))
        );
    }

    #[tokio::test]
    async fn cors_answers_the_marketing_site_and_no_one_else() {
        let f = fixture_with(None);
        let preflight = f.api.handle(&Method::OPTIONS, "/checkout", &from_origin(), b"").await;
        assert_eq!(preflight.status, StatusCode::NO_CONTENT);
        assert!(preflight.headers.contains(&("access-control-allow-origin", ORIGIN.to_owned())));
        assert!(
            preflight.headers.iter().any(|(k, v)| *k == "access-control-allow-methods" && v.contains("POST"))
        );
        let mut stranger = HeaderMap::new();
        stranger.insert("origin", HeaderValue::from_static("https://evil.example"));
        let refused = f.api.handle(&Method::OPTIONS, "/checkout", &stranger, b"").await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        let get = f.api.handle(&Method::GET, "/subdomains/acme", &stranger, b"").await;
        assert!(!get.headers.iter().any(|(k, _)| *k == "access-control-allow-origin"));
        assert_eq!(
            f.api.handle(&Method::GET, "/nope", &from_origin(), b"").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            f.api.handle(&Method::GET, "/checkout", &from_origin(), b"").await.status,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    struct FailingStripe(fn() -> StripeApiError);

    #[async_trait]
    impl StripeGateway for FailingStripe {
        async fn create_checkout_session(
            &self,
            _: &CheckoutSessionRequest,
        ) -> Result<CreatedSession, StripeApiError> {
            Err((self.0)())
        }
        async fn create_portal_session(&self, _: &CustomerId, _: &str) -> Result<String, StripeApiError> {
            Err((self.0)())
        }
    }

    #[tokio::test]
    async fn stripe_errors_become_clear_answers() {
        let cases: [(fn() -> StripeApiError, StatusCode); 3] = [
            (|| StripeApiError::Unavailable("timeout".into()), StatusCode::SERVICE_UNAVAILABLE),
            (|| StripeApiError::Unauthorized { status: 401 }, StatusCode::BAD_GATEWAY),
            (
                || StripeApiError::Rejected {
                    status: 400,
                    code: Some("resource_missing".into()),
                    message: "No such price".into(),
                },
                StatusCode::BAD_GATEWAY,
            ),
        ];
        for (error, status) in cases {
            let f = fixture_with(Some(Arc::new(FailingStripe(error))));
            let answer = f.api.checkout(&HeaderMap::new(), &form("acme", "dana@acme.example")).await;
            assert_eq!(answer.status, status, "{}", answer.body);
            assert!(!answer.body.contains("No such price"), "Stripe's words stay in our logs");
        }
    }

    #[test]
    fn a_live_stage_with_a_test_only_catalog_does_not_start() {
        let clock: Arc<dyn Clock> = Arc::new(FixedClock(NOW));
        let store = Arc::new(LocalTenantStore::open(None, clock.clone()).unwrap());
        let stripe = Arc::new(LocalStripe::open(None, "http://127.0.0.1", clock.clone()).unwrap());
        let live = CheckoutSettings { mode: StripeMode::Live, ..settings() };
        let refused = CheckoutApi::new(store, stripe, Catalog::embedded().unwrap(), live, clock);
        assert!(refused.err().unwrap().to_string().contains("no live-mode Stripe price"));
    }
}

/// API Gateway (HTTP API) glue.
pub mod lambda {
    use std::convert::Infallible;

    use lambda_http::{Body, Request, Response};

    use super::CheckoutApi;

    pub async fn handle(api: &CheckoutApi, request: Request) -> Result<Response<Body>, Infallible> {
        let answer = api
            .handle(request.method(), request.uri().path(), request.headers(), request.body().as_ref())
            .await;
        let mut response = Response::new(Body::Text(answer.body));
        *response.status_mut() = answer.status;
        for (name, value) in answer.headers {
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                response.headers_mut().append(name, value);
            }
        }
        Ok(response)
    }
}
