use serde::{Deserialize, Serialize};

/// An e-mail address good enough to send to: `local@domain.tld`, no spaces,
/// at most 254 characters; the domain is stored lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("not a usable e-mail address")]
pub struct InvalidEmail;

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let raw = raw.trim();
        let (local, domain) = raw.rsplit_once('@').ok_or(InvalidEmail)?;
        let local_ok = (1..=64).contains(&local.len())
            && !local.contains('@')
            && local.chars().all(|c| c.is_ascii_graphic() && !"<>()[],;:\"\\".contains(c));
        let domain = domain.to_ascii_lowercase();
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && domain.len() <= 253
            && labels.iter().all(|label| {
                (1..=63).contains(&label.len())
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !local_ok || !domain_ok || raw.len() > 254 {
            return Err(InvalidEmail);
        }
        Ok(EmailAddress(format!("{local}@{domain}")))
    }
}

string_newtype!(EmailAddress, InvalidEmail);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_lowers_the_domain() {
        assert_eq!(
            EmailAddress::parse(" Dana.K+saas@Acme.Example ").unwrap().as_str(),
            "Dana.K+saas@acme.example"
        );
    }

    #[test]
    fn refuses_what_cannot_be_mailed() {
        for bad in [
            "",
            "dana",
            "dana@",
            "@acme.example",
            "dana@acme",
            "da na@acme.example",
            "dana@acme..example",
            "dana@-acme.example",
            "a@b@c.example",
            "<dana>@acme.example",
        ] {
            assert_eq!(EmailAddress::parse(bad), Err(InvalidEmail), "{bad:?}");
        }
        assert!(EmailAddress::parse(&format!("{}@acme.example", "a".repeat(65))).is_err());
    }
}
