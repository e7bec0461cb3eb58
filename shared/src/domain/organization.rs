use serde::{Deserialize, Serialize};

/// The customer's organisation name as they typed it: 1 to 100 characters,
/// no control characters (it goes into mail subjects and environment values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrganizationName(String);

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("organization must be 1 to 100 characters without control characters")]
pub struct InvalidOrganization;

impl OrganizationName {
    pub fn parse(raw: &str) -> Result<Self, InvalidOrganization> {
        let name = raw.trim();
        let length = name.chars().count();
        if length == 0 || length > 100 || name.chars().any(char::is_control) {
            return Err(InvalidOrganization);
        }
        Ok(OrganizationName(name.to_owned()))
    }
}

string_newtype!(OrganizationName, InvalidOrganization);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_unicode_and_refuses_empty_long_or_control() {
        assert_eq!(OrganizationName::parse(" Zoë’s Café ").unwrap().as_str(), "Zoë’s Café");
        assert!(OrganizationName::parse("  ").is_err());
        assert!(OrganizationName::parse(&"é".repeat(101)).is_err());
        assert!(OrganizationName::parse("Acme\nBcc: x").is_err());
    }
}
