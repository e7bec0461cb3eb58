//! Section 1 of BENCHMARKS.md: what the webhook ingress does to one Stripe
//! delivery before it queues it, the work `stripe.Webhook.construct_event`
//! (stripe-python) and `stripe.webhooks.constructEvent` (stripe-node) do.
//! The binary `bench-verify` times it; the tests below only check it.

use std::hint::black_box;
use std::time::Instant;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tenancy::clock::{Clock, SystemClock};
use tenancy::dispatch::route;
use tenancy::ports::Workflow;
use tenancy::stripe::event::EnvelopeError;
use tenancy::stripe::signature::DEFAULT_TOLERANCE;
use tenancy::stripe::{
    EventEnvelope, SignatureError, SignatureVerifier, StripeMode, WebhookSecret, WebhookSecrets,
};

use crate::stats::Samples;

/// The ~10 KB event every implementation is given, byte for byte; written by
/// bench/fixtures/make_checkout_event.py.
pub const FIXTURE: &[u8] = include_bytes!("../fixtures/checkout.session.completed.json");
pub const FIXTURE_PATH: &str = "bench/fixtures/checkout.session.completed.json";
pub const FIXTURE_EVENT_ID: &str = "evt_1RbNq8WcVh3TzK4mXy7ZpQ2w";
pub const FIXTURE_EVENT_TYPE: &str = "checkout.session.completed";
/// A test-mode signing secret made up for the benchmark.
pub const SECRET: &str = "whsec_bench0verify0section0one0a1b2c3d4e5f6";

/// Why a delivery was refused; the benchmark treats any of these as fatal.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("event has livemode={0} but the receiver is in test mode")]
    Mode(bool),
    #[error("event type `{0}` starts no workflow")]
    NoWorkflow(String),
}

/// The ingress's decision for one delivery, as in
/// shared/src/ingress/webhook.rs, without the queue: signature, envelope,
/// test/live mode, then the workflow the dispatcher will start.
#[derive(Debug, Clone)]
pub struct Receiver {
    verifier: SignatureVerifier,
    mode: StripeMode,
}

impl Receiver {
    /// A test-mode receiver holding [`SECRET`], with Stripe's 300 s tolerance.
    pub fn bench() -> anyhow::Result<Self> {
        let secrets = WebhookSecrets::parse_list(SECRET)?;
        Ok(Receiver { verifier: SignatureVerifier::new(secrets, DEFAULT_TOLERANCE), mode: StripeMode::Test })
    }

    /// The measured operation. Reads the clock per call, as the ingress does.
    pub fn receive(&self, header: &str, body: &[u8]) -> Result<Workflow, Refused> {
        self.verifier.verify(header, body, SystemClock.now_unix())?;
        let (envelope, _text) = EventEnvelope::skim(body)?;
        if !self.mode.accepts_livemode(envelope.livemode) {
            return Err(Refused::Mode(envelope.livemode));
        }
        route(&envelope.event_type).ok_or_else(|| Refused::NoWorkflow(envelope.event_type.to_string()))
    }

    /// The signature check alone, for the breakdown.
    pub fn verify_only(&self, header: &str, body: &[u8]) -> Result<i64, SignatureError> {
        self.verifier.verify(header, body, SystemClock.now_unix())
    }
}

/// A `Stripe-Signature` header for `body` signed with [`SECRET`] at `timestamp`.
pub fn sign(timestamp: i64, body: &[u8]) -> anyhow::Result<String> {
    Ok(WebhookSecret::parse(SECRET)?.sign_header(timestamp, body))
}

/// The HMAC keyed with `secret`, once, as the verifier keeps it.
pub fn keyed(secret: &[u8]) -> Hmac<Sha256> {
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    }
}

/// The floor: HMAC-SHA256 over `timestamp.payload` from a copy of the
/// [`keyed`] state, with the same crates as shared/src/stripe/signature.rs
/// and nothing else (no header parsing, no hex, no comparison, no JSON).
pub fn hmac_floor(keyed: &Hmac<Sha256>, timestamp: &[u8], body: &[u8]) -> [u8; 32] {
    let mut mac = keyed.clone();
    mac.update(timestamp);
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// How many timed batches of how many calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub batches: usize,
    pub iterations: usize,
}

