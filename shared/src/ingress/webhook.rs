//! The webhook handler, independent of how the request arrived (API Gateway
//! through `lambda_http`, or `tenantctl local serve`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use http::{HeaderMap, StatusCode};
use serde_json::json;
use tracing::{Instrument, field};

use crate::clock::Clock;
use crate::config::WebhookConfig;
use crate::ports::{EventQueue, QueueError, QueuedEvent, SecretStore};
use crate::stripe::{EventEnvelope, SignatureError, SignatureVerifier, StripeMode};
use crate::telemetry::error_chain;

/// Bodies above this are refused with 413. Stripe events are a few KB; an
/// SQS message (body and attributes) may not exceed 256 KiB.
pub const MAX_BODY_BYTES: usize = 240 * 1024;

/// An HTTP answer: status and a one-line JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAnswer {
    pub status: StatusCode,
    pub body: String,
}

impl WebhookAnswer {
    fn received(ignored: bool) -> Self {
        let body =
            if ignored { json!({"received": true, "ignored": true}) } else { json!({"received": true}) };
        WebhookAnswer { status: StatusCode::OK, body: body.to_string() }
    }

    fn refused(status: StatusCode, reason: &str) -> Self {
        WebhookAnswer { status, body: json!({ "error": reason }).to_string() }
    }
}

/// A warm instance reads its signing secrets again when a delivery matches
/// none it holds (the operator rotated with `stripe register-webhook
/// --rotate`), at most this often, so forged deliveries cost at most one
/// read per window.
pub const RELOAD_AFTER_NO_MATCH_SECONDS: i64 = 60;

/// And when the ones it holds are this old, so a secret dropped from the
/// parameter (`stripe drop-webhook-secret`, after a leak) stops being
/// accepted within this long.
pub const RELOAD_AFTER_AGE_SECONDS: i64 = 15 * 60;

/// Verifies, filters and enqueues Stripe webhook deliveries.
pub struct WebhookIngress {
    verifier: RwLock<Arc<SignatureVerifier>>,
    reload: Option<SecretsReload>,
    mode: StripeMode,
    queue: Arc<dyn EventQueue>,
    clock: Arc<dyn Clock>,
}

/// Where the secrets are read again from.
struct SecretsReload {
    config: WebhookConfig,
    store: Arc<dyn SecretStore>,
    /// When they were last read (Unix seconds).
    read_at: AtomicI64,
}

impl WebhookIngress {
    pub fn new(
        verifier: SignatureVerifier,
        mode: StripeMode,
        queue: Arc<dyn EventQueue>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        WebhookIngress { verifier: RwLock::new(Arc::new(verifier)), reload: None, mode, queue, clock }
    }

    /// Reads the secrets again from where `config` says (its SSM parameter)
    /// when a delivery matches none held, or they are old (see
    /// [`RELOAD_AFTER_NO_MATCH_SECONDS`], [`RELOAD_AFTER_AGE_SECONDS`]).
    pub fn reloading_secrets(mut self, config: WebhookConfig, store: Arc<dyn SecretStore>) -> Self {
        let read_at = AtomicI64::new(self.clock.now_unix());
        self.reload = Some(SecretsReload { config, store, read_at });
        self
    }

