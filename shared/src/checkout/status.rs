//! The tenant app's live status: `GET /status` with `Authorization: Bearer
//! {TENANCY_STATUS_TOKEN}` answers the tenant's status, plan, limits, trial
//! end and paid-until from its record (so without a relaunch), and a billing
//! link. Server to server: no CORS, no per-client limit (many tenants share
//! a NAT address); a forged token is refused before the table is read.
//!
//! The token ([`StatusToken`]) is derived from the tenant key, so every
//! launch of a tenant computes the same environment; [`StatusTokens`] makes
//! the two variables the app receives.

use http::{HeaderMap, StatusCode};
use serde_json::json;

use super::{ApiAnswer, CheckoutApi};
use crate::domain::password::PasswordKey;
use crate::domain::status_token::{StatusToken, StatusTokenError, StatusTokenRecord};
use crate::domain::{TenantId, TenantRecord};

/// The route, under the checkout API's URL.
pub const STATUS_PATH: &str = "/status";
/// The app's environment: where to ask, and with what.
pub const TENANCY_STATUS_URL: &str = "TENANCY_STATUS_URL";
pub const TENANCY_STATUS_TOKEN: &str = "TENANCY_STATUS_TOKEN";

/// How long the app may keep an answer (it asks on its own requests).
const MAX_AGE_SECONDS: u32 = 60;

/// Makes the apps' status tokens and the URL they are presented at.
#[derive(Clone)]
pub struct StatusTokens {
    /// `{checkout API}/status`.
    url: String,
    key: PasswordKey,
}

impl std::fmt::Debug for StatusTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusTokens").field("url", &self.url).field("key", &self.key).finish()
    }
}

impl StatusTokens {
    /// Tokens for `GET {api_base}/status`, derived under `key`.
    pub fn new(api_base: &str, key: PasswordKey) -> Self {
        StatusTokens { url: format!("{}{STATUS_PATH}", api_base.trim_end_matches('/')), key }
    }

    /// The API's URL from `BILLING_LINK_BASE`, as the billing links have it.
    pub fn from_lookup(
        env: &dyn crate::config::Lookup,
        key: PasswordKey,
    ) -> Result<Self, crate::config::ConfigError> {
        Ok(StatusTokens::new(&super::billing_link::api_base(env)?, key))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The token `recorded` is the hash of, if this key still derives it
    /// (its version configured, the same secret under it).
    pub fn current(&self, tenant: &TenantId, recorded: Option<&StatusTokenRecord>) -> Option<StatusToken> {
        let recorded = recorded?;
        let key = self.key.version(&recorded.key_version)?;
        let token = StatusToken::derive(&key, tenant, recorded.generation);
        recorded.matches(&token).then_some(token)
    }

    /// A new token for `tenant`, the generation after `recorded`'s, under
    /// the current key version: recording it revokes the one before.
    pub fn next(&self, tenant: &TenantId, recorded: Option<&StatusTokenRecord>) -> StatusToken {
        let generation = recorded.map_or(1, |r| r.generation.saturating_add(1));
        StatusToken::derive(&self.key, tenant, generation)
    }

    /// What the app receives: [`TENANCY_STATUS_URL`] and [`TENANCY_STATUS_TOKEN`].
    pub fn environment(&self, token: &StatusToken) -> [(String, String); 2] {
        [
            (TENANCY_STATUS_URL.to_owned(), self.url.clone()),
            (TENANCY_STATUS_TOKEN.to_owned(), token.expose().to_owned()),
        ]
    }
}

/// How the API answers `GET /status`.
#[derive(Clone)]
pub(super) struct StatusEndpoint {
    pub(super) key: PasswordKey,
    /// The API's own URL for the billing links, when configured; otherwise
    /// the one the request came to (API Gateway's domain name).
    pub(super) base: Option<String>,
}

/// The one answer for every token that is not a tenant's current one.
fn unauthorized() -> ApiAnswer {
    ApiAnswer {
        status: StatusCode::UNAUTHORIZED,
        headers: vec![
            ("content-type", "application/json".into()),
            ("www-authenticate", "Bearer".into()),
            ("cache-control", "no-store".into()),
        ],
        body: json!({"error": "unauthorized"}).to_string(),
    }
}

/// The token of `Authorization: Bearer {token}`, its shape checked.
fn bearer(headers: &HeaderMap) -> Option<StatusToken> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    StatusToken::parse(token.trim()).ok()
}

