//! The pieces of the cold-start benchmark (`src/bin/bench-coldstart.rs`): a
//! local Lambda Runtime API (version 2018-06-01) that hands one API Gateway
//! HTTP API event to the process it is about to start and notes when that
//! process asks for it and when its answer arrives; the signed event; the
//! answer check; the peak memory read from /proc.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::Value;
use tenancy::stripe::WebhookSecret;
use tokio::sync::oneshot;

/// The API Gateway HTTP API (payload 2.0) event the integration tests use.
const APIGW_TEMPLATE: &str = include_str!("../../tests/fixtures/apigw-v2-stripe-webhook.json");
/// A `checkout.session.completed` event, which the webhook enqueues.
const STRIPE_EVENT: &str = include_str!("../../events/01-checkout.session.completed.json");

pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:stripe-webhook";
/// How long the function may run, as the Lambda-Runtime-Deadline-Ms header says.
const DEADLINE_MS: u128 = 30_000;

/// One invocation for the next process to fetch.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub event: Vec<u8>,
}

/// How the invocation ended, and when the harness heard of it.
#[derive(Debug)]
pub enum Outcome {
    /// POST /invocation/{id}/response.
    Answered { at: Instant, body: Bytes },
    /// POST /invocation/{id}/error.
    Failed { body: Bytes },
    /// POST /init/error.
    InitFailed { body: Bytes },
}

/// What the harness waits on for one start.
pub struct Watch {
    /// When the process first called GET /invocation/next: its init is done.
    pub fetched: oneshot::Receiver<Instant>,
    pub outcome: oneshot::Receiver<Outcome>,
}

struct Slot {
    request_id: String,
    event: Option<Vec<u8>>,
    fetched: Option<oneshot::Sender<Instant>>,
    outcome: Option<oneshot::Sender<Outcome>>,
}

/// The runtime API's state: at most one invocation, for the current process.
#[derive(Clone, Default)]
pub struct RuntimeApi {
    slot: Arc<Mutex<Option<Slot>>>,
}

impl RuntimeApi {
    pub fn router(&self) -> Router {
        Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(self.clone())
    }

    /// Serves the API on a loopback port; returns `host:port` (the value of
    /// AWS_LAMBDA_RUNTIME_API) and the server's future.
    pub async fn serve(
        &self,
    ) -> anyhow::Result<(String, impl Future<Output = std::io::Result<()>> + Send + 'static)> {
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.context("cannot bind the runtime API port")?;
        let address = listener.local_addr().context("runtime API port has no address")?.to_string();
        let router = self.router();
        Ok((address, async move { axum::serve(listener, router).await }))
    }

