//! Mail through Amazon SES (API v2): simple UTF-8 text mails, and received
//! messages forwarded as they are (raw content).

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message, RawMessage};

use super::error::{Fault, call_failed, classify, summary};
use crate::config::{ConfigError, Lookup, required};
use crate::domain::EmailAddress;
use crate::ports::{Mail, MailError, Mailer, RawMailer};

/// The verified address (or an address of a verified domain) mail comes from.
pub const MAIL_SENDER: &str = "MAIL_SENDER";
/// Optional SES configuration set (event destinations, dedicated IPs).
pub const SES_CONFIGURATION_SET: &str = "SES_CONFIGURATION_SET";

const CHARSET: &str = "UTF-8";

/// The mailer on Amazon SES v2.
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: Client,
    sender: EmailAddress,
    configuration_set: Option<String>,
}

impl SesMailer {
    pub fn new(client: Client, sender: EmailAddress, configuration_set: Option<String>) -> Self {
        SesMailer { client, sender, configuration_set }
    }

    pub fn from_lookup(client: Client, env: &dyn Lookup) -> Result<Self, ConfigError> {
        let sender = EmailAddress::parse(&required(env, MAIL_SENDER)?)
            .map_err(|e| ConfigError::Invalid { var: MAIL_SENDER, reason: e.to_string() })?;
        let configuration_set = match env.get(SES_CONFIGURATION_SET) {
            None => None,
            Some(raw) => {
                let name = raw.trim();
                let valid = (1..=64).contains(&name.len())
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !valid {
                    return Err(ConfigError::Invalid {
                        var: SES_CONFIGURATION_SET,
                        reason: "expected 1 to 64 letters, digits, hyphens or underscores".into(),
                    });
                }
                Some(name.to_owned())
            }
        };
        Ok(SesMailer::new(client, sender, configuration_set))
    }

    pub fn sender(&self) -> &EmailAddress {
        &self.sender
    }
}

fn utf8(text: &str) -> Result<Content, MailError> {
    Content::builder()
        .data(text)
        .charset(CHARSET)
        .build()
        .map_err(|e| MailError::Rejected(format!("mail content: {e}")))
}

impl SesMailer {
    /// One SendEmail from the sender to `to` with `content`; the message id.
    async fn send_content(&self, to: &EmailAddress, content: EmailContent) -> Result<String, MailError> {
        let output = self
            .client
            .send_email()
            .from_email_address(self.sender.as_str())
            .destination(Destination::builder().to_addresses(to.as_str()).build())
            .content(content)
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(|error| match classify(&error) {
                Fault::Throttled | Fault::Transient => {
                    MailError::Unavailable(call_failed("SES SendEmail", error))
                }
                // MessageRejected, MailFromDomainNotVerified, BadRequest (a bad
                // address), NotFound (configuration set), SendingPaused, ...
                Fault::Refused => MailError::Rejected(summary(&error)),
            })?;
        output.message_id.filter(|id| !id.is_empty()).ok_or_else(|| {
            MailError::Unavailable(super::error::unexpected("SES SendEmail answered without a message id"))
        })
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &Mail) -> Result<String, MailError> {
        let message = Message::builder()
            .subject(utf8(&mail.subject)?)
            .body(Body::builder().text(utf8(&mail.text)?).build())
            .build();
        self.send_content(&mail.to, EmailContent::builder().simple(message).build()).await
    }
}

#[async_trait]
impl RawMailer for SesMailer {
    async fn send_raw(&self, to: &EmailAddress, raw: &[u8]) -> Result<String, MailError> {
        let message = RawMessage::builder()
            .data(Blob::new(raw))
            .build()
            .map_err(|e| MailError::Rejected(format!("building the raw message: {e}")))?;
        self.send_content(to, EmailContent::builder().raw(message).build()).await
    }
}
