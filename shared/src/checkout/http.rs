//! The API's HTTP side: routing, CORS, the signup form and the JSON
//! answers with their status codes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::CheckoutApi;
use crate::domain::{BillingPeriod, Catalog, EmailAddress, OrganizationName, Plan, PromotionCode, Subdomain};

/// A JSON body larger than this is not a signup form.
const MAX_BODY: usize = 16 * 1024;

/// An HTTP answer with its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiAnswer {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl ApiAnswer {
    pub(super) fn json(status: StatusCode, body: Value) -> ApiAnswer {
        ApiAnswer {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
        }
    }

    pub(super) fn error(status: StatusCode, message: &str) -> ApiAnswer {
        ApiAnswer::json(status, json!({ "error": message }))
    }

    pub(super) fn fields(status: StatusCode, errors: BTreeMap<&'static str, String>) -> ApiAnswer {
        ApiAnswer::json(status, json!({ "errors": errors }))
    }

    /// A short page for a person who followed a link (plain text: nothing in
    /// it comes from the request).
    pub(super) fn page(status: StatusCode, text: &str) -> ApiAnswer {
        ApiAnswer {
            status,
            headers: vec![
                ("content-type", "text/plain; charset=utf-8".into()),
                ("cache-control", "no-store".into()),
            ],
            body: format!("{text}\n"),
        }
    }

    /// 303 to `url`, never cached (the portal session it names is short-lived).
    pub(super) fn see_other(url: &str) -> ApiAnswer {
        ApiAnswer {
            status: StatusCode::SEE_OTHER,
            headers: vec![("location", url.to_owned()), ("cache-control", "no-store".into())],
            body: String::new(),
        }
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
    /// A promotion code the buyer typed on our form (optional); without
    /// one, they may type one on Stripe's page.
    pub coupon: Option<PromotionCode>,
}

impl CheckoutRequest {
    /// What the buyer chose besides the name and their e-mail (which key
    /// their hold): a retry with the same choices resumes the same session.
    pub(super) fn form_fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        for part in [self.plan.key.as_str(), self.billing.as_str(), self.organization.as_str()] {
            hash.update(part.as_bytes());
            hash.update([0u8]);
        }
        // Only when given, so a form without one keeps the fingerprint it had.
        if let Some(coupon) = &self.coupon {
            hash.update(b"coupon\0");
            hash.update(coupon.canonical().as_bytes());
        }
        hex::encode(&hash.finalize()[..16])
    }

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
        // Optional: absent, null or blank is no coupon.
        let coupon = match value.get("coupon") {
            None | Some(Value::Null) => None,
            Some(Value::String(code)) if code.trim().is_empty() => None,
            Some(Value::String(code)) => check(&mut errors, "coupon", PromotionCode::parse(code)),
            Some(_) => {
                errors.insert("coupon", "must be a text such as WELCOME10".to_owned());
                None
            }
        };
        match (plan, billing, subdomain, organization, email) {
            (Some(plan), Some(billing), Some(subdomain), Some(organization), Some(email))
                if errors.is_empty() =>
            {
                Ok(CheckoutRequest { plan, billing, subdomain, organization, email, coupon })
            }
            _ => Err(ApiAnswer::fields(StatusCode::BAD_REQUEST, errors)),
        }
    }
}

impl CheckoutApi {
    /// Routes one request; `path` without the stage prefix, `client` the
    /// caller's address as the front door saw it (API Gateway's source IP,
    /// the local server's peer), for the per-client limits.
    pub async fn handle(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
        client: Option<IpAddr>,
    ) -> ApiAnswer {
        self.handle_at(None, method, path, headers, body, client).await
    }

