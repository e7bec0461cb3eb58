//! The tenant's DNS record on Amazon Route 53: an A alias to the load
//! balancer of the pool that routes the tenant.

use async_trait::async_trait;
use aws_sdk_route53::Client;
use aws_sdk_route53::error::SdkError;
use aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsError;
use aws_sdk_route53::operation::list_resource_record_sets::ListResourceRecordSetsError;
use aws_sdk_route53::types::{AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecordSet, RrType};

use super::error::{Fault, call_failed, classify, summary};
use crate::config::{ConfigError, Lookup, required};
use crate::ports::{ChangeStatus, DnsError, DnsPublisher};

/// The hosted zone of the tenants' domain (`Z…`, with or without `/hostedzone/`).
pub const HOSTED_ZONE_ID: &str = "HOSTED_ZONE_ID";

/// DNS on Route 53: alias records `{subdomain}.{domain}` → the tenant's
/// load balancer.
#[derive(Debug, Clone)]
pub struct Route53Dns {
    client: Client,
    hosted_zone_id: String,
}

/// `Acme.Example.com` and `acme.example.com.` are the same name: lower case,
/// one trailing dot, as Route 53 answers them.
pub fn normalize_name(name: &str) -> String {
    let trimmed = name.trim().trim_end_matches('.').to_ascii_lowercase();
    format!("{trimmed}.")
}

fn zone_id(raw: &str) -> String {
    let raw = raw.trim();
    raw.strip_prefix("/hostedzone/").or_else(|| raw.strip_prefix("hostedzone/")).unwrap_or(raw).to_owned()
}

fn change_id(raw: &str) -> &str {
    raw.strip_prefix("/change/").or_else(|| raw.strip_prefix("change/")).unwrap_or(raw)
}

fn check_zone_id(var: &'static str, raw: &str) -> Result<String, ConfigError> {
    let id = zone_id(raw);
    if !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        Err(ConfigError::Invalid {
            var,
            reason: "expected a hosted zone id such as Z0123456789ABCDEFGHIJ".into(),
        })
    }
}

/// Every record set of the zone. Route 53 pages by the next record's name
/// and type, not a token.
pub async fn all_records(
    client: &Client,
    hosted_zone_id: &str,
) -> Result<Vec<ResourceRecordSet>, SdkError<ListResourceRecordSetsError>> {
    let mut records = Vec::new();
    let mut next: Option<(String, RrType)> = None;
    loop {
        let mut request = client.list_resource_record_sets().hosted_zone_id(hosted_zone_id);
        if let Some((name, kind)) = next.take() {
            request = request.start_record_name(name).start_record_type(kind);
        }
        let page = request.send().await?;
        records.extend(page.resource_record_sets().iter().cloned());
        match (page.is_truncated(), page.next_record_name(), page.next_record_type()) {
            (true, Some(name), Some(kind)) => next = Some((name.to_owned(), kind.clone())),
            _ => return Ok(records),
        }
    }
}

/// Deletes the A record `name` from the zone, if it is there: what removing
/// an orphan record needs.
pub async fn delete_a_record(client: Client, hosted_zone_id: &str, name: &str) -> Result<(), DnsError> {
    Route53Dns::new(client, hosted_zone_id).delete_alias(name).await
}

impl Route53Dns {
    pub fn new(client: Client, hosted_zone_id: impl Into<String>) -> Self {
        Route53Dns { client, hosted_zone_id: zone_id(&hosted_zone_id.into()) }
    }

    pub fn from_lookup(client: Client, env: &dyn Lookup) -> Result<Self, ConfigError> {
        let zone = check_zone_id(HOSTED_ZONE_ID, &required(env, HOSTED_ZONE_ID)?)?;
        Ok(Route53Dns::new(client, zone))
    }

    pub fn hosted_zone_id(&self) -> &str {
        &self.hosted_zone_id
    }

