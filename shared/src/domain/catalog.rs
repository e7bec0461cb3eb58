//! The plan catalog: data (shared/catalog/plans.json), loaded and checked once.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::stripe::StripeMode;

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

/// Stripe price ids for one billing period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodPrice {
    /// Minor units of the catalog currency.
    pub amount: i64,
    pub test: Option<String>,
    pub live: Option<String>,
}

impl PeriodPrice {
    pub fn price_id(&self, mode: StripeMode) -> Option<&str> {
        match mode {
            StripeMode::Test => self.test.as_deref(),
            StripeMode::Live => self.live.as_deref(),
        }
    }
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

    /// The shipped catalog, refused unless it has every price for `mode`:
    /// what every function checks at cold start.
    pub fn for_stage(mode: StripeMode) -> Result<Self, CatalogError> {
        let catalog = Self::embedded()?;
        catalog.require_mode(mode)?;
        Ok(catalog)
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

    /// The plan and billing period a Stripe price id (of either mode) sells.
    pub fn plan_for_price(&self, price_id: &str) -> Option<(Plan, BillingPeriod)> {
        self.plans
            .iter()
            .find_map(|(key, entry)| {
                entry.prices.iter().find_map(|(period, price)| {
                    let matches =
                        price.test.as_deref() == Some(price_id) || price.live.as_deref() == Some(price_id);
                    matches.then(|| (self.plan(key).ok(), *period))
                })
            })
            .and_then(|(plan, period)| plan.map(|plan| (plan, period)))
    }

    /// Refuses a catalog that lacks a price id for `mode` anywhere, naming
    /// every missing one: a stage must never start able to sell nothing, or
    /// sell with the other mode's prices.
    pub fn require_mode(&self, mode: StripeMode) -> Result<(), CatalogError> {
        let missing: Vec<String> = self
            .plans
            .iter()
            .flat_map(|(key, entry)| {
                entry
                    .prices
                    .iter()
                    .filter(|(_, price)| price.price_id(mode).is_none_or(|id| !id.starts_with("price_")))
                    .map(move |(period, _)| format!("{key} {period}"))
            })
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(CatalogError::Invalid(format!("no {mode}-mode Stripe price for: {}", missing.join(", "))))
        }
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
        let zero_tier = r#"{"currency":"cad","plans":{"x":{"name":"X","tier":0,"limits":{},"prices":{"monthly":{"amount":1,"test":null,"live":null}}}}}"#;
        assert!(Catalog::from_json(zero_tier).unwrap_err().to_string().contains("tier 0"));
    }

    #[test]
    fn a_mode_without_prices_is_refused_naming_each_missing_one() {
        let catalog = Catalog::embedded().unwrap();
        assert!(catalog.require_mode(StripeMode::Test).is_ok());
        let error = catalog.require_mode(StripeMode::Live).unwrap_err().to_string();
        assert!(error.contains("no live-mode Stripe price for: basic monthly, basic annual"), "{error}");
        assert!(error.contains("ultimate monthly"), "{error}");
    }

    #[test]
    fn prices_map_back_to_their_plan_and_period() {
        let catalog = Catalog::embedded().unwrap();
        let (plan, period) = catalog.plan_for_price("price_1QUltimateMonthlyCAD").unwrap();
        assert_eq!((plan.key.as_str(), plan.tier, period), ("ultimate", 3, BillingPeriod::Monthly));
        assert!(catalog.plan_for_price("price_unknown").is_none());
    }

    #[test]
    fn billing_period_parses_two_words() {
        assert_eq!(BillingPeriod::parse("annual"), Ok(BillingPeriod::Annual));
        assert_eq!(BillingPeriod::parse("yearly"), Err(InvalidBillingPeriod));
    }
}
