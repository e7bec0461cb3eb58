//! The plan catalog: data (shared/catalog/plans.json), loaded and checked once.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The catalog shipped with the code.
const EMBEDDED: &str = include_str!("../../catalog/plans.json");

/// How often a subscription is billed: a term of 1, 12, 24 or 36 months.
/// Stored and sent by name (`monthly`, `annual`, `biennial`, `triennial`),
/// so records and metadata written before the multi-year terms read as
/// they were written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BillingPeriod {
    Monthly,
    Annual,
    /// Every two years.
    Biennial,
    /// Every three years.
    Triennial,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("billing must be `monthly`, `annual`, `biennial` or `triennial`")]
pub struct InvalidBillingPeriod;

/// A Stripe price's `recurring.interval` unit, as the catalog sells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntervalUnit {
    Month,
    Year,
}

impl IntervalUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            IntervalUnit::Month => "month",
            IntervalUnit::Year => "year",
        }
    }
}

/// A recurring price's `interval` and `interval_count`, as Stripe takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StripeInterval {
    pub unit: IntervalUnit,
    pub count: u32,
}

impl BillingPeriod {
    /// Every term, shortest first.
    pub const ALL: [BillingPeriod; 4] =
        [BillingPeriod::Monthly, BillingPeriod::Annual, BillingPeriod::Biennial, BillingPeriod::Triennial];

    /// Exactly one of the four names (surrounding blanks aside); nothing
    /// else, not even another case.
    pub fn parse(raw: &str) -> Result<Self, InvalidBillingPeriod> {
        match raw.trim() {
            "monthly" => Ok(BillingPeriod::Monthly),
            "annual" => Ok(BillingPeriod::Annual),
            "biennial" => Ok(BillingPeriod::Biennial),
            "triennial" => Ok(BillingPeriod::Triennial),
            _ => Err(InvalidBillingPeriod),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BillingPeriod::Monthly => "monthly",
            BillingPeriod::Annual => "annual",
            BillingPeriod::Biennial => "biennial",
            BillingPeriod::Triennial => "triennial",
        }
    }

    /// How many months one term lasts.
    pub fn months(self) -> u32 {
        match self {
            BillingPeriod::Monthly => 1,
            BillingPeriod::Annual => 12,
            BillingPeriod::Biennial => 24,
            BillingPeriod::Triennial => 36,
        }
    }

    /// The interval `tenantctl stripe sync-catalog` gives the term's price:
    /// a month, or 1, 2 or 3 years (Stripe bills at most every three years).
    pub fn stripe_interval(self) -> StripeInterval {
        match self {
            BillingPeriod::Monthly => StripeInterval { unit: IntervalUnit::Month, count: 1 },
            BillingPeriod::Annual => StripeInterval { unit: IntervalUnit::Year, count: 1 },
            BillingPeriod::Biennial => StripeInterval { unit: IntervalUnit::Year, count: 2 },
            BillingPeriod::Triennial => StripeInterval { unit: IntervalUnit::Year, count: 3 },
        }
    }

    /// The term a Stripe price's `recurring` bills, however it is written
    /// (`year` × 2 and `month` × 24 are both two years); `None` for any
    /// other interval (days, weeks, 18 months…).
    pub fn from_stripe_interval(interval: &str, count: u64) -> Option<Self> {
        let months = match interval {
            "month" => count,
            "year" => count.checked_mul(12)?,
            _ => return None,
        };
        BillingPeriod::ALL.into_iter().find(|period| u64::from(period.months()) == months)
    }

