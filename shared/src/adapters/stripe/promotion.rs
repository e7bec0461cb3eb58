//! Promotion codes as Stripe's API lists them
//! (`GET /v1/promotion_codes?code=…&active=true`), read tolerantly across
//! API versions: the coupon is `promotion.coupon` from 2025-09-30 on and
//! `coupon` before; `applies_to` comes only when expanded.

use serde_json::Value;

use super::api::{CallFailed, StripeApi};
use crate::domain::{CouponTerms, PromotionCode, PromotionCodeId, PromotionOffer};
use crate::ports::StripeApiError;

/// What the list is asked to expand: the coupon (an id otherwise, from
/// 2025-09-30 on) with its `applies_to`.
const EXPAND: &str = "data.promotion.coupon.applies_to";

fn unreadable(what: String) -> StripeApiError {
    StripeApiError::Unavailable(Box::new(CallFailed(what)))
}

/// A promotion code object, or why it cannot be read.
pub fn offer_from_wire(promo: &Value) -> Result<PromotionOffer, String> {
    let text = |value: &Value, field: &str| value.get(field).and_then(Value::as_str).map(str::to_owned);
    let count = |value: &Value, field: &str| value.get(field).and_then(Value::as_u64);
    let id = text(promo, "id").ok_or("a promotion code without `id`")?;
    let id = PromotionCodeId::parse(&id).map_err(|e| format!("promotion code `{id}`: {e}"))?;
    let code = text(promo, "code").ok_or_else(|| format!("promotion code {id} without `code`"))?;
    let active = promo
        .get("active")
        .and_then(Value::as_bool)
        .ok_or_else(|| format!("promotion code {id} without `active`"))?;
    let coupon = promo
        .pointer("/promotion/coupon")
        .filter(|c| c.is_object())
        .or_else(|| promo.get("coupon").filter(|c| c.is_object()))
        .ok_or_else(|| format!("promotion code {id} without its coupon expanded"))?;
    let coupon_id =
        text(coupon, "id").ok_or_else(|| format!("the coupon of promotion code {id} has no `id`"))?;
    let valid = coupon
        .get("valid")
        .and_then(Value::as_bool)
        .ok_or_else(|| format!("coupon {coupon_id} without `valid`"))?;
    let applies_to_products =
        coupon.pointer("/applies_to/products").and_then(Value::as_array).map(|products| {
            products.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect::<Vec<String>>()
        });
    Ok(PromotionOffer {
        id,
        code,
        active,
        expires_at: promo.get("expires_at").and_then(Value::as_i64),
        max_redemptions: count(promo, "max_redemptions"),
        times_redeemed: count(promo, "times_redeemed").unwrap_or_default(),
        customer: promo
            .get("customer")
            .and_then(|c| c.as_str().or_else(|| c.get("id")?.as_str()))
            .map(str::to_owned),
        minimum_amount: promo.pointer("/restrictions/minimum_amount").and_then(Value::as_i64).and_then(
            |minimum| {
                let currency = promo.pointer("/restrictions/minimum_amount_currency")?.as_str()?;
                Some((minimum, currency.to_owned()))
            },
        ),
        coupon: CouponTerms {
            id: coupon_id,
            valid,
            redeem_by: coupon.get("redeem_by").and_then(Value::as_i64),
            applies_to_products,
        },
    })
}

impl StripeApi {
    /// The active promotion code `code` (Stripe matches it without regard
    /// to case), else the newest inactive one, else `None`.
    pub(super) async fn find_promotion_code(
        &self,
        code: &PromotionCode,
    ) -> Result<Option<PromotionOffer>, StripeApiError> {
        if let Some(active) = self.promotion_codes(code, true).await?.into_iter().next() {
            return Ok(Some(active));
        }
        // Only to tell "no longer active" from "no such code".
        Ok(self.promotion_codes(code, false).await?.into_iter().next())
    }

    async fn promotion_codes(
        &self,
        code: &PromotionCode,
        active_only: bool,
    ) -> Result<Vec<PromotionOffer>, StripeApiError> {
        let query = {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("code", code.as_str());
            if active_only {
                query.append_pair("active", "true");
            }
            query.append_pair("expand[]", EXPAND).finish()
        };
        let listed = self.list("/promotion_codes", &query).await?;
        listed
            .iter()
            .map(|promo| offer_from_wire(promo).map_err(|e| unreadable(format!("Stripe answered {e}"))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_promotion_code_reads_in_either_api_version() {
        let coupon = json!({"id": "welcome", "object": "coupon", "valid": true, "redeem_by": null,
            "percent_off": 10.0, "applies_to": {"products": ["tenancy_pro"]}});
        let newer = json!({"id": "promo_1A", "object": "promotion_code", "code": "WELCOME10", "active": true,
            "expires_at": 1_800_000_000, "max_redemptions": 100, "times_redeemed": 3, "customer": null,
            "restrictions": {"minimum_amount": 5000, "minimum_amount_currency": "cad"},
            "promotion": {"type": "coupon", "coupon": coupon}});
        let offer = offer_from_wire(&newer).unwrap();
        assert_eq!((offer.id.as_str(), offer.code.as_str(), offer.active), ("promo_1A", "WELCOME10", true));
        assert_eq!(
            (offer.expires_at, offer.max_redemptions, offer.times_redeemed),
            (Some(1_800_000_000), Some(100), 3)
        );
        assert_eq!(offer.coupon.applies_to_products, Some(vec!["tenancy_pro".to_owned()]));
        assert_eq!((offer.customer, offer.minimum_amount), (None, Some((5000, "cad".to_owned()))));
        let older = json!({"id": "promo_1B", "code": "SPRING", "active": false, "expires_at": null,
            "max_redemptions": null, "times_redeemed": 0, "customer": {"id": "cus_1Only"},
            "coupon": {"id": "spring", "valid": false}});
        let offer = offer_from_wire(&older).unwrap();
        assert_eq!(
            (offer.active, offer.coupon.valid, offer.coupon.applies_to_products),
            (false, false, None)
        );
        assert_eq!(offer.customer.as_deref(), Some("cus_1Only"));
        let unexpanded = json!({"id": "promo_1C", "code": "X", "active": true,
            "promotion": {"type": "coupon", "coupon": "spring"}});
        assert_eq!(
            offer_from_wire(&unexpanded).unwrap_err(),
            "promotion code promo_1C without its coupon expanded"
        );
        assert!(offer_from_wire(&json!({"id": "coupon_1"})).is_err());
    }
}
