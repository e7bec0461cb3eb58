//! Tenant alias records on Route 53 (moto's server), read back with the SDK.

use aws_sdk_route53::Client;
use aws_sdk_route53::types::{ResourceRecordSet, RrType};
use integration_tests::{emulator, lookup, moto_config, unique_name};
use tenancy::adapters::aws::Route53Dns;
use tenancy::ports::{ChangeStatus, DnsPublisher};
use tenantctl::emulator::EmulatorResources;

async fn fixture() -> (Client, Route53Dns, &'static EmulatorResources) {
    let resources = emulator().await;
    let client = Client::new(&moto_config().await);
    let dns = Route53Dns::from_lookup(client.clone(), &lookup(&resources.environment("app:1"))).unwrap();
    (client, dns, resources)
}

async fn records_named(client: &Client, zone: &str, name: &str) -> Vec<ResourceRecordSet> {
    let listed = client.list_resource_record_sets().hosted_zone_id(zone).send().await.unwrap();
    let wanted = format!("{}.", name.trim_end_matches('.'));
    listed.resource_record_sets().iter().filter(|r| r.name() == wanted).cloned().collect()
}

#[tokio::test]
async fn upserting_twice_leaves_one_alias_to_the_load_balancer() {
    let (client, dns, resources) = fixture().await;
    let name = format!("{}.{}", unique_name("alias"), resources.domain);

    let first = dns.upsert_alias(&name, &resources.load_balancer()).await.unwrap();
    // The same name with a trailing dot and other case is the same record.
    let second =
        dns.upsert_alias(&format!("{}.", name.to_uppercase()), &resources.load_balancer()).await.unwrap();
    assert!(!first.is_empty() && !second.is_empty());
    assert!(!first.starts_with("/change/"), "{first}");
    assert_eq!(dns.change_status(&first).await.unwrap(), ChangeStatus::Insync);

    let records = records_named(&client, &resources.hosted_zone_id, &name).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(record.r#type(), &RrType::A);
    let alias = record.alias_target().expect("an alias record");
    assert_eq!(alias.dns_name().trim_end_matches('.'), resources.alb_dns_name);
    assert_eq!(alias.hosted_zone_id(), resources.alb_hosted_zone_id);
    assert!(alias.evaluate_target_health());
    assert!(record.resource_records().is_empty() && record.ttl().is_none());
}

#[tokio::test]
async fn deleting_twice_removes_the_record_and_leaves_others() {
    let (client, dns, resources) = fixture().await;
    let name = format!("{}.{}", unique_name("gone"), resources.domain);
    let neighbour = format!("{}.{}", unique_name("stays"), resources.domain);
    dns.upsert_alias(&name, &resources.load_balancer()).await.unwrap();
    dns.upsert_alias(&neighbour, &resources.load_balancer()).await.unwrap();

    dns.delete_alias(&name).await.unwrap();
    dns.delete_alias(&format!("{name}.")).await.unwrap();
    assert!(records_named(&client, &resources.hosted_zone_id, &name).await.is_empty());
    assert_eq!(records_named(&client, &resources.hosted_zone_id, &neighbour).await.len(), 1);

    // Never created: nothing to do.
    dns.delete_alias(&format!("{}.{}", unique_name("never"), resources.domain)).await.unwrap();
}
