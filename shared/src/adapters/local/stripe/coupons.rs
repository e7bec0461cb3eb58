//! The stand-in's coupons and promotion codes, as Stripe keeps them:
//! `POST /v1/coupons`, `POST /v1/promotion_codes` (and `/{id}` to switch
//! one off), `GET /v1/promotion_codes?code=…&active=…`, matched without
//! regard to case; a Checkout Session's `discounts` redeem one when paid,
//! and the subscription's invoices are discounted as its coupon's
//! `duration` says.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::admin::{Form, boolean, field, metadata};
use super::{Account, LocalStripe, LocalStripeError, list_wire};
use crate::domain::{CouponTerms, PromotionCode, PromotionCodeId, PromotionOffer};

const DAY: i64 = 24 * 60 * 60;
/// From this version on a promotion code names its coupon under `promotion`.
const PROMOTION_SINCE: &str = "2025-09-30";

/// A coupon of the stand-in's account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalCoupon {
    pub id: String,
    pub name: Option<String>,
    pub percent_off: Option<f64>,
    /// Minor units of `currency`.
    pub amount_off: Option<i64>,
    pub currency: Option<String>,
    /// `once`, `repeating` or `forever`.
    pub duration: String,
    pub duration_in_months: Option<u32>,
    pub max_redemptions: Option<u64>,
    pub redeem_by: Option<i64>,
    pub times_redeemed: u64,
    /// `applies_to.products`, when restricted.
    pub applies_to_products: Option<Vec<String>>,
    pub created: i64,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl LocalCoupon {
    /// Stripe's `valid`: not past `redeem_by`, redemptions left.
    fn valid(&self, now: i64) -> bool {
        self.redeem_by.is_none_or(|by| now < by)
            && self.max_redemptions.is_none_or(|max| self.times_redeemed < max)
    }

    /// `amount` less this coupon's discount (never below 0).
    fn discount_of(&self, amount: i64, currency: &str) -> i64 {
        let off = match (self.percent_off, self.amount_off) {
            (Some(percent), _) => (amount as f64 * percent / 100.0).round() as i64,
            (None, Some(off)) if self.currency.as_deref() == Some(currency) => off,
            _ => 0,
        };
        off.clamp(0, amount.max(0))
    }
}

/// A promotion code of the stand-in's account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalPromotionCode {
    pub id: String,
    pub code: String,
    pub coupon: String,
    pub active: bool,
    pub expires_at: Option<i64>,
    pub max_redemptions: Option<u64>,
    pub times_redeemed: u64,
    /// `restrictions[minimum_amount]` and its currency.
    #[serde(default)]
    pub minimum_amount: Option<(i64, String)>,
    pub created: i64,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// A coupon applied to a subscription: which, and for how long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalDiscount {
    pub id: String,
    pub coupon: String,
    pub promotion_code: Option<String>,
    pub start: i64,
    /// A `repeating` coupon's end; none for `once` and `forever`.
    pub end: Option<i64>,
    /// Invoices it still discounts: one for `once`, unbounded otherwise.
    pub invoices_left: Option<u32>,
}

fn invalid(param: &'static str, message: impl Into<String>) -> LocalStripeError {
    LocalStripeError::InvalidRequest { param, message: message.into() }
}

fn whole<T: std::str::FromStr>(form: &Form, name: &'static str) -> Result<Option<T>, LocalStripeError> {
    field(form, name).map(|raw| raw.parse::<T>().map_err(|_| invalid(name, "Invalid integer"))).transpose()
}

/// `name[0]=…`, `name[1]=…` (or `name[]=…`) fields, in order.
fn indexed(form: &Form, name: &str) -> Option<Vec<String>> {
    let prefix = format!("{name}[");
    let items: Vec<String> = form
        .iter()
        .filter(|(key, _)| key.starts_with(&prefix) && key.ends_with(']'))
        .map(|(_, v)| v.clone())
        .collect();
    (!items.is_empty()).then_some(items)
}

