//! Sending async-stripe's requests. async-stripe builds each request and
//! reads each answer into its generated types; this sends the request over
//! HTTPS and reads Stripe's error envelope into [`StripeCallError`].
//!
//! Why not async-stripe's own client: it reads every error into a model
//! that can hold whole PaymentIntents, SetupIntents, PaymentMethods and
//! sources, which links their deserializers into every function that calls
//! Stripe (about 2 MiB zipped, BENCHMARKS.md section 3) for fields nothing
//! here reads. async-stripe's `StripeClient` trait exists for this: the
//! request types, their encoding and the answers' types stay async-stripe's.

use std::fmt::Display;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use stripe_client_core::{
    CustomizedStripeRequest, Outcome, RequestStrategy, StripeClient, StripeClientErr, StripeMethod,
};

/// The API version the generated types follow, sent with every request.
pub fn stripe_version() -> &'static str {
    stripe_shared::version::VERSION.as_str()
}

const STRIPE_VERSION_HEADER: HeaderName = HeaderName::from_static("stripe-version");
const IDEMPOTENCY_KEY_HEADER: HeaderName = HeaderName::from_static("idempotency-key");
const SHOULD_RETRY_HEADER: &str = "stripe-should-retry";

/// Why a call to Stripe did not return an answer.
#[derive(Debug, thiserror::Error)]
pub enum StripeCallError {
    /// Stripe (or something in front of it) answered with an error status;
    /// the fields are those of Stripe's error envelope, when it was one.
    #[error("HTTP {status} from Stripe")]
    Status {
        status: u16,
        /// `type`: `invalid_request_error`, `api_error`, ...
        kind: Option<String>,
        code: Option<String>,
        message: Option<String>,
    },
    #[error("no answer within the timeout")]
    Timeout,
    #[error("{0}")]
    Transport(String),
    #[error("{0}")]
    Unreadable(String),
}

impl StripeClientErr for StripeCallError {
    fn deserialize_err(msg: impl Display) -> Self {
        StripeCallError::Unreadable(msg.to_string())
    }
}

/// What a Stripe error answer says, as far as anything here reads it.
#[derive(serde::Deserialize)]
struct Envelope {
    error: EnvelopeError,
}

#[derive(serde::Deserialize)]
struct EnvelopeError {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    message: Option<String>,
}

fn status_error(status: StatusCode, body: &[u8]) -> StripeCallError {
    let envelope = serde_json::from_slice::<Envelope>(body).ok().map(|e| e.error);
    let (kind, code, message) = match envelope {
        Some(error) => (error.kind, error.code, error.message),
        None => (None, None, None),
    };
    StripeCallError::Status { status: status.as_u16(), kind, code, message }
}

/// An HTTPS client for one key and API base.
#[derive(Clone)]
pub struct StripeHttp {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    api_base: String,
    authorization: HeaderValue,
    user_agent: HeaderValue,
}

impl std::fmt::Debug for StripeHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeHttp").field("api_base", &self.api_base).finish_non_exhaustive()
    }
}

impl StripeHttp {
    /// A client sending `secret` to `api_base` (an origin, no trailing `/`),
    /// trusting Mozilla's roots (webpki-roots), as async-stripe's does.
    pub fn new(secret: &str, api_base: &str, user_agent: &str) -> Result<Self, String> {
        let mut authorization = HeaderValue::try_from(format!("Bearer {secret}"))
            .map_err(|_| "the secret key is not a valid header value".to_owned())?;
        authorization.set_sensitive(true);
        let user_agent = HeaderValue::try_from(user_agent)
            .map_err(|_| format!("user agent `{user_agent}` is not valid"))?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Ok(StripeHttp {
            client: Client::builder(TokioExecutor::new()).build(connector),
            api_base: api_base.trim_end_matches('/').to_owned(),
            authorization,
            user_agent,
        })
    }

    fn request(
        &self,
        method: &Method,
        uri: &str,
        body: &Option<String>,
        idempotency_key: Option<&str>,
    ) -> Result<Request<Full<Bytes>>, StripeCallError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(USER_AGENT, self.user_agent.clone())
            .header(STRIPE_VERSION_HEADER, stripe_version());
        if let Some(key) = idempotency_key {
            builder = builder.header(IDEMPOTENCY_KEY_HEADER, key);
        }
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        builder
            .body(Full::new(Bytes::from(body.clone().unwrap_or_default())))
            .map_err(|e| StripeCallError::Transport(format!("building the request: {e}")))
    }

    /// One attempt: the status, Stripe's retry advice and the body.
    async fn attempt(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Option<Duration>,
    ) -> Result<(StatusCode, Option<bool>, Bytes), StripeCallError> {
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| StripeCallError::Transport(crate::telemetry::error_chain(&e)))?;
            let status = response.status();
            let should_retry = response
                .headers()
                .get(SHOULD_RETRY_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| StripeCallError::Transport(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok((status, should_retry, body))
        };
        match timeout {
            Some(limit) => {
                tokio::time::timeout(limit, exchange).await.unwrap_or(Err(StripeCallError::Timeout))
            }
            None => exchange.await,
        }
    }
}

impl StripeClient for StripeHttp {
    type Err = StripeCallError;

    async fn execute(&self, request: CustomizedStripeRequest) -> Result<Bytes, StripeCallError> {
        let (request, config) = request.into_pieces();
        let strategy = config.request_strategy.unwrap_or(RequestStrategy::Once);
        let method = match request.method {
            StripeMethod::Get => Method::GET,
            StripeMethod::Post => Method::POST,
            StripeMethod::Delete => Method::DELETE,
        };
        let mut uri = format!("{}/v1{}", self.api_base, request.path);
        if let Some(query) = &request.query {
            uri = format!("{uri}?{query}");
        }
        let key = strategy.get_key();
        let (mut tries, mut status, mut should_retry) = (0, None, None);
        let mut last = StripeCallError::Transport("not sent".into());
        // The strategy decides whether to go again, as async-stripe's client does.
        loop {
            match strategy.test(status, should_retry, tries) {
                Outcome::Stop => return Err(last),
                Outcome::Continue(Some(delay)) => tokio::time::sleep(delay).await,
                Outcome::Continue(None) => {}
            }
            tries += 1;
            let http_request =
                self.request(&method, &uri, &request.body, key.as_ref().map(|k| k.as_str()))?;
            match self.attempt(http_request, config.timeout).await {
                Ok((answered, _, body)) if answered.is_success() => return Ok(body),
                Ok((answered, advice, body)) => {
                    last = status_error(answered, &body);
                    status = Some(answered.as_u16());
                    should_retry = advice;
                }
                Err(error) => last = error,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stripe_error_envelope_is_read_and_anything_else_keeps_its_status() {
        let body = br#"{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such price","param":"price","payment_intent":{"id":"pi_1"}}}"#;
        match status_error(StatusCode::BAD_REQUEST, body) {
            StripeCallError::Status { status, kind, code, message } => {
                assert_eq!(status, 400);
                assert_eq!(kind.as_deref(), Some("invalid_request_error"));
                assert_eq!(code.as_deref(), Some("resource_missing"));
                assert_eq!(message.as_deref(), Some("No such price"));
            }
            other => panic!("{other:?}"),
        }
        match status_error(StatusCode::BAD_GATEWAY, b"<html>502</html>") {
            StripeCallError::Status { status: 502, kind: None, code: None, message: None } => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_version_sent_is_the_one_the_types_follow() {
        assert_eq!(stripe_version(), "2026-09-30.endive");
    }
}
