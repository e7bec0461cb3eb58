//! `tenantctl --stage … doctor`: the go-live preflight as one command. Each
//! check reads what the stage really has (SSM, Route 53, the load balancer,
//! SES, SNS, the quotas its tenants use) and answers ✔ or ✘, each ✘ with
//! the command or console page that fixes it. A check that could not be
//! made says so (⚠) rather than guessing; only ✘ fails the command.

use serde::Serialize;
use tenancy::adapters::aws::sdk::{elbv2, route53, sesv2};
use tenancy::domain::password::PasswordKey;
use tenancy::ports::{SecretStore, SecretStoreError};
use tenancy::stripe::{StripeSecretKey, WebhookSecrets};

use super::{Stage, StageError, one_line};

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// It could not be checked (a service did not answer the question).
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    /// What was found, one line.
    pub detail: String,
    /// What fixes a ✘ (a command or a console page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub(crate) fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check { name, verdict: Verdict::Pass, detail: detail.into(), fix: None }
    }

    pub(crate) fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name, verdict: Verdict::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }

    pub(crate) fn unknown(name: &'static str, detail: impl Into<String>) -> Check {
        Check { name, verdict: Verdict::Unknown, detail: detail.into(), fix: None }
    }

    /// A check that could not start: the stack lacks what it reads.
    pub(crate) fn from_stage(name: &'static str, error: StageError) -> Check {
        Check::fail(name, error.to_string(), "deploy the current template (sam deploy --config-env …)")
    }
}

/// Every check, in the order an operator would fix them; the quotas must
/// leave room for `expected_tenants` more.
pub async fn doctor(stage: &Stage, secrets: &dyn SecretStore, expected_tenants: u64) -> Vec<Check> {
    let mut checks = vec![
        stripe_key(stage, secrets).await,
        webhook_secrets(stage, secrets).await,
        tenant_key(stage, secrets).await,
        hosted_zone(stage).await,
        listener(stage).await,
        ses_identity(stage).await,
        ses_sandbox(stage).await,
    ];
    checks.extend(super::receiving::tenant_mail(stage).await);
    checks.push(alarm_subscription(stage).await);
    checks.push(super::quotas::quotas(stage, expected_tenants).await);
    checks
}

/// The checks that ask Stripe (with the stage's key): every catalog price
/// under its lookup key with the catalog's amount, currency and interval,
/// and the webhook endpoint at the stack's URL, enabled, with exactly the
/// events the system acts on and the API version the code is written for.
pub async fn doctor_stripe(
    stage: &Stage,
    api: &tenancy::adapters::stripe::StripeApi,
    catalog: &tenancy::domain::Catalog,
) -> Vec<Check> {
    vec![catalog_prices(stage, api, catalog).await, webhook_endpoint(stage, api).await]
}

async fn catalog_prices(
    stage: &Stage,
    api: &tenancy::adapters::stripe::StripeApi,
    catalog: &tenancy::domain::Catalog,
) -> Check {
    const NAME: &str = "catalog prices";
    let fix = format!("tenantctl --stage {} stripe sync-catalog", stage.name);
    let wanted: Vec<(tenancy::domain::LookupKey, i64, tenancy::domain::StripeInterval)> = catalog
        .priced_plans()
        .flat_map(|(_, prices)| {
            prices
                .into_iter()
                .map(|(billing, price)| (price.lookup_key.clone(), price.amount, billing.stripe_interval()))
                .collect::<Vec<_>>()
        })
        .collect();
    let keys: Vec<_> = wanted.iter().map(|(key, _, _)| key.clone()).collect();
    let found = match api.prices_by_lookup_keys(&keys, true).await {
        Ok(found) => found,
        Err(error) => return Check::unknown(NAME, format!("Stripe could not be asked: {error}")),
    };
    let wrong: Vec<&str> = wanted
        .iter()
        .filter(|(key, amount, interval)| {
            !found.iter().any(|p| {
                p.lookup_key.as_ref() == Some(key)
                    && p.unit_amount == Some(*amount)
                    && p.currency == catalog.currency()
                    && p.interval.as_deref() == Some(interval.unit.as_str())
                    && p.interval_count.unwrap_or(1) == interval.count
            })
        })
        .map(|(key, _, _)| key.as_str())
        .collect();
    if wrong.is_empty() {
        Check::pass(NAME, format!("all {} prices match the catalog in {} mode", wanted.len(), stage.mode()))
    } else {
        Check::fail(NAME, format!("missing or different in Stripe: {}", wrong.join(", ")), fix)
    }
}