fn coupon_wire(coupon: &LocalCoupon, now: i64, with_applies_to: bool) -> Value {
    let mut wire = json!({
        "id": coupon.id, "object": "coupon", "amount_off": coupon.amount_off, "created": coupon.created,
        "currency": coupon.currency, "duration": coupon.duration, "duration_in_months": coupon.duration_in_months,
        "livemode": false, "max_redemptions": coupon.max_redemptions, "metadata": coupon.metadata,
        "name": coupon.name, "percent_off": coupon.percent_off, "redeem_by": coupon.redeem_by,
        "times_redeemed": coupon.times_redeemed, "valid": coupon.valid(now),
    });
    if with_applies_to {
        wire["applies_to"] = json!({"products": coupon.applies_to_products.clone().unwrap_or_default()});
    }
    wire
}

/// A promotion code in `api_version`'s shape; `expand` holds paths from
/// the promotion code (`promotion.coupon`, `coupon.applies_to`, …).
fn promotion_code_wire(
    a: &Account,
    promo: &LocalPromotionCode,
    now: i64,
    api_version: &str,
    expand: &[String],
) -> Value {
    let coupon = a.coupons.iter().find(|c| c.id == promo.coupon);
    let expanded = |path: &str| expand.iter().any(|e| e == path || e.starts_with(&format!("{path}.")));
    let mut wire = json!({
        "id": promo.id, "object": "promotion_code", "active": promo.active, "code": promo.code,
        "created": promo.created, "customer": null, "expires_at": promo.expires_at, "livemode": false,
        "max_redemptions": promo.max_redemptions, "metadata": promo.metadata,
        "restrictions": {"first_time_transaction": false,
            "minimum_amount": promo.minimum_amount.as_ref().map(|(amount, _)| *amount),
            "minimum_amount_currency": promo.minimum_amount.as_ref().map(|(_, currency)| currency.clone()),
            "currency_options": {}},
        "times_redeemed": promo.times_redeemed,
    });
    if api_version >= PROMOTION_SINCE {
        let coupon_field = match coupon {
            Some(c) if expanded("promotion.coupon") => {
                coupon_wire(c, now, expanded("promotion.coupon.applies_to"))
            }
            _ => json!(promo.coupon),
        };
        wire["promotion"] = json!({"type": "coupon", "coupon": coupon_field});
    } else {
        // Whole before 2025-09-30, as Stripe sent it.
        wire["coupon"] = coupon.map_or(Value::Null, |c| coupon_wire(c, now, expanded("coupon.applies_to")));
    }
    wire
}

/// Why `promo` cannot discount a checkout of `product` now, in Stripe's words.
fn unredeemable(
    a: &Account,
    promo: &LocalPromotionCode,
    product: &str,
    amount: (i64, &str),
    now: i64,
) -> Option<String> {
    let coupon = a.coupons.iter().find(|c| c.id == promo.coupon)?;
    let code = &promo.code;
    if !promo.active {
        return Some(format!("This promotion code cannot be redeemed because it is inactive: `{code}`."));
    }
    if promo.expires_at.is_some_and(|at| at <= now) {
        return Some(format!("This promotion code has expired: `{code}`."));
    }
    if promo.max_redemptions.is_some_and(|max| promo.times_redeemed >= max) {
        return Some(format!("This promotion code has been redeemed the maximum number of times: `{code}`."));
    }
    if !coupon.valid(now) {
        return Some(format!(
            "This promotion code cannot be redeemed because the associated coupon is not valid: `{code}`."
        ));
    }
    let restricted = coupon.applies_to_products.as_ref().filter(|p| !p.is_empty());
    if restricted.is_some_and(|products| !products.iter().any(|p| p == product)) {
        return Some(format!(
            "This promotion code cannot be applied to any of the items in this Checkout Session: `{code}`."
        ));
    }
    let (price, currency) = amount;
    let below = |(minimum, of): &(i64, String)| of.eq_ignore_ascii_case(currency) && price < *minimum;
    if promo.minimum_amount.as_ref().is_some_and(below) {
        return Some(format!("This promotion code requires a minimum order amount: `{code}`."));
    }
    None
}

impl LocalStripe {
    pub fn coupons(&self) -> Vec<LocalCoupon> {
        self.account.read(|a| a.coupons.clone())
    }