    /// Replaces any earlier invocation with this one.
    pub fn offer(&self, invocation: Invocation) -> Watch {
        let (fetched_tx, fetched) = oneshot::channel();
        let (outcome_tx, outcome) = oneshot::channel();
        *self.lock() = Some(Slot {
            request_id: invocation.request_id,
            event: Some(invocation.event),
            fetched: Some(fetched_tx),
            outcome: Some(outcome_tx),
        });
        Watch { fetched, outcome }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Slot>> {
        // A panicking handler leaves the slot as consistent as before.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `outcome` for `request_id` (any id for an init error).
    fn settle(&self, request_id: Option<&str>, outcome: Outcome) -> StatusCode {
        let mut guard = self.lock();
        let Some(slot) = guard.as_mut() else { return StatusCode::BAD_REQUEST };
        if request_id.is_some_and(|id| id != slot.request_id) {
            return StatusCode::BAD_REQUEST;
        }
        if let Some(sender) = slot.outcome.take() {
            let _ = sender.send(outcome); // the harness may have given up; nothing to tell
        }
        StatusCode::ACCEPTED
    }
}

async fn next(State(api): State<RuntimeApi>) -> Response {
    let taken = {
        let mut guard = api.lock();
        guard.as_mut().and_then(|slot| {
            let event = slot.event.take()?;
            Some((slot.request_id.clone(), event, slot.fetched.take()))
        })
    };
    let Some((request_id, event, fetched)) = taken else {
        // One event per process: a second poll waits until the process is killed.
        return std::future::pending().await;
    };
    if let Some(sender) = fetched {
        let _ = sender.send(Instant::now());
    }
    match invocation_headers(&request_id, SystemTime::now()) {
        Ok(headers) => (StatusCode::OK, headers, event).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn response(State(api): State<RuntimeApi>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let at = Instant::now(); // the answer has arrived in full
    api.settle(Some(&id), Outcome::Answered { at, body })
}

async fn error(State(api): State<RuntimeApi>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    api.settle(Some(&id), Outcome::Failed { body })
}

async fn init_error(State(api): State<RuntimeApi>, body: Bytes) -> StatusCode {
    api.settle(None, Outcome::InitFailed { body })
}

/// The headers Lambda sends with an invocation.
pub fn invocation_headers(request_id: &str, now: SystemTime) -> anyhow::Result<HeaderMap> {
    let epoch_ms = now.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default();
    // X-Ray's form: Root=1-<epoch seconds, 8 hex>-<24 hex>, here from the request id.
    let digits: String = request_id.chars().filter(char::is_ascii_hexdigit).collect();
    let tail = &digits[digits.len().saturating_sub(24)..];
    let trace = format!("Root=1-{:08x}-{tail:0>24};Parent=0000000000000001;Sampled=0", epoch_ms / 1000);
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("content-type", "application/json".to_owned()),
        ("lambda-runtime-aws-request-id", request_id.to_owned()),
        ("lambda-runtime-deadline-ms", (epoch_ms + DEADLINE_MS).to_string()),
        ("lambda-runtime-invoked-function-arn", FUNCTION_ARN.to_owned()),
        ("lambda-runtime-trace-id", trace),
    ] {
        let value = HeaderValue::from_str(&value).with_context(|| format!("invalid {name} header value"))?;
        headers.insert(name, value);
    }
    Ok(headers)
}

/// The sample Stripe event with its id replaced by `event_id`, so the SQS
/// message can be traced to one start.
pub fn stripe_event(event_id: &str) -> anyhow::Result<String> {
    let mut event: Value = serde_json::from_str(STRIPE_EVENT).context("sample Stripe event is not JSON")?;
    let Some(object) = event.as_object_mut() else { bail!("sample Stripe event is not a JSON object") };
    object.insert("id".into(), Value::String(event_id.to_owned()));
    Ok(event.to_string())
}

/// An API Gateway HTTP API event carrying `body`, signed with `secret` at
/// `now` as Stripe would sign it, base64-encoded as in the committed fixture.
pub fn api_gateway_event(
    body: &str,
    secret: &WebhookSecret,
    now: SystemTime,
    request_id: &str,
) -> anyhow::Result<Vec<u8>> {
    let since_epoch = now.duration_since(UNIX_EPOCH).context("clock before 1970")?;
    let timestamp = i64::try_from(since_epoch.as_secs()).context("clock out of range")?;
    let mut event: Value = serde_json::from_str(APIGW_TEMPLATE).context("API Gateway fixture is not JSON")?;
    let headers = event
        .get_mut("headers")
        .and_then(Value::as_object_mut)
        .context("API Gateway fixture has no headers object")?;
    headers.insert("stripe-signature".into(), secret.sign_header(timestamp, body.as_bytes()).into());
    headers.insert("content-length".into(), body.len().to_string().into());
    let context = event
        .get_mut("requestContext")
        .and_then(Value::as_object_mut)
        .context("API Gateway fixture has no requestContext object")?;
    context.insert("requestId".into(), request_id.into());
    context.insert("timeEpoch".into(), u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX).into());
    let object = event.as_object_mut().context("API Gateway fixture is not a JSON object")?;
    object.insert("body".into(), base64::engine::general_purpose::STANDARD.encode(body).into());
    object.insert("isBase64Encoded".into(), true.into());
    serde_json::to_vec(&event).context("cannot serialise the API Gateway event")
}

/// Checks an API Gateway (payload 2.0) answer: status 200 and a body saying
/// the event was received and not ignored.
pub fn check_answer(answer: &[u8]) -> anyhow::Result<()> {
    let value: Value = serde_json::from_slice(answer).context("answer is not JSON")?;
    let status = value.get("statusCode").and_then(Value::as_u64).context("answer has no statusCode")?;
    let body = value.get("body").and_then(Value::as_str).unwrap_or_default();
    if status != 200 {
        bail!("answer has statusCode {status}, body {body}");
    }
    let parsed: Value =
        serde_json::from_str(body).with_context(|| format!("answer body is not JSON: {body}"))?;
    if parsed.get("received") != Some(&Value::Bool(true)) || parsed.get("ignored") == Some(&Value::Bool(true))
    {
        bail!("answer body does not say the event was received and queued: {body}");
    }
    Ok(())
}

/// The peak resident set (VmHWM) in bytes, from the text of /proc/<pid>/status.
pub fn peak_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let mut fields = line["VmHWM:".len()..].split_whitespace();
    let kib: u64 = fields.next()?.parse().ok()?;
    (fields.next() == Some("kB")).then_some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    const SECRET: &str = "whsec_bench_unit_secret";

    #[test]
    fn the_event_is_signed_for_its_body_and_carries_it_base64() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        let body = stripe_event("evt_bench_unit_1").unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_763_800_010);
        let event: Value =
            serde_json::from_slice(&api_gateway_event(&body, &secret, now, "req-1").unwrap()).unwrap();
        let decoded =
            base64::engine::general_purpose::STANDARD.decode(event["body"].as_str().unwrap()).unwrap();
        assert_eq!(decoded, body.as_bytes());
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["headers"]["stripe-signature"], secret.sign_header(1_763_800_010, body.as_bytes()));
        assert_eq!(event["requestContext"]["requestId"], "req-1");
        let envelope: Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(envelope["id"], "evt_bench_unit_1");
        assert_eq!(envelope["type"], "checkout.session.completed");
    }

    #[test]
    fn answers_are_checked_for_status_and_body() {
        let ok = br#"{"statusCode":200,"headers":{},"body":"{\"received\":true}","isBase64Encoded":false}"#;
        assert!(check_answer(ok).is_ok());
        let refused = br#"{"statusCode":400,"body":"{\"error\":\"no\"}"}"#;
        assert!(check_answer(refused).unwrap_err().to_string().contains("statusCode 400"));
        let ignored = br#"{"statusCode":200,"body":"{\"received\":true,\"ignored\":true}"}"#;
        assert!(check_answer(ignored).is_err());
        assert!(check_answer(b"not json").is_err());
    }

    #[test]
    fn peak_rss_is_read_from_proc_status() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    5120 kB\nVmRSS:\t 4000 kB\n";
        assert_eq!(peak_rss(status), Some(5120 * 1024));
        assert_eq!(peak_rss("Name:\tx\n"), None);
        let own = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(peak_rss(&own).unwrap() > 0);
    }

    async fn http(address: &str, request: &str) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn the_runtime_api_hands_out_one_event_and_reports_the_answer() {
        let api = RuntimeApi::default();
        let (address, server) = api.serve().await.unwrap();
        tokio::spawn(server);
        let watch = api.offer(Invocation { request_id: "req-7".into(), event: b"{\"e\":1}".to_vec() });

        let next = http(
            &address,
            "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert!(next.starts_with("HTTP/1.1 200"), "{next}");
        let lower = next.to_ascii_lowercase();
        assert!(lower.contains("lambda-runtime-aws-request-id: req-7"), "{next}");
        assert!(lower.contains("lambda-runtime-deadline-ms: "), "{next}");
        assert!(lower.contains(&format!("lambda-runtime-invoked-function-arn: {FUNCTION_ARN}")), "{next}");
        assert!(lower.contains("lambda-runtime-trace-id: root=1-"), "{next}");
        assert!(next.ends_with("{\"e\":1}"), "{next}");
        assert!(watch.fetched.await.is_ok());

        let wrong = http(
            &address,
            "POST /2018-06-01/runtime/invocation/other/response HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
        )
        .await;
        assert!(wrong.starts_with("HTTP/1.1 400"), "{wrong}");
        let answer = "{\"statusCode\":200}";
        let posted = http(
            &address,
            &format!(
                "POST /2018-06-01/runtime/invocation/req-7/response HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            ),
        )
        .await;
        assert!(posted.starts_with("HTTP/1.1 202"), "{posted}");
        match watch.outcome.await.unwrap() {
            Outcome::Answered { body, .. } => assert_eq!(body, answer.as_bytes()),
            other => panic!("expected an answer, got {other:?}"),
        }

        // The event is handed out once; a second poll waits.
        let again = tokio::time::timeout(
            Duration::from_millis(100),
            http(&address, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\n\r\n"),
        )
        .await;
        assert!(again.is_err());
    }

    #[tokio::test]
    async fn init_errors_are_reported() {
        let api = RuntimeApi::default();
        let (address, server) = api.serve().await.unwrap();
        tokio::spawn(server);
        let watch = api.offer(Invocation { request_id: "req-8".into(), event: b"{}".to_vec() });
        let posted = http(
            &address,
            "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\nconnection: close\r\n\r\nboom",
        )
        .await;
        assert!(posted.starts_with("HTTP/1.1 202"), "{posted}");
        assert!(matches!(watch.outcome.await.unwrap(), Outcome::InitFailed { body } if body == "boom"));
    }
}
