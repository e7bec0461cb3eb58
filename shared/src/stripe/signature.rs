//! The `Stripe-Signature` check (docs/architecture.md decision 2).
//!
//! Ours rather than a library's: Stripe sends one `v1` per active signing
//! secret during a rotation, and we may hold several secrets ourselves, so a
//! request passes when ANY `v1` matches with ANY configured secret. Scheme
//! `v0` and unknown schemes are ignored. Comparison is constant-time.

use std::fmt;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// A header longer than this is not something Stripe sends.
const MAX_HEADER_LEN: usize = 4096;
/// Bounds the work an attacker can ask for with one request.
const MAX_V1_SIGNATURES: usize = 16;
const SIGNATURE_LEN: usize = 32;

/// One webhook signing secret (`whsec_…`), held as the HMAC keyed with it:
/// each signature starts from a copy of that state instead of keying again,
/// which hashes two blocks per event (BENCHMARKS.md, section 8). Never printed.
#[derive(Clone)]
pub struct WebhookSecret(HmacSha256);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidWebhookSecret {
    #[error("no webhook secret given")]
    Empty,
    #[error("webhook secret #{position} does not start with `whsec_`")]
    WrongPrefix { position: usize },
    #[error("webhook secret #{position} is too short or contains whitespace")]
    Malformed { position: usize },
}

impl WebhookSecret {
    fn parse_at(value: &str, position: usize) -> Result<Self, InvalidWebhookSecret> {
        let Some(rest) = value.strip_prefix("whsec_") else {
            return Err(InvalidWebhookSecret::WrongPrefix { position });
        };
        if rest.len() < 8 || value.chars().any(char::is_whitespace) {
            return Err(InvalidWebhookSecret::Malformed { position });
        }
        // Stripe keys the HMAC with the whole string, prefix included.
        match HmacSha256::new_from_slice(value.as_bytes()) {
            Ok(keyed) => Ok(WebhookSecret(keyed)),
            Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
        }
    }

    pub fn parse(value: &str) -> Result<Self, InvalidWebhookSecret> {
        Self::parse_at(value.trim(), 1)
    }

    /// The `v1` signature of `body` at `timestamp`, as Stripe computes it.
    pub fn signature(&self, timestamp: &str, body: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut mac = self.0.clone();
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// A complete `Stripe-Signature` header value for `body`, as Stripe
    /// would send it (used by `tenantctl` and tests to sign sample events).
    pub fn sign_header(&self, timestamp: i64, body: &[u8]) -> String {
        let t = timestamp.to_string();
        format!("t={t},v1={}", hex::encode(self.signature(&t, body)))
    }
}

/// The secrets a deployment accepts: one normally, two or more while rotating.
#[derive(Debug, Clone)]
pub struct WebhookSecrets(Vec<WebhookSecret>);

impl WebhookSecrets {
    /// Parses a comma-separated list, as stored in the secret store or in
    /// `STRIPE_WEBHOOK_SECRET` for a local run.
    pub fn parse_list(value: &str) -> Result<Self, InvalidWebhookSecret> {
        let secrets = value
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .enumerate()
            .map(|(index, item)| WebhookSecret::parse_at(item, index + 1))
            .collect::<Result<Vec<_>, _>>()?;
        if secrets.is_empty() {
            return Err(InvalidWebhookSecret::Empty);
        }
        Ok(WebhookSecrets(secrets))
    }