    /// [`Self::handle`] for a request that came to `public_base` (the
    /// API's URL as API Gateway names it), under which `GET /status` makes
    /// its billing link unless the API was given its URL.
    pub async fn handle_at(
        &self,
        public_base: Option<&str>,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
        client: Option<IpAddr>,
    ) -> ApiAnswer {
        let origin = headers.get("origin").and_then(|o| o.to_str().ok());
        let allowed =
            origin.filter(|o| self.settings.allowed_origins.iter().any(|a| a == o.trim_end_matches('/')));
        let path = path.trim_end_matches('/');
        // Server to server: no CORS, no per-client limit (see `status`).
        if path == super::status::STATUS_PATH {
            return match method {
                &Method::GET => self.tenant_status(headers, public_base).await,
                _ => ApiAnswer::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this route"),
            };
        }
        if let Some(token) = path.strip_prefix("/billing/") {
            return match (method, self.within_rate(client).await) {
                (&Method::GET, Ok(())) => self.billing_portal(token).await,
                (&Method::GET, Err(answer)) => answer,
                _ => ApiAnswer::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this route"),
            };
        }
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
            (&Method::GET, Some(name)) => match self.within_rate(client).await {
                Ok(()) => self.availability(name).await,
                Err(answer) => answer,
            },
            (&Method::POST, None) => match self.within_rate(client).await {
                Ok(()) => self.checkout(client, body).await,
                Err(answer) => answer,
            },
            _ => ApiAnswer::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this route"),
        };
        if let Some(origin) = allowed {
            answer.headers.push(("access-control-allow-origin", origin.to_owned()));
        }
        answer.headers.push(("vary", "Origin".into()));
        answer
    }

    /// `POST /checkout`: holds the subdomain for the buyer and starts a
    /// Checkout Session, or gives the same buyer their open one back.
    pub async fn checkout(&self, client: Option<IpAddr>, body: &[u8]) -> ApiAnswer {
        let request = match CheckoutRequest::parse(body, &self.catalog) {
            Ok(request) => request,
            Err(answer) => return answer,
        };
        let now = self.clock.now_unix();
        // Before the coupon, the price or the hold: nothing is held, nobody
        // pays. A buyer asking again for their open checkout was counted
        // when it began (the reserve is for them): they get it back.
        if !self.has_room().await && !self.holds_open_checkout(&request, now).await {
            return Self::no_room();
        }
        let price = match self.price(&request).await {
            Ok(price) => price,
            Err(answer) => return answer,
        };
        // Checked before anything is held: a refused coupon leaves no trace.
        let promotion = match &request.coupon {
            None => None,
            Some(code) => match self.promotion(&request, code, &price.product).await {
                Ok(accepted) => Some(accepted),
                Err(answer) => return answer,
            },
        };
        let until = now + self.settings.hold_seconds + self.settings.hold_margin_seconds;
        let hold = match self.hold(&request, client, until, now).await {
            Ok(hold) => hold,
            Err(answer) => return answer,
        };
        let trial = match self.trial(&request, &hold, now).await {
            Ok(trial) => trial,
            Err(answer) => return answer,
        };
        if let Some(answer) = hold.resumed(&request, &trial, now) {
            return answer;
        }
        self.start_session(&request, price.id, promotion.as_ref(), &hold, &trial).await
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

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::super::testing::{ORIGIN, body, fixture_with, from_origin};
    use super::*;

    #[tokio::test]
    async fn every_bad_field_gets_its_own_message() {
        let f = fixture_with(None);
        let bad = json!({"plan": "platinum", "billing": "weekly", "subdomain": "www", "organization": "", "email": "dana", "coupon": "10% OFF"});
        let answer = f.api.checkout(None, bad.to_string().as_bytes()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        let errors = &body(&answer)["errors"];
        assert_eq!(errors["plan"], "must be one of: basic, pro, ultimate");
        assert_eq!(errors["billing"], "billing must be `monthly`, `annual`, `biennial` or `triennial`");
        assert_eq!(errors["subdomain"], "subdomain `www` is reserved");
        assert_eq!(errors["organization"], "is required");
        assert_eq!(errors["email"], "not a usable e-mail address");
        assert_eq!(errors["coupon"], "coupon must be 1 to 100 letters and digits, such as WELCOME10");
        let not_json = f.api.checkout(None, b"plan=pro").await;
        assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
        assert!(body(&not_json)["error"].as_str().unwrap().starts_with("body is not JSON"));
        assert!(f.stripe.sessions().is_empty());
    }

    #[tokio::test]
    async fn cors_answers_the_marketing_site_and_no_one_else() {
        let f = fixture_with(None);
        let preflight = f.api.handle(&Method::OPTIONS, "/checkout", &from_origin(), b"", None).await;
        assert_eq!(preflight.status, StatusCode::NO_CONTENT);
        assert!(preflight.headers.contains(&("access-control-allow-origin", ORIGIN.to_owned())));
        assert!(
            preflight.headers.iter().any(|(k, v)| *k == "access-control-allow-methods" && v.contains("POST"))
        );
        let mut stranger = HeaderMap::new();
        stranger.insert("origin", HeaderValue::from_static("https://evil.example"));
        let refused = f.api.handle(&Method::OPTIONS, "/checkout", &stranger, b"", None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        let get = f.api.handle(&Method::GET, "/subdomains/acme", &stranger, b"", None).await;
        assert!(!get.headers.iter().any(|(k, _)| *k == "access-control-allow-origin"));
        assert_eq!(
            f.api.handle(&Method::GET, "/nope", &from_origin(), b"", None).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            f.api.handle(&Method::GET, "/checkout", &from_origin(), b"", None).await.status,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