    fn verifier(&self) -> Arc<SignatureVerifier> {
        Arc::clone(&self.verifier.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The secrets read again, if a reload is due `because` of a mismatch or
    /// their age; the new verifier, if the read succeeded.
    async fn reloaded(&self, now: i64, after: i64) -> Option<Arc<SignatureVerifier>> {
        let reload = self.reload.as_ref()?;
        // Every delivery passes here: one atomic load, no lock.
        let read_at = reload.read_at.load(Ordering::Acquire);
        if now.saturating_sub(read_at) < after {
            return None;
        }
        // Claimed before the read: of concurrent deliveries, one reads.
        if reload.read_at.compare_exchange(read_at, now, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return None;
        }
        match reload.config.verifier(reload.store.as_ref()).await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                *self.verifier.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&fresh);
                tracing::info!(secrets = fresh.secret_count(), "webhook signing secrets read again");
                Some(fresh)
            }
            Err(error) => {
                // The secrets held stay in use; the next window tries again.
                tracing::warn!(error = %error_chain(&error), "webhook signing secrets could not be read again");
                None
            }
        }
    }

    /// Checks the signature against the secrets held, and against the ones
    /// in the store when none matches and a reload is due.
    async fn verify(&self, header: &str, body: &[u8], now: i64) -> Result<i64, SignatureError> {
        let verifier = match self.reloaded(now, RELOAD_AFTER_AGE_SECONDS).await {
            Some(fresh) => fresh,
            None => self.verifier(),
        };
        match verifier.verify(header, body, now) {
            Err(SignatureError::NoMatch) => match self.reloaded(now, RELOAD_AFTER_NO_MATCH_SECONDS).await {
                Some(fresh) => fresh.verify(header, body, now),
                None => Err(SignatureError::NoMatch),
            },
            verdict => verdict,
        }
    }

    /// Handles one delivery: the request headers and the raw body bytes.
    pub async fn handle(&self, headers: &HeaderMap, body: &[u8]) -> WebhookAnswer {
        let span = tracing::info_span!("stripe_webhook", event_id = field::Empty, event_type = field::Empty);
        match self.accept(headers, body).instrument(span).await {
            Ok(answer) | Err(answer) => answer,
        }
    }

    async fn accept(&self, headers: &HeaderMap, body: &[u8]) -> Result<WebhookAnswer, WebhookAnswer> {
        if body.len() > MAX_BODY_BYTES {
            let reason = format!("body of {} bytes exceeds the {MAX_BODY_BYTES}-byte limit", body.len());
            return Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, &reason));
        }
        // HeaderMap lookups ignore letter case, as API Gateway lower-cases names.
        let header = match headers.get("stripe-signature").map(|value| value.to_str()) {
            None => return Err(refuse(StatusCode::BAD_REQUEST, "missing Stripe-Signature header")),
            Some(Err(_)) => {
                return Err(refuse(StatusCode::BAD_REQUEST, "malformed Stripe-Signature header: not ASCII"));
            }
            Some(Ok(header)) => header,
        };
        self.verify(header, body, self.clock.now_unix())
            .await
            .map_err(|e| refuse(StatusCode::BAD_REQUEST, &e.to_string()))?;

        // The top level only: the dispatcher parses the whole body.
        let (envelope, text) =
            EventEnvelope::skim(body).map_err(|e| refuse(StatusCode::BAD_REQUEST, &e.to_string()))?;
        let span = tracing::Span::current();
        span.record("event_id", envelope.id.as_str());
        span.record("event_type", envelope.event_type.as_str());

        if !self.mode.accepts_livemode(envelope.livemode) {
            let reason = format!(
                "event has livemode={} but this endpoint is in {} mode",
                envelope.livemode, self.mode
            );
            return Err(refuse(StatusCode::BAD_REQUEST, &reason));
        }
        if !envelope.event_type.is_acted_on() {
            tracing::info!(status = 200, "event type not acted on; ignored");
            return Ok(WebhookAnswer::received(true));
        }
        let event = QueuedEvent::new(envelope, text.to_owned());
        match self.queue.enqueue(&event).await {
            Ok(()) => {
                tracing::info!(status = 200, created = event.created, "event enqueued");
                Ok(WebhookAnswer::received(false))
            }
            Err(refused @ QueueError::Refused(_)) => {
                Err(refuse(StatusCode::BAD_REQUEST, &refused.to_string()))
            }
            Err(error) => {
                // 5xx makes Stripe retry with backoff for up to three days.
                tracing::error!(status = 500, error = %error_chain(&error), "could not enqueue event");
                Err(WebhookAnswer::refused(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "event could not be queued; retry later",
                ))
            }
        }
    }
}

