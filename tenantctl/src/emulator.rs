//! Everything the AWS adapters need, made on an AWS emulator (moto's server),
//! so a laptop runs the AWS adapters with no AWS account.
//!
//! Every step finds what an earlier bootstrap made before making it, so
//! running it twice against the same emulator is harmless.
//!
//! Networking needs EC2 (ECS validates the service's subnets and security
//! groups, an ALB needs subnets in two zones), and the project has no EC2 SDK
//! crate: the emulator's default VPC, its default subnets and its default
//! security group are read with three plain EC2 Query API calls instead
//! ([`default_network`]). Nothing is created in EC2.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tenancy::adapters::aws::sdk::aws_config::SdkConfig;
use tenancy::adapters::aws::sdk::elbv2::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, IpAddressType, LoadBalancerSchemeEnum,
    LoadBalancerTypeEnum, ProtocolEnum,
};
use tenancy::adapters::aws::sdk::{dynamodb, ecs, elbv2, route53, s3, sesv2};
use tenancy::adapters::aws::{dynamodb as store, launcher, route53 as dns, s3 as inbound, sesv2 as mail};
use tenancy::domain::EmailAddress;
use tenancy::ports::BoxError;

use crate::http_client::HttpClient;

/// moto's default account.
pub const EMULATOR_ACCOUNT: &str = "123456789012";

/// What to call the things [`bootstrap`] makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorNames {
    pub table: String,
    pub cluster: String,
    /// At most 29 letters, digits and hyphens (the pool's others add `-2`, `-3`, …).
    pub load_balancer: String,
    /// Load balancers in the pool, each with a listener (at least one).
    pub balancers: usize,
    /// The tenants' domain: each tenant is `{subdomain}.{domain}`.
    pub domain: String,
    pub sender: EmailAddress,
    /// Where received mail is stored (SES receiving's S3 action).
    pub inbound_bucket: String,
}

impl EmulatorNames {
    /// `{prefix}-tenants`, `{prefix}-alb`, `{prefix}.test`, `noreply@{prefix}.test`,
    /// `{prefix}-inbound-mail` (lower case).
    pub fn with_prefix(prefix: &str) -> Result<Self, EmulatorError> {
        let domain = format!("{prefix}.test");
        let sender = EmailAddress::parse(&format!("noreply@{domain}"))
            .map_err(|_| EmulatorError::Invalid(format!("`{prefix}` does not make a usable domain")))?;
        Ok(EmulatorNames {
            table: format!("{prefix}-tenants"),
            cluster: format!("{prefix}-tenants"),
            load_balancer: format!("{prefix}-alb"),
            balancers: 1,
            domain,
            sender,
            inbound_bucket: format!("{}-inbound-mail", prefix.to_ascii_lowercase()),
        })
    }

    /// The same names, with a pool of `balancers` load balancers.
    pub fn with_balancers(self, balancers: usize) -> Self {
        EmulatorNames { balancers: balancers.max(1), ..self }
    }

    /// The name of the pool's `index`th load balancer (from 0).
    fn balancer(&self, index: usize) -> String {
        match index {
            0 => self.load_balancer.clone(),
            _ => format!("{}-{}", self.load_balancer, index + 1),
        }
    }
}

/// The emulator's default VPC, as far as tenants need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub vpc_id: String,
    /// Default subnets, in distinct availability zones.
    pub subnets: Vec<String>,
    pub security_group: String,
}

/// Ids and ARNs of what [`bootstrap`] made or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorResources {
    pub table: String,
    pub cluster_arn: String,
    pub network: Network,
    /// The pool's first load balancer and its listener.
    pub load_balancer_arn: String,
    pub alb_dns_name: String,
    pub alb_hosted_zone_id: String,
    pub listener_arn: String,
    /// Every listener of the pool, the first one's first.
    pub pool_listener_arns: Vec<String>,
    pub hosted_zone_id: String,
    pub domain: String,
    pub sender: EmailAddress,
    pub inbound_bucket: String,
    /// An IAM role ARN moto accepts (it does not check roles).
    pub execution_role_arn: String,
}

impl EmulatorResources {
    /// The pool's first load balancer, as a tenant's alias record points at it.
    pub fn load_balancer(&self) -> tenancy::ports::AliasTarget {
        tenancy::ports::AliasTarget {
            dns_name: self.alb_dns_name.clone(),
            hosted_zone_id: self.alb_hosted_zone_id.clone(),
        }
    }

