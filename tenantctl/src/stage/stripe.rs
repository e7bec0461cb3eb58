//! `tenantctl --stage test|live stripe …`: a stage's Stripe account made to
//! match the code. `sync-catalog` pushes the plan catalog's Products and
//! Prices, keyed by lookup key; `register-webhook` makes the endpoint the
//! stack's webhook URL with the events the system acts on and stores its
//! signing secret; `drop-webhook-secret` ends a rotation.
//!
//! The key is the stage's own (the SSM SecureString the stack parameter
//! `StripeSecretKeyParameter` names), refused if it is of the other mode
//! before anything is read or written.

use std::fmt;

use aws_sdk_ssm::Client as Ssm;
use aws_sdk_ssm::types::ParameterType;
use serde::Serialize;
use tenancy::adapters::aws::SsmSecretStore;
use tenancy::adapters::stripe::transport::stripe_version;
use tenancy::adapters::stripe::{
    BILLING_PORTAL_RETURN_URL, NewPrice, STRIPE_API_BASE, StripeApi, WebhookEndpoint,
};
use tenancy::config::{ConfigError, STRIPE_SECRET_KEY_PARAM};
use tenancy::domain::{Catalog, LookupKey};
use tenancy::ports::{SecretStore, SecretStoreError, StripeApiError};
use tenancy::stripe::{EventType, WebhookSecret};

use super::args::StageArgs;
use super::{Stage, StageError};

/// The stack parameter naming the SSM SecureString with the Stripe key.
pub const SECRET_KEY_PARAMETER: &str = "StripeSecretKeyParameter";
/// The stack parameter naming the SSM SecureString with the webhook's
/// signing secrets (comma-separated, newest first).
pub const WEBHOOK_SECRET_PARAMETER: &str = "StripeWebhookSecretParameter";
/// The stack output Stripe delivers events to.
pub const WEBHOOK_URL_OUTPUT: &str = "StripeWebhookUrl";
/// What the endpoint is called in Stripe's Dashboard.
const WEBHOOK_DESCRIPTION: &str =
    "tenancy: paid checkouts become tenants (tenantctl stripe register-webhook)";

/// The `stripe` subcommands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum StripeCommand {
    /// Create or update the catalog's Products and Prices (shared/catalog/plans.json)
    /// in the stage's Stripe mode, keyed by lookup key.
    SyncCatalog,
    /// Create or update the webhook endpoint (the stack's StripeWebhookUrl, the
    /// events the system acts on, the API version the code is written for) and
    /// store its signing secret in SSM, in front of any older one.
    RegisterWebhook {
        /// Make a new endpoint and secret even if the current one is right
        /// (the old ones stay accepted until drop-webhook-secret).
        #[arg(long)]
        rotate: bool,
    },
    /// End a rotation: delete the older endpoints at the webhook URL and keep
    /// only the newest secret in SSM.
    DropWebhookSecret,
}

/// Why a command stopped: one line, and an exit code.
#[derive(Debug, thiserror::Error)]
pub enum StripeCommandError {
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error("the Stripe key (stack parameter {SECRET_KEY_PARAMETER} = `{parameter}`) cannot be used")]
    Key {
        parameter: String,
        #[source]
        source: ConfigError,
    },
    #[error("Stripe: {what}")]
    Stripe {
        what: String,
        #[source]
        source: StripeApiError,
    },
    #[error("SSM parameter `{name}` could not be {action}")]
    Ssm {
        name: String,
        action: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "webhook endpoint {endpoint} exists but SSM parameter `{parameter}` holds no signing secret, and Stripe shows it only once: run `tenantctl --stage {stage} stripe register-webhook --rotate`"
    )]
    NoSecretForEndpoint { endpoint: String, parameter: String, stage: String },
    #[error("the plan catalog")]
    Catalog(#[source] tenancy::domain::catalog::CatalogError),
}

