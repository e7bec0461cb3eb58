//! Holds: a subdomain is held for the buyer while they are at Stripe, so two
//! people cannot pay for one name; and whether a name is free at all.

use std::collections::BTreeMap;
use std::net::IpAddr;

use http::StatusCode;
use serde_json::json;

use super::limits::{client_key, email_key, too_many};
use super::trial::TrialDecision;
use super::{ApiAnswer, CheckoutApi, CheckoutRequest};
use crate::domain::{HoldId, Subdomain};
use crate::ports::{HoldLimit, HoldOutcome, HoldRequest, StoreError, SubdomainHold};

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
            Ok(None) if !self.has_room().await => unavailable(super::room::NO_ROOM.into()),
            Ok(None) => ApiAnswer::json(StatusCode::OK, json!({"available": true, "reason": null})),
            Err(error) => store_trouble(&error),
        }
    }

    /// Holds the request's subdomain for its buyer until `until`: their own
    /// live hold is found again (never extended), someone else's or a
    /// taken name is a form error, and a buyer or address with too many
    /// open holds is answered 429.
    pub(super) async fn hold(
        &self,
        request: &CheckoutRequest,
        client: Option<IpAddr>,
        until: i64,
        now: i64,
    ) -> Result<Hold, ApiAnswer> {
        let email = email_key(&request.email);
        let hold = HoldRequest {
            subdomain: request.subdomain.clone(),
            hold_id: HoldId::for_buyer(&request.subdomain, &request.email),
            until,
            form: request.form_fingerprint(),
            limits: vec![
                HoldLimit { owner: email.clone(), max_open: self.settings.max_holds_per_email },
                HoldLimit { owner: client_key(client), max_open: self.settings.max_holds_per_ip },
            ],
        };
        match self.store.hold_subdomain(&hold, now).await {
            Ok(HoldOutcome::Held(held)) => Ok(Hold { id: hold.hold_id, held, new: true }),
            Ok(HoldOutcome::Existing(held)) => Ok(Hold { id: hold.hold_id, held, new: false }),
            Ok(HoldOutcome::OwnerAtLimit { owner, max_open, free_at }) => {
                let who = if owner == email { "this e-mail address" } else { "your network" };
                let minutes = minutes_until(free_at, now);
                Err(too_many(
                    &format!(
                        "{who} has {max_open} checkouts open already; finish one or try again in {minutes} minutes"
                    ),
                    free_at - now,
                ))
            }
            Err(StoreError::SubdomainTaken { .. }) => Err(ApiAnswer::fields(
                StatusCode::CONFLICT,
                BTreeMap::from([("subdomain", "is taken".to_owned())]),
            )),
            Err(StoreError::SubdomainHeld { until, .. }) => Err(someone_is_checking_out(until, now)),
            Err(error) => Err(store_trouble(&error)),
        }
    }
}

/// A hold this request may start (or resume) a checkout under.
pub(super) struct Hold {
    pub(super) id: HoldId,
    pub(super) held: SubdomainHold,
    /// Made by this request (else found: the same buyer asking again).
    pub(super) new: bool,
}

impl Hold {
    /// For the same buyer asking again: their open session, or why there is
    /// none to give; `None` when a session is still to be made (the first
    /// request's did not get recorded).
    pub(super) fn resumed(
        &self,
        request: &CheckoutRequest,
        trial: &TrialDecision,
        now: i64,
    ) -> Option<ApiAnswer> {
        if self.new {
            return None;
        }
        let minutes = minutes_until(self.held.until, now);
        if self.held.form != request.form_fingerprint() {
            let message = format!(
                "you have a checkout open for this name with other choices; finish it, or start again in {minutes} minutes"
            );
            return Some(ApiAnswer::fields(StatusCode::CONFLICT, BTreeMap::from([("subdomain", message)])));
        }
        match &self.held.session {
            Some(session) if session.expires_at > now => {
                let mut answer = json!({"url": session.url, "id": session.id});
                trial.add_to(&mut answer);
                Some(ApiAnswer::json(StatusCode::OK, answer))
            }
            // Within the margin: the session is over, the name is not free yet.
            Some(_) => {
                let message =
                    format!("your checkout for this name expired; it is free again in {minutes} minutes");
                Some(ApiAnswer::fields(StatusCode::CONFLICT, BTreeMap::from([("subdomain", message)])))
            }
            None => None,
        }
    }
}