    /// The first secret: the one a local sender signs with.
    pub fn primary(&self) -> &WebhookSecret {
        &self.0[0]
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why a request's signature was refused. Each message is one line, safe to
/// send back to the caller: it never contains a secret or a signature.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing Stripe-Signature header")]
    MissingHeader,
    #[error("malformed Stripe-Signature header: {0}")]
    MalformedHeader(&'static str),
    #[error("Stripe-Signature header has no v1 signature")]
    NoV1Signature,
    #[error("no v1 signature matches the payload with any configured webhook secret")]
    NoMatch,
    #[error("signature timestamp is {age_secs}s old, beyond the {tolerance_secs}s tolerance")]
    TooOld { age_secs: i64, tolerance_secs: u64 },
    #[error("signature timestamp is {ahead_secs}s in the future, beyond the {tolerance_secs}s tolerance")]
    InFuture { ahead_secs: i64, tolerance_secs: u64 },
}

/// A signature as text: 64 characters, lower-case hex when Stripe wrote it.
type SignatureHex = [u8; 2 * SIGNATURE_LEN];

/// The parts of a `Stripe-Signature` header we act on. The `v1`s are kept
/// as written, in place (at most [`MAX_V1_SIGNATURES`]), so reading a
/// header allocates and decodes nothing: it runs once per delivery, beside
/// a hash of the whole body.
#[derive(Debug)]
struct SignatureHeader<'a> {
    timestamp_raw: &'a str,
    timestamp: i64,
    v1: [&'a SignatureHex; MAX_V1_SIGNATURES],
    /// How many of `v1` were 64 characters long, the only ones that can match.
    v1_candidates: usize,
}

impl<'a> SignatureHeader<'a> {
    fn parse(header: &'a str) -> Result<Self, SignatureError> {
        if header.len() > MAX_HEADER_LEN {
            return Err(SignatureError::MalformedHeader("header too long"));
        }
        let mut timestamp: Option<&str> = None;
        let mut v1_seen = 0usize;
        let mut v1 = [&[0; 2 * SIGNATURE_LEN]; MAX_V1_SIGNATURES];
        let mut v1_candidates = 0usize;
        for item in header.split(',') {
            let Some((key, value)) = item.split_once('=') else {
                continue; // not a key=value pair: nothing we act on
            };
            match key.trim() {
                "t" if timestamp.is_some() => {
                    return Err(SignatureError::MalformedHeader("more than one t="));
                }
                "t" => timestamp = Some(value.trim()),
                "v1" => {
                    v1_seen += 1;
                    if v1_seen > MAX_V1_SIGNATURES {
                        return Err(SignatureError::MalformedHeader("too many v1 signatures"));
                    }
                    // A v1 of another length can match nothing; it is
                    // skipped rather than failing a header that has a good one.
                    if let Ok(written) = value.trim().as_bytes().try_into() {
                        v1[v1_candidates] = written;
                        v1_candidates += 1;
                    }
                }
                _ => {} // v0 (test-mode legacy) and future schemes
            }
        }
        let timestamp_raw = timestamp.ok_or(SignatureError::MalformedHeader("no t= timestamp"))?;
        if timestamp_raw.is_empty() || !timestamp_raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SignatureError::MalformedHeader("t= is not a whole number of seconds"));
        }
        let timestamp = timestamp_raw
            .parse::<i64>()
            .map_err(|_| SignatureError::MalformedHeader("t= is out of range"))?;
        if v1_seen == 0 {
            return Err(SignatureError::NoV1Signature);
        }
        Ok(SignatureHeader { timestamp_raw, timestamp, v1, v1_candidates })
    }

