//! The plan catalog: data (shared/catalog/plans.json), loaded and checked once.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The catalog shipped with the code.
const EMBEDDED: &str = include_str!("../../catalog/plans.json");

/// How often a subscription is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BillingPeriod {
    Monthly,
    Annual,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("billing must be `monthly` or `annual`")]
pub struct InvalidBillingPeriod;

impl BillingPeriod {
    pub fn parse(raw: &str) -> Result<Self, InvalidBillingPeriod> {
        match raw.trim() {
            "monthly" => Ok(BillingPeriod::Monthly),
            "annual" => Ok(BillingPeriod::Annual),
            _ => Err(InvalidBillingPeriod),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BillingPeriod::Monthly => "monthly",
            BillingPeriod::Annual => "annual",
        }
    }
}

impl fmt::Display for BillingPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plan's key in the catalog (`basic`, `pro`, …); only the catalog makes one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PlanKey(String);

impl PlanKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PlanKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Stripe price's lookup key (`pro_monthly`): how the checkout finds a
/// price in the stage's own mode, so no price id is copied between modes.
/// Lower-case letters, digits and `_`, at most 200 characters (Stripe's limit).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LookupKey(String);

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("lookup key `{0}` must be 1 to 200 lower-case letters, digits or `_`")]
pub struct InvalidLookupKey(pub String);