fn refuse(status: StatusCode, reason: &str) -> WebhookAnswer {
    tracing::warn!(status = status.as_u16(), reason, "delivery refused");
    WebhookAnswer::refused(status, reason)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::adapters::local::LocalEventQueue;
    use crate::clock::FixedClock;
    use crate::ports::QueueError;
    use crate::stripe::{WebhookSecret, WebhookSecrets};

    const NOW: i64 = 1_700_000_000;
    const SECRET: &str = "whsec_unit_test_secret";

    fn body(event_type: &str, livemode: bool) -> String {
        format!(
            r#"{{"id":"evt_unit1","object":"event","type":"{event_type}","created":1699999990,"livemode":{livemode},"data":{{"object":{{"id":"x"}}}}}}"#
        )
    }

    fn signed(body: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = WebhookSecret::parse(SECRET).unwrap().sign_header(NOW, body.as_bytes());
        headers.insert("Stripe-Signature", value.parse().unwrap());
        headers
    }

    fn ingress(mode: StripeMode, queue: Arc<dyn EventQueue>) -> WebhookIngress {
        let verifier =
            SignatureVerifier::new(WebhookSecrets::parse_list(SECRET).unwrap(), Duration::from_secs(300));
        WebhookIngress::new(verifier, mode, queue, Arc::new(FixedClock(NOW)))
    }

    /// A clock the test moves.
    struct SettableClock(std::sync::atomic::AtomicI64);

    impl Clock for SettableClock {
        fn now_unix(&self) -> i64 {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    #[tokio::test]
    async fn a_rotated_secret_is_read_again_once_and_a_dropped_one_stops_after_its_age() {
        use crate::adapters::local::InMemorySecretStore;
        use crate::config::SecretsSource;
        const PARAMETER: &str = "/tenancy/test/stripe-webhook-secrets";
        const ROTATED: &str = "whsec_unit_test_rotated";
        let store = Arc::new(InMemorySecretStore::default());
        store.put(PARAMETER, SECRET);
        let config = WebhookConfig {
            mode: StripeMode::Test,
            tolerance: Duration::from_secs(300),
            secrets: SecretsSource::Parameter(PARAMETER.into()),
        };
        let clock = Arc::new(SettableClock(NOW.into()));
        let verifier = config.verifier(store.as_ref()).await.unwrap();
        let queue = Arc::new(LocalEventQueue::default());
        let ingress = WebhookIngress::new(verifier, StripeMode::Test, queue.clone(), clock.clone())
            .reloading_secrets(config, store.clone());
        let delivery = |secret: &str, at: i64, id: &str| {
            let body = body("checkout.session.completed", false).replace("evt_unit1", id);
            let mut headers = HeaderMap::new();
            let value = WebhookSecret::parse(secret).unwrap().sign_header(at, body.as_bytes());
            headers.insert("Stripe-Signature", value.parse().unwrap());
            (headers, body)
        };
        // A minute after the cold start, the operator rotates: the new
        // secret first, the old one kept.
        let rotated_at = NOW + RELOAD_AFTER_NO_MATCH_SECONDS;
        clock.0.store(rotated_at, std::sync::atomic::Ordering::SeqCst);
        store.put(PARAMETER, &format!("{ROTATED},{SECRET}"));
        let (headers, body) = delivery(ROTATED, rotated_at, "evt_rotated1");
        assert_eq!(ingress.handle(&headers, body.as_bytes()).await.status, StatusCode::OK);
        // A forged delivery within the next minute is refused without a read.
        store.put(PARAMETER, "whsec_unit_test_forger");
        let (headers, body) = delivery("whsec_unit_test_forger", rotated_at, "evt_forged1");
        assert_eq!(ingress.handle(&headers, body.as_bytes()).await.status, StatusCode::BAD_REQUEST);
        // The old secret is dropped; it is refused once the held ones are old.
        store.put(PARAMETER, ROTATED);
        let later = rotated_at + RELOAD_AFTER_AGE_SECONDS;
        clock.0.store(later, std::sync::atomic::Ordering::SeqCst);
        let (headers, body) = delivery(SECRET, later, "evt_old1");
        assert_eq!(ingress.handle(&headers, body.as_bytes()).await.status, StatusCode::BAD_REQUEST);
        let (headers, body) = delivery(ROTATED, later, "evt_rotated2");
        assert_eq!(ingress.handle(&headers, body.as_bytes()).await.status, StatusCode::OK);
        let queued: Vec<String> = queue.snapshot().iter().map(|e| e.event_id.to_string()).collect();
        assert_eq!(queued, ["evt_rotated1", "evt_rotated2"]);
    }

    #[tokio::test]
    async fn acted_on_event_is_queued_byte_for_byte() {
        let queue = Arc::new(LocalEventQueue::default());
        let body = body("checkout.session.completed", false);
        let answer = ingress(StripeMode::Test, queue.clone()).handle(&signed(&body), body.as_bytes()).await;
        assert_eq!(answer, WebhookAnswer { status: StatusCode::OK, body: r#"{"received":true}"#.into() });
        let queued = queue.snapshot();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].body, body);
        assert_eq!(queued[0].event_id.as_str(), "evt_unit1");
        assert_eq!(queued[0].created, 1_699_999_990);
    }

    #[tokio::test]
    async fn other_types_are_acknowledged_but_not_queued() {
        let queue = Arc::new(LocalEventQueue::default());
        let body = body("charge.succeeded", false);
        let answer = ingress(StripeMode::Test, queue.clone()).handle(&signed(&body), body.as_bytes()).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(answer.body.contains(r#""ignored":true"#));
        assert!(queue.snapshot().is_empty());
    }

    #[tokio::test]
    async fn wrong_mode_is_refused_both_ways() {
        for (mode, livemode) in [(StripeMode::Live, false), (StripeMode::Test, true)] {
            let queue = Arc::new(LocalEventQueue::default());
            let body = body("invoice.paid", livemode);
            let answer = ingress(mode, queue.clone()).handle(&signed(&body), body.as_bytes()).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST);
            assert!(answer.body.contains(&format!("livemode={livemode}")), "{}", answer.body);
            assert!(queue.snapshot().is_empty());
        }
    }

    struct BrokenQueue;

    #[async_trait]
    impl EventQueue for BrokenQueue {
        async fn enqueue(&self, _: &QueuedEvent) -> Result<(), QueueError> {
            Err(QueueError::Unavailable("connection refused".into()))
        }
    }

    #[tokio::test]
    async fn unreachable_queue_is_a_500_so_stripe_retries() {
        let body = body("invoice.paid", false);
        let answer =
            ingress(StripeMode::Test, Arc::new(BrokenQueue)).handle(&signed(&body), body.as_bytes()).await;
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!answer.body.contains("connection refused"));
    }

    #[tokio::test]
    async fn every_bad_request_gets_its_answer_and_nothing_is_queued() {
        let queue = Arc::new(LocalEventQueue::default());
        let ingress = ingress(StripeMode::Test, queue.clone());
        let good = body("invoice.paid", false);
        let headers = signed(&good);

        let missing = ingress.handle(&HeaderMap::new(), good.as_bytes()).await;
        assert_eq!(
            (missing.status, missing.body.as_str()),
            (StatusCode::BAD_REQUEST, r#"{"error":"missing Stripe-Signature header"}"#)
        );

        let mut garbled = HeaderMap::new();
        garbled.insert("stripe-signature", "v1=abc".parse().unwrap());
        let malformed = ingress.handle(&garbled, good.as_bytes()).await;
        assert!(malformed.body.contains("malformed Stripe-Signature header"), "{}", malformed.body);

        let tampered = good.replace("invoice.paid", "invoice.paym");
        let bad_sig = ingress.handle(&headers, tampered.as_bytes()).await;
        assert!(bad_sig.body.contains("no v1 signature matches"), "{}", bad_sig.body);

        let not_json = "not json at all";
        let answer = ingress.handle(&signed(not_json), not_json.as_bytes()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert!(answer.body.contains("not a Stripe event"), "{}", answer.body);

        // Signed, but with a character SQS refuses: the queue says so, for
        // good, so it is a 400 and Stripe is not told to retry.
        let unqueueable = good.replace(r#"{"id":"x"}"#, "{\"id\":\"x\u{1}\"}");
        let refused = ingress.handle(&signed(&unqueueable), unqueueable.as_bytes()).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(refused.body.contains("refuses the message: character U+0001 at byte"), "{}", refused.body);

        let huge = "x".repeat(MAX_BODY_BYTES + 1);
        assert_eq!(ingress.handle(&headers, huge.as_bytes()).await.status, StatusCode::PAYLOAD_TOO_LARGE);

        let stale_ingress = WebhookIngress::new(
            SignatureVerifier::new(WebhookSecrets::parse_list(SECRET).unwrap(), Duration::from_secs(300)),
            StripeMode::Test,
            queue.clone(),
            Arc::new(FixedClock(NOW + 301)),
        );
        let stale = stale_ingress.handle(&headers, good.as_bytes()).await;
        assert!(stale.body.contains("301s old"), "{}", stale.body);

        for answer in [&missing, &malformed, &bad_sig, &refused, &stale] {
            assert_eq!(answer.status, StatusCode::BAD_REQUEST);
            assert!(!answer.body.contains('\n') && !answer.body.contains(SECRET));
        }
        assert!(queue.snapshot().is_empty());
    }

    #[tokio::test]
    async fn the_same_delivery_twice_is_queued_twice_and_answered_alike() {
        // Ingress is at-least-once; the execution name absorbs the duplicate.
        let queue = Arc::new(LocalEventQueue::default());
        let ingress = ingress(StripeMode::Test, queue.clone());
        let body = body("invoice.paid", false);
        let first = ingress.handle(&signed(&body), body.as_bytes()).await;
        let second = ingress.handle(&signed(&body), body.as_bytes()).await;
        assert_eq!(first, second);
        let queued = queue.snapshot();
        assert_eq!(queued.len(), 2);
        assert_eq!(queued[0], queued[1]);
    }
}
