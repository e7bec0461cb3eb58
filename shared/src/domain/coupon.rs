//! Coupons at checkout: the promotion code a customer types (`WELCOME10`),
//! what Stripe holds for it, and whether it may discount a plan now. A
//! code is refused before any Checkout Session or hold is made, each
//! refusal one line that says why.

use serde::{Deserialize, Serialize};

use super::ids::PromotionCodeId;

/// Longest code accepted (Stripe's codes are short words such as `WELCOME10`).
const MAX_CODE_CHARS: usize = 100;

/// A promotion code as a customer types it: 1 to 100 ASCII letters and
/// digits (what Stripe allows in a code). Stripe matches codes without
/// regard to case, so `welcome10` finds `WELCOME10`; kept as typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PromotionCode(String);

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("coupon must be 1 to 100 letters and digits, such as WELCOME10")]
pub struct InvalidPromotionCode;

impl PromotionCode {
    pub fn parse(raw: &str) -> Result<Self, InvalidPromotionCode> {
        let code = raw.trim();
        let well_formed = !code.is_empty()
            && code.len() <= MAX_CODE_CHARS
            && code.bytes().all(|b| b.is_ascii_alphanumeric());
        if well_formed { Ok(PromotionCode(code.to_owned())) } else { Err(InvalidPromotionCode) }
    }

    /// The code as Stripe compares it (upper case).
    pub fn canonical(&self) -> String {
        self.0.to_ascii_uppercase()
    }
}

string_newtype!(PromotionCode, InvalidPromotionCode);

/// The coupon behind a promotion code, the fields that decide whether it
/// can be redeemed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponTerms {
    pub id: String,
    /// Stripe's `valid`: false once `redeem_by` passed or its own
    /// `max_redemptions` were used.
    pub valid: bool,
    pub redeem_by: Option<i64>,
    /// `applies_to.products`: the products it discounts, when restricted.
    pub applies_to_products: Option<Vec<String>>,
}

/// A promotion code as Stripe holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionOffer {
    pub id: PromotionCodeId,
    pub code: String,
    pub active: bool,
    pub expires_at: Option<i64>,
    pub max_redemptions: Option<u64>,
    pub times_redeemed: u64,
    /// Only this customer may redeem it (a checkout makes a new customer,
    /// so none can).
    pub customer: Option<String>,
    /// `restrictions.minimum_amount` (minor units) and its currency.
    pub minimum_amount: Option<(i64, String)>,
    pub coupon: CouponTerms,
}

/// What a coupon would discount: the plan's Stripe product and the price
/// of its term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CouponUse<'a> {
    pub product: &'a str,
    pub plan_name: &'a str,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: &'a str,
}

/// Currencies Stripe counts in whole units (no minor unit).
const ZERO_DECIMAL: [&str; 16] = [
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof",
    "xpf",
];

/// `10000` `cad` as `100.00 CAD`.
fn money(amount: i64, currency: &str) -> String {
    let upper = currency.to_ascii_uppercase();
    if ZERO_DECIMAL.contains(&currency.to_ascii_lowercase().as_str()) {
        format!("{amount} {upper}")
    } else {
        format!("{}.{:02} {upper}", amount / 100, (amount % 100).abs())
    }
}

/// Why a coupon was refused; each says which code and why, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CouponRefusal {
    #[error("coupon `{code}` does not exist")]
    Unknown { code: String },
    #[error("coupon `{code}` is no longer active")]
    Inactive { code: String },
    #[error("coupon `{code}` has expired")]
    Expired { code: String },
    #[error("coupon `{code}` has been redeemed as often as it may be")]
    UsedUp { code: String },
    #[error("coupon `{code}` can no longer be redeemed")]
    CouponInvalid { code: String },
    #[error("coupon `{code}` is not for the {plan} plan")]
    NotForPlan { code: String, plan: String },
    #[error("coupon `{code}` is reserved for another customer")]
    OtherCustomer { code: String },
    #[error("coupon `{code}` needs a purchase of at least {minimum}")]
    BelowMinimum { code: String, minimum: String },
}

/// A promotion code Stripe holds that may discount the plan now: the
/// only way a Checkout Session gets a discount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedPromotion {
    id: PromotionCodeId,
    code: String,
}