impl LookupKey {
    pub fn parse(raw: &str) -> Result<Self, InvalidLookupKey> {
        let well_formed = (1..=200).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if well_formed {
            Ok(LookupKey(raw.to_owned()))
        } else {
            Err(InvalidLookupKey(raw.chars().take(40).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for LookupKey {
    type Error = InvalidLookupKey;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        LookupKey::parse(&value)
    }
}

impl From<LookupKey> for String {
    fn from(value: LookupKey) -> Self {
        value.0
    }
}

impl fmt::Display for LookupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The price of one billing period: what `tenantctl stripe sync-catalog`
/// makes in each mode, and what the checkout finds by `lookup_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodPrice {
    pub lookup_key: LookupKey,
    /// Minor units of the catalog currency.
    pub amount: i64,
    /// The id this price has in the local Stripe stand-in's account and in
    /// the sample events (`events/`), which name prices as Stripe would.
    /// Never sent to Stripe: a deployed stage resolves `lookup_key`.
    #[serde(default)]
    pub local: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanEntry {
    name: String,
    tier: u8,
    limits: BTreeMap<String, u32>,
    prices: BTreeMap<BillingPeriod, PeriodPrice>,
}

/// One plan, as the tenant's app sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub key: PlanKey,
    pub name: String,
    pub tier: u8,
    pub limits: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    currency: String,
    plans: BTreeMap<String, PlanEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("plan catalog is not valid: {0}")]
    Format(#[from] serde_json::Error),
    #[error("plan catalog: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("plan `{0}` is not in the catalog")]
pub struct UnknownPlan(pub String);

/// Plans by key, with their tiers, limits and prices.
#[derive(Debug, Clone)]
pub struct Catalog {
    currency: String,
    plans: BTreeMap<String, PlanEntry>,
}

impl Catalog {
    /// The catalog in shared/catalog/plans.json, checked.
    pub fn embedded() -> Result<Self, CatalogError> {
        Self::from_json(EMBEDDED)
    }

    pub fn from_json(text: &str) -> Result<Self, CatalogError> {
        let file: CatalogFile = serde_json::from_str(text)?;
        if file.currency.len() != 3 || !file.currency.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(CatalogError::Invalid(format!(
                "currency `{}` is not a lower-case ISO code",
                file.currency
            )));
        }
        if file.plans.is_empty() {
            return Err(CatalogError::Invalid("no plans".into()));
        }
        for (key, plan) in &file.plans {
            let key_ok = !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !key_ok {
                return Err(CatalogError::Invalid(format!(
                    "plan key `{key}` must be lower-case letters and digits"
                )));
            }
            if plan.tier == 0 {
                return Err(CatalogError::Invalid(format!("plan `{key}` has tier 0; tiers start at 1")));
            }
            if plan.prices.is_empty() || plan.prices.values().any(|p| p.amount <= 0) {
                return Err(CatalogError::Invalid(format!(
                    "plan `{key}` needs a positive price per billing period"
                )));
            }
        }
        // A lookup key names one price in a Stripe account: two periods
        // sharing one would sell one of them at the other's price.
        let mut seen = std::collections::BTreeSet::new();
        for price in file.plans.values().flat_map(|plan| plan.prices.values()) {
            if !seen.insert(&price.lookup_key) {
                return Err(CatalogError::Invalid(format!(
                    "lookup key `{}` is used by more than one price",
                    price.lookup_key
                )));
            }
        }
        Ok(Catalog { currency: file.currency, plans: file.plans })
    }

    pub fn currency(&self) -> &str {
        &self.currency
    }

    pub fn plan(&self, key: &str) -> Result<Plan, UnknownPlan> {
        let key = key.trim();
        self.plans
            .get(key)
            .map(|entry| Plan {
                key: PlanKey(key.to_owned()),
                name: entry.name.clone(),
                tier: entry.tier,
                limits: entry.limits.clone(),
            })
            .ok_or_else(|| UnknownPlan(key.chars().take(40).collect()))
    }

    pub fn price(&self, plan: &PlanKey, billing: BillingPeriod) -> Option<&PeriodPrice> {
        self.plans.get(plan.as_str()).and_then(|entry| entry.prices.get(&billing))
    }

    /// The plan and billing period a price's lookup key sells.
    pub fn plan_for_lookup_key(&self, lookup_key: &str) -> Option<(Plan, BillingPeriod)> {
        self.find_price(|price| price.lookup_key.as_str() == lookup_key)
    }

    /// The plan and billing period a price id of the local stand-in (and the
    /// sample events) sells; a deployed stage's prices are known by lookup key.
    pub fn plan_for_price(&self, price_id: &str) -> Option<(Plan, BillingPeriod)> {
        self.find_price(|price| price.local.as_deref() == Some(price_id))
    }

    fn find_price(&self, matches: impl Fn(&PeriodPrice) -> bool) -> Option<(Plan, BillingPeriod)> {
        self.plans
            .iter()
            .find_map(|(key, entry)| {
                entry
                    .prices
                    .iter()
                    .find_map(|(period, price)| matches(price).then(|| (self.plan(key).ok(), *period)))
            })
            .and_then(|(plan, period)| plan.map(|plan| (plan, period)))
    }

    /// Every plan's key, name and prices, in key order: what
    /// `tenantctl stripe sync-catalog` makes in Stripe.
    pub fn priced_plans(&self) -> impl Iterator<Item = (Plan, Vec<(BillingPeriod, &PeriodPrice)>)> {
        self.plans.keys().filter_map(|key| {
            let plan = self.plan(key).ok()?;
            let prices = self.plans.get(key)?.prices.iter().map(|(period, price)| (*period, price)).collect();
            Some((plan, prices))
        })
    }

    pub fn plan_keys(&self) -> impl Iterator<Item = &str> {
        self.plans.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_has_the_seed_business_plans() {
        let catalog = Catalog::embedded().unwrap();
        assert_eq!(catalog.currency(), "cad");
        let tiers: Vec<(u8, u32)> = ["basic", "pro", "ultimate"]
            .iter()
            .map(|key| {
                let plan = catalog.plan(key).unwrap();
                (plan.tier, plan.limits["activities"])
            })
            .collect();
        assert_eq!(tiers, [(1, 1), (2, 15), (3, 100)]);
        let pro = catalog.plan("pro").unwrap();
        assert_eq!(catalog.price(&pro.key, BillingPeriod::Annual).unwrap().amount, 30000);
    }

    #[test]
    fn unknown_plans_and_bad_catalogs_are_refused() {
        let catalog = Catalog::embedded().unwrap();
        assert_eq!(
            catalog.plan("platinum").unwrap_err().to_string(),
            "plan `platinum` is not in the catalog"
        );
        assert!(Catalog::from_json(r#"{"currency":"CAD","plans":{}}"#).is_err());
        let zero_tier = r#"{"currency":"cad","plans":{"x":{"name":"X","tier":0,"limits":{},"prices":{"monthly":{"lookup_key":"x_monthly","amount":1}}}}}"#;
        assert!(Catalog::from_json(zero_tier).unwrap_err().to_string().contains("tier 0"));
    }

    #[test]
    fn every_price_has_a_unique_well_formed_lookup_key() {
        let catalog = Catalog::embedded().unwrap();
        let keys: Vec<String> = catalog
            .priced_plans()
            .flat_map(|(_, prices)| prices.into_iter().map(|(_, p)| p.lookup_key.to_string()))
            .collect();
        assert_eq!(
            keys,
            [
                "basic_monthly",
                "basic_annual",
                "pro_monthly",
                "pro_annual",
                "ultimate_monthly",
                "ultimate_annual"
            ]
        );
        let twice = r#"{"currency":"cad","plans":{
            "a":{"name":"A","tier":1,"limits":{},"prices":{"monthly":{"lookup_key":"same","amount":1}}},
            "b":{"name":"B","tier":2,"limits":{},"prices":{"monthly":{"lookup_key":"same","amount":2}}}}}"#;
        let error = Catalog::from_json(twice).unwrap_err().to_string();
        assert!(error.contains("lookup key `same` is used by more than one price"), "{error}");
        let bad = r#"{"currency":"cad","plans":{"a":{"name":"A","tier":1,"limits":{},"prices":{"monthly":{"lookup_key":"Pro Monthly","amount":1}}}}}"#;
        assert!(Catalog::from_json(bad).unwrap_err().to_string().contains("lookup key `Pro Monthly`"));
        let no_key = r#"{"currency":"cad","plans":{"a":{"name":"A","tier":1,"limits":{},"prices":{"monthly":{"amount":1,"test":"price_1"}}}}}"#;
        assert!(
            Catalog::from_json(no_key).is_err(),
            "a price without a lookup key (or with a mode's id) is refused"
        );
    }

    #[test]
    fn prices_map_back_to_their_plan_and_period() {
        let catalog = Catalog::embedded().unwrap();
        let (plan, period) = catalog.plan_for_price("price_1QUltimateMonthlyCAD").unwrap();
        assert_eq!((plan.key.as_str(), plan.tier, period), ("ultimate", 3, BillingPeriod::Monthly));
        assert!(catalog.plan_for_price("price_unknown").is_none());
        let (plan, period) = catalog.plan_for_lookup_key("pro_annual").unwrap();
        assert_eq!((plan.key.as_str(), period), ("pro", BillingPeriod::Annual));
        assert!(catalog.plan_for_lookup_key("pro_weekly").is_none());
    }

    #[test]
    fn billing_period_parses_two_words() {
        assert_eq!(BillingPeriod::parse("annual"), Ok(BillingPeriod::Annual));
        assert_eq!(BillingPeriod::parse("yearly"), Err(InvalidBillingPeriod));
    }
}
