//! The plan's free trial, given at most once per customer: reserved for
//! this checkout's hold while its session is open, so two open checkouts
//! of one customer cannot both carry it; recorded used when one is paid.

use serde_json::{Value, json};

use super::hold::{Hold, store_trouble};
use super::{ApiAnswer, CheckoutApi, CheckoutRequest};
use crate::domain::{TrialKey, TrialOffer, TrialReservation};

/// What a checkout gives: the plan's trial, or why this customer does not get it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct TrialDecision {
    pub(super) days: Option<u32>,
    /// The plan has a trial and this checkout does not carry it: why.
    pub(super) refused: Option<String>,
}

impl TrialDecision {
    /// The answer's `trial_days` (0 without a trial) and `trial_refused`.
    pub(super) fn add_to(&self, answer: &mut Value) {
        answer["trial_days"] = json!(self.days.unwrap_or(0));
        if let Some(why) = &self.refused {
            answer["trial_refused"] = json!(why);
        }
    }
}

impl CheckoutApi {
    /// The trial this checkout carries: the plan's, if the customer (their
    /// e-mail address) has not had one and no other open checkout of theirs
    /// holds it.
    pub(super) async fn trial(
        &self,
        request: &CheckoutRequest,
        hold: &Hold,
        now: i64,
    ) -> Result<TrialDecision, ApiAnswer> {
        let Some(days) = self.catalog.trial_days(&request.plan.key) else {
            return Ok(TrialDecision::default());
        };
        let reservation = TrialReservation {
            key: TrialKey::for_email(&request.email),
            hold: hold.id.clone(),
            until: hold.held.until,
        };
        let refused = |why: String| Ok(TrialDecision { days: None, refused: Some(why) });
        match self.store.reserve_trial(&reservation, now).await {
            Ok(TrialOffer::Reserved) => Ok(TrialDecision { days: Some(days), refused: None }),
            Ok(TrialOffer::Used(_)) => refused(
                "this e-mail address has had its free trial; this subscription is charged from today".into(),
            ),
            Ok(TrialOffer::InAnotherCheckout { until }) => refused(format!(
                "another open checkout of this e-mail address holds its free trial (for {} more minutes); \
                 this subscription is charged from today",
                ((until - now).max(0) + 59) / 60
            )),
            Err(error) => Err(store_trouble(&error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::{Method, StatusCode};
    use serde_json::json;

    use super::super::testing::{NOW, body, fixture_later, fixture_with, from_origin};
    use crate::domain::{CustomerId, EmailAddress, TenantId, TrialKey, TrialUse};
    use crate::ports::TenantStore;

    fn basic(subdomain: &str, email: &str) -> Vec<u8> {
        json!({"plan": "basic", "billing": "monthly", "subdomain": subdomain, "organization": "Acme", "email": email})
            .to_string()
            .into_bytes()
    }

    async fn post(f: &super::super::testing::Fixture, form: Vec<u8>) -> serde_json::Value {
        let answer = f.api.handle(&Method::POST, "/checkout", &from_origin(), &form, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        body(&answer)
    }

    #[tokio::test]
    async fn a_plan_with_a_trial_gives_it_once_and_a_second_open_checkout_is_charged_and_told_why() {
        let f = fixture_with(None);
        let first = post(&f, basic("acme", "dana@acme.example")).await;
        assert_eq!((first["trial_days"].as_u64(), first.get("trial_refused")), (Some(14), None));
        let sessions = f.stripe.sessions();
        assert_eq!(sessions[0].trial_days, Some(14));
        assert_eq!(sessions[0].metadata["trial_days"], "14");

        // The same buyer asking again gets the same session and the same trial.
        let again = post(&f, basic("acme", "dana@acme.example")).await;
        assert_eq!((&again["id"], again["trial_days"].as_u64()), (&first["id"], Some(14)));

        // Another name, the same mailbox written another way: no trial while the first is open.
        let second = post(&f, basic("acme-two", "Dana+second@ACME.example")).await;
        assert_eq!(second["trial_days"], 0);
        assert!(second["trial_refused"].as_str().unwrap().contains("another open checkout"), "{second}");
        assert_eq!(f.stripe.sessions()[1].trial_days, None);
        assert!(!f.stripe.sessions()[1].metadata.contains_key("trial_days"));
    }

    #[tokio::test]
    async fn a_trial_used_is_never_given_again_and_an_unpaid_ones_reservation_lapses_with_its_hold() {
        let f = fixture_with(None);
        post(&f, basic("acme", "dana@acme.example")).await;
        // Abandoned: once its hold is over, another checkout may give the trial.
        let later = fixture_later(&f, NOW + 2 * 3600);
        let retry = post(&later, basic("acme-again", "dana@acme.example")).await;
        assert_eq!(retry["trial_days"], 14);

        // Paid: recorded used, and no checkout gives it again.
        let key = TrialKey::for_email(&EmailAddress::parse("dana@acme.example").unwrap());
        let used = TrialUse {
            tenant: TenantId::parse("tnt_00000000000000000001").unwrap(),
            customer: CustomerId::parse("cus_Dana").unwrap(),
            used_at: NOW + 2 * 3600,
        };
        assert_eq!(later.store.record_trial_use(&key, &used).await.unwrap(), used);
        let much_later = fixture_later(&f, NOW + 400 * 86_400);
        let third = post(&much_later, basic("acme-three", "dana@acme.example")).await;
        assert_eq!(third["trial_days"], 0);
        assert!(third["trial_refused"].as_str().unwrap().contains("has had its free trial"), "{third}");
    }

    #[tokio::test]
    async fn a_plan_without_a_trial_reserves_nothing() {
        let f = fixture_with(None);
        let pro = json!({"plan": "pro", "billing": "monthly", "subdomain": "acme", "organization": "Acme", "email": "dana@acme.example"});
        let answer = post(&f, pro.to_string().into_bytes()).await;
        assert_eq!((answer["trial_days"].as_u64(), answer.get("trial_refused")), (Some(0), None));
        // The customer's trial is still theirs to take on a plan that has one.
        let basic = post(&f, basic("acme-basic", "dana@acme.example")).await;
        assert_eq!(basic["trial_days"], 14);
    }
}