impl StripeCommandError {
    /// 2: the input or the stage is wrong (fix it, run again); 1: a
    /// service failed or refused (credentials, Stripe, SSM).
    pub fn exit_code(&self) -> i32 {
        match self {
            StripeCommandError::Stage(StageError::Unavailable { .. }) => 1,
            StripeCommandError::Stage(_)
            | StripeCommandError::Key { .. }
            | StripeCommandError::NoSecretForEndpoint { .. }
            | StripeCommandError::Catalog(_) => 2,
            StripeCommandError::Stripe { .. } | StripeCommandError::Ssm { .. } => 1,
        }
    }
}

fn stripe(what: impl Into<String>) -> impl FnOnce(StripeApiError) -> StripeCommandError {
    let what = what.into();
    move |source| StripeCommandError::Stripe { what, source }
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Created,
    Updated,
    Unchanged,
    /// A new price took the lookup key; the old one is archived.
    Replaced,
    Archived,
    Deleted,
    /// An older endpoint left in place until `drop-webhook-secret`.
    Kept,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Unchanged => "unchanged",
            Action::Replaced => "replaced",
            Action::Archived => "archived",
            Action::Deleted => "deleted",
            Action::Kept => "kept",
        };
        f.write_str(word)
    }
}

/// One row of a report: never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `product`, `price`, `webhook_endpoint` or `secret`.
    pub object: &'static str,
    /// The plan, lookup key, URL or parameter name.
    pub key: String,
    pub id: String,
    pub action: Action,
    pub detail: String,
}

/// What a command did, for people ([`fmt::Display`]) or scripts (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub stage: String,
    pub stack: String,
    pub changes: Vec<Change>,
}

impl Report {
    fn new(stage: &Stage) -> Self {
        Report { stage: stage.name.to_string(), stack: stage.stack.clone(), changes: Vec::new() }
    }

    fn push(&mut self, object: &'static str, key: &str, id: &str, action: Action, detail: impl Into<String>) {
        self.changes.push(Change {
            object,
            key: key.to_owned(),
            id: id.to_owned(),
            action,
            detail: detail.into(),
        });
    }

    /// The changes with `action`.
    pub fn with(&self, action: Action) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(move |c| c.action == action)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "stage {} (stack {})", self.stage, self.stack)?;
        let header = ["WHAT", "KEY", "ID", "ACTION", "DETAIL"];
        let rows: Vec<[String; 5]> = self
            .changes
            .iter()
            .map(|c| {
                [c.object.to_owned(), c.key.clone(), c.id.clone(), c.action.to_string(), c.detail.clone()]
            })
            .collect();
        let width =
            |i: usize| rows.iter().map(|r| r[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0);
        let widths = [width(0), width(1), width(2), width(3)];
        let line = |cells: [&str; 5]| {
            let mut text = String::new();
            for (i, cell) in cells.iter().enumerate().take(4) {
                text.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
            text.push_str(cells[4]);
            text.trim_end().to_owned()
        };
        writeln!(f, "{}", line(header))?;
        for row in &rows {
            writeln!(f, "{}", line([&row[0], &row[1], &row[2], &row[3], &row[4]]))?;
        }
        Ok(())
    }
}

/// The Stripe client for `stage`: its key from SSM, refused if it is of the
/// other mode; `api_base` (a stand-in) instead of Stripe's API if given.
pub async fn connect(
    stage: &Stage,
    ssm: &Ssm,
    api_base: Option<&str>,
) -> Result<StripeApi, StripeCommandError> {
    let parameter = stage.parameter(SECRET_KEY_PARAMETER)?.to_owned();
    let store = SsmSecretStore::new(ssm.clone());
    let env = |var: &str| match var {
        STRIPE_SECRET_KEY_PARAM => Some(parameter.clone()),
        STRIPE_API_BASE => api_base.map(str::to_owned),
        // These commands open no billing portal; the client wants a return URL anyway.
        BILLING_PORTAL_RETURN_URL => Some("https://dashboard.stripe.com/".to_owned()),
        _ => None,
    };
    StripeApi::from_lookup(&env, stage.mode(), &store)
        .await
        .map_err(|source| StripeCommandError::Key { parameter: parameter.clone(), source })
}

/// The product a plan's prices belong to: an id of ours (Stripe takes the
/// caller's product ids), so it is found again without a search.
pub fn product_id(plan: &str) -> String {
    format!("tenancy_{plan}")
}