    /// The environment the AWS adapters' `from_lookup` read, pointing at these
    /// resources; `app_image` is what each tenant's task runs.
    pub fn environment(&self, app_image: &str) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            (store::TENANT_TABLE, self.table.clone()),
            (launcher::ECS_CLUSTER, self.cluster_arn.clone()),
            (launcher::APP_IMAGE, app_image.to_owned()),
            (launcher::TASK_EXECUTION_ROLE_ARN, self.execution_role_arn.clone()),
            (launcher::TENANT_SUBNETS, self.network.subnets.join(",")),
            (launcher::TENANT_SECURITY_GROUPS, self.network.security_group.clone()),
            (launcher::VPC_ID, self.network.vpc_id.clone()),
            (tenancy::adapters::aws::pool::ALB_LISTENER_ARNS, self.pool_listener_arns.join(",")),
            (dns::HOSTED_ZONE_ID, self.hosted_zone_id.clone()),
            (mail::MAIL_SENDER, self.sender.to_string()),
            (inbound::INBOUND_MAIL_BUCKET, self.inbound_bucket.clone()),
            (inbound::INBOUND_MAIL_PREFIX, inbound::DEFAULT_PREFIX.to_owned()),
        ])
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("the SDK configuration has no endpoint URL: bootstrap only talks to an emulator")]
    NoEndpoint,
    #[error("emulator: {step} failed")]
    Aws {
        step: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("emulator: {0}")]
    Invalid(String),
}

/// `map_err(failed("CreateCluster"))`: names the step, keeps the cause.
fn failed<E: std::error::Error + Send + Sync + 'static>(
    step: &'static str,
) -> impl FnOnce(E) -> EmulatorError {
    move |error| EmulatorError::Aws { step, source: Box::new(error) }
}

/// Makes (or finds) the table, cluster, pool of ALBs each with a listener,
/// hosted zone and verified sender on the emulator `sdk` points at.
pub async fn bootstrap(sdk: &SdkConfig, names: &EmulatorNames) -> Result<EmulatorResources, EmulatorError> {
    if sdk.endpoint_url().is_none() {
        return Err(EmulatorError::NoEndpoint);
    }
    store::create_table(&dynamodb::Client::new(sdk), &names.table).await.map_err(failed("CreateTable"))?;
    let cluster_arn = ensure_cluster(&ecs::Client::new(sdk), &names.cluster).await?;
    let network = default_network(sdk).await?;
    let elb = elbv2::Client::new(sdk);
    let mut pool = Vec::with_capacity(names.balancers);
    for index in 0..names.balancers.max(1) {
        let balancer = ensure_load_balancer(&elb, &names.balancer(index), &network).await?;
        let listener_arn = ensure_listener(&elb, &balancer.arn).await?;
        pool.push((balancer, listener_arn));
    }
    let pool_listener_arns = pool.iter().map(|(_, listener)| listener.clone()).collect();
    let (balancer, listener_arn) = pool.swap_remove(0);
    let hosted_zone_id = ensure_hosted_zone(&route53::Client::new(sdk), &names.domain).await?;
    ensure_sender(&sesv2::Client::new(sdk), &names.sender).await?;
    ensure_bucket(&tenancy::adapters::aws::s3_client(sdk), &names.inbound_bucket).await?;
    Ok(EmulatorResources {
        table: names.table.clone(),
        cluster_arn,
        network,
        load_balancer_arn: balancer.arn,
        alb_dns_name: balancer.dns_name,
        alb_hosted_zone_id: balancer.hosted_zone_id,
        listener_arn,
        pool_listener_arns,
        hosted_zone_id,
        domain: names.domain.clone(),
        sender: names.sender.clone(),
        inbound_bucket: names.inbound_bucket.clone(),
        execution_role_arn: format!("arn:aws:iam::{EMULATOR_ACCOUNT}:role/tenancy-task-execution"),
    })
}

pub async fn ensure_cluster(client: &ecs::Client, name: &str) -> Result<String, EmulatorError> {
    // CreateCluster returns the existing cluster of that name.
    let created = client.create_cluster().cluster_name(name).send().await.map_err(failed("CreateCluster"))?;
    created
        .cluster()
        .and_then(|c| c.cluster_arn())
        .map(str::to_owned)
        .ok_or_else(|| EmulatorError::Invalid("CreateCluster answered without an ARN".into()))
}

/// A load balancer's address, as Route 53 aliases need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balancer {
    pub arn: String,
    pub dns_name: String,
    pub hosted_zone_id: String,
}