    /// The `v1` signatures that can match, as written.
    fn candidates(&self) -> &[&'a SignatureHex] {
        &self.v1[..self.v1_candidates]
    }
}

/// A signature as Stripe writes it. The header's `v1`s are compared with
/// this as text, as Stripe's SDKs do: so upper case matches nothing, here
/// as there. Encoding one expected signature is cheaper than decoding every
/// `v1` (BENCHMARKS.md, section 8).
fn lower_hex(signature: &[u8; SIGNATURE_LEN]) -> SignatureHex {
    let mut written = [0u8; 2 * SIGNATURE_LEN];
    if hex::encode_to_slice(signature, &mut written).is_err() {
        unreachable!("the types fix the lengths, 32 bytes to 64 digits");
    }
    written
}

/// Whether two written signatures are equal, in a time that does not
/// depend on where they differ. The words' differences are OR-ed together
/// without a branch, and subtle compares the result with zero behind its
/// optimisation barrier. subtle's compare of byte slices puts the barrier
/// on every byte: 32 ns against 4 (BENCHMARKS.md, section 8).
fn same_in_constant_time(written: &SignatureHex, expected: &SignatureHex) -> bool {
    let (written, _) = written.as_chunks::<8>();
    let (expected, _) = expected.as_chunks::<8>();
    let difference = written
        .iter()
        .zip(expected)
        .fold(0u64, |all, (a, b)| all | (u64::from_ne_bytes(*a) ^ u64::from_ne_bytes(*b)));
    bool::from(difference.ct_eq(&0))
}

/// Checks `Stripe-Signature` headers against the configured secrets.
#[derive(Debug, Clone)]
pub struct SignatureVerifier {
    secrets: WebhookSecrets,
    tolerance: Duration,
}

/// Stripe's own libraries default to five minutes.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

impl SignatureVerifier {
    pub fn new(secrets: WebhookSecrets, tolerance: Duration) -> Self {
        SignatureVerifier { secrets, tolerance }
    }

    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// How many secrets a signature is checked against.
    pub fn secret_count(&self) -> usize {
        self.secrets.len()
    }