/// Makes the account's Products and Prices those of `catalog`: a product
/// per plan; per billing period an active price holding the lookup key
/// with the catalog's amount, currency and interval. A price that differs
/// is replaced (prices are immutable): a new one takes the key
/// (`transfer_lookup_key`), then the old one is archived. Run twice, the
/// second run changes nothing.
pub async fn sync_catalog(
    stage: &Stage,
    api: &StripeApi,
    catalog: &Catalog,
) -> Result<Report, StripeCommandError> {
    let mut report = Report::new(stage);
    let plans: Vec<_> = catalog.priced_plans().collect();
    let keys: Vec<LookupKey> =
        plans.iter().flat_map(|(_, prices)| prices.iter().map(|(_, p)| p.lookup_key.clone())).collect();
    let existing =
        api.prices_by_lookup_keys(&keys, true).await.map_err(stripe("listing prices by lookup key"))?;
    let currency = catalog.currency();
    for (plan, prices) in &plans {
        let product = product_id(plan.key.as_str());
        match api.product(&product).await.map_err(stripe(format!("reading product {product}")))? {
            None => {
                let meta = [("plan", plan.key.as_str())];
                api.create_product(&product, &plan.name, &meta)
                    .await
                    .map_err(stripe(format!("creating product {product}")))?;
                report.push("product", plan.key.as_str(), &product, Action::Created, plan.name.clone());
            }
            Some(found) if found.name != plan.name || !found.active => {
                api.update_product(&product, &plan.name)
                    .await
                    .map_err(stripe(format!("updating product {product}")))?;
                report.push("product", plan.key.as_str(), &product, Action::Updated, plan.name.clone());
            }
            Some(_) => {
                report.push("product", plan.key.as_str(), &product, Action::Unchanged, plan.name.clone())
            }
        }
        // The prices that hold the plan's lookup keys once this run is done.
        let mut holding = Vec::new();
        for (billing, price) in prices {
            let term = billing.stripe_interval();
            let interval = term.unit.as_str();
            let detail =
                format!("{} {} / {}", price.amount, currency.to_uppercase(), every(interval, term.count));
            let key = &price.lookup_key;
            let held = existing.iter().find(|p| p.lookup_key.as_ref() == Some(key));
            let same = |p: &tenancy::adapters::stripe::StripePrice| {
                p.unit_amount == Some(price.amount)
                    && p.currency == currency
                    && p.interval.as_deref() == Some(interval)
                    && p.interval_count == Some(term.count)
                    && p.product == product
            };
            if let Some(found) = held.filter(|p| same(p)) {
                holding.push(found.id.clone());
                report.push("price", key.as_str(), &found.id, Action::Unchanged, detail);
                continue;
            }
            let meta = [("plan", plan.key.as_str()), ("billing", billing.as_str())];
            let new = NewPrice {
                product: &product,
                lookup_key: key,
                unit_amount: price.amount,
                currency,
                interval,
                interval_count: term.count,
                metadata: &meta,
            };
            let created = api.create_price(&new).await.map_err(stripe(format!("creating price {key}")))?;
            holding.push(created.id.clone());
            match held {
                None => report.push("price", key.as_str(), &created.id, Action::Created, detail),
                Some(old) => {
                    api.archive_price(&old.id)
                        .await
                        .map_err(stripe(format!("archiving price {}", old.id)))?;
                    let was = format!(
                        "{detail} (was {} {} / {})",
                        old.unit_amount.unwrap_or_default(),
                        old.currency.to_uppercase(),
                        every(old.interval.as_deref().unwrap_or("?"), old.interval_count.unwrap_or(1))
                    );
                    report.push("price", key.as_str(), &created.id, Action::Replaced, was);
                    report.push("price", "", &old.id, Action::Archived, format!("no longer holds {key}"));
                }
            }
        }
        // A run stopped between taking a key and archiving the old price
        // left that one active: the next run archives it.
        let active =
            api.active_prices_of(&product).await.map_err(stripe(format!("listing prices of {product}")))?;
        for left in active.iter().filter(|p| !holding.contains(&p.id)) {
            api.archive_price(&left.id).await.map_err(stripe(format!("archiving price {}", left.id)))?;
            report.push("price", "", &left.id, Action::Archived, "holds no catalog lookup key".to_owned());
        }
    }
    Ok(report)
}

