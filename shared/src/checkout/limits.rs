//! How much one client may ask: a request rate per client address on the
//! signup routes, and (with `hold`) a few open holds per e-mail and per
//! address. Counted in the tenant table, so the limits hold across every
//! Lambda instance; the stage's WAF rule (infra/template.yaml) is the coarse
//! guard in front.

use std::net::IpAddr;

use http::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{ApiAnswer, CheckoutApi};
use crate::domain::EmailAddress;
use crate::ports::RateOutcome;

/// The rate window: requests are counted per client per minute.
const RATE_WINDOW_SECONDS: i64 = 60;

/// A client address as the limits count it: IPv6 by its /64 (one
/// subscriber's network, whose addresses they pick at will), hashed, so the
/// table never keeps an address in clear. An unknown address (the request
/// context had none) is one shared client: limited, never unlimited.
pub(super) fn client_key(client: Option<IpAddr>) -> String {
    let address = match client {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => return "ip:unknown".to_owned(),
    };
    format!("ip:{}", digest(&address))
}

/// A buyer's e-mail as the hold limit counts it (case-insensitive, hashed).
pub(super) fn email_key(email: &EmailAddress) -> String {
    format!("email:{}", digest(&email.as_str().to_ascii_lowercase()))
}

fn digest(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}

/// 429 with `Retry-After`, and a sentence saying when.
pub(super) fn too_many(message: &str, retry_after: i64) -> ApiAnswer {
    let retry_after = retry_after.max(1);
    let mut answer = ApiAnswer::json(StatusCode::TOO_MANY_REQUESTS, json!({ "error": message }));
    answer.headers.push(("retry-after", retry_after.to_string()));
    answer
}

impl CheckoutApi {
    /// Counts this request of `client`; a client over its rate is answered 429.
    pub(super) async fn within_rate(&self, client: Option<IpAddr>) -> Result<(), ApiAnswer> {
        let now = self.clock.now_unix();
        let key = client_key(client);
        let limit = self.settings.requests_per_minute;
        match self.store.count_request(&key, now, RATE_WINDOW_SECONDS, limit).await {
            Ok(RateOutcome::Allowed { .. }) => Ok(()),
            Ok(RateOutcome::Limited { retry_after }) => {
                tracing::info!(client = %key, limit, "signup rate limit reached");
                Err(too_many(
                    &format!("too many requests; try again in {} seconds", retry_after.max(1)),
                    retry_after,
                ))
            }
            Err(error) => Err(super::hold::store_trouble(&error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use http::{HeaderMap, Method};

    use super::super::CheckoutSettings;
    use super::super::testing::{NOW, body, fixture_with_settings, form, from, settings};
    use super::*;

    #[test]
    fn addresses_are_hashed_and_ipv6_counts_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(Some(a)), client_key(Some(b)));
        assert_ne!(client_key(Some(a)), client_key(Some(other)));
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        let mapped = IpAddr::V6(Ipv6Addr::from([0, 0, 0, 0, 0, 0xffff, 0xcb00, 0x7107]));
        assert_eq!(client_key(Some(v4)), client_key(Some(mapped)));
        assert!(!client_key(Some(v4)).contains("203.0.113.7"));
        assert_eq!(client_key(None), "ip:unknown");
    }

    #[tokio::test]
    async fn a_client_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
        let f = fixture_with_settings(None, CheckoutSettings { requests_per_minute: 3, ..settings() });
        let (noisy, quiet) = (from("203.0.113.7"), from("198.51.100.2"));
        for _ in 0..3 {
            let answer = f.api.handle(&Method::GET, "/subdomains/acme", &HeaderMap::new(), b"", noisy).await;
            assert_eq!(answer.status, StatusCode::OK);
        }
        // The fourth in the same minute, on either route: refused, nothing held.
        let get = f.api.handle(&Method::GET, "/subdomains/acme", &HeaderMap::new(), b"", noisy).await;
        let post = f
            .api
            .handle(&Method::POST, "/checkout", &HeaderMap::new(), &form("acme", "dana@acme.example"), noisy)
            .await;
        for refused in [&get, &post] {
            assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
            // NOW is 40 s into its minute (1_763_800_000 % 60 == 40).
            assert!(refused.headers.contains(&("retry-after", "20".to_owned())), "{:?}", refused.headers);
            assert_eq!(body(refused)["error"], "too many requests; try again in 20 seconds");
        }
        assert!(f.stripe.sessions().is_empty());
        assert_eq!(NOW % 60, 40);
        // Another address is counted on its own.
        let other = f.api.handle(&Method::GET, "/subdomains/acme", &HeaderMap::new(), b"", quiet).await;
        assert_eq!(other.status, StatusCode::OK);
    }
}