    pub fn promotion_codes(&self) -> Vec<LocalPromotionCode> {
        self.account.read(|a| a.promotion_codes.clone())
    }

    /// `POST /v1/coupons`: `percent_off`, or `amount_off` with `currency`;
    /// `duration` (`once` unless given; `repeating` needs
    /// `duration_in_months`), `max_redemptions`, `redeem_by`,
    /// `applies_to[products][]`, `name`, `id`, metadata.
    pub fn create_coupon(&self, form: &Form) -> Result<Value, LocalStripeError> {
        let now = self.clock.now_unix();
        let percent_off = field(form, "percent_off")
            .map(|raw| {
                raw.parse::<f64>().ok().filter(|p| *p > 0.0 && *p <= 100.0).ok_or_else(|| {
                    invalid("percent_off", "percent_off must be greater than 0 and at most 100")
                })
            })
            .transpose()?;
        let amount_off = whole::<i64>(form, "amount_off")?;
        let currency = field(form, "currency").map(str::to_ascii_lowercase);
        match (percent_off, amount_off, &currency) {
            (Some(_), None, _) => {}
            (None, Some(off), Some(_)) if off > 0 => {}
            (None, Some(_), None) => {
                return Err(invalid(
                    "currency",
                    "You must specify a currency when creating an amount_off coupon.",
                ));
            }
            _ => {
                return Err(invalid(
                    "percent_off",
                    "You must provide exactly one of percent_off or amount_off (a positive amount).",
                ));
            }
        }
        let duration = field(form, "duration").unwrap_or("once").to_owned();
        let duration_in_months = whole::<u32>(form, "duration_in_months")?;
        match (duration.as_str(), duration_in_months) {
            ("repeating", Some(months)) if months > 0 => {}
            ("repeating", _) => {
                return Err(invalid(
                    "duration_in_months",
                    "duration_in_months is required when duration is repeating.",
                ));
            }
            ("once" | "forever", None) => {}
            ("once" | "forever", Some(_)) => {
                return Err(invalid(
                    "duration_in_months",
                    "duration_in_months may only be set when duration is repeating.",
                ));
            }
            (other, _) => {
                return Err(invalid(
                    "duration",
                    format!("Invalid duration: must be one of once, repeating, or forever (got {other})."),
                ));
            }
        }
        let max_redemptions = whole::<u64>(form, "max_redemptions")?;
        let redeem_by = whole::<i64>(form, "redeem_by")?;
        if redeem_by.is_some_and(|by| by <= now) {
            return Err(invalid("redeem_by", "redeem_by must be in the future."));
        }
        let applies_to_products = indexed(form, "applies_to[products]");
        let (given, name, metadata) =
            (field(form, "id").map(str::to_owned), field(form, "name").map(str::to_owned), metadata(form));
        self.account
            .update(|a| {
                let id = given.unwrap_or_else(|| format!("coupon_local{:06}", a.coupons.len() + 1));
                if a.coupons.iter().any(|c| c.id == id) {
                    return Err(invalid("id", format!("Coupon already exists: {id}")));
                }
                if let Some(unknown) =
                    applies_to_products.iter().flatten().find(|p| !a.products.iter().any(|x| x.id == **p))
                {
                    return Err(LocalStripeError::NoSuchObject { kind: "product", id: unknown.clone() });
                }
                let coupon = LocalCoupon {
                    id,
                    name,
                    percent_off,
                    amount_off,
                    currency,
                    duration,
                    duration_in_months,
                    max_redemptions,
                    redeem_by,
                    times_redeemed: 0,
                    applies_to_products,
                    created: now,
                    metadata,
                };
                let wire = coupon_wire(&coupon, now, true);
                a.coupons.push(coupon);
                Ok(wire)
            })
            .map_err(LocalStripeError::Io)?
    }

