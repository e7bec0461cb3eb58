use serde::{Deserialize, Serialize};

/// Names a customer may not have: ours, or confusing.
const RESERVED: &[&str] = &[
    "www",
    "api",
    "admin",
    "mail",
    "app",
    "status",
    "smtp",
    "imap",
    "pop",
    "ftp",
    "ns1",
    "ns2",
    "dns",
    "mx",
    "root",
    "support",
    "help",
    "billing",
    "dashboard",
    "static",
    "cdn",
    "assets",
    "blog",
    "docs",
    "auth",
    "login",
    "signup",
    "account",
    "accounts",
    "webhook",
    "webhooks",
    "stripe",
    "internal",
    "localhost",
];

/// A tenant's subdomain: one RFC 1123 label, lower case, 3 to 63 characters,
/// not reserved. `{subdomain}.{domain}` is the tenant's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subdomain(String);

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum InvalidSubdomain {
    #[error("subdomain must be 3 to 63 characters")]
    Length,
    #[error("subdomain may contain only lower-case letters, digits and hyphens")]
    Characters,
    #[error("subdomain may not start or end with a hyphen")]
    Hyphen,
    #[error("subdomain `{0}` is reserved")]
    Reserved(String),
}

impl Subdomain {
    /// Parses user input; surrounding spaces are dropped and letters lowered,
    /// since DNS names are case-insensitive anyway.
    pub fn parse(raw: &str) -> Result<Self, InvalidSubdomain> {
        let name = raw.trim().to_ascii_lowercase();
        if !(3..=63).contains(&name.len()) {
            return Err(InvalidSubdomain::Length);
        }
        if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(InvalidSubdomain::Characters);
        }
        if name.starts_with('-') || name.ends_with('-') {
            return Err(InvalidSubdomain::Hyphen);
        }
        // Punycode labels ("xn--") can impersonate other names.
        if RESERVED.contains(&name.as_str()) || name.starts_with("xn--") {
            return Err(InvalidSubdomain::Reserved(name));
        }
        Ok(Subdomain(name))
    }
}

string_newtype!(Subdomain, InvalidSubdomain);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_labels_and_lowers_case() {
        assert_eq!(Subdomain::parse("acme").unwrap().as_str(), "acme");
        assert_eq!(Subdomain::parse(" Acme-Robotics2 ").unwrap().as_str(), "acme-robotics2");
        assert!(Subdomain::parse(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn refuses_what_dns_or_we_cannot_use() {
        assert_eq!(Subdomain::parse("ab"), Err(InvalidSubdomain::Length));
        assert_eq!(Subdomain::parse(&"a".repeat(64)), Err(InvalidSubdomain::Length));
        assert_eq!(Subdomain::parse("acme_co"), Err(InvalidSubdomain::Characters));
        assert_eq!(Subdomain::parse("acme.co"), Err(InvalidSubdomain::Characters));
        assert_eq!(Subdomain::parse("café"), Err(InvalidSubdomain::Characters));
        assert_eq!(Subdomain::parse("-acme"), Err(InvalidSubdomain::Hyphen));
        assert_eq!(Subdomain::parse("acme-"), Err(InvalidSubdomain::Hyphen));
        for reserved in ["www", "API", "admin", "mail", "app", "status", "xn--80ak6aa92e"] {
            assert!(matches!(Subdomain::parse(reserved), Err(InvalidSubdomain::Reserved(_))), "{reserved}");
        }
    }

    #[test]
    fn deserialising_applies_the_same_rules() {
        assert!(serde_json::from_str::<Subdomain>("\"www\"").is_err());
        assert_eq!(serde_json::from_str::<Subdomain>("\"acme\"").unwrap().as_str(), "acme");
    }
}
