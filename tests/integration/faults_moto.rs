//! Every AWS adapter call provisioning makes, through the fault proxy in
//! front of moto's server: most faults are "the effect happened, the caller
//! was told 500" (and the SDK retries some of those itself), the rest
//! throttling before the effect and stalls past the client's timeout. Each
//! call is repeated until it reports success, as the state machine would;
//! then moto is read back without the proxy and must hold exactly one of
//! what was made.

use std::time::Duration;

use aws_sdk_ecs::types::TaskDefinitionStatus;
use aws_sdk_elasticloadbalancingv2::types::Rule;
use integration_tests::{
    emulator, faulty_moto, lookup, moto_config, moto_models, provisioning_record, unique_checkout,
    unique_name, until_ok,
};
use tenancy::adapters::aws::launcher::TenantNames;
use tenancy::adapters::aws::{DynamoTenantStore, EcsTenantLauncher, LauncherConfig, Route53Dns, SesMailer};
use tenancy::adapters::faults::{FaultMix, FaultPlan};
use tenancy::domain::{Subdomain, TenantId, TenantStatus};
use tenancy::ports::{
    DnsError, DnsPublisher, Inserted, LaunchSpec, LauncherError, Mail, MailError, Mailer, StoreError,
    TenantLauncher, TenantStore,
};

const IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tenant-app:1.4.2";
/// The SDK's attempt timeout behind the proxy; stalls last 1.5 times it.
const ATTEMPT: Duration = Duration::from_millis(800);

/// Mostly errors after the effect, some before, a few stalls.
fn plan(rate: f64, seed: u64) -> FaultPlan {
    let mix = FaultMix { before: 2, after: 6, timeout: 1 };
    FaultPlan::new(rate, seed).and_then(|p| p.with_mix(mix)).expect("a valid plan")
}

fn launcher_transient(error: &LauncherError) -> bool {
    matches!(error, LauncherError::Unavailable(_))
}

fn dns_transient(error: &DnsError) -> bool {
    matches!(error, DnsError::Unavailable(_))
}

fn store_transient(error: &StoreError) -> bool {
    matches!(error, StoreError::Unavailable(_))
}

/// Clients straight to moto, for reading back what the adapters made.
struct Truth {
    ecs: aws_sdk_ecs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
}

impl Truth {
    async fn new() -> Truth {
        let sdk = moto_config().await;
        Truth { ecs: aws_sdk_ecs::Client::new(&sdk), elb: aws_sdk_elasticloadbalancingv2::Client::new(&sdk) }
    }

    async fn rules_for(&self, listener: &str, host: &str) -> Vec<Rule> {
        let rules = self.elb.describe_rules().listener_arn(listener).send().await.unwrap();
        rules
            .rules()
            .iter()
            .filter(|rule| {
                rule.conditions().iter().any(|c| {
                    let config = c.host_header_config().map(|h| h.values()).unwrap_or_default();
                    config.iter().chain(c.values()).any(|v| v == host)
                })
            })
            .cloned()
            .collect()
    }

    async fn target_groups(&self, name: &str) -> usize {
        match self.elb.describe_target_groups().names(name).send().await {
            Ok(found) => found.target_groups().len(),
            Err(error)
                if error.as_service_error().is_some_and(|e| e.is_target_group_not_found_exception()) =>
            {
                0
            }
            Err(error) => panic!("{error:?}"),
        }
    }

    async fn active_services(&self, cluster: &str, name: &str) -> Vec<aws_sdk_ecs::types::Service> {
        let described = self.ecs.describe_services().cluster(cluster).services(name).send().await.unwrap();
        described.services().iter().filter(|s| s.status() == Some("ACTIVE")).cloned().collect()
    }

    async fn active_revisions(&self, family: &str) -> usize {
        let listed = self
            .ecs
            .list_task_definitions()
            .family_prefix(family)
            .status(TaskDefinitionStatus::Active)
            .send()
            .await
            .unwrap();
        listed.task_definition_arns().len()
    }
}

