use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::persisted::Persisted;
use crate::clock::Clock;
use crate::domain::EmailAddress;
use crate::ports::{Mail, MailError, Mailer, RawMailer};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMail {
    pub message_id: String,
    pub sent_at: i64,
    #[serde(flatten)]
    pub mail: Mail,
    /// A message forwarded as it was received: its size (the mail's text
    /// holds its header block only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_bytes: Option<usize>,
}

/// An outbox on a laptop (like a mail catcher): every mail is kept, in order.
pub struct LocalOutbox {
    sent: Persisted<Vec<SentMail>>,
    clock: Arc<dyn Clock>,
}

impl LocalOutbox {
    pub fn open(dir: Option<&Path>, clock: Arc<dyn Clock>) -> std::io::Result<Self> {
        Ok(LocalOutbox { sent: Persisted::open(dir, "emails.json")?, clock })
    }

    pub fn sent(&self) -> Vec<SentMail> {
        self.sent.read(Vec::clone)
    }
}

#[async_trait]
impl Mailer for LocalOutbox {
    async fn send(&self, mail: &Mail) -> Result<String, MailError> {
        let now = self.clock.now_unix();
        self.sent
            .update(|sent| {
                let message_id = format!("local-{:06}", sent.len() + 1);
                let sent_mail = SentMail {
                    message_id: message_id.clone(),
                    sent_at: now,
                    mail: mail.clone(),
                    forwarded_bytes: None,
                };
                sent.push(sent_mail);
                message_id
            })
            .map_err(|e| MailError::Unavailable(e.into()))
    }
}

#[async_trait]
impl RawMailer for LocalOutbox {
    /// Kept like any mail, its Subject as the subject and its header block
    /// as the text (a 10 MB body is not copied into the outbox).
    async fn send_raw(&self, to: &EmailAddress, raw: &[u8]) -> Result<String, MailError> {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .or_else(|| raw.windows(2).position(|w| w == b"\n\n"));
        let headers = String::from_utf8_lossy(&raw[..end.unwrap_or(raw.len())]).into_owned();
        let subject = headers
            .lines()
            .find_map(|line| line.strip_prefix("Subject:").or_else(|| line.strip_prefix("subject:")))
            .map_or_else(|| "(no subject)".to_owned(), |s| s.trim().to_owned());
        let mail = Mail { to: to.clone(), subject, text: headers };
        let now = self.clock.now_unix();
        self.sent
            .update(|sent| {
                let message_id = format!("local-{:06}", sent.len() + 1);
                sent.push(SentMail {
                    message_id: message_id.clone(),
                    sent_at: now,
                    mail,
                    forwarded_bytes: Some(raw.len()),
                });
                message_id
            })
            .map_err(|e| MailError::Unavailable(e.into()))
    }
}