pub async fn ensure_load_balancer(
    client: &elbv2::Client,
    name: &str,
    network: &Network,
) -> Result<Balancer, EmulatorError> {
    let found = match client.describe_load_balancers().names(name).send().await {
        Ok(output) => output.load_balancers().first().cloned(),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_load_balancer_not_found_exception()) => {
            None
        }
        Err(error) => return Err(failed("DescribeLoadBalancers")(error)),
    };
    let balancer = match found {
        Some(balancer) => balancer,
        None => client
            .create_load_balancer()
            .name(name)
            .r#type(LoadBalancerTypeEnum::Application)
            .scheme(LoadBalancerSchemeEnum::InternetFacing)
            .ip_address_type(IpAddressType::Ipv4)
            .set_subnets(Some(network.subnets.clone()))
            .security_groups(&network.security_group)
            .send()
            .await
            .map_err(failed("CreateLoadBalancer"))?
            .load_balancers()
            .first()
            .cloned()
            .ok_or_else(|| {
                EmulatorError::Invalid("CreateLoadBalancer answered without a load balancer".into())
            })?,
    };
    match (balancer.load_balancer_arn(), balancer.dns_name(), balancer.canonical_hosted_zone_id()) {
        (Some(arn), Some(dns_name), Some(zone)) => Ok(Balancer {
            arn: arn.to_owned(),
            dns_name: dns_name.to_owned(),
            hosted_zone_id: zone.to_owned(),
        }),
        _ => Err(EmulatorError::Invalid("the load balancer lacks an ARN, DNS name or hosted zone".into())),
    }
}

/// An HTTP listener on port 80 whose default answer is 404: only a tenant's
/// host-header rule routes anywhere. (On AWS: HTTPS with the wildcard certificate.)
pub async fn ensure_listener(
    client: &elbv2::Client,
    load_balancer_arn: &str,
) -> Result<String, EmulatorError> {
    let existing = client
        .describe_listeners()
        .load_balancer_arn(load_balancer_arn)
        .send()
        .await
        .map_err(failed("DescribeListeners"))?;
    if let Some(arn) =
        existing.listeners().iter().find(|l| l.port() == Some(80)).and_then(|l| l.listener_arn())
    {
        return Ok(arn.to_owned());
    }
    let not_found = FixedResponseActionConfig::builder()
        .status_code("404")
        .content_type("text/plain")
        .message_body("no tenant at this address")
        .build();
    let created = client
        .create_listener()
        .load_balancer_arn(load_balancer_arn)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .default_actions(
            Action::builder().r#type(ActionTypeEnum::FixedResponse).fixed_response_config(not_found).build(),
        )
        .send()
        .await
        .map_err(failed("CreateListener"))?;
    created
        .listeners()
        .first()
        .and_then(|l| l.listener_arn())
        .map(str::to_owned)
        .ok_or_else(|| EmulatorError::Invalid("CreateListener answered without an ARN".into()))
}

/// The public hosted zone for `domain`; its id without `/hostedzone/`.
pub async fn ensure_hosted_zone(client: &route53::Client, domain: &str) -> Result<String, EmulatorError> {
    let wanted = dns::normalize_name(domain);
    let listed = client
        .list_hosted_zones_by_name()
        .dns_name(&wanted)
        .send()
        .await
        .map_err(failed("ListHostedZonesByName"))?;
    let found =
        listed.hosted_zones().iter().find(|z| dns::normalize_name(z.name()) == wanted).map(|z| z.id());
    let id = match found {
        Some(id) => id.to_owned(),
        None => {
            let created = client
                .create_hosted_zone()
                .name(&wanted)
                .caller_reference(format!("tenancy-emulator-{wanted}"))
                .send()
                .await
                .map_err(failed("CreateHostedZone"))?;
            created
                .hosted_zone()
                .map(|z| z.id().to_owned())
                .ok_or_else(|| EmulatorError::Invalid("CreateHostedZone answered without a zone".into()))?
        }
    };
    Ok(id.trim_start_matches("/hostedzone/").to_owned())
}

/// Makes `sender` a verified SES identity (the emulator verifies at once).
pub async fn ensure_sender(client: &sesv2::Client, sender: &EmailAddress) -> Result<(), EmulatorError> {
    match client.create_email_identity().email_identity(sender.as_str()).send().await {
        Ok(_) => Ok(()),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_already_exists_exception()) => Ok(()),
        Err(error) => Err(failed("CreateEmailIdentity")(error)),
    }
}

/// The bucket received mail is kept in (us-east-1: no location constraint).
pub async fn ensure_bucket(client: &s3::Client, name: &str) -> Result<(), EmulatorError> {
    match client.create_bucket().bucket(name).send().await {
        Ok(_) => Ok(()),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_bucket_already_owned_by_you()) => Ok(()),
        Err(error) => Err(failed("CreateBucket")(error)),
    }
}