    /// Verifies `header` for the raw `body` at time `now` (Unix seconds) and
    /// returns the signed timestamp.
    pub fn verify(&self, header: &str, body: &[u8], now: i64) -> Result<i64, SignatureError> {
        let parsed = SignatureHeader::parse(header)?;
        let matched = self.secrets.0.iter().any(|secret| {
            let expected = lower_hex(&secret.signature(parsed.timestamp_raw, body));
            parsed.candidates().iter().any(|written| same_in_constant_time(written, &expected))
        });
        if !matched {
            return Err(SignatureError::NoMatch);
        }
        let tolerance_secs = self.tolerance.as_secs();
        let tolerance = i64::try_from(tolerance_secs).unwrap_or(i64::MAX);
        let age = now.saturating_sub(parsed.timestamp);
        if age > tolerance {
            return Err(SignatureError::TooOld { age_secs: age, tolerance_secs });
        }
        if -age > tolerance {
            return Err(SignatureError::InFuture { ahead_secs: -age, tolerance_secs });
        }
        Ok(parsed.timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;

    fn secret(s: &str) -> WebhookSecret {
        WebhookSecret::parse(s).unwrap()
    }

    fn verifier(list: &str) -> SignatureVerifier {
        SignatureVerifier::new(WebhookSecrets::parse_list(list).unwrap(), DEFAULT_TOLERANCE)
    }

    #[test]
    fn accepts_what_it_signed() {
        let header = secret("whsec_primary0001").sign_header(NOW, BODY);
        assert_eq!(verifier("whsec_primary0001").verify(&header, BODY, NOW), Ok(NOW));
    }

    #[test]
    fn known_vector_matches_hmac_sha256_of_timestamp_dot_body() {
        // HMAC-SHA256(key="whsec_test_secret", msg="1700000000.{}"), computed
        // independently with Python's hmac module.
        let sig = secret("whsec_test_secret").signature("1700000000", b"{}");
        assert_eq!(hex::encode(sig), "ceb8863f7208fa249a6cd8f951e993c7563412aca65866f6272283debe143ab3");
    }

    #[test]
    fn any_v1_with_any_secret_passes_during_rotation() {
        let old = secret("whsec_oldsecret01");
        let new = secret("whsec_newsecret01");
        let old_sig = hex::encode(old.signature(&NOW.to_string(), BODY));
        let new_sig = hex::encode(new.signature(&NOW.to_string(), BODY));
        let header = format!("t={NOW},v1={},v1={new_sig},v0=abc", "00".repeat(32));
        // We hold only the new secret; the header carries a junk v1 first.
        assert_eq!(verifier("whsec_newsecret01").verify(&header, BODY, NOW), Ok(NOW));
        // We hold both; Stripe signed only with the old one.
        let header = format!("t={NOW},v1={old_sig}");
        let both = verifier("whsec_newsecret01, whsec_oldsecret01");
        assert_eq!(both.verify(&header, BODY, NOW), Ok(NOW));
    }

    #[test]
    fn tampered_body_or_wrong_secret_is_no_match() {
        let header = secret("whsec_primary0001").sign_header(NOW, BODY);
        let v = verifier("whsec_primary0001");
        assert_eq!(v.verify(&header, b"{\"id\":\"evt_2\"}", NOW), Err(SignatureError::NoMatch));
        let other = verifier("whsec_someoneelse");
        assert_eq!(other.verify(&header, BODY, NOW), Err(SignatureError::NoMatch));
    }

    #[test]
    fn signature_is_bound_to_the_timestamp() {
        let header = secret("whsec_primary0001").sign_header(NOW, BODY);
        let moved = header.replacen(&format!("t={NOW}"), &format!("t={}", NOW + 1), 1);
        assert_eq!(verifier("whsec_primary0001").verify(&moved, BODY, NOW), Err(SignatureError::NoMatch));
    }

    #[test]
    fn stale_and_future_timestamps_are_refused_at_the_tolerance_edge() {
        let s = secret("whsec_primary0001");
        let v = verifier("whsec_primary0001");
        let at_edge = s.sign_header(NOW - 300, BODY);
        assert_eq!(v.verify(&at_edge, BODY, NOW), Ok(NOW - 300));
        let stale = s.sign_header(NOW - 301, BODY);
        assert_eq!(
            v.verify(&stale, BODY, NOW),
            Err(SignatureError::TooOld { age_secs: 301, tolerance_secs: 300 })
        );
        let future = s.sign_header(NOW + 301, BODY);
        assert_eq!(
            v.verify(&future, BODY, NOW),
            Err(SignatureError::InFuture { ahead_secs: 301, tolerance_secs: 300 })
        );
        let lenient = SignatureVerifier::new(
            WebhookSecrets::parse_list("whsec_primary0001").unwrap(),
            Duration::from_secs(600),
        );
        assert_eq!(lenient.verify(&stale, BODY, NOW), Ok(NOW - 301));
    }

    #[test]
    fn malformed_headers_say_what_is_wrong() {
        let v = verifier("whsec_primary0001");
        let sig = "ab".repeat(32);
        let cases: &[(&str, SignatureError)] = &[
            ("", SignatureError::MalformedHeader("no t= timestamp")),
            ("garbage", SignatureError::MalformedHeader("no t= timestamp")),
            (&format!("v1={sig}"), SignatureError::MalformedHeader("no t= timestamp")),
            ("t=abc,v1=00", SignatureError::MalformedHeader("t= is not a whole number of seconds")),
            ("t=-5,v1=00", SignatureError::MalformedHeader("t= is not a whole number of seconds")),
            ("t=99999999999999999999,v1=00", SignatureError::MalformedHeader("t= is out of range")),
            ("t=1,t=2,v1=00", SignatureError::MalformedHeader("more than one t=")),
            ("t=1700000000", SignatureError::NoV1Signature),
            (&format!("t=1700000000,v0={sig}"), SignatureError::NoV1Signature),
            ("t=1700000000,v1=nothex", SignatureError::NoMatch),
        ];
        for (header, expected) in cases {
            assert_eq!(&v.verify(header, BODY, NOW).unwrap_err(), expected, "header {header:?}");
        }
        let long = format!("t={NOW},{}", "v1=00,".repeat(1000));
        assert_eq!(v.verify(&long, BODY, NOW), Err(SignatureError::MalformedHeader("header too long")));
        let many = format!("t={NOW}{}", format!(",v1={sig}").repeat(17));
        assert_eq!(
            v.verify(&many, BODY, NOW),
            Err(SignatureError::MalformedHeader("too many v1 signatures"))
        );
    }

    #[test]
    fn tolerates_spaces_and_unknown_schemes() {
        let s = secret("whsec_primary0001");
        let sig = hex::encode(s.signature(&NOW.to_string(), BODY));
        let header = format!(" t={NOW} , v2=zzz, flag ,v1={sig} ");
        assert_eq!(verifier("whsec_primary0001").verify(&header, BODY, NOW), Ok(NOW));
    }

    /// Vectors judged by Stripe's official Python SDK; see
    /// scripts/stripe-vectors/generate.py.
    #[test]
    fn agrees_with_stripe_python_on_its_vectors() {
        #[derive(serde::Deserialize)]
        struct Vector {
            name: String,
            secret: String,
            timestamp: i64,
            payload: String,
            header: String,
            valid: bool,
        }
        #[derive(serde::Deserialize)]
        struct File {
            vectors: Vec<Vector>,
        }
        let file: File =
            serde_json::from_str(include_str!("../../testdata/stripe-signature-vectors.json")).unwrap();
        assert!(file.vectors.len() >= 10);
        for v in file.vectors {
            let verifier = verifier(&v.secret);
            let outcome = verifier.verify(&v.header, v.payload.as_bytes(), v.timestamp);
            assert_eq!(outcome.is_ok(), v.valid, "vector `{}`: {outcome:?}", v.name);
        }
    }

    #[test]
    fn secrets_are_parsed_strictly_and_never_printed() {
        assert_eq!(WebhookSecrets::parse_list(" , ").unwrap_err(), InvalidWebhookSecret::Empty);
        assert_eq!(
            WebhookSecrets::parse_list("whsec_goodsecret1,sk_test_123456789").unwrap_err(),
            InvalidWebhookSecret::WrongPrefix { position: 2 }
        );
        assert_eq!(
            WebhookSecret::parse("whsec_").unwrap_err(),
            InvalidWebhookSecret::Malformed { position: 1 }
        );
        let list = WebhookSecrets::parse_list("whsec_goodsecret1,whsec_goodsecret2").unwrap();
        assert_eq!(list.len(), 2);
        assert!(!format!("{list:?}").contains("goodsecret"));
    }

    proptest::proptest! {
        /// A `v1` matches exactly when it is the signature written as
        /// Stripe's SDKs compare it: the same 64 lower-case hex digits.
        /// Each case is the right signature changed, or not, at one place:
        /// a digit replaced, upper case, a character cut or added.
        #[test]
        fn a_v1_matches_exactly_when_it_is_the_lower_case_hex_of_the_signature(
            change in 0usize..5,
            at in 0usize..64,
            replacement in proptest::sample::select(b"0123456789abcdefABCDEFg ~".to_vec()),
        ) {
            let right = hex::encode(secret("whsec_primary0001").signature(&NOW.to_string(), BODY));
            let mut written = right.clone().into_bytes();
            match change {
                0 => {}
                1 => written[at] = replacement,
                2 => written[at] = written[at].to_ascii_uppercase(),
                3 => { written.remove(at); }
                _ => written.insert(at, replacement),
            }
            let written = String::from_utf8(written).unwrap();
            let outcome = verifier("whsec_primary0001").verify(&format!("t={NOW},v1={written}"), BODY, NOW);
            let expected = if written == right { Ok(NOW) } else { Err(SignatureError::NoMatch) };
            proptest::prop_assert_eq!(outcome, expected, "v1={}", written);
        }
    }

    #[test]
    fn signatures_are_equal_in_constant_time_only_when_every_byte_is() {
        let expected = lower_hex(&[0xa5; SIGNATURE_LEN]);
        assert!(same_in_constant_time(&expected, &expected));
        for at in 0..expected.len() {
            for flip in [1u8, 0x80] {
                let mut written = expected;
                written[at] ^= flip;
                assert!(!same_in_constant_time(&written, &expected), "byte {at} changed by {flip:#x}");
            }
        }
    }
}