impl CheckoutApi {
    /// Answers `GET /status` (see [`crate::checkout::status`]); `base` the
    /// URL the request came to, for the billing link.
    pub(super) async fn tenant_status(&self, headers: &HeaderMap, base: Option<&str>) -> ApiAnswer {
        let Some(endpoint) = &self.status else {
            return ApiAnswer::error(StatusCode::NOT_FOUND, "no such route");
        };
        let Some(token) = bearer(headers) else {
            return unauthorized();
        };
        // Forged or signed with a dropped key version: refused unread.
        if let Err(refused) = token.verify_signature(&endpoint.key) {
            tracing::info!(reason = %refused, "status token refused");
            return unauthorized();
        }
        let record = match self.store.get_tenant(token.tenant()).await {
            Ok(record) => record,
            Err(error) => {
                tracing::error!(tenant_id = %token.tenant(), error = %crate::telemetry::error_chain(&error), "status: tenant not read");
                let mut answer =
                    ApiAnswer::error(StatusCode::SERVICE_UNAVAILABLE, "status unavailable, ask again");
                answer.headers.push(("cache-control", "no-store".into()));
                return answer;
            }
        };
        // Genuine, and the tenant's current one (a revoked or unknown
        // tenant's is not): the rest of [`crate::domain::status_token::check`].
        let current = record.filter(|r| r.status_token.as_ref().is_some_and(|t| t.matches(&token)));
        let Some(record) = current else {
            let refused = StatusTokenError::NotCurrent;
            tracing::info!(tenant_id = %token.tenant(), reason = %refused, "status token refused");
            return unauthorized();
        };
        let base = endpoint.base.as_deref().or(base).unwrap_or("");
        let mut answer = ApiAnswer::json(StatusCode::OK, self.status_body(&record, &endpoint.key, base));
        answer.headers.push(("cache-control", format!("private, max-age={MAX_AGE_SECONDS}")));
        answer
    }

