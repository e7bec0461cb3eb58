use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::persisted::Persisted;
use crate::clock::Clock;
use crate::ports::{ChangeStatus, DnsError, DnsPublisher};

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
    alias_target: String,
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn unavailable(error: std::io::Error) -> DnsError {
    DnsError::Unavailable(error.into())
}

impl LocalDns {
    pub fn open(
        dir: Option<&Path>,
        clock: Arc<dyn Clock>,
        propagation: Duration,
        alias_target: &str,
    ) -> std::io::Result<Self> {
        Ok(LocalDns {
            zone: Persisted::open(dir, "dns.json")?,
            clock,
            propagation,
            alias_target: alias_target.into(),
        })
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
    async fn upsert_alias(&self, name: &str) -> Result<String, DnsError> {
        let name = normalise(name);
        self.zone
            .update(|z| {
                let change_id = self.submit(z);
                z.records.insert(
                    name.clone(),
                    LocalDnsRecord {
                        name,
                        record_type: "A".into(),
                        alias_target: self.alias_target.clone(),
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