impl AcceptedPromotion {
    /// Checks what Stripe answered for `code` (`None`: nothing) against
    /// what it would discount, at `now`.
    pub fn check(
        code: &PromotionCode,
        found: Option<PromotionOffer>,
        purchase: &CouponUse<'_>,
        now: i64,
    ) -> Result<AcceptedPromotion, CouponRefusal> {
        let typed = code.as_str().to_owned();
        let offer = found.ok_or_else(|| CouponRefusal::Unknown { code: typed.clone() })?;
        // Stripe's own spelling, once it is known to be the same code.
        let code = if offer.code.eq_ignore_ascii_case(&typed) { offer.code.clone() } else { typed };
        if !offer.active {
            return Err(CouponRefusal::Inactive { code });
        }
        let passed = |at: Option<i64>| at.is_some_and(|at| at <= now);
        if passed(offer.expires_at) {
            return Err(CouponRefusal::Expired { code });
        }
        if offer.max_redemptions.is_some_and(|max| offer.times_redeemed >= max) {
            return Err(CouponRefusal::UsedUp { code });
        }
        if !offer.coupon.valid || passed(offer.coupon.redeem_by) {
            return Err(CouponRefusal::CouponInvalid { code });
        }
        let restricted = offer.coupon.applies_to_products.as_ref().filter(|products| !products.is_empty());
        if restricted.is_some_and(|products| !products.iter().any(|p| p == purchase.product)) {
            return Err(CouponRefusal::NotForPlan { code, plan: purchase.plan_name.to_owned() });
        }
        if offer.customer.is_some() {
            return Err(CouponRefusal::OtherCustomer { code });
        }
        if let Some((minimum, currency)) = &offer.minimum_amount
            && currency.eq_ignore_ascii_case(purchase.currency)
            && purchase.amount < *minimum
        {
            return Err(CouponRefusal::BelowMinimum { code, minimum: money(*minimum, currency) });
        }
        Ok(AcceptedPromotion { id: offer.id, code })
    }

    pub fn id(&self) -> &PromotionCodeId {
        &self.id
    }

