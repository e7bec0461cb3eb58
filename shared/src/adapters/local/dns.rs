use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::persisted::Persisted;
use crate::clock::Clock;
use crate::ports::{AliasTarget, ChangeStatus, DnsError, DnsPublisher, Throttled};

/// Route 53 accepts five ChangeResourceRecordSets requests a second per
/// account, and throttles the rest.
pub const ROUTE53_CHANGES_PER_SECOND: f64 = 5.0;

/// Overrides [`ROUTE53_CHANGES_PER_SECOND`] for a local run.
pub const ROUTE53_CHANGES_PER_SECOND_VAR: &str = "ROUTE53_CHANGES_PER_SECOND";

/// The local zone's change rate: [`ROUTE53_CHANGES_PER_SECOND_VAR`], else AWS's.
pub fn dns_change_rate(env: &dyn crate::config::Lookup) -> Result<f64, crate::config::ConfigError> {
    match env.get(ROUTE53_CHANGES_PER_SECOND_VAR) {
        None => Ok(ROUTE53_CHANGES_PER_SECOND),
        Some(raw) => {
            raw.trim().parse::<f64>().ok().filter(|rate| rate.is_finite() && *rate > 0.0).ok_or_else(|| {
                crate::config::ConfigError::Invalid {
                    var: ROUTE53_CHANGES_PER_SECOND_VAR,
                    reason: format!("expected changes a second above 0, got `{}`", raw.trim()),
                }
            })
        }
    }
}

/// A token bucket over real time: `per_second` changes, bursts of up to
/// `per_second` (at least one).
struct ChangeRate {
    per_second: f64,
    bucket: Mutex<(f64, Instant)>,
}

impl ChangeRate {
    fn new(per_second: f64) -> Self {
        ChangeRate { per_second, bucket: Mutex::new((per_second.max(1.0), Instant::now())) }
    }

