//! Holds: a subdomain is held for the buyer while they are at Stripe, so two
//! people cannot pay for one name; and whether a name is free at all.

use std::collections::BTreeMap;

use http::StatusCode;
use serde_json::json;

use super::{ApiAnswer, CheckoutApi};
use crate::domain::Subdomain;
use crate::ports::StoreError;

impl CheckoutApi {
    /// `GET /subdomains/{name}`: `{"available": bool, "reason": …}`.
    pub async fn availability(&self, raw: &str) -> ApiAnswer {
        let unavailable =
            |reason: String| ApiAnswer::json(StatusCode::OK, json!({"available": false, "reason": reason}));
        let subdomain = match Subdomain::parse(raw) {
            Ok(subdomain) => subdomain,
            Err(invalid) => return unavailable(invalid.to_string()),
        };
        let now = self.clock.now_unix();
        match self.store.subdomain_holder(&subdomain).await {
            Ok(Some(_)) => return unavailable("taken".into()),
            Ok(None) => {}
            Err(error) => return store_trouble(&error),
        }
        match self.store.subdomain_hold(&subdomain, now).await {
            Ok(Some(hold)) => unavailable(format!(
                "someone is checking out with it; try again in {} minutes",
                minutes_until(hold.until, now)
            )),
            Ok(None) => ApiAnswer::json(StatusCode::OK, json!({"available": true, "reason": null})),
            Err(error) => store_trouble(&error),
        }
    }

    /// Holds `subdomain` for the checkout keyed `idempotency_key` until
    /// `until`; a taken or otherwise held name is answered as a form error.
    pub(super) async fn hold(
        &self,
        subdomain: &Subdomain,
        idempotency_key: &str,
        until: i64,
        now: i64,
    ) -> Result<(), ApiAnswer> {
        match self.store.hold_subdomain(subdomain, idempotency_key, until, now).await {
            Ok(()) => Ok(()),
            Err(StoreError::SubdomainTaken { .. }) => Err(ApiAnswer::fields(
                StatusCode::CONFLICT,
                BTreeMap::from([("subdomain", "is taken".to_owned())]),
            )),
            Err(StoreError::SubdomainHeld { until, .. }) => {
                let message = format!(
                    "someone is checking out with it; try again in {} minutes",
                    minutes_until(until, now)
                );
                Err(ApiAnswer::fields(StatusCode::CONFLICT, BTreeMap::from([("subdomain", message)])))
            }
            Err(error) => Err(store_trouble(&error)),
        }
    }
}

fn minutes_until(until: i64, now: i64) -> i64 {
    ((until - now).max(0) + 59) / 60
}

fn store_trouble(error: &StoreError) -> ApiAnswer {
    tracing::error!(error = %crate::telemetry::error_chain(error), "tenant table");
    ApiAnswer::error(StatusCode::SERVICE_UNAVAILABLE, "try again shortly")
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, Method};
    use serde_json::json;

    use super::super::testing::{body, fixture_with, form};
    use super::*;
    use crate::domain::TenantId;
    use crate::ports::TenantStore;

    #[tokio::test]
    async fn two_checkouts_for_one_name_at_once_one_wins() {
        let f = fixture_with(None);
        let (none, dana, gavin) =
            (HeaderMap::new(), form("acme", "dana@acme.example"), form("acme", "gavin@hooli.example"));
        let (a, b) = tokio::join!(f.api.checkout(&none, &dana), f.api.checkout(&none, &gavin));
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
        let loser = if a.status == StatusCode::CONFLICT { &a } else { &b };
        assert!(body(loser)["errors"]["subdomain"].as_str().unwrap().contains("try again in 60 minutes"));
        assert_eq!(f.stripe.sessions().len(), 1);
    }

    #[tokio::test]
    async fn availability_tells_free_held_taken_and_invalid_apart() {
        let f = fixture_with(None);
        let check = async |name: &str| {
            body(&f.api.handle(&Method::GET, &format!("/subdomains/{name}"), &HeaderMap::new(), b"").await)
        };
        assert_eq!(check("acme").await, json!({"available": true, "reason": null}));
        assert_eq!(
            check("admin").await,
            json!({"available": false, "reason": "subdomain `admin` is reserved"})
        );
        f.api.checkout(&HeaderMap::new(), &form("acme", "dana@acme.example")).await;
        assert_eq!(check("acme").await["reason"], "someone is checking out with it; try again in 60 minutes");
        let tenant = TenantId::parse("tnt_00000000000000000001").unwrap();
        f.store.claim_subdomain(&Subdomain::parse("globex").unwrap(), &tenant).await.unwrap();
        assert_eq!(check("globex").await, json!({"available": false, "reason": "taken"}));
        let taken = f.api.checkout(&HeaderMap::new(), &form("globex", "hank@globex.example")).await;
        assert_eq!(
            (taken.status, body(&taken)["errors"]["subdomain"].as_str()),
            (StatusCode::CONFLICT, Some("is taken"))
        );
    }
}