/// `month`, `2 year`: an interval as a report shows it.
fn every(unit: &str, count: u32) -> String {
    if count == 1 { unit.to_owned() } else { format!("{count} {unit}") }
}

/// The event types the endpoint subscribes to: exactly those acted on.
pub fn webhook_events() -> Vec<String> {
    let mut events: Vec<String> = EventType::ACTED_ON.iter().map(|e| e.as_str().to_owned()).collect();
    events.sort_unstable();
    events
}

/// The signing secrets stored in `name`, newest first: none when the
/// parameter does not exist. Entries that are not secrets (a placeholder
/// typed before the first registration) are left out and counted.
async fn stored_secrets(ssm: &Ssm, name: &str) -> Result<(Vec<String>, usize), StripeCommandError> {
    let store = SsmSecretStore::new(ssm.clone());
    let value = match store.get_secret(name).await {
        Ok(value) => value,
        Err(SecretStoreError::NotFound { .. }) => return Ok((Vec::new(), 0)),
        Err(error) => {
            return Err(StripeCommandError::Ssm {
                name: name.to_owned(),
                action: "read",
                source: error.into(),
            });
        }
    };
    let entries: Vec<&str> = value.expose().split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
    let secrets: Vec<String> =
        entries.iter().filter(|e| WebhookSecret::parse(e).is_ok()).map(|e| (*e).to_owned()).collect();
    let unusable = entries.len() - secrets.len();
    Ok((secrets, unusable))
}

async fn store_secrets(ssm: &Ssm, name: &str, secrets: &[String]) -> Result<(), StripeCommandError> {
    ssm.put_parameter()
        .name(name)
        .value(secrets.join(","))
        .r#type(ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .map(|_| ())
        .map_err(|error| StripeCommandError::Ssm {
            name: name.to_owned(),
            action: "written",
            source: aws_sdk_ssm::error::DisplayErrorContext(error).to_string().into(),
        })
}

/// The endpoints at `url`, newest first.
async fn our_endpoints(api: &StripeApi, url: &str) -> Result<Vec<WebhookEndpoint>, StripeCommandError> {
    let mut ours: Vec<WebhookEndpoint> = api
        .webhook_endpoints()
        .await
        .map_err(stripe("listing webhook endpoints"))?
        .into_iter()
        .filter(|e| e.url == url)
        .collect();
    ours.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
    Ok(ours)
}

fn secret_count(n: usize) -> String {
    if n == 1 { "1 secret".into() } else { format!("{n} secrets") }
}

