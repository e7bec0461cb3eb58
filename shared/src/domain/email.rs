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

/// The id SES gives a received message, which names the object its receipt
/// rule stored: letters, digits and hyphens, at most 100 (so it is a safe
/// object key and file name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReceivedMessageId(String);

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("not a received message's id (letters, digits and hyphens, at most 100)")]
pub struct InvalidMessageId;

impl ReceivedMessageId {
    pub fn parse(raw: &str) -> Result<Self, InvalidMessageId> {
        let valid =
            (1..=100).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if valid { Ok(ReceivedMessageId(raw.to_owned())) } else { Err(InvalidMessageId) }
    }
}

string_newtype!(ReceivedMessageId, InvalidMessageId);

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
    fn message_ids_are_safe_object_keys() {
        assert_eq!(
            ReceivedMessageId::parse("o3vrnil0e2ic28trm7dfhrc2v0cnbeccl4nbp0g1").unwrap().as_str(),
            "o3vrnil0e2ic28trm7dfhrc2v0cnbeccl4nbp0g1"
        );
        for bad in ["", "../secret", "a/b", "a b", "m.eml", &"x".repeat(101)] {
            assert_eq!(ReceivedMessageId::parse(bad), Err(InvalidMessageId), "{bad}");
        }
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