/// The emulator's default VPC, its default subnets (one per zone) and its
/// default security group, read with the EC2 Query API.
pub async fn default_network(sdk: &SdkConfig) -> Result<Network, EmulatorError> {
    let ec2 = Ec2Query::new(sdk)?;
    let vpcs =
        ec2.call("DescribeVpcs", &[("Filter.1.Name", "is-default"), ("Filter.1.Value.1", "true")]).await?;
    let vpc_id = first_tag(&vpcs, "vpcId")
        .ok_or_else(|| EmulatorError::Invalid("the emulator has no default VPC".into()))?;
    let subnets = ec2
        .call(
            "DescribeSubnets",
            &[
                ("Filter.1.Name", "vpc-id"),
                ("Filter.1.Value.1", &vpc_id),
                ("Filter.2.Name", "default-for-az"),
                ("Filter.2.Value.1", "true"),
            ],
        )
        .await?;
    let mut subnets = tag_values(&subnets, "subnetId");
    subnets.sort();
    subnets.dedup();
    subnets.truncate(2);
    if subnets.len() < 2 {
        return Err(EmulatorError::Invalid(format!("the default VPC {vpc_id} has fewer than two subnets")));
    }
    let groups = ec2
        .call(
            "DescribeSecurityGroups",
            &[
                ("Filter.1.Name", "vpc-id"),
                ("Filter.1.Value.1", &vpc_id),
                ("Filter.2.Name", "group-name"),
                ("Filter.2.Value.1", "default"),
            ],
        )
        .await?;
    // The first groupId of an item is the group's own; later ones are rules'.
    let security_group = first_tag(&groups, "groupId").ok_or_else(|| {
        EmulatorError::Invalid(format!("the default VPC {vpc_id} has no default security group"))
    })?;
    Ok(Network { vpc_id, subnets, security_group })
}

/// Unsigned EC2 Query API calls to an emulator. The Authorization header only
/// names the service and region, which is how moto's server routes a request.
struct Ec2Query {
    http: HttpClient,
    endpoint: String,
    authorization: String,
}

impl Ec2Query {
    fn new(sdk: &SdkConfig) -> Result<Self, EmulatorError> {
        let endpoint = sdk.endpoint_url().ok_or(EmulatorError::NoEndpoint)?.trim_end_matches('/').to_owned();
        let region = sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential=emulator/20250101/{region}/ec2/aws4_request, SignedHeaders=host, Signature=0"
        );
        Ok(Ec2Query { http: HttpClient::default(), endpoint, authorization })
    }

    async fn call(&self, action: &str, params: &[(&str, &str)]) -> Result<String, EmulatorError> {
        let mut body = format!("Action={action}&Version=2016-11-15");
        for (name, value) in params {
            body.push_str(&format!("&{}={}", form_encode(name), form_encode(value)));
        }
        let request = Request::post(format!("{}/", self.endpoint))
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded; charset=utf-8")
            .header(http::header::AUTHORIZATION, &self.authorization)
            .body(Full::new(Bytes::from(body)))
            .map_err(failed("EC2 request"))?;
        let (status, answer) = self.http.call(request).await.map_err(failed("EC2 request"))?;
        let text = String::from_utf8_lossy(&answer).into_owned();
        if !status.is_success() {
            let code = first_tag(&text, "Code").unwrap_or_else(|| format!("HTTP {status}"));
            return Err(EmulatorError::Invalid(format!("EC2 {action} failed: {code}")));
        }
        Ok(text)
    }
}

fn form_encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(char::from(byte)),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The text of every `<tag>…</tag>` in `xml`, in order (EC2 answers are flat
/// enough for this; ids never contain markup).
fn tag_values(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut values = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        values.push(after[..end].trim().to_owned());
        rest = &after[end + close.len()..];
    }
    values
}

fn first_tag(xml: &str, tag: &str) -> Option<String> {
    tag_values(xml, tag).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_form_encoded() {
        assert_eq!(form_encode("Filter.1.Value.1"), "Filter.1.Value.1");
        assert_eq!(form_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn tags_are_read_in_order() {
        let xml = "<r><item><groupId>sg-1</groupId><ipPermissions><item><groupId>sg-9</groupId></item>\
                   </ipPermissions></item><item><groupId> sg-2 </groupId></item></r>";
        assert_eq!(tag_values(xml, "groupId"), ["sg-1", "sg-9", "sg-2"]);
        assert_eq!(first_tag(xml, "groupId").as_deref(), Some("sg-1"));
        assert_eq!(first_tag(xml, "vpcId"), None);
    }

    #[test]
    fn names_follow_the_prefix() {
        let names = EmulatorNames::with_prefix("tenancy").unwrap();
        assert_eq!(names.table, "tenancy-tenants");
        assert_eq!(names.sender.as_str(), "noreply@tenancy.test");
        assert!(EmulatorNames::with_prefix("bad prefix").is_err());
    }
}