    /// `POST /v1/promotion_codes`: `promotion[type]=coupon` with
    /// `promotion[coupon]` (or `coupon`, before 2025-09-30), `code` (made
    /// up when not given), `active`, `expires_at`, `max_redemptions`,
    /// metadata. Two active codes never share a code, whatever the case.
    pub fn create_promotion_code(&self, form: &Form, api_version: &str) -> Result<Value, LocalStripeError> {
        let now = self.clock.now_unix();
        let coupon = field(form, "promotion[coupon]")
            .or_else(|| field(form, "coupon"))
            .ok_or_else(|| invalid("promotion", "Missing required param: promotion[coupon]."))?
            .to_owned();
        if field(form, "promotion[type]").is_some_and(|t| t != "coupon") {
            return Err(invalid("promotion[type]", "Invalid promotion[type]: must be coupon"));
        }
        let code = field(form, "code")
            .map(|raw| {
                PromotionCode::parse(raw)
                    .map(|c| c.as_str().to_owned())
                    .map_err(|_| invalid("code", "Invalid code: only letters and digits are allowed."))
            })
            .transpose()?;
        let active = boolean(form, "active")?.unwrap_or(true);
        let expires_at = whole::<i64>(form, "expires_at")?;
        let max_redemptions = whole::<u64>(form, "max_redemptions")?;
        let minimum_amount = match (
            whole::<i64>(form, "restrictions[minimum_amount]")?,
            field(form, "restrictions[minimum_amount_currency]"),
        ) {
            (None, None) => None,
            (Some(amount), Some(currency)) if amount > 0 => Some((amount, currency.to_ascii_lowercase())),
            _ => {
                return Err(invalid(
                    "restrictions[minimum_amount]",
                    "restrictions[minimum_amount] needs a positive amount and restrictions[minimum_amount_currency].",
                ));
            }
        };
        let metadata = metadata(form);
        self.account
            .update(|a| {
                if !a.coupons.iter().any(|c| c.id == coupon) {
                    return Err(LocalStripeError::NoSuchObject { kind: "coupon", id: coupon.clone() });
                }
                let number = a.promotion_codes.len() + 1;
                let code = code.unwrap_or_else(|| format!("LOCAL{number:06}"));
                if active && a.promotion_codes.iter().any(|p| p.active && p.code.eq_ignore_ascii_case(&code))
                {
                    return Err(invalid(
                        "code",
                        format!("An active promotion code with `code: {code}` already exists."),
                    ));
                }
                let promo = LocalPromotionCode {
                    id: format!("promo_local{number:06}"),
                    code,
                    coupon,
                    active,
                    expires_at,
                    max_redemptions,
                    times_redeemed: 0,
                    minimum_amount,
                    created: now,
                    metadata,
                };
                let wire = promotion_code_wire(a, &promo, now, api_version, &[]);
                a.promotion_codes.push(promo);
                Ok(wire)
            })
            .map_err(LocalStripeError::Io)?
    }

    /// `POST /v1/promotion_codes/{id}`: `active` and metadata.
    pub fn update_promotion_code(
        &self,
        id: &str,
        form: &Form,
        api_version: &str,
    ) -> Result<Value, LocalStripeError> {
        let now = self.clock.now_unix();
        let active = boolean(form, "active")?;
        let metadata = metadata(form);
        self.account
            .update(|a| {
                let index = a.promotion_codes.iter().position(|p| p.id == id).ok_or_else(|| {
                    LocalStripeError::NoSuchObject { kind: "promotion_code", id: id.to_owned() }
                })?;
                if let Some(active) = active {
                    a.promotion_codes[index].active = active;
                }
                a.promotion_codes[index].metadata.extend(metadata);
                Ok(promotion_code_wire(a, &a.promotion_codes[index], now, api_version, &[]))
            })
            .map_err(LocalStripeError::Io)?
    }

    /// `GET /v1/promotion_codes?code=…&active=…&coupon=…`, newest first;
    /// `code` without regard to case, as at Stripe. `expand` as asked
    /// (`data.promotion.coupon.applies_to`, …).
    pub fn promotion_code_list_json(
        &self,
        code: Option<&str>,
        active: Option<bool>,
        coupon: Option<&str>,
        limit: usize,
        expand: &[String],
        api_version: &str,
    ) -> Value {
        let now = self.clock.now_unix();
        let expand: Vec<String> =
            expand.iter().filter_map(|e| e.strip_prefix("data.").map(str::to_owned)).collect();
        self.account.read(|a| {
            let matching: Vec<&LocalPromotionCode> = a
                .promotion_codes
                .iter()
                .rev()
                .filter(|p| code.is_none_or(|code| p.code.eq_ignore_ascii_case(code)))
                .filter(|p| active.is_none_or(|active| p.active == active))
                .filter(|p| coupon.is_none_or(|coupon| p.coupon == coupon))
                .collect();
            let data = matching
                .iter()
                .take(limit.clamp(1, 100))
                .map(|p| promotion_code_wire(a, p, now, api_version, &expand))
                .collect();
            let mut list = list_wire("/v1/promotion_codes", data);
            list["has_more"] = json!(matching.len() > limit.clamp(1, 100));
            list
        })
    }