async fn webhook_endpoint(stage: &Stage, api: &tenancy::adapters::stripe::StripeApi) -> Check {
    const NAME: &str = "webhook endpoint";
    let fix = format!("tenantctl --stage {} stripe register-webhook", stage.name);
    let url = match stage.output("StripeWebhookUrl") {
        Ok(url) => url.to_owned(),
        Err(e) => return Check::from_stage(NAME, e),
    };
    let endpoints = match api.webhook_endpoints().await {
        Ok(endpoints) => endpoints,
        Err(error) => return Check::unknown(NAME, format!("Stripe could not be asked: {error}")),
    };
    let version = tenancy::adapters::stripe::transport::stripe_version();
    let events = super::stripe::webhook_events();
    let mut at_url: Vec<_> = endpoints.iter().filter(|e| e.url == url).collect();
    if at_url.is_empty() {
        return Check::fail(NAME, format!("no endpoint at {url}"), fix);
    }
    at_url.sort_by_key(|e| std::cmp::Reverse(e.created));
    let good = at_url.iter().find(|e| {
        let mut enabled = e.enabled_events.clone();
        enabled.sort_unstable();
        e.status == "enabled" && enabled == events && e.api_version.as_deref() == Some(version)
    });
    match good {
        Some(endpoint) => Check::pass(
            NAME,
            format!("{} at {url}: enabled, {} events, {version}", endpoint.id, events.len()),
        ),
        None => {
            let newest = at_url[0];
            Check::fail(
                NAME,
                format!(
                    "{} at {url} is {}, version {}, {} events (want enabled, {version}, {})",
                    newest.id,
                    newest.status,
                    newest.api_version.as_deref().unwrap_or("account default"),
                    newest.enabled_events.len(),
                    events.len()
                ),
                fix,
            )
        }
    }
}

/// Whether every check passed (a ⚠ does not fail the preflight).
pub fn all_passed(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.verdict != Verdict::Fail)
}

/// ✔/✘/⚠ lines for people.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for check in checks {
        let mark = match check.verdict {
            Verdict::Pass => "✔",
            Verdict::Fail => "✘",
            Verdict::Unknown => "⚠",
        };
        out.push_str(&format!("{mark} {:<20} {}\n", check.name, check.detail));
        if let Some(fix) = &check.fix {
            out.push_str(&format!("  {:<20} fix: {fix}\n", ""));
        }
    }
    out
}

fn put_parameter(name: &str, value: &str) -> String {
    format!("aws ssm put-parameter --overwrite --type SecureString --name {name} --value {value}")
}

/// Reads the SSM parameter the stack parameter `key` names.
async fn parameter_value(
    stage: &Stage,
    secrets: &dyn SecretStore,
    check: &'static str,
    key: &str,
    example: &str,
) -> Result<(String, String), Check> {
    let name = stage.parameter(key).map_err(|e| Check::from_stage(check, e))?.to_owned();
    match secrets.get_secret(&name).await {
        Ok(value) => Ok((name, value.expose().to_owned())),
        Err(SecretStoreError::NotFound { .. }) => Err(Check::fail(
            check,
            format!("SSM parameter {name} does not exist"),
            put_parameter(&name, example),
        )),
        Err(other) => Err(Check::unknown(check, format!("SSM parameter {name} could not be read: {other}"))),
    }
}

async fn stripe_key(stage: &Stage, secrets: &dyn SecretStore) -> Check {
    const NAME: &str = "Stripe key";
    let example = match stage.mode() {
        tenancy::stripe::StripeMode::Live => "'sk_live_…'",
        tenancy::stripe::StripeMode::Test => "'sk_test_…'",
    };
    let (name, value) = match parameter_value(stage, secrets, NAME, "StripeSecretKeyParameter", example).await
    {
        Ok(found) => found,
        Err(check) => return check,
    };
    match StripeSecretKey::for_mode(&value, stage.mode()) {
        Ok(_) => Check::pass(NAME, format!("{name} holds a {} key", stage.mode())),
        // The error names the mode found, never the key.
        Err(error) => Check::fail(NAME, format!("{name}: {error}"), put_parameter(&name, example)),
    }
}