    /// How a person reads it after "billed": `monthly`, `annually`,
    /// `every two years`, `every three years`.
    pub fn billed(self) -> &'static str {
        match self {
            BillingPeriod::Monthly => "monthly",
            BillingPeriod::Annual => "annually",
            BillingPeriod::Biennial => "every two years",
            BillingPeriod::Triennial => "every three years",
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
    /// Days free before the first charge (0: no trial); one trial per customer.
    #[serde(default)]
    trial_days: u32,
    /// The trial asks for no card; what Stripe does when it ends without one.
    #[serde(default)]
    trial_without_card: Option<super::trial::TrialWithoutCard>,
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
            if plan.trial_days > super::trial::MAX_TRIAL_DAYS {
                return Err(CatalogError::Invalid(format!(
                    "plan `{key}` has {} trial days; Stripe allows at most {}",
                    plan.trial_days,
                    super::trial::MAX_TRIAL_DAYS
                )));
            }
            if plan.trial_without_card.is_some() && plan.trial_days == 0 {
                return Err(CatalogError::Invalid(format!(
                    "plan `{key}` sets trial_without_card but has no trial_days"
                )));
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

    /// The plan's free trial in days, if it has one.
    pub fn trial_days(&self, plan: &PlanKey) -> Option<u32> {
        self.plans.get(plan.as_str()).map(|entry| entry.trial_days).filter(|days| *days > 0)
    }

    /// Whether the plan's trial is taken without a card, and what ends it then.
    pub fn trial_without_card(&self, plan: &PlanKey) -> Option<super::trial::TrialWithoutCard> {
        self.plans
            .get(plan.as_str())
            .filter(|entry| entry.trial_days > 0)
            .and_then(|entry| entry.trial_without_card)
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
    fn a_trial_may_be_taken_without_a_card_and_only_a_trial() {
        let plan = |trial: &str| {
            format!(
                r#"{{"currency":"cad","plans":{{"x":{{"name":"X","tier":1,"limits":{{}},{trial}"prices":{{"monthly":{{"lookup_key":"x_monthly","amount":1}}}}}}}}}}"#
            )
        };
        let catalog = Catalog::from_json(&plan(r#""trial_days":14,"trial_without_card":"cancel","#)).unwrap();
        let key = catalog.plan("x").unwrap().key;
        assert_eq!(catalog.trial_without_card(&key), Some(super::super::trial::TrialWithoutCard::Cancel));
        let error = Catalog::from_json(&plan(r#""trial_without_card":"pause","#)).unwrap_err().to_string();
        assert!(error.contains("no trial_days"), "{error}");
        assert!(Catalog::from_json(&plan(r#""trial_days":14,"trial_without_card":"later","#)).is_err());
        // The shipped Basic trial takes a card (Checkout's default).
        let shipped = Catalog::embedded().unwrap();
        assert_eq!(shipped.trial_without_card(&shipped.plan("basic").unwrap().key), None);
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
                "basic_biennial",
                "basic_triennial",
                "pro_monthly",
                "pro_annual",
                "pro_biennial",
                "pro_triennial",
                "ultimate_monthly",
                "ultimate_annual",
                "ultimate_biennial",
                "ultimate_triennial"
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
    fn billing_period_parses_four_words_and_nothing_else() {
        assert_eq!(BillingPeriod::parse("annual"), Ok(BillingPeriod::Annual));
        assert_eq!(BillingPeriod::parse(" biennial "), Ok(BillingPeriod::Biennial));
        assert_eq!(BillingPeriod::parse("triennial"), Ok(BillingPeriod::Triennial));
        for refused in ["yearly", "Annual", "2year", "two-year", "biennially", "triannual", ""] {
            assert_eq!(BillingPeriod::parse(refused), Err(InvalidBillingPeriod), "{refused}");
        }
    }

    #[test]
    fn records_written_before_the_multi_year_terms_still_read() {
        let old: Vec<BillingPeriod> = serde_json::from_str(r#"["monthly","annual"]"#).unwrap();
        assert_eq!(old, [BillingPeriod::Monthly, BillingPeriod::Annual]);
        assert_eq!(serde_json::to_string(&BillingPeriod::Biennial).unwrap(), r#""biennial""#);
        assert!(serde_json::from_str::<BillingPeriod>(r#""Biennial""#).is_err());
    }

    #[test]
    fn each_term_has_its_stripe_interval_and_every_spelling_of_it_maps_back() {
        let written: Vec<(&str, u32)> = BillingPeriod::ALL
            .iter()
            .map(|p| (p.stripe_interval().unit.as_str(), p.stripe_interval().count))
            .collect();
        assert_eq!(written, [("month", 1), ("year", 1), ("year", 2), ("year", 3)]);
        assert_eq!(BillingPeriod::from_stripe_interval("month", 24), Some(BillingPeriod::Biennial));
        assert_eq!(BillingPeriod::from_stripe_interval("month", 12), Some(BillingPeriod::Annual));
        assert_eq!(BillingPeriod::from_stripe_interval("month", 36), Some(BillingPeriod::Triennial));
        assert_eq!(BillingPeriod::from_stripe_interval("month", 18), None);
        assert_eq!(BillingPeriod::from_stripe_interval("week", 52), None);
        assert_eq!(BillingPeriod::from_stripe_interval("year", u64::MAX), None);
    }

    #[test]
    fn the_shipped_catalog_sells_every_term_of_every_plan() {
        let catalog = Catalog::embedded().unwrap();
        for (plan, prices) in catalog.priced_plans() {
            let periods: Vec<BillingPeriod> = prices.iter().map(|(period, _)| *period).collect();
            assert_eq!(periods, BillingPeriod::ALL, "{}", plan.key);
        }
        let (plan, period) = catalog.plan_for_lookup_key("pro_biennial").unwrap();
        assert_eq!((plan.key.as_str(), period), ("pro", BillingPeriod::Biennial));
        let (plan, period) = catalog.plan_for_price("price_1QUltimateTriennialCAD").unwrap();
        assert_eq!((plan.key.as_str(), period), ("ultimate", BillingPeriod::Triennial));
    }

    proptest::proptest! {
        #[test]
        fn a_term_reads_back_from_its_name_and_from_its_interval(index in 0usize..4) {
            let period = BillingPeriod::ALL[index];
            proptest::prop_assert_eq!(BillingPeriod::parse(period.as_str()), Ok(period));
            let interval = period.stripe_interval();
            proptest::prop_assert_eq!(
                BillingPeriod::from_stripe_interval(interval.unit.as_str(), u64::from(interval.count)),
                Some(period)
            );
            proptest::prop_assert_eq!(
                BillingPeriod::from_stripe_interval("month", u64::from(period.months())),
                Some(period)
            );
        }

        #[test]
        fn only_the_four_names_parse(raw in "\\PC{0,12}") {
            let known = ["monthly", "annual", "biennial", "triennial"].contains(&raw.trim());
            proptest::prop_assert_eq!(BillingPeriod::parse(&raw).is_ok(), known);
        }

        #[test]
        fn only_1_12_24_and_36_months_are_terms(unit in proptest::prop_oneof![
            proptest::strategy::Just("day"), proptest::strategy::Just("week"),
            proptest::strategy::Just("month"), proptest::strategy::Just("year")
        ], count in 0u64..100) {
            let months = match unit { "month" => Some(count), "year" => Some(count * 12), _ => None };
            let expected = months.filter(|m| [1, 12, 24, 36].contains(m));
            proptest::prop_assert_eq!(
                BillingPeriod::from_stripe_interval(unit, count).map(|p| u64::from(p.months())),
                expected
            );
        }
    }
}
