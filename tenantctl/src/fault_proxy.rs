//! A fault-injecting HTTP proxy for an AWS emulator (moto's server): the AWS
//! SDK talks to the proxy, the proxy to the emulator. For a share of
//! requests, chosen by a [`FaultPlan`] per API, it
//!
//! - answers a throttling error without forwarding ([`FaultKind::Before`]),
//!   in the shape the SDK classifies as retryable for the API's protocol;
//! - forwards, lets the effect happen, then answers 500 instead of the real
//!   answer ([`FaultKind::After`]);
//! - stalls past the client's timeout ([`FaultKind::Timeout`]), having
//!   forwarded first or not.
//!
//! Counts go per API (`dynamodb.PutItem`, `elasticloadbalancing.CreateRule`,
//! `route53.ChangeResourceRecordSets`), readable from [`FaultProxy::report`]
//! or `GET /__fault-proxy/report` on the proxy itself.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tenancy::adapters::faults::{FaultKind, FaultPlan, FaultReport};
use tokio::net::TcpListener;

/// Where the proxy's own counts are served (no AWS API uses this path).
pub const REPORT_PATH: &str = "/__fault-proxy/report";

/// Requests to AWS are small; this bounds what the proxy buffers.
const BODY_LIMIT: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("upstream `{0}` is not an http:// URL with a host")]
    Upstream(String),
    #[error("binding {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// How an AWS API encodes its errors, which decides the shape of an
/// injected one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// awsJson 1.0/1.1 (`X-Amz-Target`): DynamoDB, ECS, Step Functions, SQS.
    AwsJson,
    /// restJson1: SES v2.
    RestJson,
    /// awsQuery (`Action=` form): Elastic Load Balancing.
    AwsQuery,
    /// restXml: Route 53.
    RestXml,
}

/// What the proxy found a request to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCall {
    pub protocol: Protocol,
    /// `service.Operation`, the key faults are drawn and counted under.
    pub api: String,
}

/// The signing name in the SigV4 credential scope (`…/us-east-1/dynamodb/aws4_request`).
fn signing_service(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let credential = auth.split("Credential=").nth(1)?;
    let scope = credential.split([',', ' ']).next()?;
    let parts: Vec<&str> = scope.split('/').collect();
    (parts.len() >= 5).then(|| parts[3].to_owned())
}

/// The operation of a REST call, from its method and path.
fn rest_operation(method: &Method, path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let named = match (method.as_str(), segments.as_slice()) {
        ("POST", [_, "hostedzone", _, "rrset"]) => "ChangeResourceRecordSets",
        ("GET", [_, "hostedzone", _, "rrset"]) => "ListResourceRecordSets",
        ("GET", [_, "change", _]) => "GetChange",
        ("POST", [_, "hostedzone"]) => "CreateHostedZone",
        ("GET", [_, "hostedzone"]) => "ListHostedZones",
        ("GET", [_, "hostedzone", _]) => "GetHostedZone",
        ("POST", ["v2", "email", "outbound-emails"]) => "SendEmail",
        ("POST", ["v2", "email", "identities"]) => "CreateEmailIdentity",
        _ => "",
    };
    if named.is_empty() {
        let prefix: Vec<&str> = segments.iter().take(2).copied().collect();
        format!("{method} /{}", prefix.join("/"))
    } else {
        named.to_owned()
    }
}

