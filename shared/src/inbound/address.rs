//! Each tenant's own mail address, `{subdomain}_app@{mail domain}` by
//! default: made from the subdomain, and read back from a recipient to the
//! subdomain it names. The subdomain's claim in the tenant table is the
//! mapping to the tenant, so an address lives exactly as long as its name is
//! held: from the signup until the grace period after cancellation ends.

use crate::config::{ConfigError, Lookup, required};
use crate::domain::{EmailAddress, Subdomain};

pub const TENANT_MAIL_DOMAIN: &str = "TENANT_MAIL_DOMAIN";
pub const TENANT_MAIL_PATTERN: &str = "TENANT_MAIL_PATTERN";
/// The seed business's pattern.
pub const DEFAULT_PATTERN: &str = "{subdomain}_app";
const PLACEHOLDER: &str = "{subdomain}";

/// How tenants' addresses are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantMailAddresses {
    /// The local part around `{subdomain}`, lower case.
    prefix: String,
    suffix: String,
    /// Lower case, no trailing dot.
    domain: String,
}

fn invalid(var: &'static str, reason: &str) -> ConfigError {
    ConfigError::Invalid { var, reason: reason.to_owned() }
}

impl TenantMailAddresses {
    /// `pattern` holds `{subdomain}` once, with letters, digits, `.`, `_`,
    /// `+` or `-` around it; `domain` is a DNS name SES receives mail for.
    pub fn new(pattern: &str, domain: &str) -> Result<Self, ConfigError> {
        let pattern = pattern.trim().to_ascii_lowercase();
        let Some((prefix, suffix)) = pattern.split_once(PLACEHOLDER) else {
            return Err(invalid(TENANT_MAIL_PATTERN, "must hold {subdomain}"));
        };
        let allowed = |part: &str| part.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
        if suffix.contains(PLACEHOLDER) || !allowed(prefix) || !allowed(suffix) {
            return Err(invalid(
                TENANT_MAIL_PATTERN,
                "must hold {subdomain} once, with letters, digits, '.', '_', '+' or '-' around it",
            ));
        }
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        // A sample address checks the domain and the pattern's length.
        if EmailAddress::parse(&format!("{prefix}acme{suffix}@{domain}")).is_err() {
            return Err(invalid(
                TENANT_MAIL_DOMAIN,
                "must be a domain name (with the pattern, a usable address)",
            ));
        }
        Ok(TenantMailAddresses { prefix: prefix.to_owned(), suffix: suffix.to_owned(), domain })
    }

    /// From [`TENANT_MAIL_DOMAIN`] and [`TENANT_MAIL_PATTERN`] ([`DEFAULT_PATTERN`] when unset).
    pub fn from_lookup(env: &dyn Lookup) -> Result<Self, ConfigError> {
        let pattern = env.get(TENANT_MAIL_PATTERN).unwrap_or_else(|| DEFAULT_PATTERN.to_owned());
        TenantMailAddresses::new(&pattern, &required(env, TENANT_MAIL_DOMAIN)?)
    }

    /// The stage's addresses, or `None` when [`TENANT_MAIL_DOMAIN`] is unset
    /// or empty (a stage whose tenants have none).
    pub fn optional_from_lookup(env: &dyn Lookup) -> Result<Option<Self>, ConfigError> {
        match env.get(TENANT_MAIL_DOMAIN) {
            Some(domain) if !domain.trim().is_empty() => TenantMailAddresses::from_lookup(env).map(Some),
            _ => Ok(None),
        }
    }

    /// The domain every tenant's address is at (lower case, no trailing dot).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The tenant's address; `None` for a name so long that the address's
    /// local part would pass the 64 characters mail allows.
    pub fn address_for(&self, subdomain: &Subdomain) -> Option<EmailAddress> {
        EmailAddress::parse(&format!("{}{subdomain}{}@{}", self.prefix, self.suffix, self.domain)).ok()
    }

    /// The subdomain `recipient` is the address of, if it is one of ours
    /// (compared without regard to case).
    pub fn subdomain_of(&self, recipient: &str) -> Option<Subdomain> {
        let recipient = recipient.trim().to_ascii_lowercase();
        let (local, domain) = recipient.rsplit_once('@')?;
        if domain.trim_end_matches('.') != self.domain {
            return None;
        }
        let name = local.strip_prefix(&self.prefix)?.strip_suffix(&self.suffix)?;
        let subdomain = Subdomain::parse(name).ok()?;
        // Only the form we make: `ACME_app` is read as `acme`, `acme-_app` is not an address.
        (subdomain.as_str() == name).then_some(subdomain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> TenantMailAddresses {
        TenantMailAddresses::new(DEFAULT_PATTERN, "Mail.Example.com.").unwrap()
    }

    #[test]
    fn an_address_is_made_from_the_subdomain_and_read_back_to_it() {
        let acme = Subdomain::parse("acme-robotics").unwrap();
        let address = seed().address_for(&acme).unwrap();
        assert_eq!(address.as_str(), "acme-robotics_app@mail.example.com");
        assert_eq!(seed().subdomain_of("ACME-Robotics_App@mail.example.com"), Some(acme.clone()));
        let custom = TenantMailAddresses::new("team+{subdomain}", "mail.example.com").unwrap();
        assert_eq!(custom.address_for(&acme).unwrap().as_str(), "team+acme-robotics@mail.example.com");
        assert_eq!(custom.subdomain_of("team+acme-robotics@mail.example.com"), Some(acme));
    }

    #[test]
    fn a_name_too_long_for_a_local_part_has_no_address() {
        let long = Subdomain::parse(&"a".repeat(61)).unwrap();
        assert_eq!(seed().address_for(&long), None, "61 + 4 letters pass the 64 mail allows");
        let fits = Subdomain::parse(&"a".repeat(60)).unwrap();
        assert!(seed().address_for(&fits).is_some());
    }

    #[test]
    fn addresses_that_are_not_a_tenants_name_no_subdomain() {
        for stranger in [
            "acme_app@other.example.com",
            "acme@mail.example.com",
            "ab_app@mail.example.com",
            "www_app@mail.example.com",
            "-acme_app@mail.example.com",
            "_app@mail.example.com",
            "not an address",
        ] {
            assert_eq!(seed().subdomain_of(stranger), None, "{stranger}");
        }
    }

    #[test]
    fn a_pattern_without_its_placeholder_or_with_odd_characters_is_refused() {
        for (pattern, domain) in [
            ("app", "mail.example.com"),
            ("{subdomain}{subdomain}", "mail.example.com"),
            ("{subdomain} app", "mail.example.com"),
            ("{subdomain}@x", "mail.example.com"),
            ("{subdomain}_app", "not a domain"),
        ] {
            assert!(TenantMailAddresses::new(pattern, domain).is_err(), "{pattern} {domain}");
        }
        let none = |_: &str| None::<String>;
        assert!(
            TenantMailAddresses::from_lookup(&none).unwrap_err().to_string().contains(TENANT_MAIL_DOMAIN)
        );
    }
}