    /// The A record named `name` as Route 53 holds it, if there is one.
    async fn find_a_record(&self, name: &str) -> Result<Option<ResourceRecordSet>, DnsError> {
        let output = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(&self.hosted_zone_id)
            .start_record_name(name)
            .start_record_type(RrType::A)
            .max_items(1)
            .send()
            .await
            .map_err(|error| match classify(&error) {
                Fault::Refused => DnsError::Rejected(summary(&error)),
                _ => DnsError::Unavailable(call_failed("Route 53 ListResourceRecordSets", error)),
            })?;
        Ok(output
            .resource_record_sets
            .into_iter()
            .find(|set| normalize_name(set.name()) == name && *set.r#type() == RrType::A))
    }

    async fn change(&self, action: ChangeAction, record: ResourceRecordSet) -> Result<String, ChangeFailure> {
        let change = Change::builder()
            .action(action)
            .resource_record_set(record)
            .build()
            .map_err(|e| ChangeFailure::Other(DnsError::Rejected(format!("building the change: {e}"))))?;
        let batch = ChangeBatch::builder()
            .comment("tenancy: tenant alias record")
            .changes(change)
            .build()
            .map_err(|e| ChangeFailure::Other(DnsError::Rejected(format!("building the change: {e}"))))?;
        let output = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(&self.hosted_zone_id)
            .change_batch(batch)
            .send()
            .await
            .map_err(|error| match (&error, classify(&error)) {
                (SdkError::ServiceError(context), _)
                    if matches!(context.err(), ChangeResourceRecordSetsError::InvalidChangeBatch(_)) =>
                {
                    ChangeFailure::InvalidBatch(summary(&error))
                }
                (_, Fault::Refused) => ChangeFailure::Other(DnsError::Rejected(summary(&error))),
                _ => ChangeFailure::Other(DnsError::Unavailable(call_failed(
                    "Route 53 ChangeResourceRecordSets",
                    error,
                ))),
            })?;
        let id = output.change_info().map(|info| change_id(info.id()).to_owned()).unwrap_or_default();
        Ok(id)
    }
}

enum ChangeFailure {
    /// The batch does not fit what the zone holds (e.g. the record to delete is gone).
    InvalidBatch(String),
    Other(DnsError),
}

#[async_trait]
impl DnsPublisher for Route53Dns {
    async fn upsert_alias(&self, name: &str, target: &crate::ports::AliasTarget) -> Result<String, DnsError> {
        let name = normalize_name(name);
        if name == "." {
            return Err(DnsError::Rejected("empty record name".into()));
        }
        let target = AliasTarget::builder()
            .hosted_zone_id(zone_id(&target.hosted_zone_id))
            .dns_name(&target.dns_name)
            .evaluate_target_health(true)
            .build()
            .map_err(|e| DnsError::Rejected(format!("building the alias: {e}")))?;
        let record = ResourceRecordSet::builder()
            .name(&name)
            .r#type(RrType::A)
            .alias_target(target)
            .build()
            .map_err(|e| DnsError::Rejected(format!("building the record: {e}")))?;
        match self.change(ChangeAction::Upsert, record).await {
            Ok(id) if !id.is_empty() => Ok(id),
            Ok(_) => Err(DnsError::Unavailable(super::error::unexpected(
                "Route 53 accepted the change without a change id",
            ))),
            Err(ChangeFailure::InvalidBatch(reason)) => Err(DnsError::Rejected(reason)),
            Err(ChangeFailure::Other(error)) => Err(error),
        }
    }

    async fn change_status(&self, change_id_raw: &str) -> Result<ChangeStatus, DnsError> {
        let output =
            self.client.get_change().id(change_id(change_id_raw)).send().await.map_err(
                |error| match classify(&error) {
                    Fault::Refused => DnsError::Rejected(summary(&error)),
                    _ => DnsError::Unavailable(call_failed("Route 53 GetChange", error)),
                },
            )?;
        match output.change_info().map(|info| info.status()) {
            Some(aws_sdk_route53::types::ChangeStatus::Insync) => Ok(ChangeStatus::Insync),
            Some(aws_sdk_route53::types::ChangeStatus::Pending) => Ok(ChangeStatus::Pending),
            Some(other) => Err(DnsError::Rejected(format!("unknown change status {}", other.as_str()))),
            None => {
                Err(DnsError::Unavailable(super::error::unexpected("Route 53 GetChange without a status")))
            }
        }
    }

    async fn delete_alias(&self, name: &str) -> Result<(), DnsError> {
        let name = normalize_name(name);
        // Deleting needs the record's exact current values; a record changed
        // between the read and the delete is read again.
        for _ in 0..3 {
            let Some(record) = self.find_a_record(&name).await? else {
                return Ok(());
            };
            match self.change(ChangeAction::Delete, record).await {
                Ok(_) => return Ok(()),
                Err(ChangeFailure::InvalidBatch(_)) => continue,
                Err(ChangeFailure::Other(error)) => return Err(error),
            }
        }
        match self.find_a_record(&name).await? {
            None => Ok(()),
            Some(_) => {
                Err(DnsError::Rejected(format!("record {name} changed while deleting it, three times")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_are_normalised() {
        assert_eq!(normalize_name("Acme.Example.com"), "acme.example.com.");
        assert_eq!(normalize_name("acme.example.com."), "acme.example.com.");
        assert_eq!(zone_id("/hostedzone/Z123"), "Z123");
        assert_eq!(change_id("/change/C42"), "C42");
        assert_eq!(change_id("C42"), "C42");
    }

    #[test]
    fn configuration_names_each_bad_variable() {
        let client = Client::from_conf(
            aws_sdk_route53::Config::builder()
                .behavior_version(aws_sdk_route53::config::BehaviorVersion::latest())
                .build(),
        );
        let zone = |value: &'static str| move |var: &str| (var == HOSTED_ZONE_ID).then(|| value.to_owned());
        let ok = Route53Dns::from_lookup(client.clone(), &zone("/hostedzone/Z0ABC")).unwrap();
        assert_eq!(ok.hosted_zone_id(), "Z0ABC");
        let err = Route53Dns::from_lookup(client.clone(), &|_: &str| None).unwrap_err();
        assert_eq!(err.to_string(), "configuration: HOSTED_ZONE_ID is not set");
        let err = Route53Dns::from_lookup(client, &zone("not a zone")).unwrap_err();
        assert!(err.to_string().starts_with("configuration: HOSTED_ZONE_ID is invalid"), "{err}");
    }
}