/// Times `batches` batches of `iterations` calls of `call` after one
/// untimed warm-up batch; returns each batch's mean seconds per call.
/// `call` says whether it did the right thing; one wrong call fails the run,
/// so an error path can never be what gets measured.
pub fn measure(counts: Counts, mut call: impl FnMut() -> bool) -> anyhow::Result<Samples> {
    anyhow::ensure!(counts.batches > 0 && counts.iterations > 0, "batch counts must be positive");
    let mut means = Vec::with_capacity(counts.batches);
    for batch in 0..=counts.batches {
        let mut good = 0usize;
        let started = Instant::now();
        for _ in 0..counts.iterations {
            good += usize::from(black_box(call()));
        }
        let elapsed = started.elapsed();
        anyhow::ensure!(
            good == counts.iterations,
            "{} of {} calls in batch {batch} did not succeed",
            counts.iterations - good,
            counts.iterations
        );
        if batch > 0 {
            means.push(elapsed.as_secs_f64() / counts.iterations as f64);
        }
    }
    Samples::new(means).ok_or_else(|| anyhow::anyhow!("no timings were recorded"))
}

#[cfg(test)]
mod tests {
    use tenancy::domain::{Catalog, CheckoutSignup};
    use tenancy::stripe::EventType;

    use super::*;

    fn now() -> i64 {
        SystemClock.now_unix()
    }

    #[test]
    fn the_fixture_is_about_ten_kilobytes_and_a_valid_signup() {
        assert!((9 * 1024..=11 * 1024).contains(&FIXTURE.len()), "{} bytes", FIXTURE.len());
        let envelope = EventEnvelope::parse(FIXTURE).unwrap();
        assert_eq!(envelope.id.as_str(), FIXTURE_EVENT_ID);
        assert_eq!(envelope.event_type, EventType::CheckoutSessionCompleted);
        assert_eq!(envelope.event_type.as_str(), FIXTURE_EVENT_TYPE);
        // The provisioning workflow would accept it, not reject the signup.
        let event: serde_json::Value = serde_json::from_slice(FIXTURE).unwrap();
        let signup =
            CheckoutSignup::from_session(&event["data"]["object"], &Catalog::embedded().unwrap()).unwrap();
        assert_eq!(signup.subdomain.as_str(), "acme");
    }

    #[test]
    fn the_measured_call_verifies_and_routes_to_provisioning() {
        let receiver = Receiver::bench().unwrap();
        let header = sign(now(), FIXTURE).unwrap();
        for _ in 0..3 {
            assert_eq!(receiver.receive(&header, FIXTURE).unwrap(), Workflow::Provision);
            assert!(receiver.verify_only(&header, FIXTURE).is_ok());
        }
        let counts = Counts { batches: 2, iterations: 3 };
        let samples =
            measure(counts, || matches!(receiver.receive(&header, FIXTURE), Ok(Workflow::Provision)))
                .unwrap();
        assert_eq!(samples.len(), 2);
    }

    #[test]
    fn a_tampered_body_or_stale_header_is_refused_and_fails_the_measurement() {
        let receiver = Receiver::bench().unwrap();
        let header = sign(now(), FIXTURE).unwrap();
        let mut tampered = FIXTURE.to_vec();
        tampered[FIXTURE.len() / 2] ^= 1;
        assert!(matches!(receiver.receive(&header, &tampered), Err(Refused::Signature(_))));
        let stale = sign(now() - 3600, FIXTURE).unwrap();
        assert!(matches!(receiver.receive(&stale, FIXTURE), Err(Refused::Signature(_))));
        let counts = Counts { batches: 1, iterations: 2 };
        assert!(measure(counts, || receiver.receive(&stale, FIXTURE).is_ok()).is_err());
    }

    #[test]
    fn the_floor_is_the_signature_in_the_header() {
        let t = now();
        let header = sign(t, FIXTURE).unwrap();
        let floor = hmac_floor(&keyed(SECRET.as_bytes()), t.to_string().as_bytes(), FIXTURE);
        assert_eq!(header, format!("t={t},v1={}", hex::encode(floor)));
    }
}