#[tokio::test]
async fn launch_health_scale_and_remove_under_faults_make_and_remove_exactly_one_of_each() {
    let resources = emulator().await;
    let truth = Truth::new().await;
    for seed in [1, 2] {
        let (proxy, sdk) = faulty_moto(plan(0.4, seed), ATTEMPT).await;
        let config = LauncherConfig::from_lookup(&lookup(&resources.environment(IMAGE))).unwrap();
        let launcher = EcsTenantLauncher::new(
            aws_sdk_ecs::Client::new(&sdk),
            aws_sdk_elasticloadbalancingv2::Client::new(&sdk),
            config,
        );
        let tenant = TenantId::for_checkout(&unique_checkout("faultlaunch"));
        let host = format!("{}.{}", unique_name("faults"), resources.domain);
        let spec = LaunchSpec {
            tenant: tenant.clone(),
            host: host.clone(),
            environment: [("TIER".to_owned(), "2".to_owned())].into(),
            desired_count: 1,
        };
        let names = TenantNames::of(&tenant);

        let (launched, _) =
            until_ok("launch", launcher_transient, async || launcher.launch(&spec).await).await;
        let services = truth.active_services(&resources.cluster_arn, &names.service).await;
        assert_eq!(services.len(), 1, "seed {seed}: {services:?}");
        assert_eq!(services[0].service_arn(), Some(launched.service_arn.as_str()));
        assert_eq!(services[0].desired_count(), 1);
        assert_eq!(truth.target_groups(&names.target_group).await, 1, "seed {seed}");
        let rules = truth.rules_for(&resources.listener_arn, &host).await;
        assert_eq!(rules.len(), 1, "seed {seed}: {rules:?}");
        assert_eq!(rules[0].rule_arn(), Some(launched.listener_rule_arn.as_str()));
        // A revision registered by an attempt whose answer was lost is a
        // second revision of the same definition: ECS has no idempotency
        // token for RegisterTaskDefinition. The service runs the latest.
        let revisions = truth.active_revisions(&names.family).await;
        assert!((1..=3).contains(&revisions), "seed {seed}: {revisions} revisions");

        until_ok("health", launcher_transient, async || launcher.health(&tenant).await).await;
        until_ok("scale", launcher_transient, async || launcher.scale(&tenant, 0).await).await;
        let services = truth.active_services(&resources.cluster_arn, &names.service).await;
        assert_eq!(services.len(), 1);
        assert_eq!(services[0].desired_count(), 0, "seed {seed}");

        until_ok("remove", launcher_transient, async || launcher.remove(&tenant).await).await;
        assert!(truth.active_services(&resources.cluster_arn, &names.service).await.is_empty());
        assert_eq!(truth.target_groups(&names.target_group).await, 0, "seed {seed}");
        assert!(truth.rules_for(&resources.listener_arn, &host).await.is_empty(), "seed {seed}");
        assert_eq!(truth.active_revisions(&names.family).await, 0, "seed {seed}");

        let report = proxy.report();
        assert!(report.total().after > 0, "seed {seed}: no error after an effect: {report:?}");
        eprintln!("faults_moto launcher seed {seed}: {:?}", report.total());
    }
}

#[tokio::test]
async fn dns_upsert_status_and_delete_under_faults_leave_one_record_then_none() {
    let resources = emulator().await;
    let direct = aws_sdk_route53::Client::new(&moto_config().await);
    for seed in [3, 4, 5] {
        let (proxy, sdk) = faulty_moto(plan(0.5, seed), ATTEMPT).await;
        let dns = Route53Dns::from_lookup(
            aws_sdk_route53::Client::new(&sdk),
            &lookup(&resources.environment(IMAGE)),
        )
        .unwrap();
        let name = format!("{}.{}", unique_name("faultdns"), resources.domain);
        let records = async || {
            let listed =
                direct.list_resource_record_sets().hosted_zone_id(&resources.hosted_zone_id).send().await;
            let wanted = format!("{name}.");
            listed.unwrap().resource_record_sets().iter().filter(|r| r.name() == wanted).count()
        };

        let (change, _) = until_ok("upsert", dns_transient, async || {
            dns.upsert_alias(&name, &resources.load_balancer()).await
        })
        .await;
        assert_eq!(records().await, 1, "seed {seed}");
        until_ok("status", dns_transient, async || dns.change_status(&change).await).await;
        until_ok("delete", dns_transient, async || dns.delete_alias(&name).await).await;
        assert_eq!(records().await, 0, "seed {seed}");
        assert!(proxy.report().total().injected() > 0);
    }
}