    /// The code as Stripe spells it.
    pub fn code(&self) -> &str {
        &self.code
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NOW: i64 = 1_770_000_000;

    fn offer() -> PromotionOffer {
        PromotionOffer {
            id: PromotionCodeId::parse("promo_1Welcome").unwrap(),
            code: "WELCOME10".into(),
            active: true,
            expires_at: Some(NOW + 60),
            max_redemptions: Some(5),
            times_redeemed: 4,
            customer: None,
            minimum_amount: Some((30_000, "cad".into())),
            coupon: CouponTerms {
                id: "welcome".into(),
                valid: true,
                redeem_by: None,
                applies_to_products: Some(vec!["tenancy_pro".into(), "tenancy_basic".into()]),
            },
        }
    }

    fn check(found: Option<PromotionOffer>) -> Result<AcceptedPromotion, String> {
        let code = PromotionCode::parse("welcome10").unwrap();
        let purchase =
            CouponUse { product: "tenancy_pro", plan_name: "Pro", amount: 54_000, currency: "cad" };
        AcceptedPromotion::check(&code, found, &purchase, NOW).map_err(|e| e.to_string())
    }

    #[test]
    fn a_live_code_for_the_plan_is_accepted_in_stripes_spelling() {
        let accepted = check(Some(offer())).unwrap();
        assert_eq!((accepted.id().as_str(), accepted.code()), ("promo_1Welcome", "WELCOME10"));
        let unrestricted = PromotionOffer {
            coupon: CouponTerms { applies_to_products: Some(vec![]), ..offer().coupon },
            ..offer()
        };
        assert!(check(Some(unrestricted)).is_ok(), "an empty list restricts nothing");
    }

    #[test]
    fn each_refusal_says_which_code_and_why() {
        let cases = [
            (None, "coupon `welcome10` does not exist"),
            (Some(PromotionOffer { active: false, ..offer() }), "coupon `WELCOME10` is no longer active"),
            (Some(PromotionOffer { expires_at: Some(NOW), ..offer() }), "coupon `WELCOME10` has expired"),
            (
                Some(PromotionOffer { times_redeemed: 5, ..offer() }),
                "coupon `WELCOME10` has been redeemed as often as it may be",
            ),
            (
                Some(PromotionOffer { coupon: CouponTerms { valid: false, ..offer().coupon }, ..offer() }),
                "coupon `WELCOME10` can no longer be redeemed",
            ),
            (
                Some(PromotionOffer {
                    coupon: CouponTerms { redeem_by: Some(NOW - 1), ..offer().coupon },
                    ..offer()
                }),
                "coupon `WELCOME10` can no longer be redeemed",
            ),
            (
                Some(PromotionOffer {
                    coupon: CouponTerms {
                        applies_to_products: Some(vec!["tenancy_basic".into()]),
                        ..offer().coupon
                    },
                    ..offer()
                }),
                "coupon `WELCOME10` is not for the Pro plan",
            ),
            (
                Some(PromotionOffer { customer: Some("cus_1Someone".into()), ..offer() }),
                "coupon `WELCOME10` is reserved for another customer",
            ),
            (
                Some(PromotionOffer { minimum_amount: Some((60_000, "cad".into())), ..offer() }),
                "coupon `WELCOME10` needs a purchase of at least 600.00 CAD",
            ),
        ];
        for (found, message) in cases {
            assert_eq!(check(found).unwrap_err(), message);
        }
    }

    #[test]
    fn a_minimum_in_another_currency_does_not_apply_and_amounts_read_as_money() {
        let other = PromotionOffer { minimum_amount: Some((90_000, "usd".into())), ..offer() };
        assert!(check(Some(other)).is_ok());
        assert_eq!(money(5, "cad"), "0.05 CAD");
        assert_eq!(money(5000, "JPY"), "5000 JPY");
    }

    #[test]
    fn codes_are_letters_and_digits() {
        assert_eq!(PromotionCode::parse(" WELCOME10 ").unwrap().as_str(), "WELCOME10");
        assert_eq!(PromotionCode::parse("welcome10").unwrap().canonical(), "WELCOME10");
        for bad in ["", "   ", "WELCOME 10", "WELCOME-10", "ÉTÉ25", "a&b=c", &"A".repeat(101)] {
            assert_eq!(PromotionCode::parse(bad), Err(InvalidPromotionCode), "{bad}");
        }
        assert_eq!(
            InvalidPromotionCode.to_string(),
            "coupon must be 1 to 100 letters and digits, such as WELCOME10"
        );
    }

    proptest! {
        #[test]
        fn a_code_parses_exactly_when_it_is_1_to_100_ascii_letters_and_digits(raw in "\\PC{0,120}") {
            let trimmed = raw.trim();
            let expected = !trimmed.is_empty()
                && trimmed.len() <= 100
                && trimmed.chars().all(|c| c.is_ascii_alphanumeric());
            prop_assert_eq!(PromotionCode::parse(&raw).is_ok(), expected);
            if let Ok(code) = PromotionCode::parse(&raw) {
                prop_assert_eq!(PromotionCode::parse(code.as_str()), Ok(code.clone()));
                prop_assert!(!code.as_str().contains(char::is_whitespace));
            }
        }

        #[test]
        fn an_accepted_code_was_active_unexpired_unused_valid_and_for_the_product(
            active: bool,
            expires_in in proptest::option::of(-100i64..100),
            max in proptest::option::of(0u64..5),
            redeemed in 0u64..6,
            valid: bool,
            for_pro: bool,
        ) {
            let found = PromotionOffer {
                active,
                expires_at: expires_in.map(|d| NOW + d),
                max_redemptions: max,
                times_redeemed: redeemed,
                coupon: CouponTerms {
                    valid,
                    applies_to_products: Some(vec![if for_pro { "tenancy_pro" } else { "tenancy_ultimate" }.into()]),
                    ..offer().coupon
                },
                ..offer()
            };
            let redeemable = active
                && expires_in.is_none_or(|d| d > 0)
                && max.is_none_or(|m| redeemed < m)
                && valid
                && for_pro;
            prop_assert_eq!(check(Some(found)).is_ok(), redeemable);
        }
    }
}