    /// What [`crate::ports::StripeGateway::promotion_code`] answers, from the account.
    pub(super) fn promotion_offer(&self, code: &PromotionCode) -> Option<PromotionOffer> {
        let now = self.clock.now_unix();
        self.account.read(|a| {
            let newest_first =
                || a.promotion_codes.iter().rev().filter(|p| p.code.eq_ignore_ascii_case(code.as_str()));
            let promo = newest_first().find(|p| p.active).or_else(|| newest_first().next())?;
            let coupon = a.coupons.iter().find(|c| c.id == promo.coupon)?;
            Some(PromotionOffer {
                id: PromotionCodeId::parse(&promo.id).ok()?,
                code: promo.code.clone(),
                active: promo.active,
                expires_at: promo.expires_at,
                max_redemptions: promo.max_redemptions,
                times_redeemed: promo.times_redeemed,
                customer: None,
                minimum_amount: promo.minimum_amount.clone(),
                coupon: CouponTerms {
                    id: coupon.id.clone(),
                    valid: coupon.valid(now),
                    redeem_by: coupon.redeem_by,
                    applies_to_products: coupon.applies_to_products.clone(),
                },
            })
        })
    }
}

/// Whether promotion code `id` may discount a session for `price_id` now:
/// Stripe's refusal when not.
pub(super) fn check_redeemable(
    a: &Account,
    id: &str,
    price_id: &str,
    now: i64,
) -> Result<(), LocalStripeError> {
    let promo = a
        .promotion_codes
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| LocalStripeError::NoSuchObject { kind: "promotion_code", id: id.to_owned() })?;
    let price = a.prices.iter().find(|p| p.price.id == price_id);
    let product = price.map(|p| p.product.as_str()).unwrap_or_default();
    let amount = price.map_or((0, ""), |p| (p.price.unit_amount, p.price.currency.as_str()));
    match unredeemable(a, promo, product, amount, now) {
        Some(message) => Err(invalid("discounts", message)),
        None => Ok(()),
    }
}

/// Redeems promotion code `id` for subscription `index`: both counts go
/// up, and the subscription carries the coupon for its duration.
pub(super) fn redeem(a: &mut Account, index: usize, id: &str, now: i64) {
    let Some(promo) = a.promotion_codes.iter_mut().find(|p| p.id == id) else { return };
    promo.times_redeemed += 1;
    let coupon_id = promo.coupon.clone();
    let Some(coupon) = a.coupons.iter_mut().find(|c| c.id == coupon_id) else { return };
    coupon.times_redeemed += 1;
    let (end, invoices_left) = match (coupon.duration.as_str(), coupon.duration_in_months) {
        ("once", _) => (None, Some(1)),
        ("repeating", Some(months)) => (Some(now + i64::from(months) * 30 * DAY), None),
        _ => (None, None),
    };
    let discount_id =
        format!("di_local{:06}", a.subscriptions.iter().filter(|s| s.discount.is_some()).count() + 1);
    a.subscriptions[index].discount = Some(LocalDiscount {
        id: discount_id,
        coupon: coupon_id,
        promotion_code: Some(id.to_owned()),
        start: now,
        end,
        invoices_left,
    });
}

