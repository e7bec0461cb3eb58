//! `tenantctl local serve --aws-endpoint URL`: the same local stack, but the
//! steps use the AWS adapters against an emulator (moto's server) instead of
//! the local adapters. The state machine still runs in the local interpreter.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tenancy::adapters::aws::sdk::aws_config::SdkConfig;
use tenancy::adapters::aws::sdk::dynamodb::config::retry::{RetryPartition, TokenBucket};
use tenancy::adapters::aws::sdk::{dynamodb, ecs, elbv2, route53, s3, sesv2};
use tenancy::adapters::aws::{
    self as aws, DynamoTenantStore, EcsTenantLauncher, LauncherConfig, Route53Dns, S3ReceivedMail, SesMailer,
    sdk_config,
};
use tenancy::clock::Clock;
use tenancy::config::{self, ConfigError, TenantDomain, TenantSettings};
use tenancy::domain::ReceivedMessageId;
use tenancy::ports::{MailError, ReceivedMail};
use tenancy::steps::WorkflowSteps;

use crate::emulator::{EmulatorNames, EmulatorResources, bootstrap};
use crate::http_client::HttpClient;
use crate::local::{Adapters, Inspect, ReceiptRuleStandIn, StepConfig};

/// What each tenant's task would run; moto never pulls it.
const APP_IMAGE: &str = "public.ecr.aws/nginx/nginx:stable";

/// The emulator the AWS adapters run against.
#[derive(Debug, Clone)]
pub struct Emulator {
    /// moto's server: bootstrapped, read back, and where "Fargate" acts.
    pub endpoint: String,
    /// The adapters' calls go through this URL instead (a fault proxy in
    /// front of `endpoint`); bootstrapping, the emulated platform and the
    /// state views never do, as they are not calls the steps make.
    pub via: Option<String>,
}

impl Emulator {
    pub fn at(endpoint: &str) -> Emulator {
        Emulator { endpoint: endpoint.to_owned(), via: None }
    }
}

/// The SDK retry quota of the steps' clients: 100 sandboxes' worth.
const FLEET_RETRY_QUOTA: usize = 100 * 500;

/// Bootstraps the emulator and builds the AWS adapters against it.
pub async fn adapters(
    emulator: &Emulator,
    config: StepConfig,
    clock: Arc<dyn Clock>,
    portal_base: &str,
    stripe: Arc<tenancy::adapters::local::LocalStripe>,
    balancers: usize,
) -> anyhow::Result<(Adapters, tokio::task::JoinHandle<()>)> {
    let sdk = sdk_config(Some(&emulator.endpoint)).await;
    let names = EmulatorNames::with_prefix("tenancy-local")?.with_balancers(balancers);
    let resources = bootstrap(&sdk, &names).await?;
    let environment = resources.environment(APP_IMAGE);
    let env = |var: &str| environment.get(var).cloned();
    // Tenants live under the emulator's hosted zone.
    let settings = TenantSettings {
        domain: TenantDomain::parse(&resources.domain)
            .map_err(|reason| ConfigError::Invalid { var: config::TENANT_DOMAIN, reason })?,
        ..config.settings
    };
    let steps_sdk = match &emulator.via {
        Some(via) => sdk_config(Some(via)).await,
        None => sdk.clone(),
    };
    // One process runs every execution's steps here, where AWS runs them in
    // as many Lambda sandboxes, each client with its own SDK retry quota
    // (500 tokens). Shared by a burst's executions, one quota runs dry and
    // their calls stop being retried, which no deployed function sees; so
    // the steps' clients share a quota the size of a fleet's.
    let partition = RetryPartition::custom("tenancy-local-steps")
        .token_bucket(TokenBucket::new(FLEET_RETRY_QUOTA))
        .build();
    // Each service's client, from the same configuration, sharing that quota.
    macro_rules! client {
        ($service:ident) => {
            $service::Client::from_conf(
                $service::config::Builder::from(&steps_sdk).retry_partition(partition.clone()).build(),
            )
        };
    }
    let steps = WorkflowSteps {
        store: Arc::new(DynamoTenantStore::from_lookup(client!(dynamodb), &env)?),
        launcher: Arc::new(EcsTenantLauncher::new(
            client!(ecs),
            client!(elbv2),
            LauncherConfig::from_lookup(&env)?,
        )),
        dns: Arc::new(Route53Dns::from_lookup(client!(route53), &env)?),
        mailer: Arc::new(SesMailer::from_lookup(client!(sesv2), &env)?),
        // Stripe is not emulated: portal links point at the local server.
        billing: Arc::new(tenancy::checkout::billing_link::BillingLinks::new(
            portal_base,
            config.password_key.clone(),
            clock.clone(),
        )),
        stripe: stripe.clone(),
        money_back: stripe.clone(),
        clock,
        settings,
        catalog: config.catalog,
        status: tenancy::checkout::status::StatusTokens::new(portal_base, config.password_key.clone()),
        password_key: config.password_key,
    };
    let platform = tokio::spawn(play_container_platform(sdk.clone(), resources.cluster_arn.clone()));
    let capacity = Arc::new(tenancy::adapters::aws::pool::PoolCapacity::from_lookup(client!(elbv2), &env)?);
    // Received messages are kept in the emulator's bucket, as the receipt
    // rule's S3 action keeps them, and SES on the emulator forwards them.
    let inbound = crate::local::InboundParts {
        received: Arc::new(S3ReceiptRule {
            client: aws::s3_client(&sdk),
            reader: aws::received_mail(&sdk, &env)?,
        }),
        mailer: Arc::new(SesMailer::from_lookup(client!(sesv2), &env)?),
    };
    let inspect = Arc::new(EmulatorInspect { sdk, resources, endpoint: emulator.endpoint.clone() });
    Ok((Adapters { steps, inspect, stripe, capacity, inbound }, platform))
}