async fn webhook_secrets(stage: &Stage, secrets: &dyn SecretStore) -> Check {
    const NAME: &str = "webhook secrets";
    let fix = format!("tenantctl --stage {} stripe register-webhook", stage.name);
    let (name, value) =
        match parameter_value(stage, secrets, NAME, "StripeWebhookSecretParameter", "'whsec_…'").await {
            Ok(found) => found,
            Err(mut check) => {
                check.fix = check.fix.map(|_| fix);
                return check;
            }
        };
    match WebhookSecrets::parse_list(&value) {
        Ok(list) => Check::pass(NAME, format!("{name} holds {} signing secret(s)", list.len())),
        Err(error) => Check::fail(NAME, format!("{name}: {error}"), fix),
    }
}

async fn tenant_key(stage: &Stage, secrets: &dyn SecretStore) -> Check {
    const NAME: &str = "tenant key";
    let example = "\"$(openssl rand -hex 32)\"";
    let (name, value) =
        match parameter_value(stage, secrets, NAME, "TenantPasswordKeyParameter", example).await {
            Ok(found) => found,
            Err(check) => return check,
        };
    match PasswordKey::parse(&value) {
        Ok(key) => {
            Check::pass(NAME, format!("{name} holds a key, current version {}", key.current_version()))
        }
        Err(error) => Check::fail(NAME, format!("{name}: {error}"), put_parameter(&name, example)),
    }
}

async fn hosted_zone(stage: &Stage) -> Check {
    const NAME: &str = "hosted zone";
    let (zone, domain) = match (stage.parameter("HostedZoneId"), stage.parameter("TenantDomain")) {
        (Ok(zone), Ok(domain)) => (zone.to_owned(), domain.trim_end_matches('.').to_ascii_lowercase()),
        (Err(e), _) | (_, Err(e)) => return Check::from_stage(NAME, e),
    };
    let route53 = route53::Client::new(&stage.sdk);
    match route53.get_hosted_zone().id(&zone).send().await {
        Ok(found) => {
            let name = found.hosted_zone().map(|z| z.name().trim_end_matches('.').to_ascii_lowercase());
            match name {
                Some(name) if name == domain => Check::pass(NAME, format!("{zone} is {domain}")),
                Some(name) => Check::fail(
                    NAME,
                    format!("{zone} is `{name}`, not TenantDomain `{domain}`"),
                    format!("deploy with HostedZoneId set to the public hosted zone of {domain}"),
                ),
                None => Check::unknown(NAME, format!("Route 53 answered without zone {zone}")),
            }
        }
        Err(error) => Check::fail(
            NAME,
            format!("hosted zone {zone} could not be read: {}", one_line(&error)),
            format!("create the public hosted zone of {domain} and deploy with its id as HostedZoneId"),
        ),
    }
}

/// Every listener of the pool: HTTPS:443 with a certificate for the
/// tenants' wildcard name.
async fn listener(stage: &Stage) -> Check {
    const NAME: &str = "load balancer";
    let (pool, domain) = match (stage.listener_pool(), stage.parameter("TenantDomain")) {
        (Ok(pool), Ok(domain)) => (pool, domain.trim_end_matches('.').to_ascii_lowercase()),
        (Err(e), _) | (_, Err(e)) => return Check::from_stage(NAME, e),
    };
    let wildcard = format!("*.{domain}");
    let fix = format!(
        "an HTTPS:443 listener with an ACM certificate for {wildcard} (EC2 console → Load balancers → Listeners; ACM → Request certificate)"
    );
    let elb = elbv2::Client::new(&stage.sdk);
    let acm = aws_sdk_acm::Client::new(&stage.sdk);
    let listeners = pool.listeners();
    for (n, member) in listeners.iter().enumerate() {
        if let Err(problem) = serves_tenants(&elb, &acm, &member.listener_arn, &wildcard).await {
            let which = match listeners.len() {
                1 => String::new(),
                all => format!("listener {} of {all} in the pool: ", n + 1),
            };
            return Check::fail(NAME, format!("{which}{problem}"), fix);
        }
    }
    let pool = match listeners.len() {
        1 => String::new(),
        all => format!("all {all} listeners of the pool "),
    };
    Check::pass(NAME, format!("{pool}HTTPS:443 with a certificate for {wildcard}"))
}