fn someone_is_checking_out(until: i64, now: i64) -> ApiAnswer {
    let message =
        format!("someone is checking out with it; try again in {} minutes", minutes_until(until, now));
    ApiAnswer::fields(StatusCode::CONFLICT, BTreeMap::from([("subdomain", message)]))
}

fn minutes_until(until: i64, now: i64) -> i64 {
    ((until - now).max(0) + 59) / 60
}

pub(super) fn store_trouble(error: &StoreError) -> ApiAnswer {
    tracing::error!(error = %crate::telemetry::error_chain(error), "tenant table");
    ApiAnswer::error(StatusCode::SERVICE_UNAVAILABLE, "try again shortly")
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, Method};
    use serde_json::json;

    use super::super::CheckoutSettings;
    use super::super::testing::{
        NOW, body, claim, fixture_later, fixture_with, fixture_with_settings, form, from, settings,
    };
    use super::*;
    use crate::ports::TenantStore;

    fn pro_monthly(subdomain: &str, email: &str) -> Vec<u8> {
        json!({"plan": "pro", "billing": "monthly", "subdomain": subdomain, "organization": "Acme Robotics", "email": email})
            .to_string()
            .into_bytes()
    }

    #[tokio::test]
    async fn two_buyers_racing_for_one_name_one_wins_and_the_other_is_told_when_it_frees() {
        let f = fixture_with(None);
        let (dana, gavin) = (form("acme", "dana@acme.example"), form("acme", "gavin@hooli.example"));
        let (a, b) = tokio::join!(f.api.checkout(None, &dana), f.api.checkout(None, &gavin));
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
        let loser = if a.status == StatusCode::CONFLICT { &a } else { &b };
        // The session's 60 minutes and the hold's 15-minute margin.
        assert_eq!(
            body(loser)["errors"]["subdomain"],
            "someone is checking out with it; try again in 75 minutes"
        );
        assert_eq!(f.stripe.sessions().len(), 1);
    }

    #[tokio::test]
    async fn the_same_buyer_asking_again_later_gets_the_same_session_and_the_hold_is_not_extended() {
        let f = fixture_with(None);
        let first = f.api.checkout(from("203.0.113.7"), &form("acme", "dana@acme.example")).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.body);
        let acme = Subdomain::parse("acme").unwrap();
        let held = f.store.subdomain_hold(&acme, NOW).await.unwrap().unwrap();

        // Forty minutes later, from another address, the e-mail in other case.
        let later = fixture_later(&f, NOW + 40 * 60);
        let again = later.api.checkout(from("198.51.100.2"), &form("acme", "Dana@acme.example")).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.body);
        assert_eq!(
            (body(&again)["url"].clone(), body(&again)["id"].clone()),
            (body(&first)["url"].clone(), body(&first)["id"].clone())
        );
        assert_eq!(f.stripe.sessions().len(), 1);
        assert_eq!(
            f.store.subdomain_hold(&acme, NOW + 40 * 60).await.unwrap(),
            Some(held.clone()),
            "not extended"
        );

        // Someone else meanwhile: still 409.
        let other = later.api.checkout(None, &form("acme", "gavin@hooli.example")).await;
        assert_eq!(other.status, StatusCode::CONFLICT);
        assert_eq!(
            body(&other)["errors"]["subdomain"],
            "someone is checking out with it; try again in 35 minutes"
        );
    }

    #[tokio::test]
    async fn the_same_buyer_with_other_choices_or_an_expired_session_is_told_why_and_no_session_is_made() {
        let f = fixture_with(None);
        f.api.checkout(None, &form("acme", "dana@acme.example")).await;
        let other_plan = f.api.checkout(None, &pro_monthly("acme", "dana@acme.example")).await;
        assert_eq!(other_plan.status, StatusCode::CONFLICT);
        assert_eq!(
            body(&other_plan)["errors"]["subdomain"],
            "you have a checkout open for this name with other choices; finish it, or start again in 75 minutes"
        );

        // The session is over (60 minutes), the hold is not (75).
        let in_margin = fixture_later(&f, NOW + 3600 + 60);
        let expired = in_margin.api.checkout(None, &form("acme", "dana@acme.example")).await;
        assert_eq!(expired.status, StatusCode::CONFLICT);
        assert_eq!(
            body(&expired)["errors"]["subdomain"],
            "your checkout for this name expired; it is free again in 14 minutes"
        );
        assert_eq!(f.stripe.sessions().len(), 1);

        // Once the hold is over, a new hold and a new session.
        let after = fixture_later(&f, NOW + 3600 + 900 + 1);
        let renewed = after.api.checkout(None, &form("acme", "dana@acme.example")).await;
        assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
        assert_eq!(f.stripe.sessions().len(), 2);
    }

    #[tokio::test]
    async fn open_holds_are_limited_per_email_and_per_address_and_a_retry_does_not_count_twice() {
        let f = fixture_with_settings(
            None,
            CheckoutSettings { max_holds_per_email: 2, max_holds_per_ip: 3, ..settings() },
        );
        let office = from("203.0.113.7");
        for name in ["acme", "acme-two"] {
            let held = f.api.checkout(office, &form(name, "dana@acme.example")).await;
            assert_eq!(held.status, StatusCode::OK, "{}", held.body);
        }
        // Asking again for one already held is not a new hold.
        let retry = f.api.checkout(office, &form("acme", "dana@acme.example")).await;
        assert_eq!(retry.status, StatusCode::OK, "{}", retry.body);

        let third = f.api.checkout(from("198.51.100.2"), &form("acme-three", "dana@acme.example")).await;
        assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            body(&third)["error"],
            "this e-mail address has 2 checkouts open already; finish one or try again in 75 minutes"
        );
        assert!(third.headers.contains(&("retry-after", "4500".to_owned())));

        // The address's third hold (another buyer) is allowed, its fourth not.
        assert_eq!(
            f.api.checkout(office, &form("globex", "hank@globex.example")).await.status,
            StatusCode::OK
        );
        let fourth = f.api.checkout(office, &form("initech", "bill@initech.example")).await;
        assert_eq!(fourth.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            body(&fourth)["error"],
            "your network has 3 checkouts open already; finish one or try again in 75 minutes"
        );
        // Refused holds hold nothing: the names are free, one session per hold.
        for name in ["acme-three", "initech"] {
            assert_eq!(f.store.subdomain_hold(&Subdomain::parse(name).unwrap(), NOW).await.unwrap(), None);
        }
        assert_eq!(f.stripe.sessions().len(), 3);
    }

    #[tokio::test]
    async fn availability_tells_free_held_taken_and_invalid_apart() {
        let f = fixture_with(None);
        let check = async |name: &str| {
            body(
                &f.api
                    .handle(&Method::GET, &format!("/subdomains/{name}"), &HeaderMap::new(), b"", None)
                    .await,
            )
        };
        assert_eq!(check("acme").await, json!({"available": true, "reason": null}));
        assert_eq!(
            check("admin").await,
            json!({"available": false, "reason": "subdomain `admin` is reserved"})
        );
        f.api.checkout(None, &form("acme", "dana@acme.example")).await;
        assert_eq!(check("acme").await["reason"], "someone is checking out with it; try again in 75 minutes");
        claim(&f.store, "globex").await;
        assert_eq!(check("globex").await, json!({"available": false, "reason": "taken"}));
        let taken = f.api.checkout(None, &form("globex", "hank@globex.example")).await;
        assert_eq!(
            (taken.status, body(&taken)["errors"]["subdomain"].as_str()),
            (StatusCode::CONFLICT, Some("is taken"))
        );
    }
}