/// SES receiving's S3 action on the emulator: the message is put where the
/// forwarder's [`S3ReceivedMail`] reads it.
struct S3ReceiptRule {
    client: s3::Client,
    reader: S3ReceivedMail,
}

#[async_trait]
impl ReceiptRuleStandIn for S3ReceiptRule {
    async fn keep(&self, message_id: &ReceivedMessageId, raw: &[u8]) -> Result<(), MailError> {
        self.client
            .put_object()
            .bucket(self.reader.bucket())
            .key(self.reader.key(message_id))
            .body(raw.to_vec().into())
            .send()
            .await
            .map(drop)
            .map_err(|e| MailError::Unavailable(e.into()))
    }

    fn reader(&self) -> &dyn ReceivedMail {
        &self.reader
    }
}

/// How often the emulated platform looks at every service again, in rounds;
/// in between it looks only at services it has not seen start.
const FULL_SWEEP_EVERY: u32 = 25;

/// moto models ECS's API but runs no containers: this plays the part of
/// Fargate starting each service's task and registering its IP with the
/// target group, so the health loop sees what it would see in AWS.
async fn play_container_platform(sdk: SdkConfig, cluster: String) {
    let ecs = ecs::Client::new(&sdk);
    let elb = elbv2::Client::new(&sdk);
    // Services seen running as desired. A service whose desired count
    // later rises is updated by the launcher itself (moto then counts it
    // running), so new services are the ones to watch; every
    // FULL_SWEEP_EVERY rounds all are looked at again.
    let mut started = std::collections::HashSet::new();
    for round in 0u32.. {
        if round % FULL_SWEEP_EVERY == 0 {
            started.clear();
        }
        if let Err(error) = start_pending_tasks(&ecs, &elb, &cluster, &mut started).await {
            tracing::warn!(error = %tenancy::telemetry::error_chain(error.as_ref()), "emulated ECS");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn start_pending_tasks(
    ecs: &ecs::Client,
    elb: &elbv2::Client,
    cluster: &str,
    started: &mut std::collections::HashSet<String>,
) -> Result<(), tenancy::ports::BoxError> {
    let arns = ecs.list_services().cluster(cluster).send().await?.service_arns.unwrap_or_default();
    let unseen: Vec<String> = arns.into_iter().filter(|arn| !started.contains(arn)).collect();
    for chunk in unseen.chunks(10) {
        let described =
            ecs.describe_services().cluster(cluster).set_services(Some(chunk.to_vec())).send().await?;
        for service in described.services.unwrap_or_default() {
            let arn = service.service_arn.clone().unwrap_or_default();
            // One service that cannot be started (its target group deleted
            // by a compensation under way, say) must not hold up the rest.
            match start_service(ecs, elb, cluster, service).await {
                Ok(true) => {
                    started.insert(arn);
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(
                    service = %arn,
                    error = %tenancy::telemetry::error_chain(error.as_ref()),
                    "emulated ECS could not start the task"
                ),
            }
        }
    }
    Ok(())
}

/// Starts the service's task if it is pending; whether it now runs as desired.
async fn start_service(
    ecs: &ecs::Client,
    elb: &elbv2::Client,
    cluster: &str,
    service: ecs::types::Service,
) -> Result<bool, tenancy::ports::BoxError> {
    if service.status.as_deref() != Some("ACTIVE") {
        return Ok(false);
    }
    if service.running_count >= service.desired_count {
        return Ok(true);
    }
    let name = service.service_name.clone().unwrap_or_default();
    ecs.update_service().cluster(cluster).service(&name).desired_count(service.desired_count).send().await?;
    for balancer in service.load_balancers.unwrap_or_default() {
        let Some(group) = balancer.target_group_arn else { continue };
        let port = balancer.container_port.unwrap_or(8080);
        let target = elbv2::types::TargetDescription::builder().id("10.0.1.10").port(port).build();
        elb.register_targets().target_group_arn(group).targets(target).send().await?;
    }
    tracing::info!(service = %name, "emulated ECS started the task and registered its target");
    Ok(true)
}

struct EmulatorInspect {
    sdk: SdkConfig,
    resources: EmulatorResources,
    endpoint: String,
}

#[async_trait]
impl Inspect for EmulatorInspect {
    async fn services(&self) -> Value {
        let ecs = ecs::Client::new(&self.sdk);
        let cluster = &self.resources.cluster_arn;
        let arns = match ecs.list_services().cluster(cluster).send().await {
            Ok(listed) => listed.service_arns.unwrap_or_default(),
            Err(error) => return json!({ "error": error.to_string() }),
        };
        let mut services = Vec::new();
        for chunk in arns.chunks(10) {
            let Ok(described) =
                ecs.describe_services().cluster(cluster).set_services(Some(chunk.to_vec())).send().await
            else {
                continue;
            };
            for service in described.services.unwrap_or_default() {
                let environment = match service.task_definition.as_deref() {
                    Some(arn) => task_environment(&ecs, arn).await,
                    None => BTreeMap::new(),
                };
                services.push(json!({
                    "service_arn": service.service_arn,
                    "status": service.status,
                    "desired_count": service.desired_count,
                    "running_count": service.running_count,
                    "host": environment.get("PUBLIC_URL").map(|url| url.trim_start_matches("https://").to_owned()),
                    "environment": environment,
                }));
            }
        }
        json!(services)
    }

    async fn dns_records(&self) -> Value {
        let client = route53::Client::new(&self.sdk);
        match client.list_resource_record_sets().hosted_zone_id(&self.resources.hosted_zone_id).send().await {
            Ok(listed) => json!(
                listed
                    .resource_record_sets
                    .iter()
                    .filter_map(|set| set.alias_target.as_ref().map(|alias| json!({
                        "name": set.name.trim_end_matches('.'),
                        "record_type": set.r#type.as_str(),
                        "alias_target": alias.dns_name,
                    })))
                    .collect::<Vec<_>>()
            ),
            Err(error) => json!({ "error": error.to_string() }),
        }
    }

    async fn emails(&self) -> Value {
        // SES has no API to read sent mail; moto keeps it in its model data.
        let url = format!("{}/moto-api/data.json", self.endpoint.trim_end_matches('/'));
        let Ok((_, body)) = HttpClient::default().get(&url).await else { return json!([]) };
        let data: Value = serde_json::from_slice(&body).unwrap_or_default();
        let messages = data["ses"]["Message"].as_array().cloned().unwrap_or_default();
        json!(
            messages
                .iter()
                .map(|m| json!({
                    "message_id": m["id"],
                    "to": m["destinations"]["ToAddresses"][0],
                    "subject": m["subject"],
                    "text": m["body"],
                }))
                .collect::<Vec<_>>()
        )
    }
}

async fn task_environment(ecs: &ecs::Client, arn: &str) -> BTreeMap<String, String> {
    let Ok(described) = ecs.describe_task_definition().task_definition(arn).send().await else {
        return BTreeMap::new();
    };
    described
        .task_definition
        .and_then(|definition| definition.container_definitions)
        .and_then(|containers| containers.into_iter().next())
        .and_then(|container| container.environment)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pair| Some((pair.name?, pair.value?)))
        .collect()
}