    /// Takes a change's token, or says Route 53 would throttle it.
    fn take(&self) -> Result<(), DnsError> {
        let mut bucket = self.bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, at) = *bucket;
        let now = Instant::now();
        let tokens =
            (tokens + now.duration_since(at).as_secs_f64() * self.per_second).min(self.per_second.max(1.0));
        if tokens < 1.0 {
            *bucket = (tokens, now);
            return Err(DnsError::Unavailable(Box::new(Throttled(
                "Throttling: Rate exceeded (ChangeResourceRecordSets, 5 per second per account)".into(),
            ))));
        }
        *bucket = (tokens - 1.0, now);
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalDnsRecord {
    pub name: String,
    pub record_type: String,
    /// The load balancer the alias points at.
    pub alias_target: String,
    pub change_id: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Zone {
    records: BTreeMap<String, LocalDnsRecord>,
    /// Change id to the time it was submitted (ms).
    changes: BTreeMap<String, i64>,
    next_change: u64,
}

/// A Route 53 hosted zone on a laptop; changes are INSYNC `propagation` after
/// they are made.
pub struct LocalDns {
    zone: Persisted<Zone>,
    clock: Arc<dyn Clock>,
    propagation: Duration,
    rate: Option<ChangeRate>,
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn unavailable(error: std::io::Error) -> DnsError {
    DnsError::Unavailable(error.into())
}

impl LocalDns {
    pub fn open(dir: Option<&Path>, clock: Arc<dyn Clock>, propagation: Duration) -> std::io::Result<Self> {
        Ok(LocalDns { zone: Persisted::open(dir, "dns.json")?, clock, propagation, rate: None })
    }

    /// Changes throttled beyond `per_second` of real time, as Route 53
    /// throttles them ([`ROUTE53_CHANGES_PER_SECOND`]; a local run with
    /// scaled waits scales this rate by the same factor, so bursts meet the
    /// wall as they would in AWS). `None`: unlimited.
    pub fn with_change_rate(mut self, per_second: Option<f64>) -> Self {
        self.rate = per_second.filter(|rate| rate.is_finite() && *rate > 0.0).map(ChangeRate::new);
        self
    }

    fn take_change(&self) -> Result<(), DnsError> {
        self.rate.as_ref().map_or(Ok(()), ChangeRate::take)
    }

    pub fn records(&self) -> Vec<LocalDnsRecord> {
        self.zone.read(|z| z.records.values().cloned().collect())
    }

    fn submit(&self, zone: &mut Zone) -> String {
        zone.next_change += 1;
        let id = format!("C{:08}LOCAL", zone.next_change);
        zone.changes.insert(id.clone(), self.clock.now_millis());
        id
    }
}

#[async_trait]
impl DnsPublisher for LocalDns {
    async fn upsert_alias(&self, name: &str, target: &AliasTarget) -> Result<String, DnsError> {
        self.take_change()?;
        let name = normalise(name);
        self.zone
            .update(|z| {
                let change_id = self.submit(z);
                z.records.insert(
                    name.clone(),
                    LocalDnsRecord {
                        name,
                        record_type: "A".into(),
                        alias_target: target.dns_name.clone(),
                        change_id: change_id.clone(),
                    },
                );
                change_id
            })
            .map_err(unavailable)
    }

    async fn change_status(&self, change_id: &str) -> Result<ChangeStatus, DnsError> {
        let now = self.clock.now_millis();
        let propagation = i64::try_from(self.propagation.as_millis()).unwrap_or(i64::MAX);
        match self.zone.read(|z| z.changes.get(change_id).copied()) {
            None => Err(DnsError::Rejected(format!("no such change {change_id}"))),
            Some(at) if now - at >= propagation => Ok(ChangeStatus::Insync),
            Some(_) => Ok(ChangeStatus::Pending),
        }
    }

    async fn delete_alias(&self, name: &str) -> Result<(), DnsError> {
        self.take_change()?;
        let name = normalise(name);
        self.zone
            .update(|z| {
                if z.records.remove(&name).is_some() {
                    self.submit(z);
                }
            })
            .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;

    #[tokio::test]
    async fn changes_beyond_the_rate_are_throttled_as_route53_throttles_them_and_pass_once_it_refills() {
        let clock: Arc<dyn Clock> = Arc::new(FixedClock(1_763_800_000));
        let dns = LocalDns::open(None, clock, Duration::ZERO).unwrap().with_change_rate(Some(2.0));
        let alb = AliasTarget { dns_name: "alb-0.local".into(), hosted_zone_id: "ZLOCAL".into() };
        dns.upsert_alias("a.apps.example.com", &alb).await.unwrap();
        dns.upsert_alias("b.apps.example.com", &alb).await.unwrap();
        let error = dns.upsert_alias("c.apps.example.com", &alb).await.unwrap_err();
        assert!(crate::ports::is_throttled(&error), "{error:?}");
        assert!(dns.delete_alias("a.apps.example.com").await.is_err_and(|e| crate::ports::is_throttled(&e)));
        assert_eq!(dns.records().len(), 2, "a throttled change changes nothing");
        tokio::time::sleep(Duration::from_millis(600)).await;
        dns.upsert_alias("c.apps.example.com", &alb).await.unwrap();
        let records = dns.records();
        let c = records.iter().find(|r| r.name == "c.apps.example.com").expect("c's record");
        assert_eq!(c.alias_target, "alb-0.local", "the record points where it was told");
    }

    #[test]
    fn the_rate_is_aws_unless_set() {
        let unset = |_: &str| None;
        assert_eq!(dns_change_rate(&unset).unwrap(), ROUTE53_CHANGES_PER_SECOND);
        let set = |_: &str| Some("50".to_owned());
        assert_eq!(dns_change_rate(&set).unwrap(), 50.0);
        for bad in ["0", "-1", "fast", "inf"] {
            let env = move |_: &str| Some(bad.to_owned());
            assert!(dns_change_rate(&env).is_err(), "{bad}");
        }
    }
}
