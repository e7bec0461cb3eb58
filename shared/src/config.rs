//! Typed configuration, read once at cold start.
//!
//! Every value is parsed into a type that cannot hold a bad value; a bad or
//! missing value is a one-line error naming the variable, never its content
//! when the variable holds a secret.

use std::time::Duration;

use crate::ports::{SecretStore, SecretStoreError};
use crate::stripe::signature::{DEFAULT_TOLERANCE, InvalidWebhookSecret};
use crate::stripe::{SignatureVerifier, StripeMode, WebhookSecrets};

pub const STRIPE_MODE: &str = "STRIPE_MODE";
/// Secrets inline, comma-separated: for local runs only.
pub const STRIPE_WEBHOOK_SECRET: &str = "STRIPE_WEBHOOK_SECRET";
/// Name of the SSM SecureString holding the secrets: what Lambda gets.
pub const STRIPE_WEBHOOK_SECRET_PARAM: &str = "STRIPE_WEBHOOK_SECRET_PARAM";
/// The Stripe API key inline: for local runs only.
pub const STRIPE_SECRET_KEY: &str = "STRIPE_SECRET_KEY";
/// Name of the SSM SecureString holding the Stripe API key: what Lambda gets.
pub const STRIPE_SECRET_KEY_PARAM: &str = "STRIPE_SECRET_KEY_PARAM";
pub const STRIPE_WEBHOOK_TOLERANCE_SECONDS: &str = "STRIPE_WEBHOOK_TOLERANCE_SECONDS";
pub const EVENT_QUEUE_URL: &str = "EVENT_QUEUE_URL";

const MAX_TOLERANCE_SECS: u64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {var} is not set")]
    Missing { var: &'static str },
    #[error("configuration: {var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("configuration: set only one of {0} and {1}")]
    Conflict(&'static str, &'static str),
    #[error("configuration: webhook secrets in `{name}` are invalid: {reason}")]
    StoredSecret {
        name: String,
        #[source]
        reason: InvalidWebhookSecret,
    },
    #[error("configuration: cannot read secret")]
    SecretStore(#[from] SecretStoreError),
}

/// Reads a variable by name; `std::env::var` in production, a map in tests.
pub trait Lookup {
    fn get(&self, var: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Lookup for ProcessEnv {
    fn get(&self, var: &str) -> Option<String> {
        std::env::var(var).ok().filter(|value| !value.trim().is_empty())
    }
}

impl<F: Fn(&str) -> Option<String>> Lookup for F {
    fn get(&self, var: &str) -> Option<String> {
        self(var)
    }
}

/// The stage's Stripe mode (`STRIPE_MODE=test|live`).
pub fn stripe_mode(env: &dyn Lookup) -> Result<StripeMode, ConfigError> {
    required(env, STRIPE_MODE)?
        .parse::<StripeMode>()
        .map_err(|e| ConfigError::Invalid { var: STRIPE_MODE, reason: e.to_string() })
}

pub fn required(env: &dyn Lookup, var: &'static str) -> Result<String, ConfigError> {
    env.get(var).ok_or(ConfigError::Missing { var })
}

/// A positive count from `var`, `default` when unset.
pub fn count_setting(
    env: &dyn Lookup,
    var: &'static str,
    default: u32,
    max: u32,
) -> Result<u32, ConfigError> {
    match env.get(var) {
        None => Ok(default),
        Some(raw) => match raw.trim().parse::<u32>() {
            Ok(count) if (1..=max).contains(&count) => Ok(count),
            _ => Err(ConfigError::Invalid {
                var,
                reason: format!("expected 1 to {max}, got `{}`", raw.trim()),
            }),
        },
    }
}

/// Where the webhook signing secrets come from.
#[derive(Debug, Clone)]
pub enum SecretsSource {
    Inline(WebhookSecrets),
    Parameter(String),
}

/// What the webhook ingress needs to know.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub mode: StripeMode,
    pub tolerance: Duration,
    pub secrets: SecretsSource,
}

impl WebhookConfig {
    pub fn from_lookup(env: &dyn Lookup) -> Result<Self, ConfigError> {
        let mode = stripe_mode(env)?;
        let tolerance = match env.get(STRIPE_WEBHOOK_TOLERANCE_SECONDS) {
            None => DEFAULT_TOLERANCE,
            Some(raw) => parse_tolerance(&raw)
                .map_err(|reason| ConfigError::Invalid { var: STRIPE_WEBHOOK_TOLERANCE_SECONDS, reason })?,
        };
        let secrets = match (env.get(STRIPE_WEBHOOK_SECRET), env.get(STRIPE_WEBHOOK_SECRET_PARAM)) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict(STRIPE_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET_PARAM));
            }
            (Some(inline), None) => {
                SecretsSource::Inline(WebhookSecrets::parse_list(&inline).map_err(|e| {
                    ConfigError::Invalid { var: STRIPE_WEBHOOK_SECRET, reason: e.to_string() }
                })?)
            }
            (None, Some(name)) => {
                SecretsSource::Parameter(parse_parameter_name(STRIPE_WEBHOOK_SECRET_PARAM, &name)?)
            }
            (None, None) => return Err(ConfigError::Missing { var: STRIPE_WEBHOOK_SECRET_PARAM }),
        };
        Ok(WebhookConfig { mode, tolerance, secrets })
    }

    /// Resolves the secrets (from the store if they live there) into a verifier.
    pub async fn verifier(&self, store: &dyn SecretStore) -> Result<SignatureVerifier, ConfigError> {
        let secrets = match &self.secrets {
            SecretsSource::Inline(secrets) => secrets.clone(),
            SecretsSource::Parameter(name) => {
                let value = store.get_secret(name).await?;
                WebhookSecrets::parse_list(value.expose())
                    .map_err(|reason| ConfigError::StoredSecret { name: name.clone(), reason })?
            }
        };
        Ok(SignatureVerifier::new(secrets, self.tolerance))
    }
}