/// Classifies a request by protocol and names its API.
pub fn classify(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> AwsCall {
    let service = signing_service(headers).unwrap_or_else(|| "unknown".into());
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let operation = target.rsplit_once('.').map_or(target, |(_, op)| op);
        return AwsCall { protocol: Protocol::AwsJson, api: format!("{service}.{operation}") };
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if form && let Some((_, action)) = form_urlencoded::parse(body).find(|(name, _)| name == "Action") {
        return AwsCall { protocol: Protocol::AwsQuery, api: format!("{service}.{action}") };
    }
    let protocol = if uri.path().starts_with("/v2/") { Protocol::RestJson } else { Protocol::RestXml };
    AwsCall { protocol, api: format!("{service}.{}", rest_operation(method, uri.path())) }
}

/// An error answer in the protocol's shape: `status`, `code` and a message
/// saying the proxy made it.
pub fn error_response(
    protocol: Protocol,
    status: StatusCode,
    code: &str,
    json_content_type: Option<&HeaderValue>,
) -> Response {
    let message = format!("{code} injected by tenantctl fault-proxy");
    let request_id = "fault-proxy-00000000-0000-0000-0000-000000000000";
    let (content_type, body) = match protocol {
        Protocol::AwsJson | Protocol::RestJson => {
            let content_type = json_content_type
                .filter(|_| protocol == Protocol::AwsJson)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_owned();
            (content_type, serde_json::json!({"__type": code, "message": message}).to_string())
        }
        Protocol::AwsQuery | Protocol::RestXml => {
            let kind = if status.is_server_error() { "Receiver" } else { "Sender" };
            (
                "text/xml".to_owned(),
                format!(
                    "<?xml version=\"1.0\"?>\n<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code>\
                     <Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
                ),
            )
        }
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(code) {
        headers.insert("x-amzn-errortype", value);
    }
    headers.insert("x-amzn-requestid", HeaderValue::from_static(request_id));
    response
}

/// The throttling answer the SDK retries (code per protocol's service family).
fn throttled(protocol: Protocol, content_type: Option<&HeaderValue>) -> Response {
    let code = match protocol {
        Protocol::AwsJson | Protocol::RestJson => "ThrottlingException",
        Protocol::AwsQuery | Protocol::RestXml => "Throttling",
    };
    error_response(protocol, StatusCode::BAD_REQUEST, code, content_type)
}

/// A 500 the SDK retries, sent in place of a real answer.
fn internal_error(protocol: Protocol, content_type: Option<&HeaderValue>) -> Response {
    let code = match protocol {
        Protocol::AwsJson | Protocol::RestJson => "InternalFailure",
        Protocol::AwsQuery | Protocol::RestXml => "InternalError",
    };
    error_response(protocol, StatusCode::INTERNAL_SERVER_ERROR, code, content_type)
}

struct Shared {
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: Uri,
    plan: Arc<FaultPlan>,
}

/// Headers that belong to one hop, not to the request.
fn strip_hop_headers(headers: &mut HeaderMap) {
    for name in [header::CONNECTION, header::TRANSFER_ENCODING, header::HOST, header::UPGRADE] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

impl Shared {
    async fn forward(&self, parts: &http::request::Parts, body: Bytes) -> Response {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut builder = Uri::builder().path_and_query(path);
        if let Some(scheme) = self.upstream.scheme() {
            builder = builder.scheme(scheme.clone());
        }
        if let Some(authority) = self.upstream.authority() {
            builder = builder.authority(authority.clone());
        }
        let uri = match builder.build() {
            Ok(uri) => uri,
            Err(error) => return (StatusCode::BAD_GATEWAY, format!("fault-proxy: {error}")).into_response(),
        };
        let mut request = http::Request::new(Full::new(body));
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = parts.headers.clone();
        strip_hop_headers(request.headers_mut());
        let answer = match self.client.request(request).await {
            Ok(answer) => answer,
            // The emulator is down or refused the connection: a gateway error
            // the SDK retries, as a load balancer in front of AWS would send.
            Err(error) => {
                return (StatusCode::BAD_GATEWAY, format!("fault-proxy: upstream: {error}")).into_response();
            }
        };
        let (mut head, body) = answer.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) => {
                return (StatusCode::BAD_GATEWAY, format!("fault-proxy: upstream body: {error}"))
                    .into_response();
            }
        };
        strip_hop_headers(&mut head.headers);
        Response::from_parts(head, Body::from(body))
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if parts.method == Method::GET && parts.uri.path() == REPORT_PATH {
        return axum::Json(shared.plan.report()).into_response();
    }
    let body = match to_bytes(body, BODY_LIMIT).await {
        Ok(body) => body,
        Err(error) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, format!("fault-proxy: {error}")).into_response();
        }
    };
    let call = classify(&parts.method, &parts.uri, &parts.headers, &body);
    let content_type = parts.headers.get(header::CONTENT_TYPE).cloned();
    let Some(kind) = shared.plan.decide(&call.api) else {
        return shared.forward(&parts, body).await;
    };
    tracing::debug!(api = %call.api, fault = %kind, "fault-proxy injects");
    match kind {
        FaultKind::Before => throttled(call.protocol, content_type.as_ref()),
        FaultKind::After => {
            // The answer is thrown away: the effect stands, the caller is told it failed.
            let _ = shared.forward(&parts, body).await;
            internal_error(call.protocol, content_type.as_ref())
        }
        FaultKind::Timeout { effect } => {
            let answer = if effect { Some(shared.forward(&parts, body).await) } else { None };
            tokio::time::sleep(shared.plan.timeout_delay()).await;
            // The client has given up by now; whatever is sent goes nowhere.
            answer.unwrap_or_else(|| internal_error(call.protocol, content_type.as_ref()))
        }
    }
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    plan: Arc<FaultPlan>,
    server: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Proxies `upstream` (`http://host:port`) on `addr` (port 0 picks one)
    /// under `plan`; stalls last the plan's timeout delay.
    pub async fn start(
        addr: SocketAddr,
        upstream: &str,
        plan: Arc<FaultPlan>,
    ) -> Result<FaultProxy, ProxyError> {
        let parsed: Uri = upstream.parse().map_err(|_| ProxyError::Upstream(upstream.to_owned()))?;
        if parsed.scheme_str() != Some("http") || parsed.authority().is_none() {
            return Err(ProxyError::Upstream(upstream.to_owned()));
        }
        let listener = TcpListener::bind(addr).await.map_err(|source| ProxyError::Bind { addr, source })?;
        let bound = listener.local_addr().map_err(|source| ProxyError::Bind { addr, source })?;
        let shared = Arc::new(Shared {
            client: Client::builder(TokioExecutor::new()).build_http(),
            upstream: parsed,
            plan: plan.clone(),
        });
        let app = Router::new().fallback(handle).with_state(shared);
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(error = %error, "fault-proxy stopped");
            }
        });
        Ok(FaultProxy { addr: bound, plan, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:{port}`, the endpoint to give the SDK.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn report(&self) -> FaultReport {
        self.plan.report()
    }

    /// Serves until `shutdown` completes.
    pub async fn run_until(self, shutdown: impl std::future::Future<Output = ()>) {
        shutdown.await;
        self.server.abort();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/{svc}/aws4_request, SignedHeaders=host, Signature=00";

    fn auth(service: &str) -> String {
        AUTH.replace("{svc}", service)
    }

    #[test]
    fn calls_are_named_by_service_and_operation_in_every_protocol() {
        let post = Method::POST;
        let json = classify(
            &post,
            &"/".parse().unwrap(),
            &headers(&[("authorization", &auth("dynamodb")), ("x-amz-target", "DynamoDB_20120810.PutItem")]),
            b"{}",
        );
        assert_eq!(json, AwsCall { protocol: Protocol::AwsJson, api: "dynamodb.PutItem".into() });

        let query = classify(
            &post,
            &"/".parse().unwrap(),
            &headers(&[
                ("authorization", &auth("elasticloadbalancing")),
                ("content-type", "application/x-www-form-urlencoded; charset=utf-8"),
            ]),
            b"Action=CreateRule&Version=2015-12-01&Priority=3",
        );
        assert_eq!(
            query,
            AwsCall { protocol: Protocol::AwsQuery, api: "elasticloadbalancing.CreateRule".into() }
        );

        let rrset = classify(
            &post,
            &"/2013-04-01/hostedzone/Z0ABC/rrset/".parse().unwrap(),
            &headers(&[("authorization", &auth("route53"))]),
            b"<xml/>",
        );
        assert_eq!(
            rrset,
            AwsCall { protocol: Protocol::RestXml, api: "route53.ChangeResourceRecordSets".into() }
        );

        let change = classify(
            &Method::GET,
            &"/2013-04-01/change/C42".parse().unwrap(),
            &headers(&[("authorization", &auth("route53"))]),
            b"",
        );
        assert_eq!(change.api, "route53.GetChange");

        let mail = classify(
            &post,
            &"/v2/email/outbound-emails".parse().unwrap(),
            &headers(&[("authorization", &auth("ses"))]),
            b"{}",
        );
        assert_eq!(mail, AwsCall { protocol: Protocol::RestJson, api: "ses.SendEmail".into() });

        let unknown = classify(&Method::DELETE, &"/a/b/c".parse().unwrap(), &HeaderMap::new(), b"");
        assert_eq!(unknown.api, "unknown.DELETE /a/b");
    }

    #[tokio::test]
    async fn injected_errors_carry_the_code_where_each_protocol_puts_it() {
        let json =
            throttled(Protocol::AwsJson, Some(&HeaderValue::from_static("application/x-amz-json-1.0")));
        assert_eq!(json.status(), StatusCode::BAD_REQUEST);
        assert_eq!(json.headers()["content-type"], "application/x-amz-json-1.0");
        assert_eq!(json.headers()["x-amzn-errortype"], "ThrottlingException");
        let body = to_bytes(json.into_body(), 1 << 16).await.unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["__type"], "ThrottlingException");

        let xml = internal_error(Protocol::RestXml, None);
        assert_eq!(xml.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = String::from_utf8(to_bytes(xml.into_body(), 1 << 16).await.unwrap().to_vec()).unwrap();
        assert!(
            body.contains("<Code>InternalError</Code>") && body.contains("<Type>Receiver</Type>"),
            "{body}"
        );
    }
}