    /// The tenant as its record says: the status it was last converged to,
    /// and what Stripe said last about its plan and money.
    fn status_body(&self, record: &TenantRecord, key: &PasswordKey, base: &str) -> serde_json::Value {
        let signup = record.signup.as_ref();
        let desired = record.desired.as_ref();
        let plan = desired.map(|d| &d.plan).or(record.plan.as_ref()).or(signup.map(|s| &s.plan));
        // Limits as the catalog has them now; the recorded plan's for a plan
        // no longer sold.
        let plan = plan.map(|p| self.catalog.plan(p.key.as_str()).unwrap_or_else(|_| p.clone()));
        let billing = desired.map(|d| d.billing).or(record.billing).or(signup.map(|s| s.billing));
        let billing_url = signup.map(|s| {
            super::billing_link::BillingLinks::new(base, key.clone(), self.clock.clone())
                .link_for(&s.customer)
        });
        json!({
            "tenant_id": record.id,
            "subdomain": signup.map(|s| s.subdomain.as_str()),
            "status": record.status,
            "plan": plan.as_ref().map(|p| p.key.as_str()),
            "plan_name": plan.as_ref().map(|p| p.name.as_str()),
            "tier": plan.as_ref().map(|p| p.tier),
            "limits": plan.as_ref().map(|p| &p.limits),
            "billing": billing.map(|b| b.as_str()),
            "trial_end": desired.and_then(|d| d.trial_end),
            "paid_until": desired.and_then(|d| d.paid_until),
            "cancel_at_period_end": desired.is_some_and(|d| d.cancel_at_period_end),
            "past_due": desired.is_some_and(|d| d.past_due),
            "billing_url": billing_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::{HeaderValue, Method};
    use serde_json::Value;

    use super::super::testing::{Fixture, NOW, body, fixture_with, from_origin};
    use super::*;
    use crate::domain::{Catalog, CheckoutSignup};
    use crate::ports::TenantStore;

    const KEY: &str = "1:unit-test-password-key-0123456789abcdef";

    fn key() -> PasswordKey {
        PasswordKey::parse(KEY).unwrap()
    }

    /// The sample checkout's tenant (Acme, Pro monthly), ACTIVE, with the
    /// token of `generation` recorded.
    async fn acme(f: &Fixture, generation: u32) -> (TenantRecord, StatusToken) {
        let event: Value =
            serde_json::from_str(include_str!("../../../events/01-checkout.session.completed.json")).unwrap();
        let signup =
            CheckoutSignup::from_session(&event["data"]["object"], &Catalog::embedded().unwrap()).unwrap();
        let mut record = TenantRecord::provisioning(signup, "$argon2id$hash".into(), NOW);
        let token = StatusToken::derive(&key(), &record.id, generation);
        record.status_token = Some(StatusTokenRecord::of(&token));
        record.status = crate::domain::TenantStatus::Active;
        let subdomain = record.signup.as_ref().map(|s| s.subdomain.clone()).unwrap();
        f.store.record_signup(&subdomain, &record, None, NOW).await.unwrap();
        (record, token)
    }

    fn api(f: Fixture) -> (CheckoutApi, Arc<crate::adapters::local::LocalTenantStore>) {
        let store = f.store.clone();
        (f.api.with_status(key(), Some("https://api.example.com")), store)
    }

    async fn get(api: &CheckoutApi, authorization: Option<&str>) -> ApiAnswer {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert("authorization", HeaderValue::from_str(value).unwrap());
        }
        api.handle(&Method::GET, STATUS_PATH, &headers, b"", None).await
    }

    fn header<'a>(answer: &'a ApiAnswer, name: &str) -> Option<&'a str> {
        answer.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[tokio::test]
    async fn the_current_token_reads_the_tenants_status_plan_and_billing_link() {
        let f = fixture_with(None);
        let (record, token) = acme(&f, 1).await;
        let (api, _) = api(f);
        let answer = get(&api, Some(&format!("Bearer {}", token.expose()))).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(header(&answer, "cache-control"), Some("private, max-age=60"));
        assert_eq!(header(&answer, "access-control-allow-origin"), None);
        let status = body(&answer);
        assert_eq!(status["tenant_id"], record.id.as_str());
        assert_eq!(status["subdomain"], "acme");
        assert_eq!(status["status"], "ACTIVE");
        assert_eq!((status["plan"].as_str(), status["plan_name"].as_str()), (Some("pro"), Some("Pro")));
        assert_eq!(status["tier"], 2);
        assert_eq!(status["limits"], json!({"activities": 15}));
        assert_eq!(status["billing"], "monthly");
        assert_eq!(
            (status["past_due"].as_bool(), status["cancel_at_period_end"].as_bool()),
            (Some(false), Some(false))
        );
        let link = status["billing_url"].as_str().unwrap();
        assert!(link.starts_with("https://api.example.com/billing/1.cus_"), "{link}");
        // The link is one the API itself follows.
        let token = link.rsplit('/').next().unwrap();
        let links = super::super::billing_link::BillingLinks::checker(key(), api.clock.clone());
        assert!(links.verify(token).is_ok());
    }

    #[tokio::test]
    async fn every_refused_token_gets_the_same_401() {
        let f = fixture_with(None);
        let (record, current) = acme(&f, 2).await;
        let (api, _) = api(f);
        let old = StatusToken::derive(&key(), &record.id, 1);
        let stranger = StatusToken::derive(&key(), &TenantId::parse("tnt_00000000000000000009").unwrap(), 1);
        let forged = StatusToken::derive(
            &PasswordKey::parse("1:someone-elses-key-0123456789abcdefghij").unwrap(),
            &record.id,
            2,
        );
        let unknown_version = StatusToken::derive(
            &PasswordKey::parse("v9:another-key-0123456789abcdefghijklmn").unwrap(),
            &record.id,
            2,
        );
        let refused = [
            None,
            Some("Bearer".to_owned()),
            Some("Bearer garbage".to_owned()),
            Some(format!("Basic {}", current.expose())),
            Some(format!("Bearer {}", old.expose())),
            Some(format!("Bearer {}", stranger.expose())),
            Some(format!("Bearer {}", forged.expose())),
            Some(format!("Bearer {}", unknown_version.expose())),
        ];
        let first = get(&api, None).await;
        assert_eq!(first.status, StatusCode::UNAUTHORIZED);
        assert_eq!(header(&first, "www-authenticate"), Some("Bearer"));
        for authorization in &refused {
            let answer = get(&api, authorization.as_deref()).await;
            assert_eq!(answer, first, "{authorization:?}");
        }
        assert_eq!(get(&api, Some(&format!("bearer {}", current.expose()))).await.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn the_route_is_get_only_without_cors_and_absent_unless_configured() {
        let f = fixture_with(None);
        let (_, token) = acme(&f, 1).await;
        let unconfigured = fixture_with(None);
        assert_eq!(
            get(&unconfigured.api, Some(&format!("Bearer {}", token.expose()))).await.status,
            StatusCode::NOT_FOUND
        );
        let (api, _) = api(f);
        let mut headers = from_origin();
        headers
            .insert("authorization", HeaderValue::from_str(&format!("Bearer {}", token.expose())).unwrap());
        let post = api.handle(&Method::POST, STATUS_PATH, &headers, b"", None).await;
        assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
        let preflight = api.handle(&Method::OPTIONS, STATUS_PATH, &from_origin(), b"", None).await;
        assert_eq!(preflight.status, StatusCode::METHOD_NOT_ALLOWED);
        let answer = api.handle(&Method::GET, STATUS_PATH, &headers, b"", None).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(!answer.headers.iter().any(|(name, _)| name.starts_with("access-control-")));
    }

    #[test]
    fn tokens_are_derived_the_same_each_time_and_the_next_one_differs() {
        let tokens = StatusTokens::new("https://api.example.com/", key());
        assert_eq!(tokens.url(), "https://api.example.com/status");
        let tenant = TenantId::parse("tnt_00000000000000000001").unwrap();
        let first = tokens.next(&tenant, None);
        assert_eq!(first.generation(), 1);
        let recorded = StatusTokenRecord::of(&first);
        assert_eq!(tokens.current(&tenant, Some(&recorded)), Some(first.clone()));
        let second = tokens.next(&tenant, Some(&recorded));
        assert_eq!(second.generation(), 2);
        assert_ne!(second.expose(), first.expose());
        let [url, token] = tokens.environment(&first);
        assert_eq!(url, (TENANCY_STATUS_URL.to_owned(), "https://api.example.com/status".to_owned()));
        assert_eq!(token.1, first.expose());
        // A dropped key version derives nothing: a new token is due.
        let rotated = StatusTokens::new(
            "https://api.example.com",
            PasswordKey::parse("v2:a-new-password-key-0123456789abcdefgh").unwrap(),
        );
        assert_eq!(rotated.current(&tenant, Some(&recorded)), None);
        assert!(rotated.next(&tenant, Some(&recorded)).expose().contains(".v2.2."));
    }
}