fn parse_tolerance(raw: &str) -> Result<Duration, String> {
    match raw.trim().parse::<u64>() {
        Ok(secs @ 1..=MAX_TOLERANCE_SECS) => Ok(Duration::from_secs(secs)),
        _ => Err(format!("expected whole seconds from 1 to {MAX_TOLERANCE_SECS}, got `{}`", raw.trim())),
    }
}

/// SSM parameter names: `/`-separated path of `[A-Za-z0-9_.-]`, at most 1011 chars.
/// `var` is the variable that named it, for the error.
pub(crate) fn parse_parameter_name(var: &'static str, raw: &str) -> Result<String, ConfigError> {
    let name = raw.trim();
    let valid = !name.is_empty()
        && name.len() <= 1011
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_.-".contains(&b));
    if valid {
        Ok(name.to_owned())
    } else {
        Err(ConfigError::Invalid {
            var,
            reason: "expected an SSM parameter name such as /tenancy/test/stripe-webhook-secrets".into(),
        })
    }
}

/// An SQS queue URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrl(String);

impl QueueUrl {
    pub fn from_lookup(env: &dyn Lookup) -> Result<Self, ConfigError> {
        let raw = required(env, EVENT_QUEUE_URL)?;
        let raw = raw.trim();
        if (raw.starts_with("https://") || raw.starts_with("http://")) && !raw.contains(char::is_whitespace) {
            Ok(QueueUrl(raw.to_owned()))
        } else {
            Err(ConfigError::Invalid {
                var: EVENT_QUEUE_URL,
                reason: "expected an https:// queue URL".into(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An environment made of `(name, value)` pairs, for tests.
#[cfg(test)]
pub(crate) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: std::collections::HashMap<String, String> =
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |var| map.get(var).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::local::InMemorySecretStore;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        env_of(pairs)
    }

    #[test]
    fn inline_secrets_with_defaults() {
        let cfg = WebhookConfig::from_lookup(&env(&[
            (STRIPE_MODE, "test"),
            (STRIPE_WEBHOOK_SECRET, "whsec_aaaaaaaaaaaa,whsec_bbbbbbbbbbbb"),
        ]))
        .unwrap();
        assert_eq!(cfg.mode, StripeMode::Test);
        assert_eq!(cfg.tolerance, Duration::from_secs(300));
        assert!(matches!(cfg.secrets, SecretsSource::Inline(ref s) if s.len() == 2));
    }

    #[test]
    fn each_bad_value_names_its_variable_and_hides_secrets() {
        let err = |pairs: &[(&str, &str)]| WebhookConfig::from_lookup(&env(pairs)).unwrap_err().to_string();
        assert_eq!(err(&[]), "configuration: STRIPE_MODE is not set");
        assert!(err(&[(STRIPE_MODE, "prod")]).starts_with("configuration: STRIPE_MODE is invalid"));
        assert_eq!(err(&[(STRIPE_MODE, "live")]), "configuration: STRIPE_WEBHOOK_SECRET_PARAM is not set");
        let leaked = err(&[(STRIPE_MODE, "live"), (STRIPE_WEBHOOK_SECRET, "sk_live_supersecretvalue")]);
        assert!(leaked.contains("STRIPE_WEBHOOK_SECRET is invalid"), "{leaked}");
        assert!(!leaked.contains("supersecret"), "{leaked}");
        let tol = err(&[
            (STRIPE_MODE, "live"),
            (STRIPE_WEBHOOK_SECRET, "whsec_aaaaaaaaaaaa"),
            (STRIPE_WEBHOOK_TOLERANCE_SECONDS, "0"),
        ]);
        assert!(tol.contains("STRIPE_WEBHOOK_TOLERANCE_SECONDS is invalid"), "{tol}");
        let both = err(&[
            (STRIPE_MODE, "live"),
            (STRIPE_WEBHOOK_SECRET, "whsec_aaaaaaaaaaaa"),
            (STRIPE_WEBHOOK_SECRET_PARAM, "/p"),
        ]);
        assert!(both.contains("set only one"), "{both}");
        let name = err(&[(STRIPE_MODE, "live"), (STRIPE_WEBHOOK_SECRET_PARAM, "not a name")]);
        assert!(name.contains("STRIPE_WEBHOOK_SECRET_PARAM is invalid"), "{name}");
    }

    #[tokio::test]
    async fn secrets_from_the_store_are_resolved_and_checked() {
        let cfg = WebhookConfig::from_lookup(&env(&[
            (STRIPE_MODE, "live"),
            (STRIPE_WEBHOOK_SECRET_PARAM, "/tenancy/live/stripe-webhook-secrets"),
            (STRIPE_WEBHOOK_TOLERANCE_SECONDS, "120"),
        ]))
        .unwrap();
        let store = InMemorySecretStore::default();
        let missing = cfg.verifier(&store).await.unwrap_err();
        assert!(matches!(missing, ConfigError::SecretStore(SecretStoreError::NotFound { .. })));

        store.put("/tenancy/live/stripe-webhook-secrets", "whsec_cccccccccccc");
        let verifier = cfg.verifier(&store).await.unwrap();
        assert_eq!(verifier.tolerance(), Duration::from_secs(120));

        store.put("/tenancy/live/stripe-webhook-secrets", "sk_live_notawebhooksecret");
        let bad = cfg.verifier(&store).await.unwrap_err().to_string();
        assert!(
            bad.contains("/tenancy/live/stripe-webhook-secrets") && !bad.contains("notawebhook"),
            "{bad}"
        );
    }

    #[test]
    fn queue_url_must_be_a_url() {
        let ok = QueueUrl::from_lookup(&env(&[(EVENT_QUEUE_URL, "https://sqs.us-east-1.amazonaws.com/1/q")]));
        assert_eq!(ok.unwrap().as_str(), "https://sqs.us-east-1.amazonaws.com/1/q");
        assert!(QueueUrl::from_lookup(&env(&[(EVENT_QUEUE_URL, "q")])).is_err());
        assert!(QueueUrl::from_lookup(&env(&[])).is_err());
    }
}

pub const TENANT_DOMAIN: &str = "TENANT_DOMAIN";
pub const OPERATOR_EMAIL: &str = "OPERATOR_EMAIL";
/// Inline password key: for local runs only.
pub const TENANT_PASSWORD_KEY: &str = "TENANT_PASSWORD_KEY";
/// Name of the SSM SecureString holding the password key: what Lambda gets.
pub const TENANT_PASSWORD_KEY_PARAM: &str = "TENANT_PASSWORD_KEY_PARAM";

/// The parent domain tenants live under (`apps.example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantDomain(String);

impl TenantDomain {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        let labels: Vec<&str> = name.split('.').collect();
        let valid = labels.len() >= 2
            && name.len() <= 190
            && labels.iter().all(|label| {
                (1..=63).contains(&label.len())
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
        if valid { Ok(TenantDomain(name)) } else { Err(format!("`{}` is not a DNS domain name", raw.trim())) }
    }

    /// `{subdomain}.{domain}`.
    pub fn host(&self, subdomain: &crate::domain::Subdomain) -> String {
        format!("{subdomain}.{}", self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub const SUBDOMAIN_GRACE_SECONDS: &str = "SUBDOMAIN_GRACE_SECONDS";
/// How long a cancelled tenant's subdomain stays reserved for it by default.
const DEFAULT_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Settings every step shares.
#[derive(Debug, Clone)]
pub struct TenantSettings {
    pub domain: TenantDomain,
    pub operator_email: crate::domain::EmailAddress,
    /// After cancellation, the subdomain is released when this has passed.
    pub subdomain_grace: Duration,
    /// Each tenant's own mail address, when the stage gives them one.
    pub mail: Option<crate::inbound::address::TenantMailAddresses>,
}

impl TenantSettings {
    /// The settings unit tests share: `apps.example.com`, `ops@example.com`,
    /// a one-minute grace period.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        TenantSettings {
            domain: TenantDomain("apps.example.com".into()),
            operator_email: crate::domain::EmailAddress::parse("ops@example.com").unwrap(),
            subdomain_grace: Duration::from_secs(60),
            mail: None,
        }
    }

    pub fn from_lookup(env: &dyn Lookup) -> Result<Self, ConfigError> {
        let domain = TenantDomain::parse(&required(env, TENANT_DOMAIN)?)
            .map_err(|reason| ConfigError::Invalid { var: TENANT_DOMAIN, reason })?;
        let operator_email = crate::domain::EmailAddress::parse(&required(env, OPERATOR_EMAIL)?)
            .map_err(|e| ConfigError::Invalid { var: OPERATOR_EMAIL, reason: e.to_string() })?;
        let subdomain_grace = match env.get(SUBDOMAIN_GRACE_SECONDS) {
            None => DEFAULT_GRACE,
            Some(raw) => {
                raw.trim().parse::<u64>().map(Duration::from_secs).map_err(|_| ConfigError::Invalid {
                    var: SUBDOMAIN_GRACE_SECONDS,
                    reason: format!("expected whole seconds, got `{}`", raw.trim()),
                })?
            }
        };
        let mail = crate::inbound::address::TenantMailAddresses::optional_from_lookup(env)?;
        Ok(TenantSettings { domain, operator_email, subdomain_grace, mail })
    }

    /// `https://{subdomain}.{domain}`: where the tenant's app answers.
    pub fn url(&self, subdomain: &crate::domain::Subdomain) -> String {
        format!("https://{}", self.domain.host(subdomain))
    }

    /// The tenant's own mail address, if the stage gives tenants one.
    pub fn mail_address(&self, subdomain: &crate::domain::Subdomain) -> Option<crate::domain::EmailAddress> {
        self.mail.as_ref().and_then(|addresses| addresses.address_for(subdomain))
    }
}

/// The admin password key: inline for local runs, else from the secret store.
pub async fn password_key(
    env: &dyn Lookup,
    store: &dyn SecretStore,
) -> Result<crate::domain::password::PasswordKey, ConfigError> {
    use crate::domain::password::PasswordKey;
    match (env.get(TENANT_PASSWORD_KEY), env.get(TENANT_PASSWORD_KEY_PARAM)) {
        (Some(_), Some(_)) => Err(ConfigError::Conflict(TENANT_PASSWORD_KEY, TENANT_PASSWORD_KEY_PARAM)),
        (Some(inline), None) => PasswordKey::parse(&inline)
            .map_err(|e| ConfigError::Invalid { var: TENANT_PASSWORD_KEY, reason: e.to_string() }),
        (None, Some(name)) => {
            let value = store.get_secret(name.trim()).await?;
            PasswordKey::parse(value.expose())
                .map_err(|e| ConfigError::Invalid { var: TENANT_PASSWORD_KEY_PARAM, reason: e.to_string() })
        }
        (None, None) => Err(ConfigError::Missing { var: TENANT_PASSWORD_KEY_PARAM }),
    }
}