/// How much of `amount`, invoiced now for subscription `index`, its
/// discount takes off (and one of a `once` coupon's invoices used).
pub(super) fn take_discount(a: &mut Account, index: usize, amount: i64, now: i64) -> i64 {
    let currency = a.subscriptions[index].price.currency.clone();
    let Some(discount) = a.subscriptions[index].discount.as_ref() else { return 0 };
    let current = discount.end.is_none_or(|end| now < end) && discount.invoices_left != Some(0);
    let Some(coupon) = a.coupons.iter().find(|c| c.id == discount.coupon).filter(|_| current && amount > 0)
    else {
        return 0;
    };
    let off = coupon.discount_of(amount, &currency);
    if let Some(discount) = a.subscriptions[index].discount.as_mut() {
        discount.invoices_left = discount.invoices_left.map(|left| left.saturating_sub(1));
    }
    off
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::FixedClock;

    const NOW: i64 = 1_700_000_000;

    fn stripe() -> LocalStripe {
        LocalStripe::open(None, "http://127.0.0.1", Arc::new(FixedClock(NOW))).unwrap()
    }

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn coupons_are_one_kind_of_discount_with_a_duration() {
        let stripe = stripe();
        let refused = |pairs: &[(&str, &str)]| stripe.create_coupon(&form(pairs)).unwrap_err().to_string();
        assert!(refused(&[]).contains("exactly one of percent_off or amount_off"));
        assert!(refused(&[("percent_off", "10"), ("amount_off", "500")]).contains("exactly one"));
        assert!(refused(&[("amount_off", "500")]).contains("currency"));
        assert!(refused(&[("percent_off", "10"), ("duration", "repeating")]).contains("duration_in_months"));
        assert!(refused(&[("percent_off", "120")]).contains("at most 100"));
        assert!(
            refused(&[("percent_off", "10"), ("applies_to[products][0]", "prod_nope")])
                .contains("No such product")
        );
        let made = stripe
            .create_coupon(&form(&[
                ("id", "welcome"),
                ("percent_off", "10"),
                ("applies_to[products][0]", "tenancy_pro"),
            ]))
            .unwrap();
        assert_eq!((made["valid"].clone(), made["duration"].clone()), (json!(true), json!("once")));
        assert_eq!(made["applies_to"]["products"], json!(["tenancy_pro"]));
    }

    #[test]
    fn promotion_codes_are_found_by_code_whatever_the_case_in_either_version() {
        let stripe = stripe();
        stripe.create_coupon(&form(&[("id", "welcome"), ("percent_off", "10")])).unwrap();
        let made = stripe
            .create_promotion_code(
                &form(&[
                    ("promotion[type]", "coupon"),
                    ("promotion[coupon]", "welcome"),
                    ("code", "WELCOME10"),
                ]),
                "2026-09-30.endive",
            )
            .unwrap();
        assert_eq!(made["promotion"]["coupon"], "welcome", "an id unless expanded");
        let again = stripe
            .create_promotion_code(&form(&[("coupon", "welcome"), ("code", "welcome10")]), "2024-06-20");
        assert!(again.unwrap_err().to_string().contains("already exists"));
        let expand = ["data.promotion.coupon.applies_to".to_owned()];
        let listed = stripe.promotion_code_list_json(
            Some("welcome10"),
            Some(true),
            None,
            10,
            &expand,
            "2026-09-30.endive",
        );
        assert_eq!(listed["data"][0]["code"], "WELCOME10");
        assert_eq!(listed["data"][0]["promotion"]["coupon"]["valid"], true);
        assert_eq!(listed["data"][0]["promotion"]["coupon"]["applies_to"]["products"], json!([]));
        let old = stripe.promotion_code_list_json(Some("WELCOME10"), None, None, 10, &[], "2024-06-20");
        assert_eq!(old["data"][0]["coupon"]["id"], "welcome");
        let id = made["id"].as_str().unwrap();
        stripe.update_promotion_code(id, &form(&[("active", "false")]), "2024-06-20").unwrap();
        let active =
            stripe.promotion_code_list_json(Some("WELCOME10"), Some(true), None, 10, &[], "2024-06-20");
        assert_eq!(active["data"], json!([]));
        let offer = stripe.promotion_offer(&PromotionCode::parse("Welcome10").unwrap()).unwrap();
        assert!(!offer.active, "the inactive one, so a refusal can say so");
        assert!(stripe.promotion_offer(&PromotionCode::parse("NOPE").unwrap()).is_none());
    }
}