/// Makes the webhook endpoint at the stack's `StripeWebhookUrl` deliver
/// exactly [`webhook_events`] in the API version the code is written for
/// ([`stripe_version`]), and keeps its signing secret first in the SSM
/// parameter `StripeWebhookSecretParameter` names.
///
/// Stripe shows a secret once, when its endpoint is made, and fixes an
/// endpoint's API version then: a new endpoint (and secret) is made when
/// none at the URL has the version, or when `rotate` asks for it. Its
/// secret goes in front of the stored ones, which stay accepted, and the
/// older endpoints stay (the system is idempotent, so an event delivered
/// by both is applied once) until `drop-webhook-secret`. Otherwise the
/// endpoint's events are corrected in place and no secret changes.
pub async fn register_webhook(
    stage: &Stage,
    api: &StripeApi,
    ssm: &Ssm,
    rotate: bool,
) -> Result<Report, StripeCommandError> {
    let url = stage.output(WEBHOOK_URL_OUTPUT)?.to_owned();
    let parameter = stage.parameter(WEBHOOK_SECRET_PARAMETER)?.to_owned();
    let (events, version) = (webhook_events(), stripe_version());
    let event_names: Vec<&str> = events.iter().map(String::as_str).collect();
    let mut report = Report::new(stage);
    let (stored, unusable) = stored_secrets(ssm, &parameter).await?;
    let ours = our_endpoints(api, &url).await?;
    let current = ours.iter().find(|e| e.api_version.as_deref() == Some(version));
    match current.filter(|_| !rotate) {
        Some(endpoint) => {
            // Checked before anything changes: without its secret the
            // endpoint's deliveries are refused whatever else is fixed.
            if stored.is_empty() {
                return Err(StripeCommandError::NoSecretForEndpoint {
                    endpoint: endpoint.id.clone(),
                    parameter,
                    stage: stage.name.to_string(),
                });
            }
            let mut subscribed = endpoint.enabled_events.clone();
            subscribed.sort_unstable();
            if subscribed != events || endpoint.status != "enabled" {
                api.update_webhook_endpoint(&endpoint.id, &url, &event_names)
                    .await
                    .map_err(stripe(format!("updating webhook endpoint {}", endpoint.id)))?;
                report.push(
                    "webhook_endpoint",
                    &url,
                    &endpoint.id,
                    Action::Updated,
                    format!("{} events, enabled", events.len()),
                );
            } else {
                report.push(
                    "webhook_endpoint",
                    &url,
                    &endpoint.id,
                    Action::Unchanged,
                    format!("{} events, {version}", events.len()),
                );
            }
            report.push("secret", &parameter, "", Action::Unchanged, secret_count(stored.len()));
        }
        None => {
            let (endpoint, secret) = api
                .create_webhook_endpoint(&url, &event_names, version, WEBHOOK_DESCRIPTION)
                .await
                .map_err(stripe("creating the webhook endpoint"))?;
            let mut secrets = vec![secret.expose().to_owned()];
            secrets.extend(stored.iter().filter(|s| s.as_str() != secret.expose()).cloned());
            if let Err(error) = store_secrets(ssm, &parameter, &secrets).await {
                // Its secret cannot be kept: an endpoint nobody can verify
                // would only have its deliveries refused. Best effort.
                let _ = api.delete_webhook_endpoint(&endpoint.id).await;
                return Err(error);
            }
            let why = if rotate {
                "rotated"
            } else if ours.is_empty() {
                "new"
            } else {
                "new API version"
            };
            report.push(
                "webhook_endpoint",
                &url,
                &endpoint.id,
                Action::Created,
                format!("{} events, {version} ({why})", events.len()),
            );
            let mut detail = format!("{} (new one first)", secret_count(secrets.len()));
            if unusable > 0 {
                detail.push_str(&format!("; {unusable} entry that was not a whsec_ secret dropped"));
            }
            report.push("secret", &parameter, "", Action::Updated, detail);
            for older in &ours {
                report.push(
                    "webhook_endpoint",
                    &url,
                    &older.id,
                    Action::Kept,
                    "until `stripe drop-webhook-secret`",
                );
            }
        }
    }
    Ok(report)
}

/// Ends a rotation: deletes every endpoint at the webhook URL but the
/// newest of the code's API version, then keeps only the newest secret
/// (the first stored, which `register-webhook` put there with it).
/// Endpoints go first, so nothing is delivered signed with a dropped secret.
pub async fn drop_webhook_secret(
    stage: &Stage,
    api: &StripeApi,
    ssm: &Ssm,
) -> Result<Report, StripeCommandError> {
    let url = stage.output(WEBHOOK_URL_OUTPUT)?.to_owned();
    let parameter = stage.parameter(WEBHOOK_SECRET_PARAMETER)?.to_owned();
    let version = stripe_version();
    let mut report = Report::new(stage);
    let (stored, _) = stored_secrets(ssm, &parameter).await?;
    let ours = our_endpoints(api, &url).await?;
    let Some(keep) = ours.iter().find(|e| e.api_version.as_deref() == Some(version)) else {
        // Nothing to fall back to: dropping would leave no endpoint at all.
        return Err(StripeCommandError::NoSecretForEndpoint {
            endpoint: format!("at {url} with API version {version} (none)"),
            parameter,
            stage: stage.name.to_string(),
        });
    };
    let Some(newest) = stored.first() else {
        return Err(StripeCommandError::NoSecretForEndpoint {
            endpoint: keep.id.clone(),
            parameter,
            stage: stage.name.to_string(),
        });
    };
    for older in ours.iter().filter(|e| e.id != keep.id) {
        api.delete_webhook_endpoint(&older.id)
            .await
            .map_err(stripe(format!("deleting webhook endpoint {}", older.id)))?;
        report.push("webhook_endpoint", &url, &older.id, Action::Deleted, "older endpoint");
    }
    report.push("webhook_endpoint", &url, &keep.id, Action::Unchanged, "kept");
    if stored.len() > 1 {
        store_secrets(ssm, &parameter, std::slice::from_ref(newest)).await?;
        report.push(
            "secret",
            &parameter,
            "",
            Action::Updated,
            format!("1 secret ({} dropped)", stored.len() - 1),
        );
    } else {
        report.push("secret", &parameter, "", Action::Unchanged, "1 secret");
    }
    Ok(report)
}

