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
