//! `tenantctl local serve --aws-endpoint URL`: the same local stack, but the
//! steps use the AWS adapters against an emulator (moto's server) instead of
//! the local adapters. The state machine still runs in the local interpreter.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tenancy::adapters::aws::sdk::aws_config::SdkConfig;
use tenancy::adapters::aws::sdk::{ecs, elbv2, route53};
use tenancy::adapters::aws::{self, sdk_config};
use tenancy::clock::Clock;
use tenancy::config::{self, ConfigError, TenantDomain, TenantSettings};
use tenancy::domain::Catalog;
use tenancy::domain::password::PasswordKey;
use tenancy::steps::WorkflowSteps;

use crate::emulator::{EmulatorNames, EmulatorResources, bootstrap};
use crate::http_client::HttpClient;
use crate::local::{Adapters, Inspect};

/// What each tenant's task would run; moto never pulls it.
const APP_IMAGE: &str = "public.ecr.aws/nginx/nginx:stable";

/// Bootstraps the emulator and builds the AWS adapters against it.
pub async fn adapters(
    endpoint: &str,
    local_settings: TenantSettings,
    password_key: PasswordKey,
    clock: Arc<dyn Clock>,
    portal_base: &str,
    stripe: Arc<tenancy::adapters::local::LocalStripe>,
) -> anyhow::Result<(Adapters, tokio::task::JoinHandle<()>)> {
    let sdk = sdk_config(Some(endpoint)).await;
    let names = EmulatorNames::with_prefix("tenancy-local")?;
    let resources = bootstrap(&sdk, &names).await?;
    let environment = resources.environment(APP_IMAGE);
    let env = |var: &str| environment.get(var).cloned();
    // Tenants live under the emulator's hosted zone.
    let settings = TenantSettings {
        domain: TenantDomain::parse(&resources.domain)
            .map_err(|reason| ConfigError::Invalid { var: config::TENANT_DOMAIN, reason })?,
        ..local_settings
    };
    let steps = WorkflowSteps {
        store: Arc::new(aws::tenant_store(&sdk, &env)?),
        launcher: Arc::new(aws::tenant_launcher(&sdk, &env)?),
        dns: Arc::new(aws::dns_publisher(&sdk, &env)?),
        mailer: Arc::new(aws::mailer(&sdk, &env)?),
        // Stripe is not emulated: portal links point at the local server.
        billing: Arc::new(tenancy::adapters::local::LocalBillingPortal::new(portal_base)),
        stripe: stripe.clone(),
        clock,
        settings,
        catalog: Catalog::embedded()?,
        password_key,
    };
    let platform = tokio::spawn(play_container_platform(sdk.clone(), resources.cluster_arn.clone()));
    let inspect = Arc::new(EmulatorInspect { sdk, resources, endpoint: endpoint.to_owned() });
    Ok((Adapters { steps, inspect, stripe }, platform))
}

/// moto models ECS's API but runs no containers: this plays the part of
/// Fargate starting each service's task and registering its IP with the
/// target group, so the health loop sees what it would see in AWS.
async fn play_container_platform(sdk: SdkConfig, cluster: String) {
    let ecs = ecs::Client::new(&sdk);
    let elb = elbv2::Client::new(&sdk);
    loop {
        if let Err(error) = start_pending_tasks(&ecs, &elb, &cluster).await {
            tracing::warn!(error = %tenancy::telemetry::error_chain(error.as_ref()), "emulated ECS");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn start_pending_tasks(
    ecs: &ecs::Client,
    elb: &elbv2::Client,
    cluster: &str,
) -> Result<(), tenancy::ports::BoxError> {
    let arns = ecs.list_services().cluster(cluster).send().await?.service_arns.unwrap_or_default();
    for chunk in arns.chunks(10) {
        let described =
            ecs.describe_services().cluster(cluster).set_services(Some(chunk.to_vec())).send().await?;
        for service in described.services.unwrap_or_default() {
            if service.status.as_deref() != Some("ACTIVE") || service.running_count >= service.desired_count {
                continue;
            }
            let name = service.service_name.clone().unwrap_or_default();
            ecs.update_service()
                .cluster(cluster)
                .service(&name)
                .desired_count(service.desired_count)
                .send()
                .await?;
            for balancer in service.load_balancers.unwrap_or_default() {
                let Some(group) = balancer.target_group_arn else { continue };
                let port = balancer.container_port.unwrap_or(8080);
                let target = elbv2::types::TargetDescription::builder().id("10.0.1.10").port(port).build();
                elb.register_targets().target_group_arn(group).targets(target).send().await?;
            }
            tracing::info!(service = %name, "emulated ECS started the task and registered its target");
        }
    }
    Ok(())
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