/// Whether the listener `arn` can route the tenants: what is wrong if not.
async fn serves_tenants(
    elb: &elbv2::Client,
    acm: &aws_sdk_acm::Client,
    arn: &str,
    wildcard: &str,
) -> Result<(), String> {
    let listener = match elb.describe_listeners().listener_arns(arn).send().await {
        Ok(found) => found.listeners().first().cloned().ok_or_else(|| format!("no listener {arn}"))?,
        Err(error) => return Err(format!("listener {arn} could not be read: {}", one_line(&error))),
    };
    let protocol = listener.protocol().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let port = listener.port().unwrap_or_default();
    if protocol != "HTTPS" || port != 443 {
        return Err(format!("listener is {protocol}:{port}, not HTTPS:443"));
    }
    for certificate in listener.certificates().iter().filter_map(|c| c.certificate_arn()) {
        let Ok(described) = acm.describe_certificate().certificate_arn(certificate).send().await else {
            continue;
        };
        let Some(detail) = described.certificate() else { continue };
        let names: Vec<&str> = detail
            .domain_name()
            .into_iter()
            .chain(detail.subject_alternative_names().iter().map(String::as_str))
            .collect();
        if names.iter().any(|name| name.eq_ignore_ascii_case(wildcard)) {
            return Ok(());
        }
    }
    Err(format!("HTTPS:443, but no certificate on it covers {wildcard}"))
}

async fn ses_identity(stage: &Stage) -> Check {
    const NAME: &str = "SES identity";
    let sender = match stage.parameter("MailSender") {
        Ok(sender) => sender.to_owned(),
        Err(e) => return Check::from_stage(NAME, e),
    };
    let domain = sender.rsplit_once('@').map(|(_, d)| d.to_owned()).unwrap_or_default();
    let ses = sesv2::Client::new(&stage.sdk);
    for identity in [sender.as_str(), domain.as_str()] {
        if let Ok(found) = ses.get_email_identity().email_identity(identity).send().await
            && verified(&found)
        {
            return Check::pass(NAME, format!("{identity} is verified for sending"));
        }
    }
    Check::fail(
        NAME,
        format!("neither {sender} nor {domain} is a verified SES identity"),
        format!("verify {domain} (or {sender}) in the SES console → Verified identities"),
    )
}

/// Whether SES verified the identity.
pub(super) fn verified(found: &sesv2::operation::get_email_identity::GetEmailIdentityOutput) -> bool {
    // SES reports both; they agree in AWS (moto sets only the status).
    found.verified_for_sending_status()
        || found.verification_status().is_some_and(|s| s.as_str() == "SUCCESS")
}

async fn ses_sandbox(stage: &Stage) -> Check {
    const NAME: &str = "SES production";
    let sandbox_allowed = stage.parameter("SesSandbox").is_ok_and(|v| v == "true");
    let ses = sesv2::Client::new(&stage.sdk);
    match ses.get_account().send().await {
        Ok(account) if account.production_access_enabled() => Check::pass(NAME, "out of the sandbox"),
        Ok(_) if sandbox_allowed => {
            Check::pass(NAME, "in the sandbox, as the stage says (SesSandbox=true): only verified recipients")
        }
        Ok(_) => Check::fail(
            NAME,
            "the SES account is in the sandbox: mail to customers is refused",
            "request production access (SES console → Account dashboard), or deploy with SesSandbox=true for a test stage",
        ),
        Err(error) => Check::unknown(NAME, format!("SES GetAccount could not be read: {}", one_line(&error))),
    }
}

async fn alarm_subscription(stage: &Stage) -> Check {
    const NAME: &str = "alarm topic";
    let topic = match stage.output("AlarmTopicArn") {
        Ok(topic) => topic.to_owned(),
        Err(e) => return Check::from_stage(NAME, e),
    };
    let sns = aws_sdk_sns::Client::new(&stage.sdk);
    let fix = format!(
        "confirm the mail SNS sent to AlarmEmail, or: aws sns subscribe --topic-arn {topic} --protocol email --notification-endpoint you@example.com"
    );
    match sns.list_subscriptions_by_topic().topic_arn(&topic).send().await {
        Ok(found) => {
            let subscriptions = found.subscriptions();
            // An unconfirmed subscription's ARN is the word PendingConfirmation.
            let confirmed = subscriptions
                .iter()
                .filter(|s| s.subscription_arn().is_some_and(|arn| arn.starts_with("arn:")))
                .count();
            if confirmed > 0 {
                Check::pass(NAME, format!("{confirmed} confirmed subscription(s)"))
            } else if subscriptions.is_empty() {
                Check::fail(NAME, "nobody is subscribed: alarms reach no one", fix)
            } else {
                Check::fail(NAME, "its subscription is not confirmed yet: alarms reach no one", fix)
            }
        }
        Err(error) => {
            Check::fail(NAME, format!("topic {topic} could not be read: {}", one_line(&error)), fix)
        }
    }
}