#[tokio::test]
async fn a_mail_under_faults_is_sent_at_least_once_and_again_only_for_a_lost_answer() {
    let resources = emulator().await;
    for seed in [6, 7, 8] {
        let (proxy, sdk) = faulty_moto(plan(0.5, seed), ATTEMPT).await;
        let mailer =
            SesMailer::from_lookup(aws_sdk_sesv2::Client::new(&sdk), &lookup(&resources.environment(IMAGE)))
                .unwrap();
        let mail = Mail {
            to: tenancy::domain::EmailAddress::parse("dana@acme.example").unwrap(),
            subject: unique_name("faultmail"),
            text: "Your site is ready.".into(),
        };
        until_ok(
            "send",
            |e: &MailError| matches!(e, MailError::Unavailable(_)),
            async || mailer.send(&mail).await,
        )
        .await;
        let sent =
            moto_models("ses", "Message").await.into_iter().filter(|m| m["subject"] == mail.subject).count();
        // SES takes no idempotency key: each answer lost after the send
        // (500 after the effect, or a stall after it) may send once more.
        let counts = proxy.report().ports.get("ses.SendEmail").cloned().unwrap_or_default();
        let lost = counts.after + counts.timeout_with_effect;
        assert!(sent >= 1 && sent as u64 <= 1 + lost, "seed {seed}: {sent} sent, {lost} answers lost");
        eprintln!("faults_moto mail seed {seed}: {sent} sent, {lost} answers lost");
    }
}

#[tokio::test]
async fn record_signup_and_replace_under_faults_write_once() {
    let direct = aws_sdk_dynamodb::Client::new(&moto_config().await);
    let table = unique_name("faulttenants");
    tenancy::adapters::aws::dynamodb::create_table(&direct, &table).await.unwrap();
    let truth = DynamoTenantStore::new(direct, table.clone());
    for seed in [9, 10, 11] {
        let (proxy, sdk) = faulty_moto(plan(0.5, seed), ATTEMPT).await;
        let store = DynamoTenantStore::new(aws_sdk_dynamodb::Client::new(&sdk), table.clone());
        let subdomain_name = unique_name("claim").replace('-', "");
        let subdomain = Subdomain::parse(&subdomain_name).unwrap();
        let record = provisioning_record(&unique_checkout("faultstore"), &subdomain_name);

        // One transaction: a write whose success a fault hid is Existing when retried.
        until_ok("record signup", store_transient, async || {
            store.record_signup(&subdomain, &record, None, 1_763_800_005).await
        })
        .await;
        // The step retried as a whole: the record as it was, nothing written.
        let (again, _) = until_ok("record signup again", store_transient, async || {
            store.record_signup(&subdomain, &record, None, 1_763_800_065).await
        })
        .await;
        assert_eq!(again, Inserted::Existing(Box::new(record.clone())));
        assert_eq!(truth.subdomain_holder(&subdomain).await.unwrap(), Some(record.id.clone()));
        assert_eq!(truth.get_tenant(&record.id).await.unwrap().unwrap().version, 1);

        // As the steps' update does: read, change, write on the version
        // read; a lost race (or a write whose success was hidden) reads again.
        until_ok("mark active", store_transient, async || {
            let current =
                store.get_tenant(&record.id).await?.ok_or(StoreError::Unavailable("gone".into()))?;
            if current.status == TenantStatus::Active {
                return Ok(());
            }
            let mut next = current.next_version(current.updated_at + 1);
            next.status = TenantStatus::Active;
            match store.replace_tenant(&next).await {
                Err(StoreError::VersionConflict { .. }) => Err(StoreError::Unavailable("lost a race".into())),
                other => other,
            }
        })
        .await;
        let stored = truth.get_tenant(&record.id).await.unwrap().unwrap();
        assert_eq!((stored.status, stored.version), (TenantStatus::Active, 2), "seed {seed}: written once");
        assert!(proxy.report().total().injected() > 0);
    }
}
