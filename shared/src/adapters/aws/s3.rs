//! Received mail in Amazon S3, where SES's receipt rule put it: one object
//! per message, named `{prefix}{message id}` (the S3 action's key scheme).

use async_trait::async_trait;
use aws_sdk_s3::Client;

use super::error::{Fault, call_failed, classify, summary};
use crate::config::{ConfigError, Lookup, required};
use crate::domain::ReceivedMessageId;
use crate::ports::{MailError, ReceivedMail};

/// The bucket the receipt rule stores messages in.
pub const INBOUND_MAIL_BUCKET: &str = "INBOUND_MAIL_BUCKET";
/// The receipt rule's object key prefix ([`DEFAULT_PREFIX`] when unset).
pub const INBOUND_MAIL_PREFIX: &str = "INBOUND_MAIL_PREFIX";
/// The prefix the template's receipt rule stores messages under.
pub const DEFAULT_PREFIX: &str = "inbound/";

/// SES accepts messages up to 40 MB; anything larger under the prefix was
/// not put there by SES, and is not read into the function's memory.
const MAX_MESSAGE_BYTES: i64 = 40 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct S3ReceivedMail {
    client: Client,
    bucket: String,
    prefix: String,
}

/// S3's rules for a bucket name (the ones a typo breaks): 3 to 63 lower
/// case letters, digits, dots and hyphens, starting and ending with a
/// letter or digit.
fn bucket_name(raw: &str) -> Result<String, ConfigError> {
    let name = raw.trim();
    let alnum = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let valid = (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && alnum(name.as_bytes().first())
        && alnum(name.as_bytes().last());
    if valid {
        Ok(name.to_owned())
    } else {
        Err(ConfigError::Invalid {
            var: INBOUND_MAIL_BUCKET,
            reason: "expected an S3 bucket name (3 to 63 lower case letters, digits, dots, hyphens)".into(),
        })
    }
}

fn key_prefix(raw: &str) -> Result<String, ConfigError> {
    let prefix = raw.trim();
    if prefix.len() > 900 || prefix.starts_with('/') || prefix.chars().any(char::is_control) {
        return Err(ConfigError::Invalid {
            var: INBOUND_MAIL_PREFIX,
            reason: "expected an object key prefix: no leading '/', no control characters, at most 900 bytes"
                .into(),
        });
    }
    Ok(prefix.to_owned())
}

impl S3ReceivedMail {
    pub fn new(client: Client, bucket: &str, prefix: &str) -> Result<Self, ConfigError> {
        Ok(S3ReceivedMail { client, bucket: bucket_name(bucket)?, prefix: key_prefix(prefix)? })
    }

    pub fn from_lookup(client: Client, env: &dyn Lookup) -> Result<Self, ConfigError> {
        let bucket = required(env, INBOUND_MAIL_BUCKET)?;
        let prefix = env.get(INBOUND_MAIL_PREFIX).unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
        S3ReceivedMail::new(client, &bucket, &prefix)
    }

    /// The object SES's S3 action writes for `message_id`.
    pub fn key(&self, message_id: &ReceivedMessageId) -> String {
        format!("{}{message_id}", self.prefix)
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

#[async_trait]
impl ReceivedMail for S3ReceivedMail {
    async fn raw_message(&self, message_id: &ReceivedMessageId) -> Result<Option<Vec<u8>>, MailError> {
        let answer = self.client.get_object().bucket(&self.bucket).key(self.key(message_id)).send().await;
        let object = match answer {
            Ok(object) => object,
            // Without s3:ListBucket a missing key reads as AccessDenied; the
            // stack grants it so that "not there" is told apart.
            Err(error) if error.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(error) => {
                return Err(match classify(&error) {
                    Fault::Throttled | Fault::Transient => {
                        MailError::Unavailable(call_failed("S3 GetObject", error))
                    }
                    // AccessDenied, NoSuchBucket: the stack's settings, not the message.
                    Fault::Refused => MailError::Rejected(format!("S3 GetObject: {}", summary(&error))),
                });
            }
        };
        if object.content_length().is_some_and(|length| length > MAX_MESSAGE_BYTES) {
            return Err(MailError::Rejected(format!(
                "{} is larger than the 40 MB SES receives",
                self.key(message_id)
            )));
        }
        let body = object.body.collect().await.map_err(|e| MailError::Unavailable(e.into()))?;
        Ok(Some(body.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_and_prefixes_are_checked_where_they_are_read() {
        for good in ["tenancy-inbound-mail", "a.b-c", "abc", &"a".repeat(63)] {
            assert!(bucket_name(good).is_ok(), "{good}");
        }
        for bad in ["", "ab", "Tenancy", "-abc", "abc-", "a_b", "a b", &"a".repeat(64)] {
            assert!(bucket_name(bad).is_err(), "{bad}");
        }
        assert_eq!(key_prefix("inbound/").unwrap(), "inbound/");
        assert_eq!(key_prefix("").unwrap(), "");
        assert!(key_prefix("/inbound/").is_err());
        assert!(key_prefix("in\nbound/").is_err());
    }
}