/// Runs `command` on the stage `args` name, with AWS credentials from the
/// usual chain.
pub async fn run(args: &StageArgs, command: &StripeCommand) -> Result<Report, StripeCommandError> {
    let (name, stack) = args.target()?;
    let sdk = tenancy::adapters::aws::sdk_config(None).await;
    let stage = Stage::find(name, &stack, &sdk).await?;
    let ssm = Ssm::new(&sdk);
    let api = connect(&stage, &ssm, args.stripe_api_base.as_deref()).await?;
    match command {
        StripeCommand::SyncCatalog => {
            let catalog = Catalog::embedded().map_err(StripeCommandError::Catalog)?;
            sync_catalog(&stage, &api, &catalog).await
        }
        StripeCommand::RegisterWebhook { rotate } => register_webhook(&stage, &api, &ssm, *rotate).await,
        StripeCommand::DropWebhookSecret => drop_webhook_secret(&stage, &api, &ssm).await,
    }
}

/// [`run`], printed (a table, or JSON with `--json`); the exit code.
pub async fn main(args: &StageArgs, command: &StripeCommand) -> i32 {
    match run(args, command).await {
        Ok(report) if args.json => match serde_json::to_string_pretty(&report) {
            Ok(json) => {
                println!("{json}");
                0
            }
            Err(error) => {
                eprintln!("tenantctl: {error}");
                1
            }
        },
        Ok(report) => {
            super::paint::print(&report.to_string());
            0
        }
        Err(error) => {
            eprintln!("tenantctl: {}", tenancy::telemetry::error_chain(&error));
            error.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_subscribes_to_exactly_the_types_acted_on() {
        let events = webhook_events();
        assert_eq!(events.len(), EventType::ACTED_ON.len());
        for name in &events {
            assert!(EventType::parse(name).unwrap().is_acted_on(), "{name}");
        }
        assert!(events.iter().any(|e| e == "checkout.session.completed"));
        assert!(events.iter().any(|e| e == "invoice.payment_failed"));
    }

    #[test]
    fn a_report_is_a_table_and_never_shows_a_secret() {
        let report = Report {
            stage: "test".into(),
            stack: "tenancy-test".into(),
            changes: vec![Change {
                object: "price",
                key: "pro_monthly".into(),
                id: "price_1".into(),
                action: Action::Created,
                detail: "5000 CAD / month".into(),
            }],
        };
        let text = report.to_string();
        assert!(
            text.starts_with(
                "stage test (stack tenancy-test)\nWHAT   KEY          ID       ACTION   DETAIL\n"
            ),
            "{text}"
        );
        assert!(text.contains("price  pro_monthly  price_1  created  5000 CAD / month"), "{text}");
        assert_eq!(serde_json::to_value(&report).unwrap()["changes"][0]["action"], "created");
    }

    #[test]
    fn exit_codes_tell_bad_input_from_failed_services() {
        assert_eq!(StripeCommandError::Stage(StageError::NoStageGiven).exit_code(), 2);
        let down = StripeCommandError::Stripe {
            what: "listing".into(),
            source: StripeApiError::Unavailable("down".into()),
        };
        assert_eq!(down.exit_code(), 1);
    }
}
