//! API Gateway (HTTP API) glue.

use std::convert::Infallible;
use std::net::IpAddr;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

use super::CheckoutApi;

pub async fn handle(api: &CheckoutApi, request: Request) -> Result<Response<Body>, Infallible> {
    let client = source_ip(&request);
    let base = public_base(&request);
    let answer = api
        .handle_at(
            base.as_deref(),
            request.method(),
            request.uri().path(),
            request.headers(),
            request.body().as_ref(),
            client,
        )
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

/// The caller's address as API Gateway saw the connection: its request
/// context, never a header such as `X-Forwarded-For`, which the caller writes.
fn source_ip(request: &Request) -> Option<IpAddr> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context.http.source_ip.as_deref()?.parse().ok(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The API's URL as API Gateway names it in the request context (never
/// the `Host` header): `https://{domain}`, with the stage unless it is
/// `$default`. The function cannot be told its own API's URL in the
/// template (that would be a circular reference), so the status answer's
/// billing link is made under this.
fn public_base(request: &Request) -> Option<String> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => {
            let domain = context.domain_name.as_deref().filter(|d| !d.is_empty())?;
            match context.stage.as_deref() {
                None | Some("" | "$default") => Some(format!("https://{domain}")),
                Some(stage) => Some(format!("https://{domain}/{stage}")),
            }
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_ip_and_public_url_come_from_the_request_context_not_from_headers() {
        let event = serde_json::json!({
            "version": "2.0",
            "routeKey": "POST /checkout",
            "rawPath": "/checkout",
            "rawQueryString": "",
            "headers": {"x-forwarded-for": "10.9.9.9", "host": "attacker.example", "content-type": "application/json"},
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
                "domainPrefix": "api", "requestId": "id", "routeKey": "POST /checkout", "stage": "$default",
                "time": "12/Mar/2020:19:03:58 +0000", "timeEpoch": 1583348638390_i64,
                "http": {"method": "POST", "path": "/checkout", "protocol": "HTTP/1.1",
                         "sourceIp": "203.0.113.7", "userAgent": "test"}
            },
            "isBase64Encoded": false
        });
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        assert_eq!(source_ip(&request), Some("203.0.113.7".parse().unwrap()));
        assert_eq!(public_base(&request).as_deref(), Some("https://api.example.com"));
    }

    /// `GET /status` through the glue: the billing link is under the
    /// domain API Gateway names, the answer's headers reach the response.
    #[tokio::test]
    async fn a_status_request_links_to_billing_under_the_apis_own_domain() {
        use crate::domain::password::PasswordKey;
        use crate::domain::{Catalog, CheckoutSignup, StatusToken, StatusTokenRecord, TenantRecord};
        use crate::ports::TenantStore;
        let f = super::super::testing::fixture_with(None);
        let key = PasswordKey::parse("1:unit-test-password-key-0123456789abcdef").unwrap();
        let sample: serde_json::Value =
            serde_json::from_str(include_str!("../../../events/01-checkout.session.completed.json")).unwrap();
        let signup =
            CheckoutSignup::from_session(&sample["data"]["object"], &Catalog::embedded().unwrap()).unwrap();
        let mut record = TenantRecord::provisioning(signup.clone(), "$argon2id$hash".into(), 1);
        let token = StatusToken::derive(&key, &record.id, 1);
        record.status_token = Some(StatusTokenRecord::of(&token));
        f.store.record_signup(&signup.subdomain, &record, None, 1).await.unwrap();
        let api = f.api.with_status(key, None);
        let event = serde_json::json!({
            "version": "2.0", "routeKey": "GET /status", "rawPath": "/status", "rawQueryString": "",
            "headers": {"authorization": format!("Bearer {}", token.expose()), "host": "attacker.example"},
            "requestContext": {
                "accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.ca-central-1.amazonaws.com",
                "domainPrefix": "abc123", "requestId": "id", "routeKey": "GET /status", "stage": "$default",
                "time": "12/Mar/2020:19:03:58 +0000", "timeEpoch": 1583348638390_i64,
                "http": {"method": "GET", "path": "/status", "protocol": "HTTP/1.1",
                         "sourceIp": "203.0.113.7", "userAgent": "app"}
            },
            "isBase64Encoded": false
        });
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let response = handle(&api, request).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::OK);
        assert_eq!(response.headers()["cache-control"], "private, max-age=60");
        let Body::Text(text) = response.body() else { panic!("a text body") };
        let body: serde_json::Value = serde_json::from_str(text).unwrap();
        let link = body["billing_url"].as_str().unwrap();
        assert!(
            link.starts_with("https://abc123.execute-api.ca-central-1.amazonaws.com/billing/1.cus_"),
            "{link}"
        );
    }
}
